"""The freshness sensor's deadline: a day is due when it ends, and late after the grace."""

from __future__ import annotations

import datetime as dt

from ioc_analytics.analytics.pipeline import Freshness
from ioc_analytics.analytics.sensors import DEFAULT_GRACE, LakeFreshnessSensor, late_verdict

DAY = dt.date(2024, 1, 15)
DUE = dt.datetime(2024, 1, 16, tzinfo=dt.UTC)


def _missing() -> Freshness:
    return Freshness("assessment_events", DAY, missing=[{"date": "2024/01/15", "assessment_type": "career"}],
                     locations=["/lake/assessments/2024/01/15/career/"])


def test_before_the_deadline_the_sensor_keeps_waiting():
    assert late_verdict(_missing(), DUE - dt.timedelta(hours=1), DEFAULT_GRACE) is None
    assert late_verdict(_missing(), DUE + DEFAULT_GRACE - dt.timedelta(seconds=1), DEFAULT_GRACE) is None


def test_past_the_deadline_the_message_says_what_is_late_and_since_when():
    message = late_verdict(_missing(), DUE + dt.timedelta(hours=7, minutes=30), DEFAULT_GRACE)
    assert message.startswith("assessment_events has no data for 2024-01-15 "
                              "(looked in /lake/assessments/2024/01/15/career/)")
    assert "due at 2024-01-16 00:00 UTC when the day ended, late by 7.5 h (past the 6 h grace)" in message
    assert "clear this task" in message
    old = late_verdict(_missing(), DUE + dt.timedelta(days=40), DEFAULT_GRACE)
    assert "late by 40 days" in old


def test_fresh_data_is_never_late():
    fresh = Freshness("assessment_events", DAY, present=[{"date": "2024/01/15", "assessment_type": "career"}])
    assert late_verdict(fresh, DUE + dt.timedelta(days=3), DEFAULT_GRACE) is None


def test_the_sensor_waits_in_reschedule_mode():
    sensor = LakeFreshnessSensor(task_id="wait", table="assessment_events")
    assert sensor.mode == "reschedule" and sensor.poke_interval == 300
    assert sensor.timeout > DEFAULT_GRACE.total_seconds()
