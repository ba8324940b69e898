"""How well the cost monitor and its hourly watch find cost anomalies, how fast, and how often they cry wolf.

    python bench/bench_cost_detection.py [--scenarios 160] [--seed 7]

Each scenario is 90 days of synthetic Athena usage of one workgroup, after 5 weeks of history
the baseline learns from, simulated query by query and hour by hour:

- weekdays about 250 queries and $1.25, weekends about 80 queries and $0.40; each query's cost
  is log-normal, and each day has its own swing of about 15 % (more or fewer dashboards opened,
  a late delivery), and 1-3 % of the queries fail;
- the queries fall in the hours as a pipeline's do: a quarter in the hour after midnight (the
  daily DAG), half in business hours (dashboards, analysts), the rest spread over the night;
- one anomaly is injected per scenario, of each kind in turn, at a random day (and hour); one
  scenario in eight has none, to count false alerts on clean data alone:

  ==============  ===================================================  =========================
  kind            what happens                                         counted as found if an
                                                                       alert comes within
  ==============  ===================================================  =========================
  spike           one day of extra queries worth 1.5-4x the usual day  that day
  level_shift     from that day on, 1.5-2.5x the usual usage           7 days
  shift_40        from that day on, exactly 1.4x the usual usage       10 days
  drift           usage grows 2-3 % a day for 30 days, then holds       30 days
  runaway         one query costing $0.60-$3, at a random hour         its hour (the hourly watch)
  failures        one day on which 15-40 % of the queries fail        that day
  hour_failures   a broken task: 10-40 failed queries in one hour      that hour (the hourly watch)
                  (its tries), beside the hour's own
  ==============  ===================================================  =========================

The detectors are the DAGs' exactly: ``monitor.detect_hour`` for every hour (the hourly DAG's
``cost_watch``, its usual failure rate from the 24 hours before), then ``monitor.detect`` for every
day (the daily ``ioc_cost_monitor``, told which kinds the hourly watch alerted that day), with the
default settings ($50 budget, $0.50 query alarm, 10 % failure alarm). An alert is every anomaly
with ``alerted`` true (a continuing one is not re-alerted; one the hourly watch alerted is not
alerted again for the day). An anomaly is found when a detector meant for its kind alerts within
its window (a spike by ``cost_spike``, a runaway query by the hourly ``runaway_query`` in its
hour, ...); recall is found anomalies over injected ones, and the delay is from the anomaly's start
to the first alert that finds it; a false alert is an alert outside every injected anomaly's
window, counted per 30 days of usage; precision is true alerts over all alerts, other detectors'
alerts inside a window counting as neither. Budget alerts are thresholds on the month's spend, not
detections: they are counted apart, with how many came in clean scenarios (a normal month costs
about $31).

Target: recall >= 0.95 with at most 1 false alert per 30 days; a runaway query and a failure burst
found within their hour; a +40 % level shift within 10 days. Never run by the tests.
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import random
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "include"))

from ioc_analytics.cost import monitor  # noqa: E402
from ioc_analytics.cost.usage import DailyUsage  # noqa: E402
from ioc_analytics.settings import get_settings  # noqa: E402

HISTORY_DAYS = 35
DAYS = 90
START = dt.date(2025, 1, 6)  # a Monday
KINDS = ("spike", "level_shift", "shift_40", "drift", "runaway", "failures", "hour_failures", None)
#: Each kind's window: days after its start (None: its own hour only, for the hourly watch).
WINDOW = {"spike": 0, "level_shift": 7, "shift_40": 10, "drift": 30, "runaway": None, "failures": 0,
          "hour_failures": None}
BUDGET_KINDS = {"budget_alert", "budget_exceeded", "budget_projection"}
#: The detectors that count as finding each injected kind; an alert of another kind inside the
#: window counts as neither a hit nor a false alert.
FINDS = {"spike": {"cost_spike"}, "level_shift": {"cost_spike", "cost_increase"},
         "shift_40": {"cost_spike", "cost_increase"}, "drift": {"cost_spike", "cost_increase"},
         "runaway": {"runaway_query"}, "failures": {"failure_burst"}, "hour_failures": {"failure_burst"}}
#: The share of a day's queries in each hour (UTC): the daily DAG after midnight, dashboards and
#: analysts in business hours, a trickle at night.
HOUR_SHARE = [0.25 if h == 0 else 0.05 if h == 1 else 0.05 if 8 <= h <= 17 else 0.2 / 12 for h in range(24)]


@dataclass
class Day:
    usage: DailyUsage
    hours: list[DailyUsage]


def simulate(rng: random.Random, kind: str | None, onset: int, onset_hour: int) -> dict[dt.date, Day]:
    """History plus 90 days; ``onset`` counts from the first of the 90 days."""
    days = {}
    factor = {"level_shift": rng.uniform(1.5, 2.5), "shift_40": 1.4}.get(kind, 1.0)
    growth = rng.uniform(0.02, 0.03)
    for n in range(HISTORY_DAYS + DAYS):
        day = START + dt.timedelta(days=n)
        t = n - HISTORY_DAYS - onset  # days since the anomaly began (negative before)
        weekend = day.weekday() >= 5
        swing = rng.lognormvariate(0, 0.15)
        drift = (1 + growth) ** min(t, 30) if kind == "drift" and t >= 0 else 1.0
        scale = swing * (factor if t >= 0 else 1.0) * drift
        count = max(1, round((80 if weekend else 250) * math.sqrt(scale) * rng.uniform(0.9, 1.1)))
        per_query = (0.40 if weekend else 1.25) * scale / count
        queries = [(rng.choices(range(24), HOUR_SHARE)[0], per_query * rng.lognormvariate(-0.5, 1.0))
                   for _ in range(count)]
        failure_rate = rng.uniform(0.01, 0.03)
        if t == 0 and kind == "spike":
            extra = (0.40 if weekend else 1.25) * rng.uniform(1.5, 4.0)
            hour = rng.choices(range(24), HOUR_SHARE)[0]
            queries += [(hour, extra / 40)] * 40
        if t == 0 and kind == "runaway":
            queries.append((onset_hour, rng.uniform(0.6, 3.0)))
        if t == 0 and kind == "failures":
            failure_rate = rng.uniform(0.15, 0.40)
        broken = rng.randint(10, 40) if t == 0 and kind == "hour_failures" else 0
        hours = [DailyUsage(day, "ioc-analytics") for _ in range(24)]
        tried = [(q, rng.random() < failure_rate) for q in queries]
        tried += [((onset_hour, 0.0), True)] * broken  # the broken task's tries: each fails, scanning nothing
        for (hour, cost), fails in tried:
            totals = hours[hour]
            totals.queries += 1
            totals.failed += fails
            totals.cost_usd += cost
            totals.max_query_cost_usd = max(totals.max_query_cost_usd, cost)
        whole = DailyUsage(day, "ioc-analytics", queries=sum(h.queries for h in hours),
                           failed=sum(h.failed for h in hours), cost_usd=sum(h.cost_usd for h in hours),
                           max_query_cost_usd=max(h.max_query_cost_usd for h in hours))
        days[day] = Day(whole, hours)
    return days


def run(scenarios: int, seed: int) -> dict[str, object]:
    rng = random.Random(seed)
    settings = get_settings(backend="local")
    found, injected, delays = Counter(), Counter(), defaultdict(list)
    true_alerts = false_alerts = 0
    budget = Counter()
    false_by_kind: Counter = Counter()
    clean_false = clean_days = all_days = 0
    for s in range(scenarios):
        kind = KINDS[s % len(KINDS)]
        onset, onset_hour = rng.randint(5, 60), rng.randrange(24)
        days = simulate(rng, kind, onset, onset_hour)
        series = {d: day.usage for d, day in days.items()}
        first = START + dt.timedelta(days=HISTORY_DAYS)
        start = dt.datetime.combine(first + dt.timedelta(days=onset), dt.time(onset_hour if WINDOW.get(kind) is None
                                                                             else 0))
        within = (start, start + (dt.timedelta(hours=1) if WINDOW.get(kind) is None
                                  else dt.timedelta(days=WINDOW.get(kind, 0) + 1)))
        flat = [h for d in sorted(days) for h in days[d].hours]
        alerted: list[tuple[dt.datetime, str]] = []  # when each alert went out, and its kind
        for n in range(DAYS):
            day = first + dt.timedelta(days=n)
            alerted_hourly = set()
            for h in range(24):
                at = (HISTORY_DAYS + n) * 24 + h
                before = flat[at - 24:at]
                usual = monitor.usual_failure_rate(DailyUsage(
                    day, "ioc-analytics", queries=sum(b.queries for b in before), failed=sum(b.failed for b in before)))
                moment = dt.datetime.combine(day, dt.time(h))
                for anomaly in monitor.detect_hour(moment, days[day].hours[h], usual, settings):
                    alerted_hourly.add(anomaly.kind)
                    alerted.append((moment, anomaly.kind))  # at the hour's end: within the hour
            for anomaly in monitor.detect(series, day, settings, alerted_hourly=alerted_hourly):
                if anomaly.alerted:
                    alerted.append((dt.datetime.combine(day, dt.time(23)), anomaly.kind))  # the next morning
        hit: float | None = None
        for moment, alert in alerted:
            if alert in BUDGET_KINDS:
                budget["clean" if kind is None else "with an anomaly"] += 1
            elif kind is not None and within[0] <= moment < within[1]:
                if alert in FINDS[kind]:
                    true_alerts += 1
                    if hit is None:
                        hit = (moment - start).total_seconds() / 3600
            else:
                false_alerts += 1
                false_by_kind[alert] += 1
                clean_false += kind is None
        all_days += DAYS
        clean_days += DAYS if kind is None else 0
        if kind is not None:
            injected[kind] += 1
            found[kind] += hit is not None
            if hit is not None:
                delays[kind].append(hit)
    alerts = true_alerts + false_alerts
    return {
        "scenarios": scenarios,
        "recall": sum(found.values()) / sum(injected.values()),
        "recall_by_kind": {k: f"{found[k]}/{injected[k]}" for k in injected},
        "delay_by_kind": {k: max(v) for k, v in delays.items()},
        "precision": true_alerts / alerts if alerts else 1.0,
        "false_per_30_days": false_alerts / all_days * 30,
        "clean_false_per_30_days": clean_false / clean_days * 30 if clean_days else 0.0,
        "false_by_kind": dict(false_by_kind),
        "budget_alerts": dict(budget),
    }


def _delay(hours: float, kind: str) -> str:
    if WINDOW.get(kind) is None:
        return "within its hour"
    return f"{hours / 24:.0f} days" if hours >= 24 else "the same day"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenarios", type=int, default=160)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    result = run(args.scenarios, args.seed)
    print("| scenarios | days each | recall | precision | false alerts / 30 days | on clean scenarios |")
    print("|---:|---:|---:|---:|---:|---:|")
    print(f"| {result['scenarios']} | {DAYS} | {result['recall']:.3f} | {result['precision']:.3f} | "
          f"{result['false_per_30_days']:.2f} | {result['clean_false_per_30_days']:.2f} |")
    print()
    print()
    print("| anomaly | found | slowest find |")
    print("|---|---:|---|")
    for kind in KINDS[:-1]:
        slowest = result["delay_by_kind"].get(kind)
        print(f"| {kind} | {result['recall_by_kind'][kind]} | "
              f"{_delay(slowest, kind) if slowest is not None else '-'} |")
    print()
    print("false alerts by detector:", result["false_by_kind"] or "none")
    print("budget alerts (apart):", result["budget_alerts"] or "none")


if __name__ == "__main__":
    main()
