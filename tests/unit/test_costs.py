"""The cost monitor on the local backend: the detector on daily series, then the whole monitor on a
query log written by the real engine."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import random
import re

import pytest

from ioc_analytics.backends import get_backend
from ioc_analytics.cost import monitor, usage
from ioc_analytics.cost.usage import DailyUsage
from ioc_analytics.settings import get_settings
from tests.helpers import TODAY

WG = "ioc-analytics"
DAY = dt.date(2024, 3, 20)  # a Wednesday


def series(days: int = 42, end: dt.date = DAY, weekday: float = 1.2, weekend: float = 0.3, queries: int = 60,
           seed: int = 1) -> dict[dt.date, DailyUsage]:
    """Usual usage: weekdays cost more than weekends, with 10 % day-to-day noise."""
    rng = random.Random(seed)
    out = {}
    for n in range(days):
        day = end - dt.timedelta(days=days - 1 - n)
        level = weekend if day.weekday() >= 5 else weekday
        out[day] = DailyUsage(day, WG, queries=queries, failed=rng.choice([0, 0, 1]),
                              cost_usd=level * rng.lognormvariate(0, 0.1), max_query_cost_usd=0.02)
    return out


@pytest.fixture()
def settings(tmp_path):
    return get_settings(backend="local", lake_root=str(tmp_path / "lake"), state_dir=str(tmp_path / "state"))


def kinds(found):
    return {a.kind for a in found}


def test_usual_usage_raises_nothing_on_any_day(settings):
    usage = series(days=90)
    for day in list(usage)[35:]:
        assert monitor.detect(usage, day, settings) == [], day


def test_a_weekday_after_a_cheap_weekend_is_not_a_spike_and_a_weekend_at_weekday_level_is(settings):
    usage = series()
    monday = DAY - dt.timedelta(days=2)
    assert monday.weekday() == 0 and monitor.detect(usage, monday, settings) == []
    saturday = DAY - dt.timedelta(days=4)
    usage[saturday] = dataclasses.replace(usage[saturday], cost_usd=1.2)
    found = monitor.detect(usage, saturday, settings)
    assert kinds(found) == {"cost_spike"}
    assert "usual weekend" in found[0].summary and found[0].baseline == pytest.approx(0.3, rel=0.2)


def test_a_spike_is_flagged_with_its_baseline_and_past_spikes_do_not_move_the_baseline(settings):
    usage = series()
    quiet = monitor.baseline(usage, DAY)
    for n in (7, 14, 21):  # three earlier spikes on the same weekday
        day = DAY - dt.timedelta(days=n)
        usage[day] = dataclasses.replace(usage[day], cost_usd=10.0)
    level, _ = monitor.baseline(usage, DAY)
    assert level == pytest.approx(quiet[0], rel=0.1)
    usage[DAY] = dataclasses.replace(usage[DAY], cost_usd=3.0)
    (spike,) = monitor.detect(usage, DAY, settings)
    assert spike.kind == "cost_spike" and spike.alerted and spike.value == 3.0
    assert spike.threshold < 3.0
    assert re.search(r"2\.[3-7]x the usual weekday", spike.summary), spike.summary


def test_a_level_shift_alerts_on_its_first_day_and_is_then_going_on_not_alerted_again(settings):
    usage = series(days=60)
    start = DAY - dt.timedelta(days=9)
    for day in usage:
        if day >= start:
            usage[day] = dataclasses.replace(usage[day], cost_usd=usage[day].cost_usd * 2)
    first = monitor.detect(usage, start, settings)
    assert "cost_spike" in kinds(first) and all(a.alerted for a in first)
    later = {a.kind: a for d in range(1, 10) for a in monitor.detect(usage, start + dt.timedelta(days=d), settings)}
    assert "cost_increase" in later
    alerted_days = [d for d in range(0, 10) for a in monitor.detect(usage, start + dt.timedelta(days=d), settings)
                    if a.alerted and a.kind == "cost_increase"]
    assert len(alerted_days) == 1, "a shift that goes on is alerted once"


def test_a_slow_drift_is_caught_before_it_doubles_the_cost(settings):
    usage = series(days=90, end=DAY + dt.timedelta(days=30))
    start = DAY - dt.timedelta(days=10)
    for day in usage:
        if day >= start:
            usage[day] = dataclasses.replace(usage[day], cost_usd=usage[day].cost_usd * 1.025 ** (day - start).days)
    caught = next(d for d in range(40) if "cost_increase" in kinds(
        monitor.detect(usage, start + dt.timedelta(days=d), settings)))
    assert 1.025 ** caught < 2


def test_failures_runaway_queries_and_the_budget(settings):
    usage = series(end=dt.date(2024, 3, 25))
    day = dt.date(2024, 3, 25)
    usage[day] = dataclasses.replace(usage[day], failed=12, max_query_cost_usd=0.8)
    found = {a.kind: a for a in monitor.detect(usage, day, settings)}
    assert set(found) == {"failure_burst", "runaway_query"}
    assert "12 of 60 queries failed" in found["failure_burst"].summary
    assert found["runaway_query"].threshold == 0.5
    # Two failures out of sixty is no burst, however high the share of a quiet day would be.
    usage[day] = dataclasses.replace(usage[day], failed=2, queries=4, max_query_cost_usd=0.01)
    assert monitor.detect(usage, day, settings) == []
    # $1.2 a weekday is about $30 a month: under a $50 budget, over a $25 one.
    tight = get_settings(**{**dataclasses.asdict(settings), "monthly_budget_usd": 25.0})
    found = {a.kind: a for a in monitor.detect(usage, day, tight)}
    assert set(found) == {"budget_alert", "budget_projection"}
    assert found["budget_alert"].threshold == 20.0
    assert monitor.projected_month(usage, day) > 25 > monitor.month_to_date(usage, day) >= 20


def test_a_new_workgroup_has_no_history_so_no_spike(settings):
    usage = {DAY - dt.timedelta(days=n): DailyUsage(DAY - dt.timedelta(days=n), WG) for n in range(40)}
    usage[DAY] = DailyUsage(DAY, WG, queries=50, cost_usd=2.0)
    assert monitor.detect(usage, DAY, settings) == []


# -- the whole monitor on the real engine's query log ---------------------------------------------

def test_the_monitor_costs_attributes_explains_and_alerts_from_the_engine_query_log(local_settings, tmp_path):
    from ioc_analytics.errors import QueryError
    from ioc_analytics.jsonlines import JsonLines

    engine = get_backend(local_settings).engine
    tags = {"dag_id": "ioc_daily_analytics", "task_id": "daily_active_users.build", "ds": "x"}
    for _ in range(3):  # a day of the sample lake; the log stamps each query with the wall clock
        engine.query("SELECT count(*) AS n FROM assessment_events WHERE date = ?",
                     [TODAY.strftime("%Y/%m/%d")], tags=tags)
    # An analyst's full scan: no partition filter, every column.
    engine.query("SELECT * FROM assessment_events", tags={"dag_id": "adhoc", "task_id": "notebook"})
    for _ in range(3):
        with pytest.raises(QueryError):
            engine.query("SELECT nope FROM assessment_events WHERE date = '2024/01/01'",
                         tags={"dag_id": "ioc_hourly", "task_id": "broken"})
    log = JsonLines(local_settings.query_log_path)
    run = list(log)
    assert len(run) == 7
    today = dt.datetime.fromisoformat(run[0]["submitted_at"]).date()  # the day the log says they ran
    # Five weeks of ordinary history before today, in the engine's own record format.
    template = next(r for r in run if r["state"] == "SUCCEEDED")
    base = sum(r["cost_usd"] for r in run) / 100  # a fifth of today's cost a day
    for n in range(1, 36):
        day = today - dt.timedelta(days=n)
        for i in range(20):
            log.append({**template, "query_id": f"past-{n}-{i}", "cost_usd": base * (0.9 + 0.01 * (i % 20)),
                        "submitted_at": dt.datetime.combine(day, dt.time(3, i), dt.UTC).isoformat()})
    # The sample lake's queries cost fractions of a cent (Athena's 10 MB minimum): a budget to match.
    watched = get_settings(**{**dataclasses.asdict(local_settings), "lake_root": str(tmp_path / "lake"),
                              "monthly_budget_usd": 0.01})

    recorded = monitor.record_costs(watched, today)
    assert recorded["queries"] == 7
    assert recorded["cost_usd"] == pytest.approx(sum(r["cost_usd"] for r in run))
    assert set(recorded["by_task"]) == {"ioc_daily_analytics.daily_active_users.build", "adhoc.notebook",
                                        "ioc_hourly.broken"}
    flagged = monitor.flag_anomalies(watched, today)
    found = {a["kind"]: a for a in flagged["anomalies"]}
    assert {"cost_spike", "failure_burst"} <= set(found)
    lines = found["cost_spike"]["explanation"]
    assert lines[0].startswith("ioc_daily_analytics.daily_active_users.build: $0.000143 in 3 queries (75% of the day)")
    # Every query costs Athena's 10 MB minimum here; the full scan read the most bytes.
    assert "(adhoc.notebook)" in lines[3]
    assert "without a filter on its partition keys" in lines[3] and "SELECT * on the raw table" in lines[3]
    assert "3 failed in ioc_hourly.broken" in found["failure_burst"]["explanation"][0]
    assert "nope" in found["failure_burst"]["explanation"][0]
    # One alert per anomaly, not one per query.
    sent = [json.loads(line) for line in watched.alert_log_path.read_text().splitlines()]
    assert sorted(a["kind"] for a in sent) == sorted(found)
    assert all(a["source"] == "ioc_cost_monitor" and a["runbook"] for a in sent)

    # The cost tables are tables: the engine reads them back.
    reader = get_backend(watched).engine
    part = [today.strftime("%Y/%m/%d")]
    per_query = reader.query("SELECT dag_id, state, cost_usd, reasons FROM query_costs WHERE date = ?",
                             part).to_pandas()
    assert len(per_query) == 7 and (per_query.state == "FAILED").sum() == 3
    full_scan = per_query[per_query.dag_id == "adhoc"].iloc[0]
    assert "SELECT *" in full_scan.reasons and full_scan.cost_usd == per_query.cost_usd.max()
    daily = reader.query("SELECT queries, cost_usd, month_to_date_usd, anomalies FROM daily_costs WHERE date = ?",
                         part).to_pandas().iloc[0]
    assert daily.queries == 7 and daily.anomalies == len(found)
    assert daily.month_to_date_usd >= daily.cost_usd
    stored = reader.query("SELECT kind, alerted FROM cost_anomalies WHERE date = ?", part).to_pandas()
    assert set(stored.kind) == set(found) and stored.alerted.all()

    # A re-run replaces the day: the tables hold each query once (the reads above are queries too),
    # and no alert goes out twice.
    logged = len(usage.query_history(watched, today, today))
    assert logged == 10
    monitor.record_costs(watched, today)
    again = reader.query("SELECT count(*) AS n FROM query_costs WHERE date = ?", part).to_pandas()
    assert again.n[0] == logged
    monitor.flag_anomalies(watched, today)
    assert len(watched.alert_log_path.read_text().splitlines()) == len(sent)
    stored = reader.query("SELECT kind, alerted FROM cost_anomalies WHERE date = ?", part).to_pandas()
    assert stored.alerted.all(), "still marked as alerted: the first run sent them"


def test_what_was_alerted_yesterday_is_read_from_the_cost_table(tmp_path):
    """A budget crossed on a day the monitor did not run is alerted the next day; a state that was
    alerted yesterday is not alerted again; a new runaway query or failure burst always is."""
    from ioc_analytics.jsonlines import JsonLines

    settings = get_settings(backend="local", lake_root=str(tmp_path / "lake"), state_dir=str(tmp_path / "state"),
                            monthly_budget_usd=10.0)
    log = JsonLines(settings.query_log_path)
    first = dt.date(2024, 3, 1)
    for n in range(20):  # $1 a day from March 1: 80 % of $10 on the 8th, the budget on the 10th
        day = first + dt.timedelta(days=n)
        for i in range(4):
            log.append({"query_id": f"{n}-{i}", "submitted_at": f"{day}T0{i}:00:00+00:00", "workgroup": WG,
                        "state": "FAILED" if i == 3 and n >= 15 else "SUCCEEDED",
                        "cost_usd": 0.0 if i == 3 and n >= 15 else 0.6 if i == 0 and n >= 15 else 0.25,
                        "bytes_scanned": 0, "query": "SELECT 1", "tags": {"dag_id": "d"}})

    def run(day):
        return {a["kind"]: a["alerted"] for a in monitor.flag_anomalies(settings, day)["anomalies"]}

    # The monitor's first run is on the 10th: nothing kept for the 9th, so the budget is news.
    assert run(dt.date(2024, 3, 10)) == {"budget_exceeded": True, "budget_projection": True}
    assert run(dt.date(2024, 3, 11)) == {"budget_exceeded": False, "budget_projection": False}
    for day in range(12, 16):
        assert not any(run(dt.date(2024, 3, day)).values())
    # A runaway query ($0.60 > $0.50) on the 16th and the 17th: each day is a new one.
    sixteenth = run(dt.date(2024, 3, 16))
    assert sixteenth["runaway_query"] is True and sixteenth["budget_exceeded"] is False
    assert run(dt.date(2024, 3, 17))["runaway_query"] is True
    kinds = [json.loads(line)["kind"] for line in settings.alert_log_path.read_text().splitlines()]
    assert kinds.count("budget_exceeded") == 1 and kinds.count("runaway_query") == 2


def test_the_projection_averages_the_days_since_usage_began():
    usage_ = {DAY.replace(day=1) + dt.timedelta(days=n): DailyUsage(DAY.replace(day=1) + dt.timedelta(days=n), WG)
              for n in range(31)}
    for day in usage_:
        if day.day >= 26:
            usage_[day] = DailyUsage(day, WG, queries=10, cost_usd=3.0)
    assert monitor.projected_month(usage_, DAY.replace(day=27)) == pytest.approx(6 + 4 * 3.0)


def test_who_ran_a_query_from_its_tags():
    from ioc_analytics.cost.usage import QueryRecord

    def record(tags):
        return QueryRecord("q", WG, dt.datetime.now(dt.UTC), "SUCCEEDED", 0, 0, 0.0, "SELECT 1", tags=tags)

    assert monitor.who(record({"dag_id": "d", "task_id": "t"})) == "d.t"
    assert monitor.who(record({"source": "ioc-api", "query": "completion_rates", "user": "ana"})) == \
        "ioc-api completion_rates (ana)"
    assert monitor.who(record({"source": "ioc-cli"})) == "ioc-cli"
    assert monitor.who(record({})).startswith("untagged")


def test_a_malformed_query_log_line_is_named_with_its_line(tmp_path):
    from ioc_analytics.errors import ConfigError

    settings = get_settings(backend="local", lake_root=str(tmp_path), state_dir=str(tmp_path / "state"))
    settings.query_log_path.parent.mkdir()
    settings.query_log_path.write_text('{"query_id": "a", "submitted_at": "2024-01-01T00:00:00+00:00", '
                                       '"state": "SUCCEEDED"}\n{"query_id": ')
    with pytest.raises(ConfigError, match=r"query_log.jsonl:2: .*fix or delete that line"):
        usage.query_history(settings, dt.date(2024, 1, 1), dt.date(2024, 1, 1))
    settings.query_log_path.write_text('{"query_id": "a"}\n')
    with pytest.raises(ConfigError, match="query a is not a whole query record .KeyError: 'submitted_at'"):
        usage.query_history(settings, dt.date(2024, 1, 1), dt.date(2024, 1, 1))
