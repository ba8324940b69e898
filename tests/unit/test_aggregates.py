"""Every aggregate of the daily pipeline against pandas, and idempotent, order-free re-runs.

The pipeline's steps run here without Airflow (the DAG runs in tests/system); the expected
answers come from ``tests.helpers.expected_aggregates``, plain pandas over the Parquet files.
Counts match exactly, floats to 1e-9; the percentiles are nearest-rank over scores to a tenth of a
point, exactly as pandas gives them, and within 0.05 points of the unrounded scores' own.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ioc_analytics.analytics import pipeline
from ioc_analytics.backends import get_backend
from ioc_analytics.errors import QueryError
from ioc_analytics.lake.tables import AGGREGATES
from ioc_analytics.settings import get_settings
from tests.helpers import (
    TODAY,
    TRAITS,
    assert_matches_pandas,
    assert_same_aggregate,
    expected_aggregates,
    read_aggregate,
    read_events,
    read_scores,
    sorted_aggregate,
)

ROOT = Path(__file__).resolve().parents[2]
DAY = TODAY - dt.timedelta(days=3)  # a full 30-day look-back behind it
TAGS = {"dag_id": "test", "task_id": "build", "ds": "test"}


def _settings(lake, state):
    return get_settings(backend="local", lake_root=str(lake), state_dir=str(state))


def _build_all(settings, day):
    for name in AGGREGATES:
        pipeline.build_aggregate(settings, day, name, TAGS)


def _tables(state, day):
    return {name: sorted_aggregate(read_aggregate(state, name, day), name) for name in AGGREGATES}


@pytest.fixture(scope="module")
def built(sample_lake, tmp_path_factory):
    """A copy of the sample lake with every aggregate built for DAY."""
    root = tmp_path_factory.mktemp("aggregates")
    lake, state = root / "lake", root / "state"
    shutil.copytree(sample_lake, lake, ignore=shutil.ignore_patterns("aggregates"))
    settings = _settings(lake, state)
    _build_all(settings, DAY)
    return lake, state, settings


@pytest.fixture(scope="module")
def expected(built):
    lake = built[0]
    return expected_aggregates(read_events(lake), read_scores(lake), DAY)


def test_every_aggregate_has_ddl_query_and_checks():
    from ioc_analytics.settings import SQL_DIR

    for name in AGGREGATES:
        for path in (f"ddl/{name}.sql", f"{name}.sql", f"checks/{name}.sql"):
            assert (SQL_DIR / path).is_file(), path


@pytest.mark.parametrize("name", AGGREGATES)
def test_aggregate_matches_pandas(built, expected, name):
    _, state, _ = built
    got = read_aggregate(state, name, DAY)
    assert set(got["date"]) == {DAY.strftime("%Y/%m/%d")}
    assert_matches_pandas(got, expected[name], name)


def test_ocean_trait_percentiles_are_within_their_bound_of_the_unrounded_scores(built, expected):
    """The stated bound: a nearest-rank percentile of scores rounded to a tenth is the unrounded
    scores' own, rounded (rounding keeps the order), so within 0.05 points of it; and its rank is
    the percentile's."""
    lake, state, _ = built
    got = read_aggregate(state, "ocean_trait_percentiles", DAY).set_index("industry").sort_index()
    want = expected["ocean_trait_percentiles"].set_index("industry").sort_index()
    assert list(got.index) == list(want.index)
    assert got["assessments"].tolist() == want["assessments"].tolist()
    assert set(got["month"]) == {f"{DAY:%Y/%m}"}
    scores = read_scores(lake)
    month = scores[(scores["year"] == f"{DAY:%Y}") & (scores["month"] == f"{DAY:%m}")
                   & (scores["timestamp"] < pd.Timestamp(DAY + dt.timedelta(days=1)))]
    for industry, group in month.groupby("industry"):
        for trait in TRAITS:
            ordered = np.sort(group[trait].dropna().to_numpy())
            for p in (25, 50, 75):
                value = got.loc[industry, f"{trait}_p{p}"]
                assert abs(value - np.quantile(ordered, p / 100, method="inverted_cdf")) <= 0.05 + 1e-9
                rank = np.searchsorted(ordered, value + 0.05, side="right") / len(ordered)
                assert rank >= p / 100, f"{industry} {trait}_p{p}: rank {rank:.3f}"


def test_the_benchmarks_pandas_peer_gives_the_engines_answers(built):
    """``bench/pandas_peer.py`` is timed against the engine (``bench/run.py``): the ratio means
    something only if both compute the same aggregates."""
    spec = importlib.util.spec_from_file_location("pandas_peer", ROOT / "bench" / "pandas_peer.py")
    peer = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(peer)
    lake, state, _ = built
    answers = peer.aggregates(lake, DAY)
    for name in AGGREGATES:
        got = sorted_aggregate(read_aggregate(state, name, DAY), name)
        want = sorted_aggregate(answers[name], name)
        assert len(got) == len(want) > 0, name
        for column in want.columns:
            # the peer interpolates its percentiles (timed, not held to nearest rank)
            tolerance = {"atol": 2.0} if column.endswith(("_p25", "_p50", "_p75")) else {"rtol": 1e-9}
            if pd.api.types.is_numeric_dtype(want[column]):
                np.testing.assert_allclose(got[column].to_numpy(float), want[column].to_numpy(float),
                                           err_msg=f"{name}.{column}", **tolerance)
            else:
                assert got[column].tolist() == want[column].tolist(), f"{name}.{column}"


def test_every_check_passes_on_good_data(built):
    _, _, settings = built
    for name in AGGREGATES:
        checks = pipeline.quality_gate(settings, DAY, name, TAGS)
        assert checks and all(checks.values()), (name, checks)


def test_rerunning_a_day_gives_the_same_rows_and_keeps_two_versions(built):
    lake, state, settings = built
    before = _tables(state, DAY)
    _build_all(settings, DAY)
    _build_all(settings, DAY)
    after = _tables(state, DAY)
    for name in AGGREGATES:
        assert_same_aggregate(after[name], before[name], name)
        folder = lake / "aggregates" / name / DAY.strftime("%Y/%m/%d")
        assert len([p for p in folder.iterdir() if p.name.startswith("v")]) == 2, "current and previous only"


def test_two_days_in_either_order_give_the_same_tables(sample_lake, tmp_path):
    days = (DAY - dt.timedelta(days=1), DAY)
    results = []
    for order in (days, days[::-1]):
        lake, state = tmp_path / f"lake-{order[0]}", tmp_path / f"state-{order[0]}"
        shutil.copytree(sample_lake, lake, ignore=shutil.ignore_patterns("aggregates"))
        for day in order:
            _build_all(_settings(lake, state), day)
        results.append({day: _tables(state, day) for day in days})
    for day in days:
        for name in AGGREGATES:
            assert_same_aggregate(results[0][day][name], results[1][day][name], f"{name} {day}")


def test_a_build_killed_mid_way_then_retried_leaves_a_clean_runs_tables(sample_lake, tmp_path, built):
    """On local a build's queries run inside its task: a worker killed half-way through deriving the
    30-day look-back (SIGKILL, nothing cleaned up) leaves versions it never published, and the
    retry builds the same tables as a clean run."""
    import signal
    import subprocess
    import sys
    import time

    lake, state = tmp_path / "lake", tmp_path / "state"
    shutil.copytree(sample_lake, lake, ignore=shutil.ignore_patterns("aggregates"))
    code = ("import datetime as dt, sys; from ioc_analytics.analytics import pipeline; "
            "from ioc_analytics.settings import get_settings; "
            "pipeline.build_aggregate(get_settings(backend='local', lake_root=sys.argv[1], state_dir=sys.argv[2]), "
            "dt.date.fromisoformat(sys.argv[3]), 'daily_active_users', {'task_id': 'daily_active_users.build'})")
    worker = subprocess.Popen([sys.executable, "-c", code, str(lake), str(state), DAY.isoformat()])
    log = state / "query_log.jsonl"
    deadline = time.monotonic() + 120
    while not (log.exists() and len(log.read_text().splitlines()) >= 5):  # 5 of the chain's 30 days
        assert worker.poll() is None and time.monotonic() < deadline, "the build ended before it was killed"
        time.sleep(0.05)
    worker.send_signal(signal.SIGKILL)
    assert worker.wait(timeout=30) == -signal.SIGKILL
    _build_all(_settings(lake, state), DAY)  # the retry (and the day's other builds)
    clean = _tables(built[1], DAY)
    for name, table in _tables(state, DAY).items():
        assert_same_aggregate(table, clean[name], name)


def test_a_rerun_after_the_source_changed_reflects_the_change(sample_lake, tmp_path):
    lake, state = tmp_path / "lake", tmp_path / "state"
    shutil.copytree(sample_lake, lake, ignore=shutil.ignore_patterns("aggregates"))
    settings = _settings(lake, state)
    pipeline.build_aggregate(settings, DAY, "completion_rates", TAGS)
    before = read_aggregate(state, "completion_rates", DAY)
    career = lake / "assessments" / DAY.strftime("%Y/%m/%d") / "career"
    removed = before.loc[before["assessment_type"] == "career", "total_sessions"].sum()
    assert removed > 0
    shutil.rmtree(career)

    pipeline.build_aggregate(settings, DAY, "completion_rates", TAGS)
    after = read_aggregate(state, "completion_rates", DAY)
    assert "career" not in set(after["assessment_type"])
    assert after["total_sessions"].sum() == before["total_sessions"].sum() - removed


def test_a_failed_rebuild_leaves_the_published_partition(built):
    lake, state, settings = built
    before = read_aggregate(state, "daily_active_users", DAY)
    with pytest.raises(QueryError):
        get_backend(settings).engine.replace_partition(
            "daily_active_users", {"date": DAY.strftime("%Y/%m/%d")},
            "SELECT unique_users, total_sessions, completed_sessions, returning_users FROM nowhere")
    pd.testing.assert_frame_equal(read_aggregate(state, "daily_active_users", DAY), before)


def test_the_guides_essential_queries_read_the_aggregates_cheaply(built, expected):
    """The guide's queries, answered from the aggregates: same numbers, a fraction of the bytes."""
    _, _, settings = built
    engine = get_backend(settings).engine
    lake_date = DAY.strftime("%Y/%m/%d")
    raw = engine.query("SELECT device, assessment_type, COUNT(*) AS total FROM assessment_events "
                       "WHERE date = ? GROUP BY device, assessment_type", [lake_date])
    cheap = engine.query("SELECT device, assessment_type, total_sessions AS total FROM completion_rates "
                         "WHERE date = ?", [lake_date])
    key = ["device", "assessment_type"]
    pd.testing.assert_frame_equal(raw.to_pandas().sort_values(key).reset_index(drop=True),
                                  cheap.to_pandas().sort_values(key).reset_index(drop=True))
    assert cheap.stats.bytes_scanned < raw.stats.bytes_scanned


def test_a_failed_check_rolls_the_partition_back_and_repair_leaves_it_there(sample_lake, tmp_path):
    from ioc_analytics.errors import DataQualityError
    from ioc_analytics.lake import partitions
    from ioc_analytics.lake.catalog import load_catalog

    lake, state = tmp_path / "lake", tmp_path / "state"
    shutil.copytree(sample_lake, lake, ignore=shutil.ignore_patterns("aggregates"))
    settings = _settings(lake, state)
    table = load_catalog(settings.lake_uri).table("completion_rates")
    registry, values = get_backend(settings).registry, {"date": DAY.strftime("%Y/%m/%d")}
    pipeline.build_aggregate(settings, DAY, "completion_rates", TAGS)
    earlier = registry.location(table, values)
    pipeline.build_aggregate(settings, DAY, "completion_rates", TAGS)
    rejected = registry.location(table, values)
    shutil.rmtree(lake / "assessments" / DAY.strftime("%Y/%m/%d") / "career")  # the source changed under it

    with pytest.raises(DataQualityError, match="sessions_match_source.*rolled back to its earlier version"):
        pipeline.quality_gate(settings, DAY, "completion_rates", TAGS)

    assert registry.location(table, values) == earlier
    assert sorted(p.name for p in Path(rejected).iterdir()) == ["_ioc_rejected", "part-00000.parquet"]
    repaired = partitions.repair(get_backend(settings).lake, registry, table, [values])
    assert registry.location(table, values) == earlier and not repaired.repointed

    # With no earlier version, the day is unregistered: no data rather than wrong data.
    registry.unregister(table, values)
    pipeline.build_aggregate(settings, dt.date(2024, 1, 20), "completion_rates", TAGS)
    shutil.rmtree(lake / "assessments" / "2024/01/20" / "career")
    with pytest.raises(DataQualityError, match="rolled to no data"):
        pipeline.quality_gate(settings, dt.date(2024, 1, 20), "completion_rates", TAGS)
    assert registry.location(table, {"date": "2024/01/20"}) is None


def test_breakdowns_keep_sessions_without_the_attribute_as_null(sample_lake, tmp_path):
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    lake, state = tmp_path / "lake", tmp_path / "state"
    shutil.copytree(sample_lake, lake, ignore=shutil.ignore_patterns("aggregates"))
    path = next((lake / "assessments" / DAY.strftime("%Y/%m/%d") / "career").glob("*.parquet"))
    data = pq.read_table(path)
    blank = pa.array([i % 3 == 0 for i in range(data.num_rows)])
    region = pc.if_else(blank, pa.scalar(None, pa.string()), data["region"])
    pq.write_table(data.set_column(data.schema.get_field_index("region"), "region", region), path)
    settings = _settings(lake, state)

    pipeline.build_aggregate(settings, DAY, "user_breakdowns", TAGS)
    assert all(pipeline.quality_gate(settings, DAY, "user_breakdowns", TAGS).values())
    got = read_aggregate(state, "user_breakdowns", DAY)
    missing = got[(got["dimension"] == "region") & got["value"].isna()]
    assert missing["sessions"].tolist() == [pc.sum(blank).as_py()]
