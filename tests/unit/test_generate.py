"""The lake generator: layout and schema of the lake, determinism, and data shaped like the real thing.

Every later check runs on this data, so these tests read the files back with pyarrow and pandas
and check the properties the docstring of ``ioc_analytics.devtools.generate`` promises.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from ioc_analytics.devtools import generate
from ioc_analytics.devtools.generate import (
    ASSESSMENT_TYPES,
    DARK_SIDE_INDICATORS,
    DEVICES,
    FACET_KEYS,
    PLATFORMS,
    generate_lake,
)
from ioc_analytics.errors import ConfigError
from ioc_analytics.lake.catalog import load_catalog
from tests.helpers import read_events, read_scores

START = dt.date(2024, 3, 30)  # crosses a month boundary: scores land in two month partitions
DAYS = 4
EVENTS = 3000


@pytest.fixture(scope="module")
def lake(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("generated")
    report = generate_lake(root, START, DAYS, EVENTS, seed=5)
    assert report.events == DAYS * EVENTS and report.days == DAYS
    assert report.events_by_day == {(START + dt.timedelta(d)).isoformat(): EVENTS for d in range(DAYS)}
    return root


@pytest.fixture(scope="module")
def events(lake):
    return read_events(lake)


@pytest.fixture(scope="module")
def scores(lake):
    return read_scores(lake)


def test_layout_schema_and_compression_follow_the_ddl(lake):
    catalog = load_catalog(str(lake))
    tables = {"assessments": catalog.table("assessment_events"), "ocean_scores": catalog.table("ocean_scores")}
    files = sorted(lake.rglob("*.parquet"))
    assert files and not [f for f in lake.rglob("*") if f.name.startswith(".")], "no temporary files left"
    for path in files:
        table = tables[path.relative_to(lake).parts[0]]
        metadata = pq.ParquetFile(path).metadata
        assert pq.read_schema(path).remove_metadata() == table.arrow_schema, path
        codecs = {metadata.row_group(g).column(c).compression
                  for g in range(metadata.num_row_groups) for c in range(metadata.num_columns)}
        assert codecs == {"SNAPPY"}, path
    for day in range(DAYS):
        date = (START + dt.timedelta(day)).strftime("%Y/%m/%d")
        for kind in ASSESSMENT_TYPES:
            folder = Path(tables["assessments"].partition_location({"date": date, "assessment_type": kind}))
            assert [p.name for p in folder.iterdir()] == ["part-00000.parquet"], folder
    months = sorted(p.relative_to(lake / "ocean_scores").as_posix() for p in (lake / "ocean_scores").glob("*/*"))
    assert months == ["2024/03", "2024/04"]


def test_a_day_is_the_same_alone_or_inside_a_longer_run(lake, tmp_path):
    day = START + dt.timedelta(days=2)
    generate_lake(tmp_path, day, 1, EVENTS, seed=5)
    date = day.strftime("%Y/%m/%d")
    for kind in ASSESSMENT_TYPES:
        alone = pq.read_table(tmp_path / "assessments" / date / kind)
        inside = pq.read_table(lake / "assessments" / date / kind)
        assert alone.equals(inside), kind
    stamp = day.strftime("%Y%m%d")
    assert pq.read_table(tmp_path / f"ocean_scores/2024/04/part-{stamp}.parquet").equals(
        pq.read_table(lake / f"ocean_scores/2024/04/part-{stamp}.parquet"))

    other = tmp_path / "other-seed"
    generate_lake(other, day, 1, EVENTS, seed=6)
    assert not pq.read_table(other / "assessments" / date / "personality").equals(
        pq.read_table(lake / "assessments" / date / "personality"))


def test_workers_write_the_same_lake_as_one_process(lake, tmp_path):
    report = generate_lake(tmp_path, START, DAYS, EVENTS, seed=5, workers=2)
    assert (report.events, report.days) == (DAYS * EVENTS, DAYS)
    assert report.events_by_day == {(START + dt.timedelta(d)).isoformat(): EVENTS for d in range(DAYS)}
    written = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*.parquet"))
    assert written == sorted(p.relative_to(lake) for p in lake.rglob("*.parquet"))
    for path in written:
        assert pq.read_table(tmp_path / path).equals(pq.read_table(lake / path)), path
    assert report.bytes == sum((lake / p).stat().st_size for p in written) and report.files == len(written)


def test_the_machine_time_zone_changes_nothing(lake, tmp_path):
    code = (f"import datetime as dt; from ioc_analytics.devtools.generate import generate_lake; "
            f"generate_lake({str(tmp_path)!r}, dt.date(2024, 3, 31), 1, {EVENTS}, seed=5)")
    subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ, "TZ": "Europe/London"})
    folder = "assessments/2024/03/31/personality"
    assert pq.read_table(tmp_path / folder).equals(pq.read_table(lake / folder))


def test_events_have_known_values_inside_their_partition(events):
    assert len(events) == DAYS * EVENTS
    assert set(events["assessment_type"]) == set(ASSESSMENT_TYPES)
    assert set(events["device"]) == set(DEVICES) and set(events["platform"]) == set(PLATFORMS)
    assert set(events.loc[events["device"] == "desktop", "platform"]) == {"web"}
    assert events["assessment_id"].is_unique and events["session_id"].is_unique
    assert events[["anonymous_user_id", "session_id", "assessment_id", "timestamp"]].notna().all().all()
    assert (events["timestamp"].dt.strftime("%Y/%m/%d") == events["date"]).all(), "every event inside its day"
    for column in ("version", "age_range", "industry", "role", "experience", "region"):
        assert events[column].notna().all() and events[column].nunique() > 1, column


def test_some_sessions_are_incomplete_with_zero_or_null_time(events):
    time = events["completion_time"]
    incomplete = time.isna() | (time == 0)
    assert 0.08 < incomplete.mean() < 0.35
    assert time.isna().sum() > 0 and (time == 0).sum() > 0, "both encodings of an abandoned session occur"
    assert (time.dropna() >= 0).all()
    by_type = events.assign(done=~incomplete).groupby("assessment_type")["done"].mean()
    assert by_type["personality_quick"] > by_type["leadership"], "long assessments are abandoned more"
    median = events[~incomplete].groupby("assessment_type")["completion_time"].median()
    assert median["personality_quick"] < median["personality"], "the quick assessment is quicker"


def test_one_score_set_per_completed_assessment(events, scores):
    completed = events[events["completion_time"].fillna(0) > 0]
    assert sorted(scores["assessment_id"]) == sorted(completed["assessment_id"])
    merged = scores.merge(completed, on="assessment_id", suffixes=("", "_event"))
    assert (merged["anonymous_user_id"] == merged["anonymous_user_id_event"]).all()
    assert (merged["industry"] == merged["industry_event"]).all()
    assert (merged["timestamp"] >= merged["timestamp_event"]).all(), "scored after the session started"
    assert (merged["timestamp"].dt.date == merged["timestamp_event"].dt.date).all()
    assert (scores["timestamp"].dt.strftime("%Y") == scores["year"]).all()
    assert (scores["timestamp"].dt.strftime("%m") == scores["month"]).all()


def test_traits_facets_and_dark_side_are_in_range(scores):
    for trait in ("openness", "conscientiousness", "extraversion", "agreeableness", "neuroticism"):
        assert scores[trait].between(0, 100).all() and scores[trait].std() > 5, trait
    assert scores["consistency"].between(0, 1).all() and scores["completeness"].between(0, 1).all()
    sample = scores.sample(200, random_state=1)
    for facets, dark_side, openness in zip(sample["facets"], sample["dark_side_indicators"], sample["openness"],
                                           strict=True):
        facets, dark_side = dict(facets), dict(dark_side)
        assert tuple(facets) == FACET_KEYS and len(FACET_KEYS) == 30
        assert all(0 <= f["score"] <= 100 and f["responses"] >= 1 and f["std_dev"] > 0 for f in facets.values())
        openness_facets = [f["score"] for k, f in facets.items() if k.startswith("openness.")]
        assert len(openness_facets) == 6 and abs(sum(openness_facets) / 6 - openness) < 20
        assert tuple(dark_side) == DARK_SIDE_INDICATORS and len(DARK_SIDE_INDICATORS) == 11
        assert all(0 <= v <= 100 for v in dark_side.values())


def test_traits_vary_by_industry_and_role(scores):
    by_industry = scores.groupby("industry")[["openness", "conscientiousness"]].mean()
    assert by_industry.loc["Technology", "openness"] > by_industry.loc["Finance", "openness"] + 5
    assert by_industry.loc["Finance", "conscientiousness"] > by_industry.loc["Technology", "conscientiousness"] + 5
    by_role = scores.groupby("role")[["extraversion", "neuroticism"]].mean()
    assert by_role.loc["Executive", "extraversion"] > by_role.loc["Individual Contributor", "extraversion"] + 5
    assert by_role.loc["Executive", "neuroticism"] < by_role.loc["Individual Contributor", "neuroticism"] - 5


def test_users_return_across_days_and_within_a_day(events):
    days = sorted(events["date"].unique())
    first, last = (set(events.loc[events["date"] == d, "anonymous_user_id"]) for d in (days[0], days[-1]))
    assert len(first & last) > 0.1 * len(last), "many of the last day's users came before"
    sessions_per_user_day = events.groupby(["date", "anonymous_user_id"]).size()
    assert (sessions_per_user_day > 1).any() and sessions_per_user_day.median() == 1


def test_regenerating_a_day_replaces_exactly_its_files(tmp_path, monkeypatch):
    monkeypatch.setattr(generate, "EVENTS_FILE_MAX_ROWS", 100)  # several files per partition
    generate_lake(tmp_path, START, 2, 1000, seed=1)
    folder = tmp_path / "assessments" / START.strftime("%Y/%m/%d") / "personality"
    assert len(list(folder.iterdir())) > 2
    next_day = tmp_path / "assessments" / (START + dt.timedelta(1)).strftime("%Y/%m/%d") / "personality"
    untouched = {p: p.stat().st_mtime_ns for p in next_day.iterdir()}

    monkeypatch.setattr(generate, "EVENTS_FILE_MAX_ROWS", 10_000)
    generate_lake(tmp_path, START, 1, 300, seed=1)
    assert [p.name for p in folder.iterdir()] == ["part-00000.parquet"], "no stale part files"
    events = read_events(tmp_path)
    assert (events["date"] == START.strftime("%Y/%m/%d")).sum() == 300
    assert {p: p.stat().st_mtime_ns for p in next_day.iterdir()} == untouched


@pytest.mark.parametrize(("days", "per_day", "workers"), [(0, 10, 1), (1, 0, 1), (-1, 10, 1), (1, 10, 0)])
def test_bad_arguments_are_refused(tmp_path, days, per_day, workers):
    with pytest.raises(ConfigError, match="must be at least 1"):
        generate_lake(tmp_path, START, days, per_day, workers=workers)
    assert not list(tmp_path.iterdir()), "nothing written"


def test_a_lake_that_is_a_file_is_refused(tmp_path):
    target = tmp_path / "lake"
    target.write_text("not a folder")
    with pytest.raises(ConfigError, match="is a file, not a folder"):
        generate_lake(target, START, 1, 10)
