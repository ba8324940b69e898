"""Incremental state (``ioc_analytics.analytics.state``): any order of runs, re-runs and a day
delivered again give exactly the tables of a clean run, and the tables that read state match
pandas over the raw data.

A lake of 44 days across a month end; the days built are its last 5 (two in February, three in
March), for every table that reads state: daily_active_users (the 30-day chain),
ocean_trait_percentiles (the month's histograms and the month's chain of users), facet_summary
(the day's four-hour slices) and user_growth_hourly (the day before's chain)."""

from __future__ import annotations

import datetime as dt
import random
import shutil

import numpy as np
import pandas as pd
import pytest

from ioc_analytics.analytics import pipeline, state
from ioc_analytics.devtools.generate import generate_lake
from ioc_analytics.lake.tables import STATE_READS, STATES
from ioc_analytics.settings import get_settings
from tests.helpers import (
    assert_matches_pandas,
    assert_same_aggregate,
    expected_aggregates,
    read_aggregate,
    read_events,
    read_scores,
    sorted_aggregate,
)

FIRST, LAST = dt.date(2024, 1, 20), dt.date(2024, 3, 3)
DAYS = [LAST - dt.timedelta(days=n) for n in range(4, -1, -1)]  # 2024-02-28 .. 2024-03-03
HOURS = (0, 14)
READERS = [name for name in STATE_READS if name != "user_growth_hourly"]
EVENTS = 150
TAGS = {"dag_id": "test", "task_id": "build", "ds": "test"}


@pytest.fixture(scope="module")
def raw(tmp_path_factory):
    lake = tmp_path_factory.mktemp("state-raw") / "lake"
    generate_lake(lake, FIRST, (LAST - FIRST).days + 1, EVENTS, seed=21)
    return lake


def _run(raw_lake, root, order):
    """Copy the raw lake to ``root`` and build every table that reads state, for the days in
    ``order`` (a day may come more than once)."""
    lake, state_dir = root / "lake", root / "state"
    shutil.copytree(raw_lake, lake)
    settings = get_settings(backend="local", lake_root=str(lake), state_dir=str(state_dir))
    for day in order:
        _build_day(settings, day)
    return lake, state_dir, settings


def _build_day(settings, day):
    for name in READERS:
        pipeline.build_aggregate(settings, day, name, TAGS)
    for hour in HOURS:
        pipeline.build_hourly(settings, dt.datetime.combine(day, dt.time(hour)), "user_growth_hourly", TAGS)


def _tables(settings, state_dir):
    """Every table the runs wrote, for the built days: the aggregates, the hourly partitions and
    the state partitions they read, each by day."""
    from ioc_analytics.backends import get_backend
    from ioc_analytics.lake.partitions import read_location

    backend = get_backend(settings)
    out = {}
    for day in DAYS:
        for name in READERS:
            out[(name, day)] = sorted_aggregate(read_aggregate(state_dir, name, day), name)
        for name in STATES:
            table = backend.catalog.table(name)
            for key, location in sorted(backend.registry.partitions(table).items()):
                if key[0] == day.strftime("%Y/%m/%d"):
                    rows = read_location(backend.lake, table, location).to_pandas()
                    out[(name, day, *key[1:])] = rows.sort_values(list(rows.columns)).reset_index(drop=True)
        growth = backend.catalog.table("user_growth_hourly")
        for hour in HOURS:
            location = backend.registry.location(growth, {"date": day.strftime("%Y/%m/%d"), "hour": f"{hour:02d}"})
            out[("user_growth_hourly", day, hour)] = read_location(backend.lake, growth, location).to_pandas()
    return out


def _assert_same(left, right):
    assert sorted(left, key=str) == sorted(right, key=str)
    for key in left:
        assert_same_aggregate(left[key], right[key], " ".join(map(str, key)))


@pytest.fixture(scope="module")
def clean(raw, tmp_path_factory):
    """The days run once each, in order."""
    lake, state_dir, settings = _run(raw, tmp_path_factory.mktemp("clean"), DAYS)
    return lake, settings, _tables(settings, state_dir)


def test_any_order_with_reruns_gives_the_clean_runs_tables(raw, clean, tmp_path):
    order = DAYS[::-1] + random.Random(5).sample(DAYS, 2) + [DAYS[2]]
    _, state_dir, settings = _run(raw, tmp_path, order)
    _assert_same(_tables(settings, state_dir), clean[2])
    # every state partition the built days read is current
    for day in DAYS:
        assert all(not state.changed_sources(settings, name, {"date": day.strftime("%Y/%m/%d")})
                   for name in ("user_activity", "month_users", "score_digest"))


def test_the_tables_that_read_state_match_pandas_over_the_raw_data(clean):
    lake, _, tables = clean
    events, scores = read_events(lake), read_scores(lake)
    for day in DAYS:
        expected = expected_aggregates(events, scores, day)
        for name in READERS:
            assert_matches_pandas(tables[(name, day)], expected[name], name)
        for hour in HOURS:
            assert tables[("user_growth_hourly", day, hour)].to_dict("records") == [_growth(events, day, hour)]


def _growth(events, day, hour):
    """user_growth_hourly the plain way: from the events of the day and the 7 days before."""
    start = pd.Timestamp(dt.datetime.combine(day, dt.time(hour)))
    today = events[(events["date"] == day.strftime("%Y/%m/%d")) & (events["timestamp"] < start + pd.Timedelta(hours=1))]
    week = events[(events["date"] >= (day - dt.timedelta(days=7)).strftime("%Y/%m/%d"))
                  & (events["date"] < day.strftime("%Y/%m/%d"))]
    in_hour = today[today["timestamp"] >= start]
    firsts = today.groupby("anonymous_user_id")["timestamp"].min()
    new = set(firsts[firsts >= start].index) - set(week["anonymous_user_id"])
    return {"active_users": in_hour["anonymous_user_id"].nunique(), "sessions": len(in_hour),
            "new_users": len(new), "users_so_far_today": len(firsts)}


def test_a_day_delivered_again_rederives_the_chain_and_reruns_match_a_clean_run(raw, tmp_path):
    changed = DAYS[1]
    lake, state_dir, settings = _run(raw, tmp_path / "rerun", DAYS)
    generate_lake(lake, changed, 1, EVENTS, seed=99)  # upstream delivers the day again
    stale = [d for d in DAYS if state.changed_sources(settings, "user_activity", {"date": d.strftime("%Y/%m/%d")})]
    assert stale == DAYS[1:], "the chain's days from the changed one on embody it"

    _build_day(settings, changed)  # re-running the day re-derives the chain after it, by itself
    assert not [d for d in DAYS if state.changed_sources(settings, "user_activity", {"date": d.strftime("%Y/%m/%d")})]
    for day in DAYS[2:]:  # then the days whose tables read it (as ioc status and ioc recover say)
        _build_day(settings, day)

    fresh = tmp_path / "fresh-raw"
    shutil.copytree(raw, fresh)
    generate_lake(fresh, changed, 1, EVENTS, seed=99)
    _, clean_state, clean_settings = _run(fresh, tmp_path / "clean-after", DAYS)
    _assert_same(_tables(settings, state_dir), _tables(clean_settings, clean_state))


def test_a_state_records_what_it_derives_from_and_a_chain_holds_its_window(clean):
    _, settings, tables = clean
    day = DAYS[-1]
    recorded = state.recorded(settings, "user_activity", {"date": day.strftime("%Y/%m/%d")})
    assert sorted(recorded) == [(day - dt.timedelta(days=n)).strftime("%Y/%m/%d") for n in range(30, -1, -1)]
    assert sorted(state.recorded(settings, "month_users", {"date": day.strftime("%Y/%m/%d")})) == [
        f"2024/03/{n:02d}" for n in range(1, day.day + 1)], "a month's chain starts again on the 1st"
    activity = tables[("user_activity", day)]
    window_start = (day - dt.timedelta(days=29)).strftime("%Y/%m/%d")
    assert activity["last_active"].min() >= window_start and activity["anonymous_user_id"].is_unique
    # the day's users are those with the day as their last: the DAU's count
    assert (activity["last_active"] == day.strftime("%Y/%m/%d")).sum() == tables[
        ("daily_active_users", day)]["unique_users"].iloc[0]
    assert np.all(activity["previous_active"].dropna() < activity.loc[activity["previous_active"].notna(),
                                                                      "last_active"])
