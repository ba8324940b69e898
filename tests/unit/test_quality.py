"""The data-quality suites and gate: every fault of the bad-input corpus, quarantine and its
release, the volume check, and the reports kept in the lake. Great Expectations runs for real, on
DuckDB views of the damaged day."""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ioc_analytics import quality
from ioc_analytics.devtools.faults import inject_fault
from ioc_analytics.errors import DataQualityError
from ioc_analytics.lake import contract
from ioc_analytics.lake.tables import RAW_TABLES
from ioc_analytics.quality import runner
from ioc_analytics.settings import get_settings
from tests.helpers import ONE_DAY, fault_messages

DAY = ONE_DAY
FOLDER = DAY.strftime("%Y/%m/%d")
FAULT_MESSAGES = fault_messages(DAY)

def test_good_data_passes_and_the_report_is_kept(one_day_lake, one_day_settings):
    for table in RAW_TABLES:
        report = quality.validate_source(one_day_settings, DAY, table)
        assert report.failures == [] and report.rows > 1000, quality.render([report.as_dict()])
        assert report.evaluated == len(contract.rules(table)) + quality.TABLE_CHECKS
        quality.gate(report)
        kept = json.loads((one_day_lake / "quality" / table / f"{DAY}.json").read_text())
        assert kept["rows"] == report.rows and kept["passed"] and kept["errors"] == 0
    shown = quality.render(quality.load_reports(one_day_settings, DAY))
    events = len(contract.rules("assessment_events")) + quality.TABLE_CHECKS
    assert re.search(rf"assessment_events\s+PASSED  {events} checks, \d+ rows, 0 errors", shown), shown


@pytest.mark.parametrize("fault", sorted(FAULT_MESSAGES))
def test_each_fault_is_caught_with_a_clear_message(one_day_lake, one_day_settings, fault):
    table, words = FAULT_MESSAGES[fault]
    inject_fault(one_day_lake, DAY, fault, "personality")
    report = quality.validate_source(one_day_settings, DAY, table)
    with pytest.raises(DataQualityError) as caught:
        quality.gate(report)
    message = str(caught.value)
    partition = (f"date={FOLDER}, assessment_type=personality" if table == "assessment_events"
                 else "year=2024, month=01 (rows of 2024-01-10)")
    assert re.match(rf"{table} for {DAY} failed [12] of {report.evaluated} checks \(\d+ rows\): ", message), message
    assert f"[{partition}]" in message, message
    for word in words:
        assert word in message, message
    assert "Nothing that reads this table is built or exported" in message
    assert f"then run `ioc recover {DAY}`" in message
    assert f"the report is {one_day_lake}/quality/{table}/{DAY}.json" in message
    kept = json.loads((one_day_lake / "quality" / table / f"{DAY}.json").read_text())
    assert not kept["passed"] and kept["failures"][0]["partition"] == partition


def test_a_warning_is_reported_and_lets_the_day_go_on(one_day_lake, one_day_settings, caplog):
    path = one_day_lake / "assessments" / FOLDER / "career" / "part-00000.parquet"
    table = pq.read_table(path)
    pq.write_table(table.set_column(table.schema.get_field_index("version"), "version",
                                    pa.array(["9.9.9"] * table.num_rows)), path)
    report = quality.validate_source(one_day_settings, DAY, "assessment_events")
    assert report.errors == [] and [(w.column, w.breach) for w in report.warnings] == [("version", "unknown label")]
    assert quality.gate(report)["warnings"] == 1
    assert "version: unknown label" in caplog.text and "9.9.9" in caplog.text


def test_a_duplicate_across_two_partitions_is_named_for_the_day(one_day_lake, one_day_settings):
    folder = one_day_lake / "assessments" / FOLDER
    first_row = pq.read_table(folder / "career" / "part-00000.parquet").slice(0, 1)
    pq.write_table(first_row, folder / "leadership" / "x.parquet")
    with pytest.raises(DataQualityError, match=rf"\[assessment_events {DAY}\] assessment_id: duplicate key, "
                                               r"1 key, for example \['a-\d+-\d+ \(2 rows\)'\]"):
        quality.gate(quality.validate_source(one_day_settings, DAY, "assessment_events"))


@pytest.fixture()
def quarantining(one_day_lake, tmp_path):
    """Settings with quarantine on, the optional ``career`` partition, and its good rows."""
    settings = get_settings(backend="local", lake_root=str(one_day_lake), state_dir=str(tmp_path / "state"),
                            quarantine=True)
    partition = one_day_lake / "assessments" / FOLDER / "career"
    return settings, partition, pq.read_table(partition / "part-00000.parquet")


def test_quarantine_moves_an_optional_partition_aside_and_a_fixed_rerun_releases_it(one_day_lake, quarantining):
    settings, partition, good = quarantining
    inject_fault(one_day_lake, DAY, "unknown-device", "career")

    report = quality.validate_source(settings, DAY, "assessment_events")
    outcome = quality.gate(report)  # the day goes on without the partition
    [entry] = outcome["quarantined"]
    assert entry.startswith(f"{one_day_lake}/quarantine/assessment_events/{FOLDER}/career/")
    assert not list(partition.glob("*.parquet")), "excluded: nothing left where the engines read"
    assert sorted(p.name for p in Path(entry).iterdir()) == ["_quarantine.json", "part-00000.parquet"]
    manifest = json.loads((Path(entry) / "_quarantine.json").read_text())
    assert manifest["failures"][0]["samples"] == ["smart_fridge"]
    assert (manifest["failures"][0]["column"], manifest["failures"][0]["breach"]) == ("device", "unknown label")
    assert manifest["partition"] == {"date": FOLDER, "assessment_type": "career"}
    assert json.loads((one_day_lake / "quality" / "assessment_events" / f"{DAY}.json").read_text())[
        "quarantined"] == [entry]

    # A re-run before any fix re-validates the quarantined files where they are, and leaves them
    # there: the same outcome as the run that set them aside.
    again = quality.validate_source(settings, DAY, "assessment_events")
    assert again.quarantined == [] and again.released == [] and again.errors == []
    assert [(f.column, f.severity, f.partition) for f in again.failures] == [
        ("device", "quarantined", f"date={FOLDER}, assessment_type=career")]
    assert not list(partition.glob("*.parquet"))

    # The source is fixed in place in quarantine: the next run validates it, moves it back, releases.
    pq.write_table(good, f"{entry}part-00000.parquet")
    fixed = quality.validate_source(settings, DAY, "assessment_events")
    assert fixed.errors == [] and fixed.released and "moved back" in fixed.released[0]
    assert pq.read_table(partition / "part-00000.parquet").equals(good)
    assert (Path(entry) / "_released.json").is_file()
    assert quality.validate_source(settings, DAY, "assessment_events").released == [], "released once"


def test_a_redelivered_partition_that_passes_releases_the_quarantine(one_day_lake, quarantining):
    settings, partition, good = quarantining
    inject_fault(one_day_lake, DAY, "column-retyped", "career")
    [entry] = quality.validate_source(settings, DAY, "assessment_events").quarantined
    pq.write_table(good, partition / "part-00000.parquet")  # upstream delivers the partition again
    report = quality.validate_source(settings, DAY, "assessment_events")
    assert report.errors == [] and report.released == [f"{entry} (the partition was delivered again and passed)"]
    assert (Path(entry) / "part-00000.parquet").is_file(), "the bad files stay for the record"


def test_a_required_partition_is_never_quarantined(one_day_lake, quarantining):
    settings = quarantining[0]
    inject_fault(one_day_lake, DAY, "null-id", "personality")
    report = quality.validate_source(settings, DAY, "assessment_events")
    assert report.quarantined == [] and len(report.errors) == 1
    assert list((one_day_lake / "assessments" / FOLDER / "personality").glob("*.parquet"))


@pytest.fixture()
def five_weeks(sample_lake, tmp_path):
    """2024-01-31 and the same weekday of the four weeks before it."""
    lake = tmp_path / "lake"
    for week in range(5):
        folder = (dt.date(2024, 1, 31) - dt.timedelta(weeks=week)).strftime("%Y/%m/%d")
        shutil.copytree(sample_lake / "assessments" / folder, lake / "assessments" / folder)
    return lake


@pytest.mark.parametrize(("share", "severity"), [(0.3, "warning"), (0.1, "error"), (1.0, None)])
def test_volume_is_compared_with_the_same_weekday_of_the_last_weeks(five_weeks, tmp_path, share, severity):
    for path in (five_weeks / "assessments" / "2024/01/31").glob("*/*.parquet"):
        table = pq.read_table(path)
        pq.write_table(table.slice(0, max(1, round(table.num_rows * share))), path)
    settings = get_settings(backend="local", lake_root=str(five_weeks), state_dir=str(tmp_path / "state"))
    report = quality.validate_source(settings, dt.date(2024, 1, 31), "assessment_events")
    volume = [f for f in report.failures if f.breach == "volume"]
    assert [f.severity for f in volume] == ([severity] if severity else [])
    if severity:
        assert re.search(r"\d+ rows, \d+% of the median 1500 of the same weekday over the last 4 weeks",
                         volume[0].detail), volume[0].detail


def test_the_pinned_gx_still_needs_its_duckdb_connection_kept():
    """Guards the private-attribute workaround: if GX renames it, this fails before production."""
    from great_expectations.execution_engine import sqlalchemy_execution_engine as gx_sql

    assert isinstance(gx_sql._PERSISTED_CONNECTION_DIALECTS, tuple)
    runner._persist_duckdb_connections(gx_sql)
    assert "duckdb" in gx_sql._PERSISTED_CONNECTION_DIALECTS


def test_a_day_stops_while_an_earlier_day_it_reads_has_failed(one_day_lake, one_day_settings):
    earlier = DAY - dt.timedelta(days=3)
    failure = quality.Failure("device: unknown label", "device", "error", 1, ["smart_fridge"],
                              partition=f"date={earlier:%Y/%m/%d}, assessment_type=career", breach="unknown label")
    quality.keep(one_day_settings, quality.QualityReport("assessment_events", earlier.isoformat(), rows=10,
                                                         evaluated=1, failures=[failure]))
    # A day stopped only by the look-back holds no bad data of its own: it blocks nothing.
    blocked = DAY - dt.timedelta(days=1)
    quality.keep(one_day_settings, quality.QualityReport("assessment_events", blocked.isoformat(), rows=10,
                                                         evaluated=1, failures=[quality.Failure(
                                                             "earlier days", None, "error", 1, [str(earlier)],
                                                             breach="earlier day failed")]))
    report = quality.validate_source(one_day_settings, DAY, "assessment_events")
    with pytest.raises(DataQualityError) as caught:
        quality.gate(report)
    message = str(caught.value)
    [lookback] = report.errors
    assert lookback.breach == "earlier day failed" and lookback.samples == [earlier.isoformat()], message
    assert (f"assessment_events: {earlier} failed [date={earlier:%Y/%m/%d}, assessment_type=career] device: "
            "unknown label, 1 row, for example ['smart_fridge']; this day reads it (its 30-day look-back") in message
    assert f"then run `ioc recover {earlier}`" in message and str(blocked) not in message
    assert "Fix or re-deliver what is named" not in message, "the day's own data is fine: nothing to fix here"
    # ocean_scores reads the month to date: an events failure is not its concern.
    quality.gate(quality.validate_source(one_day_settings, DAY, "ocean_scores"))


def test_files_of_an_unknown_assessment_type_are_not_dropped_silently(one_day_lake, one_day_settings):
    folder = one_day_lake / "assessments" / FOLDER
    (folder / "quiz").mkdir()
    shutil.copy(folder / "career" / "part-00000.parquet", folder / "quiz" / "part-00000.parquet")
    (folder / "_tmp").mkdir()  # a writer's hidden folder is none of its business
    (folder / "_tmp" / "x.parquet").write_bytes(b"")
    with pytest.raises(DataQualityError, match=rf"\[{one_day_lake}/assessments/{FOLDER}\] unknown partition, "
                                               rf"for example \['{folder}/quiz'\] "
                                               r"\(1 folder that no engine reads; the known values are career, "):
        quality.gate(quality.validate_source(one_day_settings, DAY, "assessment_events"))


def test_an_earlier_day_that_failed_on_its_volume_alone_stops_no_later_day(one_day_lake, one_day_settings):
    """Only bad rows stop a later day: a holiday's low volume, an empty optional partition or
    files no engine reads leave nothing wrong for it to read."""
    for n, breach in enumerate(("volume", "no rows", "unknown partition"), start=1):
        earlier = DAY - dt.timedelta(days=n)
        quality.keep(one_day_settings, quality.QualityReport("assessment_events", earlier.isoformat(), rows=10,
                                                             evaluated=1, failures=[quality.Failure(
                                                                 breach, None, "error", 10, breach=breach)]))
    quality.gate(quality.validate_source(one_day_settings, DAY, "assessment_events"))


def test_a_file_of_another_month_in_the_months_partition_is_reported(one_day_lake, one_day_settings):
    """A misfiled file holds no row of any day of its folder's month: no day would read it into
    its slice, so every day of the month reports it."""
    month = one_day_lake / "ocean_scores" / "2024" / "01"
    data = pq.read_table(month / f"part-{DAY:%Y%m%d}.parquet").slice(0, 3)
    stamps = pa.array([dt.datetime(2023, 12, 15, 9, 0)] * 3, pa.timestamp("ms"))
    pq.write_table(data.set_column(data.schema.get_field_index("timestamp"), "timestamp", stamps),
                   month / "part-misfiled.parquet")
    report = quality.validate_source(one_day_settings, DAY, "ocean_scores")
    [failure] = [f for f in report.errors if f.column == "timestamp"]
    assert (failure.breach, failure.count, failure.samples) == ("out of range", 3, ["2023-12-15 09:00:00"] * 3)


def test_a_day_with_its_own_failures_and_an_earlier_bad_day_names_both_to_recover(one_day_lake, one_day_settings):
    earlier = DAY - dt.timedelta(days=2)
    quality.keep(one_day_settings, quality.QualityReport("assessment_events", earlier.isoformat(), rows=10,
                                                         evaluated=1, failures=[quality.Failure(
                                                             "device: unknown label", "device", "error", 1,
                                                             breach="unknown label")]))
    inject_fault(one_day_lake, DAY, "null-id", "personality")
    with pytest.raises(DataQualityError, match=rf"then run `ioc recover {earlier} {DAY}`: it re-runs the earlier "
                                               "days and this day"):
        quality.gate(quality.validate_source(one_day_settings, DAY, "assessment_events"))


def test_a_damaged_report_is_named_not_a_traceback(one_day_lake, one_day_settings):
    earlier = DAY - dt.timedelta(days=1)
    path = one_day_lake / "quality" / "assessment_events" / f"{earlier}.json"
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    from ioc_analytics.errors import ConfigError

    with pytest.raises(ConfigError, match=rf"the quality report {path} is not JSON .* delete it and validate"):
        quality.validate_source(one_day_settings, DAY, "assessment_events")


def test_a_failed_validation_logs_the_gates_words_not_the_libraries_chatter(one_day_lake, tmp_path, caplog):
    """Great Expectations and its SQL stack log nothing below WARNING; the gate's own message stays."""
    import logging

    settings = get_settings(lake_root=str(one_day_lake), state_dir=str(tmp_path / "state"))
    inject_fault(one_day_lake, ONE_DAY, "unknown-device")
    with caplog.at_level(logging.DEBUG):
        report = quality.validate_source(settings, ONE_DAY, "assessment_events")
        with pytest.raises(DataQualityError) as caught:
            quality.gate(report)
    chatter = [r for r in caplog.records if r.levelno < logging.WARNING
               and r.name.split(".")[0] in ("great_expectations", "duckdb_engine", "sqlalchemy")]
    assert not chatter, [f"{r.name}: {r.getMessage()[:80]}" for r in chatter[:5]]
    assert "device: unknown label" in str(caught.value)
