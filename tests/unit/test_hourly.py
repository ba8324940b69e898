"""The hourly metrics, built by the real engine on the sample lake, against pandas on the files."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from ioc_analytics.analytics import pipeline
from ioc_analytics.backends import get_backend
from ioc_analytics.lake.tables import HOURLY
from tests.helpers import ONE_DAY, read_events, read_scores

HOUR = dt.datetime.combine(ONE_DAY, dt.time(14))
TAGS = {"dag_id": "ioc_hourly_metrics", "task_id": "t"}


@pytest.fixture(scope="module")
def frames(sample_lake):
    return read_events(sample_lake), read_scores(sample_lake)


def built(settings, name: str, hour: dt.datetime = HOUR) -> pd.DataFrame:
    pipeline.build_hourly(settings, hour, name, TAGS)
    part = [hour.strftime("%Y/%m/%d"), hour.strftime("%H")]
    return get_backend(settings).engine.query(f"SELECT * FROM {name} WHERE date = ? AND hour = ?", part).to_pandas()


def in_hour(events: pd.DataFrame, hour: dt.datetime) -> pd.DataFrame:
    return events[(events.timestamp >= hour) & (events.timestamp < hour + dt.timedelta(hours=1))]


def test_user_growth_counts_active_new_and_the_day_so_far(local_settings, frames):
    events, _ = frames
    row = built(local_settings, "user_growth_hourly").iloc[0]
    hour = in_hour(events, HOUR)
    week = events[(events.timestamp >= pd.Timestamp(ONE_DAY - dt.timedelta(days=7)))
                  & (events.timestamp < HOUR + dt.timedelta(hours=1))]
    first = week.groupby("anonymous_user_id").timestamp.min()
    today = week[week.timestamp >= pd.Timestamp(ONE_DAY)]
    assert row.active_users == hour.anonymous_user_id.nunique() > 0
    assert row.sessions == len(hour)
    assert row.new_users == (first >= HOUR).sum() > 0
    assert row.users_so_far_today == today.anonymous_user_id.nunique()
    assert row.date == HOUR.strftime("%Y/%m/%d") and row.hour == "14"


def test_platform_performance_by_platform_and_device(local_settings, frames):
    events, _ = frames
    table = built(local_settings, "platform_performance").set_index(["platform", "device"]).sort_index()
    hour = in_hour(events, HOUR)
    expected = hour.groupby(["platform", "device"]).agg(
        sessions=("session_id", "size"), completed_sessions=("completion_time", lambda s: (s > 0).sum()))
    assert table.sessions.to_dict() == expected.sessions.to_dict()
    assert table.completed_sessions.to_dict() == expected.completed_sessions.to_dict()
    done = hour[hour.completion_time > 0]
    means = done.groupby(["platform", "device"]).completion_time.mean()
    pd.testing.assert_series_equal(table.avg_completion_time_s.dropna(), means.astype(float), check_names=False)
    bounds = done.groupby(["platform", "device"]).completion_time.agg(["min", "max"])
    p95 = table.p95_completion_time_s.dropna()
    assert ((p95 >= bounds["min"]) & (p95 <= bounds["max"])).all()


def test_assessment_quality_joins_the_hours_completions_to_their_scores(local_settings, frames):
    events, scores = frames
    table = built(local_settings, "assessment_quality").set_index("assessment_type")
    done = in_hour(events, HOUR)
    done = done[done.completion_time > 0]
    month = scores[(scores.year == HOUR.strftime("%Y")) & (scores.month == HOUR.strftime("%m"))
                   & (scores.timestamp >= HOUR)]
    joined = done.merge(month, on="assessment_id", how="left", suffixes=("", "_s"))
    expected = joined.groupby("assessment_type").agg(completed=("assessment_id", "size"),
                                                     scored=("consistency", "count"))
    assert table.completed_sessions.to_dict() == expected.completed.to_dict()
    assert table.scored.to_dict() == expected.scored.to_dict() and expected.scored.sum() > 0
    assert (table.reliable <= table.scored).all()


def test_a_rerun_replaces_the_hour_and_a_quiet_hour_is_an_empty_partition(local_settings):
    first = built(local_settings, "platform_performance")
    again = built(local_settings, "platform_performance")
    pd.testing.assert_frame_equal(first, again)
    # The generator's sessions all fall inside the day; an hour of a day the lake lacks fails.
    from ioc_analytics.errors import NoDataError

    with pytest.raises(NoDataError):
        pipeline.build_hourly(local_settings, dt.datetime(2024, 6, 15, 3), "platform_performance", TAGS)


def test_every_hourly_table_has_its_query_and_ddl():
    from ioc_analytics.lake.catalog import load_catalog
    from ioc_analytics.settings import SQL_DIR

    catalog = load_catalog("/lake")
    for name in HOURLY:
        assert (SQL_DIR / "hourly" / f"{name}.sql").is_file()
        assert catalog.table(name).partition_names == ("date", "hour")
