"""How well the cost monitor finds cost anomalies, and how often it cries wolf.

    python bench/bench_cost_detection.py [--scenarios 120] [--seed 7]

Each scenario is 90 days of synthetic Athena usage of one workgroup, after 5 weeks of history
the baseline learns from, simulated query by query:

- weekdays about 250 queries and $1.25, weekends about 80 queries and $0.40; each query's cost
  is log-normal, and each day has its own swing of about 15 % (more or fewer dashboards opened,
  a late delivery), and 1-3 % of the queries fail;
- one anomaly is injected per scenario, of each kind in turn, at a random day (one scenario in
  six has none, to count false alerts on clean data alone):

  ============  =====================================================  =======================
  kind          what happens                                           counted as found if an
                                                                       alert comes within
  ============  =====================================================  =======================
  spike         one day of extra queries worth 1.5-4x the usual day    that day
  level_shift   from that day on, 1.5-2.5x the usual usage             7 days
  drift         usage grows 2-3 % a day for 30 days, then holds         30 days
  runaway       one query costing $0.60-$3                             that day
  failures      one day on which 15-40 % of the queries fail          that day
  ============  =====================================================  =======================

The detector is ``monitor.detect`` exactly as the DAG runs it (the default settings: $50 budget,
$0.50 query alarm, 10 % failure alarm). An alert is every anomaly with ``alerted`` true (a
continuing one is not re-alerted). An anomaly is found when a detector meant for its kind alerts
within its window (a spike by ``cost_spike``, a failure burst by ``failure_burst``, ...); recall is
found anomalies over injected ones; a false alert is an alert outside every injected anomaly's
window, counted per 30 days of usage; precision is true alerts over all alerts, other detectors'
alerts inside a window counting as neither. Budget alerts are thresholds on the month's spend, not detections:
they are counted apart, with how many came in clean scenarios (a normal month costs about $31).

Target: recall >= 0.95 with at most 1 false alert per 30 days. Never run by the tests.
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import random
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "include"))

from ioc_analytics.cost import monitor  # noqa: E402
from ioc_analytics.cost.usage import DailyUsage  # noqa: E402
from ioc_analytics.settings import get_settings  # noqa: E402

HISTORY_DAYS = 35
DAYS = 90
START = dt.date(2025, 1, 6)  # a Monday
KINDS = ("spike", "level_shift", "drift", "runaway", "failures", None)
WINDOW = {"spike": 0, "level_shift": 7, "drift": 30, "runaway": 0, "failures": 0}
BUDGET_KINDS = {"budget_alert", "budget_exceeded", "budget_projection"}
#: The detectors that count as finding each injected kind; an alert of another kind inside the
#: window counts as neither a hit nor a false alert.
FINDS = {"spike": {"cost_spike"}, "level_shift": {"cost_spike", "cost_increase"},
         "drift": {"cost_spike", "cost_increase"}, "runaway": {"runaway_query"}, "failures": {"failure_burst"}}


def simulate(rng: random.Random, kind: str | None, onset: int) -> dict[dt.date, DailyUsage]:
    """History plus 90 days; ``onset`` counts from the first of the 90 days."""
    usage = {}
    factor = rng.uniform(1.5, 2.5) if kind == "level_shift" else 1.0
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
        query_costs = [per_query * rng.lognormvariate(-0.5, 1.0) for _ in range(count)]
        failure_rate = rng.uniform(0.01, 0.03)
        if t == 0 and kind == "spike":
            extra = (0.40 if weekend else 1.25) * rng.uniform(1.5, 4.0)
            query_costs += [extra / 40] * 40
        if t == 0 and kind == "runaway":
            query_costs.append(rng.uniform(0.6, 3.0))
        if t == 0 and kind == "failures":
            failure_rate = rng.uniform(0.15, 0.40)
        failed = sum(rng.random() < failure_rate for _ in query_costs)
        usage[day] = DailyUsage(day, "ioc-analytics", queries=len(query_costs), failed=failed,
                                cost_usd=sum(query_costs), max_query_cost_usd=max(query_costs))
    return usage


def run(scenarios: int, seed: int) -> dict[str, object]:
    rng = random.Random(seed)
    settings = get_settings(backend="local")
    found, injected = Counter(), Counter()
    true_alerts = false_alerts = 0
    budget = Counter()
    false_by_kind: Counter = Counter()
    clean_false = clean_days = all_days = 0
    for s in range(scenarios):
        kind = KINDS[s % len(KINDS)]
        onset = rng.randint(5, 60)
        usage = simulate(rng, kind, onset)
        first = START + dt.timedelta(days=HISTORY_DAYS)
        window = (first + dt.timedelta(days=onset), first + dt.timedelta(days=onset + WINDOW.get(kind, 0)))
        hit = False
        for n in range(DAYS):
            day = first + dt.timedelta(days=n)
            for anomaly in monitor.detect(usage, day, settings):
                if not anomaly.alerted:
                    continue
                if anomaly.kind in BUDGET_KINDS:
                    budget["clean" if kind is None else "with an anomaly"] += 1
                    continue
                if kind is not None and window[0] <= day <= window[1]:
                    if anomaly.kind in FINDS[kind]:
                        true_alerts += 1
                        hit = True
                else:
                    false_alerts += 1
                    false_by_kind[anomaly.kind] += 1
                    clean_false += kind is None
        all_days += DAYS
        clean_days += DAYS if kind is None else 0
        if kind is not None:
            injected[kind] += 1
            found[kind] += hit
    alerts = true_alerts + false_alerts
    return {
        "scenarios": scenarios,
        "recall": sum(found.values()) / sum(injected.values()),
        "recall_by_kind": {k: f"{found[k]}/{injected[k]}" for k in injected},
        "precision": true_alerts / alerts if alerts else 1.0,
        "false_per_30_days": false_alerts / all_days * 30,
        "clean_false_per_30_days": clean_false / clean_days * 30 if clean_days else 0.0,
        "false_by_kind": dict(false_by_kind),
        "budget_alerts": dict(budget),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenarios", type=int, default=120)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    result = run(args.scenarios, args.seed)
    print("| scenarios | days each | recall | precision | false alerts / 30 days | on clean scenarios |")
    print("|---:|---:|---:|---:|---:|---:|")
    print(f"| {result['scenarios']} | {DAYS} | {result['recall']:.3f} | {result['precision']:.3f} | "
          f"{result['false_per_30_days']:.2f} | {result['clean_false_per_30_days']:.2f} |")
    print()
    print("recall by kind:", result["recall_by_kind"])
    print("false alerts by detector:", result["false_by_kind"] or "none")
    print("budget alerts (apart):", result["budget_alerts"] or "none")


if __name__ == "__main__":
    main()
