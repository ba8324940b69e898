"""On-call within the hour (``monitor.watch_hour``, the hourly DAG's ``cost_watch``): a runaway query
and a failure burst are alerted for the hour they happen in, once, explained as the daily monitor
explains them; the daily monitor then records them without alerting them again. Ordinary failures
in a quiet hour, or a busy hour's usual share of failures, are not a burst."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from ioc_analytics.cost import monitor
from ioc_analytics.cost.usage import DailyUsage
from ioc_analytics.jsonlines import JsonLines
from ioc_analytics.settings import get_settings

WG = "ioc-analytics"
HOUR = dt.datetime(2024, 3, 20, 14)


@pytest.fixture()
def settings(tmp_path):
    return get_settings(backend="local", lake_root=str(tmp_path / "lake"), state_dir=str(tmp_path / "state"))


def _record(n: str, at: dt.datetime, *, failed: bool = False, cost: float = 0.001, task: str = "ok.build") -> dict:
    return {"query_id": n, "submitted_at": at.replace(tzinfo=dt.UTC).isoformat(), "workgroup": WG,
            "state": "FAILED" if failed else "SUCCEEDED", "cost_usd": 0.0 if failed else cost,
            "bytes_scanned": 0 if failed else 10 * 2**20, "tags": {"dag_id": "ioc_daily_analytics", "task_id": task},
            "error": "COLUMN_NOT_FOUND: line 1:8: Column 'nope' cannot be resolved" if failed else None,
            "query": "SELECT nope FROM assessment_events WHERE date = '2024/03/20'" if failed
            else "SELECT * FROM assessment_events"}


def _day_before(log: JsonLines) -> None:
    """The 24 hours before HOUR: 96 queries, 2 of them failed (2 %)."""
    for i in range(96):
        log.append(_record(f"past-{i}", HOUR - dt.timedelta(minutes=15 * (96 - i)), failed=i in (10, 50)))


def _alerts(settings) -> list[dict]:
    path = settings.alert_log_path
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_a_runaway_query_and_a_failure_burst_are_alerted_within_their_hour_once(settings):
    log = JsonLines(settings.query_log_path)
    _day_before(log)
    for i in range(6):  # a broken deployment: 5 of the hour's 6 queries fail
        log.append(_record(f"hour-{i}", HOUR + dt.timedelta(minutes=5 * i), failed=i > 0, task="broken.build"))
    log.append(_record("runaway", HOUR + dt.timedelta(minutes=40), cost=1.75, task="adhoc.notebook"))
    log.append(_record("next-hour", HOUR + dt.timedelta(hours=1, minutes=1), cost=2.5))  # not this hour's

    watched = monitor.watch_hour(settings, HOUR.replace(tzinfo=dt.UTC))
    found = {a["kind"]: a for a in watched["anomalies"]}
    assert set(found) == {"runaway_query", "failure_burst"} and watched["queries"] == 7
    assert "$1.75 in the hour 2024-03-20 14:00-14:59 UTC" in found["runaway_query"]["summary"]
    assert found["runaway_query"]["explanation"][0].startswith(
        "query runaway (ioc_daily_analytics.adhoc.notebook): $1.75")
    assert "SELECT * on the raw table" in found["runaway_query"]["explanation"][0]
    assert found["failure_burst"]["summary"].startswith("5 of 7 queries failed in the hour 2024-03-20 14:00-14:59 UTC")
    assert "2.1% usually" in found["failure_burst"]["summary"]  # 2 of the 96 before
    assert found["failure_burst"]["explanation"] == [
        "5 failed in ioc_daily_analytics.broken.build: COLUMN_NOT_FOUND: line 1:8: Column 'nope' cannot be resolved"]
    sent = _alerts(settings)
    assert sorted(a["kind"] for a in sent) == ["failure_burst", "runaway_query"]
    assert all(a["source"] == "ioc_cost_monitor" and a["day"] == "2024-03-20" and a["details"] for a in sent)

    # A re-run of the hour (a retry, a clear) alerts nothing again.
    again = monitor.watch_hour(settings, HOUR.replace(tzinfo=dt.UTC))
    assert {a["kind"] for a in again["anomalies"]} == set(found) and again["alerts"] == []
    assert len(_alerts(settings)) == 2

    # The daily monitor sees the day's runaway query and its failure rate, and alerts neither again.
    daily = {a["kind"]: a for a in monitor.flag_anomalies(settings, HOUR.date())["anomalies"]}
    assert daily["runaway_query"]["alerted"] is False
    assert len(_alerts(settings)) == 2 + sum(a["alerted"] for a in daily.values())
    assert not {a["kind"] for a in _alerts(settings)[2:]} & {"runaway_query", "failure_burst"}


def test_the_next_hour_is_a_new_incident(settings):
    log = JsonLines(settings.query_log_path)
    _day_before(log)
    log.append(_record("first", HOUR + dt.timedelta(minutes=10), cost=0.9))
    log.append(_record("second", HOUR + dt.timedelta(hours=1, minutes=10), cost=0.8))
    assert len(monitor.watch_hour(settings, HOUR)["alerts"]) == 1
    assert len(monitor.watch_hour(settings, HOUR + dt.timedelta(hours=1))["alerts"]) == 1
    assert [a["kind"] for a in _alerts(settings)] == ["runaway_query", "runaway_query"]


def test_a_quiet_hour_is_just_that(settings):
    log = JsonLines(settings.query_log_path)
    _day_before(log)
    watched = monitor.watch_hour(settings, HOUR)
    assert watched == {**watched, "queries": 0, "anomalies": [], "alerts": []}
    assert _alerts(settings) == []


@pytest.mark.parametrize(("queries", "failed", "usual", "burst"), [
    (10, 3, 0.03, False),   # a quiet hour's ordinary bad luck: about 1 hour in 360 at 3 %
    (10, 5, 0.03, True),    # half of them
    (200, 12, 0.03, False),  # 6 %: under the 10 % alarm
    (200, 16, 0.03, False),  # 8 %
    (200, 30, 0.03, True),  # 15 %, five times the usual
    (200, 30, 0.12, False),  # 15 % where 12 % is usual: over the alarm, but the usual rate explains it
    (2, 2, 0.01, False),    # fewer than 3
])
def test_a_failure_burst_is_more_failures_than_the_usual_rate_explains(settings, queries, failed, usual, burst):
    totals = DailyUsage(HOUR.date(), WG, queries=queries, failed=failed, cost_usd=0.01, max_query_cost_usd=0.001)
    found = {a.kind for a in monitor.detect_hour(HOUR, totals, usual, settings)}
    assert (found == {"failure_burst"}) is burst, (queries, failed, usual)


def test_the_usual_rate_has_a_floor():
    assert monitor.usual_failure_rate(DailyUsage(HOUR.date(), WG)) == monitor.MIN_FAILURE_RATE
    assert monitor.usual_failure_rate(DailyUsage(HOUR.date(), WG, queries=100, failed=7)) == pytest.approx(0.07)
