"""The local engine: partition pruning, statistics, the query log, bad input, partition writes."""

from __future__ import annotations

import datetime as dt
import shutil
import time

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ioc_analytics.backends import get_backend
from ioc_analytics.devtools.scanplan import scan_plan
from ioc_analytics.engine.base import MB, TB, athena_cost
from ioc_analytics.errors import (
    BadDataFileError,
    BytesScannedCutoffError,
    LakeNotFoundError,
    NoDataError,
    QueryError,
    QueryTimeoutError,
    SqlSyntaxError,
    UnknownColumnError,
    UnknownTableError,
)
from ioc_analytics.settings import get_settings
from tests.helpers import TODAY, read_events

ONE_DAY = (TODAY - dt.timedelta(days=3)).strftime("%Y/%m/%d")


def test_athena_cost_rounds_up_to_the_megabyte_with_a_ten_megabyte_minimum():
    assert athena_cost(0) == athena_cost(10 * MB) == 10 * MB / TB * 5
    assert athena_cost(10 * MB + 1) == 11 * MB / TB * 5
    assert athena_cost(TB) == 5.0
    assert athena_cost(TB, succeeded=False) == 0.0


def test_one_day_scans_a_small_fraction_of_a_30_day_lake(local_engine, sample_lake):
    sql = "SELECT device, COUNT(*) AS n, AVG(completion_time) AS t FROM assessment_events {} GROUP BY device"
    last_30_days = local_engine.query(sql.format(
        f"WHERE date >= '{(TODAY - dt.timedelta(days=29)).strftime('%Y/%m/%d')}'"))
    one_day = local_engine.query(sql.format(f"WHERE date = '{ONE_DAY}'"))

    day_partitions = {p.parent for p in sample_lake.glob(f"assessments/{ONE_DAY}/*/*.parquet")}
    assert one_day.stats.partitions_scanned == len(day_partitions) >= 3
    assert last_30_days.stats.partitions_scanned == 30 * len(day_partitions)
    assert 0 < one_day.stats.bytes_scanned < 0.1 * last_30_days.stats.bytes_scanned
    # and the pruned answer is still the right one
    events = read_events(sample_lake)
    assert one_day.table.column("n").to_pylist() and sum(one_day.table.column("n").to_pylist()) == (
        events["date"] == ONE_DAY).sum()


def test_bound_parameters_prune_too(local_engine, sample_lake):
    result = local_engine.query(
        "SELECT COUNT(*) AS n FROM assessment_events WHERE date = ? AND assessment_type = ?",
        [ONE_DAY, "personality"],
    )
    events = read_events(sample_lake)
    expected = ((events["date"] == ONE_DAY) & (events["assessment_type"] == "personality")).sum()
    assert result.table.column("n").to_pylist() == [expected]
    assert result.stats.partitions_scanned == 1


def test_a_count_reads_the_footers_and_no_column_data(local_engine, sample_lake):
    """Each view selects only the columns the query reads: a COUNT(*) is answered from the
    Parquet footers, as Athena answers it, and a query that reads a column reads it."""
    count = local_engine.query("SELECT COUNT(*) AS n FROM assessment_events WHERE date = ?", [ONE_DAY])
    events = read_events(sample_lake)
    assert count.table.column("n").to_pylist() == [(events["date"] == ONE_DAY).sum()]
    assert count.stats.bytes_scanned == 0
    users = local_engine.query("SELECT COUNT(DISTINCT anonymous_user_id) AS n FROM assessment_events WHERE date = ?",
                               [ONE_DAY])
    assert users.table.column("n").to_pylist() == [events.loc[events["date"] == ONE_DAY, "anonymous_user_id"].nunique()]
    assert users.stats.bytes_scanned > 0


def test_scan_plan_names_the_files_columns_and_bounds_a_query_reads(local_engine, sample_lake):
    day = TODAY - dt.timedelta(days=3)
    sql = ("SELECT industry, AVG(openness) AS o FROM ocean_scores s WHERE year = ? AND month = ? "
           "AND ? <= s.\"timestamp\" AND \"timestamp\" < TIMESTAMP '{}' AND consistency > 0.5 "
           "AND \"timestamp\" >= CAST('{}' AS date) GROUP BY industry")
    plan = scan_plan(local_engine, sql.format(day + dt.timedelta(days=1), day), [f"{day:%Y}", f"{day:%m}", str(day)])
    assert [p.table for p in plan] == ["ocean_scores"]
    assert {f.split("/")[-1] for f in plan[0].files} == {
        p.name for p in (sample_lake / "ocean_scores" / f"{day:%Y/%m}").glob("*.parquet")}
    assert plan[0].columns == {"industry", "openness", "timestamp", "consistency", "year", "month"}
    # flipped to column-first; a cast to a date truncates, so it is no bound
    assert plan[0].bounds == [("timestamp", ">=", str(day)), ("timestamp", "<", f"{day + dt.timedelta(days=1)}"),
                              ("consistency", ">", 0.5)]
    assert plan[0].filter_only == {"consistency"}  # the date cast reads "timestamp" outside the bounds


def test_parameters_bind_in_the_order_of_the_sql_text(local_engine, sample_lake):
    """sqlglot keeps a SELECT's WITH after its WHERE and LIMIT; binding must follow the text."""
    days = [(TODAY - dt.timedelta(days=d)).strftime("%Y/%m/%d") for d in (3, 5)]
    result = local_engine.query(
        "WITH first AS (SELECT COUNT(*) AS n FROM assessment_events WHERE date = ? AND assessment_type = ?) "
        "SELECT first.n AS a, second.n AS b FROM first, "
        "(SELECT COUNT(*) AS n FROM assessment_events WHERE date = ?) AS second LIMIT ?",
        [days[0], "career", days[1], 5],
    )
    events = read_events(sample_lake)
    expected_a = ((events["date"] == days[0]) & (events["assessment_type"] == "career")).sum()
    expected_b = (events["date"] == days[1]).sum()
    assert result.table.to_pylist() == [{"a": expected_a, "b": expected_b}]
    assert result.stats.partitions_scanned == 1 + 5

    limited = local_engine.query("SELECT session_id FROM assessment_events WHERE date = ? LIMIT ?", [days[0], 7])
    assert limited.table.num_rows == 7


def test_integers_divide_as_on_athena(local_engine, sample_lake):
    """Athena (Trino) divides integers as integers, truncating toward zero; DuckDB would not."""
    row = local_engine.query(
        "SELECT 7 / 2 AS a, -7 / 2 AS b, 7.0 / 2 AS c, COUNT_IF(completion_time > 0) / COUNT(*) AS d, "
        "MAX(completion_time) / 60 AS e, COUNT(*) FROM assessment_events WHERE date = ?", [ONE_DAY]
    ).table.to_pylist()[0]
    events = read_events(sample_lake)
    longest = int(events.loc[events["date"] == ONE_DAY, "completion_time"].max())
    assert (row["a"], row["b"], float(row["c"]), row["d"], row["e"]) == (3, -3, 3.5, 0, longest // 60)
    assert "_col5" in row, "an unnamed column is named as Athena names it"


def test_a_value_with_a_quote_is_bound_not_pasted(local_engine):
    with pytest.raises(NoDataError):
        local_engine.query("SELECT COUNT(*) FROM assessment_events WHERE date = ?", ["2024/01/01' OR '1'='1"])


def test_columns_are_only_those_of_the_ddl_and_map_functions_work(local_engine):
    result = local_engine.query(
        "SELECT cardinality(facets) AS facets, cardinality(dark_side_indicators) AS dark, "
        "element_at(facets, 'openness.fantasy').score AS fantasy, year, month "
        "FROM ocean_scores WHERE year = '2024' AND month = '01' LIMIT 5"
    )
    rows = result.table.to_pylist()
    assert {r["facets"] for r in rows} == {30}
    assert {r["dark"] for r in rows} == {11}
    assert all(0 <= r["fantasy"] <= 100 for r in rows)
    assert {(r["year"], r["month"]) for r in rows} == {("2024", "01")}


@pytest.mark.parametrize(
    ("sql", "error", "words"),
    [
        ("SELECT * FROM assesment_events", UnknownTableError, ["assesment_events", "did you mean assessment_events"]),
        ("SELECT * FROM other_db.assessment_events", UnknownTableError, ["other_db"]),
        ("SELECT devic FROM assessment_events WHERE date = '2024/01/02'", UnknownColumnError,
         ['column "devic" not found in assessment_events', "did you mean device"]),
        ("SELECT * FORM assessment_events", SqlSyntaxError, ["line 1", "assessment_events"]),
        ("SELECT (1", SqlSyntaxError, ["Expecting )"]),
        ("SELECT 1; SELECT 2", SqlSyntaxError, ["one SQL statement"]),
        ("DROP TABLE assessment_events", QueryError, ["read-only"]),
        ("SELECT COUNT(*) FROM assessment_events WHERE date = '1999/01/01'", NoDataError,
         ["no partitions matching", "1999/01/01", "the lake holds"]),
        ("SELECT COUNT(*) FROM assessment_events WHERE date = ?", QueryError, ["1 ? placeholders but 0"]),
        ("SELECT 'abc FROM assessment_events", SqlSyntaxError, ["unterminated string"]),
    ],
)
def test_bad_queries_get_one_clear_error_and_are_logged(local_engine, sql, error, words):
    with pytest.raises(error) as caught:
        local_engine.query(sql)
    message = str(caught.value)
    for word in words:
        assert word in message, message
    assert "Traceback" not in message and "__ioc_" not in message and "\n" not in message
    failed = [r for r in local_engine.log if r["state"] == "FAILED"]
    assert failed[-1]["error"] == message and failed[-1]["cost_usd"] == 0.0


def test_missing_lake_folder(tmp_path):
    engine = get_backend(get_settings(lake_root=str(tmp_path / "nowhere"), state_dir=str(tmp_path / "s"))).engine
    with pytest.raises(LakeNotFoundError, match="does not exist.*IOC_LAKE_ROOT"):
        engine.query("SELECT COUNT(*) FROM assessment_events")


def test_empty_partition_is_an_error_not_an_empty_answer(sample_lake, tmp_path):
    lake = tmp_path / "lake"
    shutil.copytree(sample_lake / "assessments" / ONE_DAY, lake / "assessments" / ONE_DAY)
    # Empty the personality partition: a valid Parquet file with the schema and no rows.
    partition = lake / "assessments" / ONE_DAY / "personality"
    schema = pq.read_schema(next(partition.glob("*.parquet")))
    for f in partition.glob("*.parquet"):
        f.unlink()
    pq.write_table(pa.Table.from_pylist([], schema=schema), partition / "part-00000.parquet")
    engine = get_backend(get_settings(lake_root=str(lake), state_dir=str(tmp_path / "s"))).engine

    with pytest.raises(NoDataError, match="hold no rows"):
        engine.query("SELECT device, COUNT(*) FROM assessment_events "
                     "WHERE date = ? AND assessment_type = 'personality' GROUP BY device", [ONE_DAY])
    # An aggregate over nothing has a row (0), which would read as a real answer.
    with pytest.raises(NoDataError, match="hold no rows"):
        engine.query("SELECT COUNT(*) AS n FROM assessment_events WHERE date = ? AND assessment_type = 'personality'",
                     [ONE_DAY])
    # The other partitions of the day still answer.
    other = engine.query("SELECT COUNT(*) AS n FROM assessment_events WHERE date = ? AND assessment_type = 'career'",
                         [ONE_DAY])
    assert other.table.column("n")[0].as_py() > 0


def test_a_file_that_is_not_parquet_is_named(sample_lake, tmp_path):
    lake = tmp_path / "lake"
    shutil.copytree(sample_lake / "assessments" / ONE_DAY, lake / "assessments" / ONE_DAY)
    bad = lake / "assessments" / ONE_DAY / "career" / "part-00001.parquet"
    bad.write_text("date,device\n2024-01-01,desktop\n")
    engine = get_backend(get_settings(lake_root=str(lake), state_dir=str(tmp_path / "s"))).engine
    with pytest.raises(BadDataFileError, match=f"{bad} is not a readable Parquet file"):
        engine.query("SELECT COUNT(*) FROM assessment_events WHERE date = ?", [ONE_DAY])
    assert [r["state"] for r in engine.log] == ["FAILED"]
    # Other partitions still answer.
    engine.query("SELECT COUNT(*) FROM assessment_events WHERE date = ? AND assessment_type = 'personality'",
                 [ONE_DAY])


def test_a_column_missing_from_a_partitions_files_reads_as_null(sample_lake, tmp_path):
    """As on Athena, which reads Parquet columns by name."""
    lake = tmp_path / "lake"
    shutil.copytree(sample_lake / "assessments" / ONE_DAY, lake / "assessments" / ONE_DAY)
    partition = lake / "assessments" / ONE_DAY / "career"
    path = next(partition.glob("*.parquet"))
    pq.write_table(pq.read_table(path).drop_columns(["region"]), path)
    engine = get_backend(get_settings(lake_root=str(lake), state_dir=str(tmp_path / "s"))).engine
    result = engine.query("SELECT assessment_type, COUNT(*) AS n, COUNT(region) AS with_region FROM assessment_events "
                          "WHERE date = ? GROUP BY assessment_type", [ONE_DAY]).table.to_pylist()
    by_type = {r["assessment_type"]: r for r in result}
    assert by_type["career"]["n"] > 0 and by_type["career"]["with_region"] == 0
    assert by_type["personality"]["with_region"] == by_type["personality"]["n"] > 0


def test_an_empty_lookback_does_not_fail_a_query_that_has_data(local_engine):
    result = local_engine.query(
        "SELECT COUNT(*) AS n, (SELECT COUNT(*) FROM assessment_events WHERE date < '2000/01/01') AS old "
        "FROM assessment_events WHERE date = ?", [ONE_DAY])
    row = result.table.to_pylist()[0]
    assert row["n"] > 0 and row["old"] == 0


def test_replace_partition_replaces_exactly_that_partition(local_settings, sample_lake, tmp_path):
    engine = get_backend(local_settings).engine
    select = ("SELECT CAST(COUNT(DISTINCT anonymous_user_id) AS bigint) AS unique_users, "
              "CAST(COUNT(*) AS bigint) AS total_sessions, CAST(COUNT_IF(completion_time > 0) AS bigint) "
              "AS completed_sessions, CAST(? AS bigint) AS returning_users FROM assessment_events WHERE date = ?")
    other_day = (TODAY - dt.timedelta(days=4)).strftime("%Y/%m/%d")
    engine.replace_partition("daily_active_users", {"date": other_day}, select, [0, other_day])
    engine.replace_partition("daily_active_users", {"date": ONE_DAY}, select, [1, ONE_DAY])
    engine.replace_partition("daily_active_users", {"date": ONE_DAY}, select, [2, ONE_DAY])

    folder = sample_lake / "aggregates" / "daily_active_users" / ONE_DAY
    versions = sorted(p.name for p in folder.iterdir())
    assert len(versions) == 2 and all(p.startswith("v") for p in versions), "the current and previous versions"
    assert sorted(p.name for p in (folder / versions[-1]).iterdir()) == ["_ioc_committed", "part-00000.parquet"]
    rows = engine.query("SELECT date, returning_users, total_sessions FROM daily_active_users "
                        "WHERE date IN (?, ?) ORDER BY date", [other_day, ONE_DAY]).table.to_pylist()
    events = read_events(sample_lake)
    assert rows == [
        {"date": other_day, "returning_users": 0, "total_sessions": (events["date"] == other_day).sum()},
        {"date": ONE_DAY, "returning_users": 2, "total_sessions": (events["date"] == ONE_DAY).sum()},
    ]
    shutil.rmtree(sample_lake / "aggregates")


def test_replace_partition_refuses_columns_that_differ_from_the_ddl(local_engine):
    with pytest.raises(QueryError, match="make the SELECT list match the DDL"):
        local_engine.replace_partition("daily_active_users", {"date": ONE_DAY},
                                       "SELECT COUNT(*) AS n FROM assessment_events WHERE date = ?", [ONE_DAY])


def test_delete_prefix_stays_strictly_inside_the_lake(tmp_path):
    from ioc_analytics.backends.local.lake import LocalLake
    from ioc_analytics.errors import ConfigError

    lake = LocalLake(str(tmp_path / "lake"))
    (tmp_path / "lake" / "aggregates" / "t" / "v1").mkdir(parents=True)
    (tmp_path / "lake" / "aggregates" / "t" / "v1" / "part-00000.parquet").write_bytes(b"x")
    for outside in (tmp_path, tmp_path / "lake", tmp_path / "lake" / ".." / "other"):
        with pytest.raises(ConfigError, match="refusing to delete"):
            lake.delete_prefix(str(outside))
    assert lake.delete_prefix(str(tmp_path / "lake" / "aggregates" / "t" / "v1") + "/") == [
        str(tmp_path / "lake" / "aggregates" / "t" / "v1" / "part-00000.parquet")]
    assert not (tmp_path / "lake" / "aggregates" / "t" / "v1").exists()


@pytest.fixture(scope="module")
def day_of_150k_events(tmp_path_factory):
    from ioc_analytics.devtools.generate import generate_lake

    lake = tmp_path_factory.mktemp("big-day")
    generate_lake(lake, dt.date(2024, 1, 1), 1, 150_000, seed=3)
    return lake


def test_a_query_past_the_timeout_is_stopped(day_of_150k_events, tmp_path):
    settings = get_settings(lake_root=str(day_of_150k_events), state_dir=str(tmp_path), query_timeout_s=1)
    engine = get_backend(settings).engine
    started = time.monotonic()
    with pytest.raises(QueryTimeoutError, match="longer than IOC_QUERY_TIMEOUT_S=1 s"):
        engine.query("SELECT SUM(a.completion_time * b.completion_time) FROM assessment_events a "
                     "CROSS JOIN assessment_events b WHERE a.date = '2024/01/01' AND b.date = '2024/01/01'")
    assert time.monotonic() - started < 30
    assert [r["state"] for r in engine.log] == ["FAILED"]


def test_a_query_past_the_bytes_scanned_cutoff_is_refused(day_of_150k_events, tmp_path):
    sql = "SELECT SUM(cardinality(facets)) AS n FROM ocean_scores WHERE year = '2024' AND month = '01'"
    unlimited = get_backend(get_settings(lake_root=str(day_of_150k_events), state_dir=str(tmp_path))).engine
    scanned = unlimited.query(sql).stats.bytes_scanned
    assert scanned > 10 * MB
    limited = get_backend(get_settings(lake_root=str(day_of_150k_events), state_dir=str(tmp_path),
                                       bytes_scanned_cutoff=10 * MB)).engine
    with pytest.raises(BytesScannedCutoffError, match="past the per-query cutoff of 10.0 MB"):
        limited.query(sql)
    # As on Athena, a query stopped at the cutoff is cancelled and pays for what it scanned.
    stopped = list(limited.log)[-1]
    assert stopped["state"] == "CANCELLED" and stopped["bytes_scanned"] == scanned and stopped["cost_usd"] > 0


@pytest.mark.parametrize(("setting", "value", "words"), [
    ("query_timeout_s", 0, "IOC_QUERY_TIMEOUT_S=0 must be a positive"),
    ("bytes_scanned_cutoff", 1000, "below Athena's minimum of 10 MB"),
    ("monthly_budget_usd", "nan", "IOC_MONTHLY_BUDGET_USD=nan must be a positive number of dollars"),
    ("query_cost_alert_usd", "inf", "IOC_QUERY_COST_ALERT_USD=inf must be a positive number of dollars"),
    ("monthly_budget_usd", "abc", "IOC_MONTHLY_BUDGET_USD='abc' must be a number"),
    ("budget_alert_pct", 0, "IOC_BUDGET_ALERT_PCT=0 must be a percentage above 0 and at most 100"),
])
def test_limits_are_validated(setting, value, words):
    from ioc_analytics.errors import ConfigError

    with pytest.raises(ConfigError, match=words):
        get_settings(**{setting: value})


def test_unnest_of_a_map_gives_one_row_per_entry(local_engine, sample_lake):
    from tests.helpers import read_scores

    result = local_engine.query(
        "SELECT t.indicator, COUNT(*) AS n, AVG(t.risk) AS mean_risk "
        "FROM ocean_scores s CROSS JOIN UNNEST(s.dark_side_indicators) AS t(indicator, risk) "
        "WHERE year = '2024' AND month = '01' GROUP BY t.indicator ORDER BY t.indicator").table.to_pylist()
    scores = read_scores(sample_lake)
    january = scores[(scores["year"] == "2024") & (scores["month"] == "01")]
    entries = [(k, v) for pairs in january["dark_side_indicators"] for k, v in pairs]
    expected = {}
    for k, v in entries:
        expected.setdefault(k, []).append(v)
    assert [r["indicator"] for r in result] == sorted(expected)
    for row in result:
        values = expected[row["indicator"]]
        assert row["n"] == len(values) and row["mean_risk"] == pytest.approx(sum(values) / len(values))


def test_approx_percentile_on_groups_larger_than_the_sample(day_of_150k_events, tmp_path):
    """Above RESERVOIR_SIZE values a group is sampled: the rank stays within 2 % of p."""
    import numpy as np

    from ioc_analytics.backends.local.dialect import RESERVOIR_SIZE
    from tests.helpers import read_scores

    engine = get_backend(get_settings(lake_root=str(day_of_150k_events), state_dir=str(tmp_path))).engine
    got = engine.query("SELECT industry, COUNT(*) AS n, approx_percentile(openness, ARRAY[0.1, 0.5, 0.9]) AS q "
                       "FROM ocean_scores WHERE year = '2024' AND month = '01' GROUP BY industry").table.to_pylist()
    scores = read_scores(day_of_150k_events)
    assert max(r["n"] for r in got) > RESERVOIR_SIZE
    for row in got:
        ordered = np.sort(scores.loc[scores["industry"] == row["industry"], "openness"].to_numpy())
        for p, value in zip((0.1, 0.5, 0.9), row["q"], strict=True):
            rank = np.searchsorted(ordered, value, side="right") / len(ordered)
            assert abs(rank - p) <= 0.02, (row["industry"], p, rank)


def test_count_if_over_a_group_of_nulls_is_zero_as_on_athena(local_engine, sample_lake):
    """A group whose completion times are all null (abandoned sessions) completed 0 sessions on
    Athena; DuckDB's own count_if says NULL."""
    from tests.helpers import read_events

    day = "2024/01/10"
    result = local_engine.query(
        "SELECT device, COUNT_IF(completion_time > 0) AS completed, COUNT_IF(completion_time IS NULL AND false) "
        "AS none FROM assessment_events WHERE date = ? AND completion_time IS NULL GROUP BY device ORDER BY device",
        [day]).table.to_pylist()
    events = read_events(sample_lake)
    devices = sorted(set(events[(events["date"] == day) & events["completion_time"].isna()]["device"]))
    assert result == [{"device": d, "completed": 0, "none": 0} for d in devices] and devices


def test_a_nan_outside_the_files_statistics_is_read(sample_lake, tmp_path):
    """Parquet writers leave NaN out of a column's min/max; a filter the statistics rule out must
    still see it (the data-quality gate asks exactly that)."""
    import math

    import pyarrow as pa
    import pyarrow.parquet as pq

    from ioc_analytics.settings import get_settings

    lake = tmp_path / "lake"
    shutil.copytree(sample_lake / "ocean_scores" / "2024" / "01", lake / "ocean_scores" / "2024" / "01")
    path = lake / "ocean_scores" / "2024" / "01" / "part-20240110.parquet"
    data = pq.read_table(path)
    values = data["openness"].to_pylist()
    values[0] = math.nan
    pq.write_table(data.set_column(data.schema.get_field_index("openness"), "openness", pa.array(values)), path)
    assert pq.read_metadata(path).row_group(0).column(3).statistics.max <= 100
    engine = get_backend(get_settings(backend="local", lake_root=str(lake), state_dir=str(tmp_path / "state"))).engine
    found = engine.query("SELECT COUNT_IF(is_nan(openness)) AS nans FROM ocean_scores WHERE year = '2024' "
                         "AND month = '01' AND is_nan(openness)").table.to_pylist()
    assert found == [{"nans": 1}]
