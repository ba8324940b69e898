"""The guide's three "Essential Queries", verbatim, on generated data.

Expected answers are computed here with pandas straight from the Parquet files. Exact functions
must match exactly; the approximate ones within a stated tolerance:

- ``approx_distinct``: within 5 % of the exact distinct count (Athena documents a 2.3 % standard
  error; DuckDB's HyperLogLog is of the same order).
- ``approx_percentile(x, p)``: the returned value's rank among the exact values lies within
  p +/- 0.03.

Two of them read ``current_date``, the wall clock's, which no fixed clock reaches: they run on a
lake of their own whose days end on the engine's ``current_date``, and each answer is compared
with the days of the ``current_date`` the engine reports around it (the query is run again if the
date changed meanwhile).
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from ioc_analytics.backends import get_backend
from ioc_analytics.devtools.generate import generate_lake
from ioc_analytics.settings import get_settings
from tests.helpers import read_events, read_scores

DAILY_ACTIVE_USERS = """SELECT 
  date,
  approx_distinct(anonymous_user_id) as unique_users,
  COUNT(*) as total_sessions
FROM assessment_events
WHERE date >= date_format(current_date - interval '30' day, '%Y/%m/%d')
GROUP BY date
ORDER BY date DESC"""

OCEAN_PERCENTILES = """SELECT 
  industry,
  approx_percentile(openness, 0.25) as openness_p25,
  approx_percentile(openness, 0.50) as openness_p50,
  approx_percentile(openness, 0.75) as openness_p75
FROM ocean_scores
WHERE year = '2024' AND month = '01'
GROUP BY industry"""

COMPLETION_RATE = """SELECT 
  device,
  assessment_type,
  COUNT(*) as total,
  AVG(CASE WHEN completion_time > 0 THEN 1 ELSE 0 END) as completion_rate
FROM assessment_events
WHERE date >= date_format(current_date - interval '7' day, '%Y/%m/%d')
GROUP BY device, assessment_type"""


@pytest.fixture(scope="module")
def recent(tmp_path_factory):
    """A lake whose 32 days end on the engine's ``current_date``, and its engine."""
    lake = tmp_path_factory.mktemp("recent") / "lake"
    state = lake.parent / "state"
    engine = get_backend(get_settings(backend="local", lake_root=str(lake), state_dir=str(state))).engine
    today = _current_date(engine)
    generate_lake(lake, today - dt.timedelta(days=31), 32, 600, seed=5, workers=1)
    return engine, lake


def _current_date(engine) -> dt.date:
    return engine.query("SELECT current_date AS today").table.column(0)[0].as_py()


def _on_one_date(engine, sql: str):
    """The query's answer and the ``current_date`` it was computed on."""
    while True:
        before = _current_date(engine)
        result = engine.query(sql)
        if _current_date(engine) == before:
            return result, before


def _since(today: dt.date, days: int) -> str:
    return (today - dt.timedelta(days=days)).strftime("%Y/%m/%d")


APPROX_DISTINCT_ERROR = 0.023


def test_daily_active_users(recent):
    engine, lake = recent
    result, today = _on_one_date(engine, DAILY_ACTIVE_USERS)
    got = result.to_pandas()
    events = read_events(lake)
    window = events[events["date"] >= _since(today, 30)]
    expected = window.groupby("date").agg(users=("anonymous_user_id", "nunique"), sessions=("date", "size"))

    assert list(got["date"]) == sorted(expected.index, reverse=True)
    assert len(got) == 31  # today and the 30 days before it
    merged = got.set_index("date").join(expected)
    assert (merged["total_sessions"] == merged["sessions"]).all()
    # The guide's query counts users with approx_distinct, whose standard error is 2.3 % (Trino's
    # default; DuckDB's HyperLogLog is comparable). The lake follows the wall clock, so the days
    # differ from run to run: no day is off by more than four standard errors, and the days
    # together by two on average.
    relative_error = (merged["unique_users"] - merged["users"]).abs() / merged["users"]
    assert relative_error.max() <= 4 * APPROX_DISTINCT_ERROR, relative_error.describe()
    assert relative_error.mean() <= 2 * APPROX_DISTINCT_ERROR, relative_error.describe()
    # 31 days x 5 assessment types: the filter on the partition key pruned the rest of the lake.
    assert result.stats.partitions_scanned == window.groupby(["date", "assessment_type"]).ngroups


def test_ocean_score_percentiles(local_engine, sample_lake):
    got = local_engine.query(OCEAN_PERCENTILES).to_pandas().set_index("industry")
    scores = read_scores(sample_lake)
    january = scores[(scores["year"] == "2024") & (scores["month"] == "01")]

    assert set(got.index) == set(january["industry"])
    for industry, values in january.groupby("industry")["openness"]:
        ordered = np.sort(values.to_numpy())
        for p, column in ((0.25, "openness_p25"), (0.50, "openness_p50"), (0.75, "openness_p75")):
            rank = np.searchsorted(ordered, got.loc[industry, column], side="right") / len(ordered)
            assert abs(rank - p) <= 0.03, f"{industry} {column}: rank {rank:.3f} for p={p}"
        assert got.loc[industry, "openness_p25"] <= got.loc[industry, "openness_p50"] <= got.loc[
            industry, "openness_p75"]


def test_completion_rate(recent):
    engine, lake = recent
    result, today = _on_one_date(engine, COMPLETION_RATE)
    got = result.to_pandas().set_index(["device", "assessment_type"]).sort_index()
    events = read_events(lake)
    window = events[events["date"] >= _since(today, 7)]
    window = window.assign(completed=lambda f: (f["completion_time"] > 0).astype(float))
    expected = window.groupby(["device", "assessment_type"]).agg(
        total=("completed", "size"), completion_rate=("completed", "mean")
    ).sort_index()

    assert list(got.index) == list(expected.index)
    assert (got["total"].to_numpy() == expected["total"].to_numpy()).all()
    np.testing.assert_allclose(got["completion_rate"], expected["completion_rate"], rtol=1e-12)
    # Incomplete sessions are part of the data: the rates are neither 0 nor 1.
    assert 0.5 < got["completion_rate"].min() and got["completion_rate"].max() < 1.0


@pytest.mark.parametrize("query", [DAILY_ACTIVE_USERS, OCEAN_PERCENTILES, COMPLETION_RATE])
def test_guide_queries_are_logged_with_cost(recent, local_engine, query):
    engine = local_engine if query == OCEAN_PERCENTILES else recent[0]  # January 2024 / the recent days
    result = engine.query(query, tags={"dag_id": "test"})
    logged = [r for r in engine.log if r["query_id"] == result.stats.query_id]
    assert len(logged) == 1
    record = logged[0]
    assert record["state"] == "SUCCEEDED" and record["bytes_scanned"] == result.stats.bytes_scanned > 0
    assert record["cost_usd"] == result.stats.cost_usd > 0
    assert record["tags"] == {"dag_id": "test"}
