"""The daily cost monitor: what the workgroup's queries cost, whether that is unusual, and why.

For one UTC day (the ``ioc_cost_monitor`` DAG's logical date):

1. **Cost.** Each query of the day (``usage.query_history``) is costed at Athena's price and
   attributed to its DAG, task and run through the ``ioc-tags`` comment the pipeline writes;
   the day's totals, the month to date and a projection of the month's end against
   ``IOC_MONTHLY_BUDGET_USD`` follow. All of it is written to the lake's cost tables
   (``query_costs``, ``daily_costs``, ``cost_anomalies``; DDL in ``include/ioc_analytics/sql/ddl/``).
2. **Anomalies** (:func:`detect`), from the daily totals (``usage.daily_usage``):

   - ``cost_spike``: the day's cost against the median of the same kind of day (weekday or
     weekend) over the 4 weeks before. The spread is the median absolute deviation, so past
     spikes move neither the level nor the spread; it is floored at 15 % of the level, so a
     very regular workload does not page on ordinary wobble.
   - ``cost_increase``: a level shift or a slow drift that the daily test misses. Each of the
     last 7 days is divided by the median of its kind over the 4 weeks before them; a median
     ratio of 1.3 or more is flagged.
   - ``runaway_query``: a single query over ``IOC_QUERY_COST_ALERT_USD`` ($0.50, the guide's
     alarm).
   - ``failure_burst``: more than ``IOC_FAILURE_RATE_ALERT_PCT`` (10 %) of the day's queries
     failed, and at least 3 of them.
   - ``budget_alert`` and ``budget_projection``: the month to date has reached
     ``IOC_BUDGET_ALERT_PCT`` (80 %) of the budget; the projected month end passes it.

   An increase under 1 % of a day's budget (1.7 cents of $50 / 30) is never flagged. Days
   before the first query on record are not history (a new workgroup is not a spike).
3. **Explanations**: which DAGs and tasks drove the day's cost, the most expensive queries, and
   why each was expensive, from its SQL text (``cost.guard.check_sql``: no partition filter, so a
   full-table scan; ``SELECT *`` on a raw table) and its bytes; for failures, the errors by task.
4. **Alerts**: one per anomaly, not one per query (``alerts.send``). An anomaly of the same
   kind flagged the day before is going on, not new: it is recorded with ``alerted`` false, and
   no second alert goes out for it. A runaway query or a failure burst that the hourly watch
   (below) alerted within its hour is recorded too, and not alerted again for the day.

**Within the hour** (:func:`watch_hour`, the hourly DAG's ``cost_watch`` task): Cost Anomaly
Detection and this daily monitor report a day late, and a runaway query or a broken deployment
costs money by the hour. Each hour's queries are judged when the hour ends, with the daily
monitor's explanations and alerts:

- ``runaway_query``: a query of the hour over ``IOC_QUERY_COST_ALERT_USD``;
- ``failure_burst``: at least 3 of the hour's queries failed, more than
  ``IOC_FAILURE_RATE_ALERT_PCT`` of them, and more than the usual failure rate (the 24 hours
  before, at least 1 %) explains: the chance of that many failures at the usual rate (a binomial
  tail) is under 1 in 100,000. A busy hour needs a larger share to be a burst than a quiet one,
  so ordinary failures in a quiet hour (3 of 10) do not page.

They are kept in ``hourly_cost_anomalies`` (one partition per hour; a re-run alerts nothing already
alerted). The daily monitor keeps the day-level detectors: spikes, level shifts and drifts, the
budget, and the day-level failure rate (failures spread over the day).

Why the detector is written here rather than taken from a library: the baseline is a median
and a median absolute deviation over a calendar (weekday or weekend, 4 weeks), a few lines of
arithmetic; the detection-quality benchmark (``bench/bench_cost_detection.py``) holds it to a
recall of 0.95 with at most one false alert per 30 days.
"""

from __future__ import annotations

import calendar
import datetime as dt
import logging
import re
import statistics
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field

import pyarrow as pa

from ioc_analytics.backends import get_backend
from ioc_analytics.cost import usage
from ioc_analytics.cost.usage import DailyUsage, QueryRecord
from ioc_analytics.engine.base import MB, MIN_BILLED_BYTES, without_tags
from ioc_analytics.errors import DataQualityError
from ioc_analytics.lake import contract, partitions
from ioc_analytics.operations import alerts
from ioc_analytics.settings import Settings

log = logging.getLogger(__name__)

#: Days of history the baseline looks back over, and how many days of the same kind it needs.
BASELINE_DAYS = 28
MIN_BASELINE_DAYS = 5
#: A day's cost is a spike when it passes the baseline by this many spreads.
SPIKE_SPREADS = 4.0
#: The spread is at least this share of the baseline.
MIN_SPREAD = 0.15
#: The last this many days, against the 4 weeks before them, for level shifts and drifts.
TREND_DAYS = 7
TREND_RATIO = 1.3
#: Increases smaller than this share of a day's budget (budget / 30) are noise, whatever their ratio:
#: 1 %, about 1.7 cents on the guide's $50 budget.
NOISE_SHARE = 0.01
#: A failure burst needs at least this many failed queries.
MIN_FAILED = 3
#: The hourly watch: an hour's failures are a burst when the usual failure rate would give that
#: many with a chance under this; the usual rate is that of the 24 hours before, at least the floor.
HOURLY_FAILURE_CHANCE = 1e-5
MIN_FAILURE_RATE = 0.01
#: Explanations list this many DAG tasks and queries.
TOP = 3

#: Kinds that are a new incident every day they happen (a different query, a different failure): they
#: are alerted each day. The others are states that last (a level, the month's spend): alerted once.
DAILY_KINDS = frozenset({"runaway_query", "failure_burst"})


@dataclass
class Anomaly:
    kind: str
    day: dt.date
    workgroup: str
    value: float
    baseline: float | None
    threshold: float
    summary: str
    explanation: list[str] = field(default_factory=list)
    #: False when the anomaly was flagged the day before (and is not of the ``DAILY_KINDS``): its
    #: alert has gone out already.
    alerted: bool = True

    def as_dict(self) -> dict[str, object]:
        return {**asdict(self), "day": self.day.isoformat()}


# -- baselines ---------------------------------------------------------------------------------

def _usd(amount: float) -> str:
    """Dollars to the cent, or to 3 significant digits below a cent (local costs are tiny)."""
    return f"${amount:,.2f}" if abs(amount) >= 0.01 or amount == 0 else f"${amount:.3g}"


def _weekend(day: dt.date) -> bool:
    return day.weekday() >= 5


def _kind(day: dt.date) -> str:
    return "weekend" if _weekend(day) else "weekday"


def _history(series: Mapping[dt.date, DailyUsage], first: dt.date, last: dt.date) -> list[DailyUsage]:
    """The days from ``first`` to ``last`` that count as history: on or after the first day with
    a query."""
    started = min((d for d, u in series.items() if u.queries), default=None)
    if started is None:
        return []
    return [series[d] for d in sorted(series) if max(first, started) <= d <= last]


def noise(settings: Settings) -> float:
    return settings.monthly_budget_usd / 30 * NOISE_SHARE


def baseline(series: Mapping[dt.date, DailyUsage], day: dt.date, before: dt.date | None = None,
             floor: float = 0.0) -> tuple[float, float] | None:
    """The usual cost of a day of ``day``'s kind, and its spread, from the ``BASELINE_DAYS`` days
    before ``before`` (default: ``day``); None without ``MIN_BASELINE_DAYS`` such days."""
    end = (before or day) - dt.timedelta(days=1)
    past = [u.cost_usd for u in _history(series, end - dt.timedelta(days=BASELINE_DAYS - 1), end)
            if _weekend(u.day) == _weekend(day)]
    if len(past) < MIN_BASELINE_DAYS:
        return None
    level = statistics.median(past)
    mad = statistics.median(abs(x - level) for x in past)
    return level, max(1.4826 * mad, MIN_SPREAD * level, floor / SPIKE_SPREADS)


def month_to_date(series: Mapping[dt.date, DailyUsage], day: dt.date) -> float:
    return sum(u.cost_usd for d, u in series.items() if day.replace(day=1) <= d <= day)


def projected_month(series: Mapping[dt.date, DailyUsage], day: dt.date) -> float:
    """The month to date plus, for each day left, the baseline of its kind (or, without enough
    history, the average day of the month since the first query)."""
    spent = month_to_date(series, day)
    last = day.replace(day=calendar.monthrange(day.year, day.month)[1])
    active = _history(series, day.replace(day=1), day)
    average = spent / len(active) if active else 0.0
    rest = 0.0
    for n in range(1, (last - day).days + 1):
        ahead = day + dt.timedelta(days=n)
        usual = baseline(series, ahead, before=day + dt.timedelta(days=1))
        rest += usual[0] if usual else average
    return spent + rest


# -- detection ---------------------------------------------------------------------------------

def _flags(series: Mapping[dt.date, DailyUsage], day: dt.date, settings: Settings) -> dict[str, Anomaly]:
    """The anomalies of ``day``, judged on the days up to it only."""
    today = series[day]
    flags: dict[str, Anomaly] = {}

    def flag(kind: str, value: float, base: float | None, threshold: float, summary: str) -> None:
        flags[kind] = Anomaly(kind, day, today.workgroup, round(value, 6),
                              None if base is None else round(base, 6), round(threshold, 6), summary)

    usual = baseline(series, day, floor=noise(settings))
    if usual:
        level, spread = usual
        threshold = level + SPIKE_SPREADS * spread
        if today.cost_usd > threshold:
            flag("cost_spike", today.cost_usd, level, threshold,
                 f"{today.workgroup} spent {_usd(today.cost_usd)} on {day} ({day:%A}), "
                 f"{today.cost_usd / level if level else float('inf'):,.1f}x the usual {_kind(day)} "
                 f"{_usd(level)} (alert above {_usd(threshold)})")
    ratio = _trend(series, day)
    if ratio:
        median_ratio, spent, expected = ratio
        if median_ratio >= TREND_RATIO and spent - expected >= TREND_DAYS * noise(settings):
            flag("cost_increase", median_ratio, 1.0, TREND_RATIO,
                 f"{today.workgroup} spent {_usd(spent)} over the {TREND_DAYS} days to {day}, "
                 f"{median_ratio:.2f}x its level of the 4 weeks before ({_usd(expected)} expected): "
                 "a level shift or a drift")
    if today.max_query_cost_usd > settings.query_cost_alert_usd:
        flag("runaway_query", today.max_query_cost_usd, None, settings.query_cost_alert_usd,
             f"a single query cost {_usd(today.max_query_cost_usd)} on {day}, over the "
             f"{_usd(settings.query_cost_alert_usd)} alarm")
    rate_limit = settings.failure_rate_alert_pct / 100
    if today.failed >= MIN_FAILED and today.failure_rate > rate_limit:
        flag("failure_burst", today.failure_rate, None, rate_limit,
             f"{today.failed} of {today.queries} queries failed on {day} ({today.failure_rate:.0%}, "
             f"over the {settings.failure_rate_alert_pct}% alarm)")
    budget = settings.monthly_budget_usd
    spent = month_to_date(series, day)
    alarm = budget * settings.budget_alert_pct / 100
    if spent >= budget:
        flag("budget_exceeded", spent, None, budget,
             f"{today.workgroup} has spent {_usd(spent)} in {day:%B %Y} to {day}: over the {_usd(budget)} budget "
             f"({spent / budget:.0%})")
    elif spent >= alarm:
        flag("budget_alert", spent, None, alarm,
             f"{today.workgroup} has spent {_usd(spent)} in {day:%B %Y} to {day}: "
             f"{spent / budget:.0%} of the {_usd(budget)} budget")
    projected = projected_month(series, day)
    if projected > budget:
        flag("budget_projection", projected, spent, budget,
             f"{today.workgroup} is on course to spend {_usd(projected)} in {day:%B %Y}, over the "
             f"{_usd(budget)} budget ({_usd(spent)} so far)")
    return flags


def _trend(series: Mapping[dt.date, DailyUsage], day: dt.date) -> tuple[float, float, float] | None:
    """The median, over the last ``TREND_DAYS`` days, of each day's cost divided by the baseline
    of its kind from the 4 weeks before those days; with their cost and the baselines' sum."""
    recent = [day - dt.timedelta(days=n) for n in range(TREND_DAYS - 1, -1, -1)]
    ratios, spent, expected = [], 0.0, 0.0
    for d in recent:
        usual = baseline(series, d, before=recent[0])
        if not usual or d not in series or not _history(series, d, d):
            return None
        spent += series[d].cost_usd
        expected += usual[0]
        ratios.append(series[d].cost_usd / usual[0] if usual[0] else float("inf"))
    return statistics.median(ratios), spent, expected


def detect(series: Mapping[dt.date, DailyUsage], day: dt.date, settings: Settings,
           previous: set[str] | None = None, alerted_hourly: frozenset[str] | set[str] = frozenset()
           ) -> list[Anomaly]:
    """The anomalies of ``day``. One flagged the day before too is going on (``alerted`` false),
    unless it is of the ``DAILY_KINDS``; one of the ``DAILY_KINDS`` in ``alerted_hourly`` (the
    hourly watch alerted it within its hour) is not alerted again. ``previous`` is what was flagged
    the day before, as the cost table keeps it; without it, the day before is judged again from
    ``series`` (the benchmark, which runs every day)."""
    if previous is None:
        before = day - dt.timedelta(days=1)
        previous = set(_flags(series, before, settings)) if before in series else set()
    found = list(_flags(series, day, settings).values())
    for anomaly in found:
        if anomaly.kind in DAILY_KINDS:
            anomaly.alerted = anomaly.kind not in alerted_hourly
        else:
            anomaly.alerted = anomaly.kind not in previous
    return found


def failure_chance(failed: int, queries: int, rate: float) -> float:
    """The chance of ``failed`` or more failures among ``queries`` at the failure rate ``rate``."""
    from scipy.stats import binom  # the binomial tail, computed in log space where it is tiny

    return float(binom.sf(failed - 1, queries, rate))


def usual_failure_rate(before: DailyUsage) -> float:
    """The failed share of the queries before the hour (at least ``MIN_FAILURE_RATE``)."""
    return max(before.failure_rate, MIN_FAILURE_RATE)


def detect_hour(hour: dt.datetime, totals: DailyUsage, usual_rate: float, settings: Settings) -> list[Anomaly]:
    """A runaway query or a failure burst among one hour's queries (``totals``), the hour
    starting at ``hour`` (UTC)."""
    found = []
    when = f"{hour:%Y-%m-%d %H}:00-{hour:%H}:59 UTC"
    if totals.max_query_cost_usd > settings.query_cost_alert_usd:
        found.append(Anomaly("runaway_query", hour.date(), totals.workgroup, round(totals.max_query_cost_usd, 6),
                             None, settings.query_cost_alert_usd,
                             f"a single query cost {_usd(totals.max_query_cost_usd)} in the hour {when}, over the "
                             f"{_usd(settings.query_cost_alert_usd)} alarm"))
    rate_limit = settings.failure_rate_alert_pct / 100
    if (totals.failed >= MIN_FAILED and totals.failure_rate > rate_limit
            and failure_chance(totals.failed, totals.queries, usual_rate) < HOURLY_FAILURE_CHANCE):
        found.append(Anomaly("failure_burst", hour.date(), totals.workgroup, round(totals.failure_rate, 6),
                             round(usual_rate, 6), rate_limit,
                             f"{totals.failed} of {totals.queries} queries failed in the hour {when} "
                             f"({totals.failure_rate:.0%}, against {usual_rate:.1%} usually)"))
    return found


# -- explanations ------------------------------------------------------------------------------

_UNLOAD = re.compile(r"^\s*UNLOAD\s*\((.*)\)\s*TO\s+'", re.S | re.I)


def reasons(record: QueryRecord) -> list[str]:
    """Why a query was expensive, from its SQL text and its bytes."""
    from sqlglot.errors import ParseError

    from ioc_analytics.cost.guard import check_sql

    found = []
    text = without_tags(record.query)
    unload = _UNLOAD.match(text)
    try:
        found += [f.problem for f in check_sql(unload.group(1) if unload else text, "query")]
    except ParseError:  # DDL, SHOW and the like: nothing to say about their cost
        log.debug("query %s: SQL not analysed", record.query_id, exc_info=True)
    if record.bytes_scanned > MIN_BILLED_BYTES:
        found.append(f"scanned {record.bytes_scanned / MB:,.0f} MB")
    return found


def who(record: QueryRecord) -> str:
    """Who ran a query, from its tags: a DAG's task, the CLI, the query API (and its user)."""
    tags = record.tags
    if "dag_id" in tags:
        return f"{tags['dag_id']}.{tags.get('task_id', '?')}"
    if "source" in tags:
        named = f" {tags['query']}" if tags.get("query") else ""
        by = f" ({tags['user']})" if tags.get("user") else ""
        return f"{tags['source']}{named}{by}"
    return "untagged (ad hoc: console or another client)"


def explain(anomaly: Anomaly, records: list[QueryRecord]) -> list[str]:
    """What drove the anomaly, for the person on call."""
    if not records:
        return ["no query of the day is on record for this workgroup (the query history on aws, the query "
                "log on local): check the workgroup setting, and on aws the history's 45-day retention"]
    if anomaly.kind == "failure_burst":
        by_error: dict[tuple[str, str], int] = defaultdict(int)
        for r in records:
            if r.state == "FAILED":
                by_error[(who(r), (r.error or "no reason given").splitlines()[0][:160])] += 1
        return [f"{count} failed in {task}: {error}"
                for (task, error), count in sorted(by_error.items(), key=lambda kv: -kv[1])[:TOP]]
    total = sum(r.cost_usd for r in records) or 1.0
    lines = []
    if anomaly.kind != "runaway_query":
        by_task: dict[str, list[QueryRecord]] = defaultdict(list)
        for r in records:
            by_task[who(r)].append(r)
        for task, group in sorted(by_task.items(), key=lambda kv: -sum(r.cost_usd for r in kv[1]))[:TOP]:
            cost = sum(r.cost_usd for r in group)
            lines.append(f"{task}: {_usd(cost)} in {len(group)} queries ({cost / total:.0%} of the day)")
    expensive = sorted(records, key=lambda r: (-r.cost_usd, -r.bytes_scanned))
    if anomaly.kind == "runaway_query":
        expensive = [r for r in expensive if r.cost_usd > anomaly.threshold]
    for r in expensive[:TOP]:
        why = "; ".join(reasons(r)) or "no cost mistake found in its SQL"
        lines.append(f"query {r.query_id} ({who(r)}): {_usd(r.cost_usd)}, {why}")
    return lines


# -- the DAG's steps ---------------------------------------------------------------------------

def _table(settings: Settings, name: str):
    return get_backend(settings).catalog.table(name)


def _partition(moment: dt.date | dt.datetime) -> dict[str, str]:
    """A cost table's partition: a day's, or an hour's (``hourly_cost_anomalies``)."""
    values = {"date": moment.strftime("%Y/%m/%d")}
    return values | {"hour": moment.strftime("%H")} if isinstance(moment, dt.datetime) else values


def _write(settings: Settings, name: str, moment: dt.date | dt.datetime, rows: list[dict[str, object]]) -> None:
    table = _table(settings, name)
    data = pa.Table.from_pylist(rows, schema=table.arrow_schema)
    broken = [b for b in contract.check_rows(name, data, _partition(moment)) if b.rule.severity == contract.ERROR]
    if broken:  # the monitor's own output: a breach is a bug here, and nothing is written
        raise DataQualityError(f"{name} for {moment} breaks its data contract: "
                               + "; ".join(b.describe() for b in broken))
    backend = get_backend(settings)
    partitions.write_partition(backend.lake, backend.registry, table, _partition(moment), data)


def _stored(settings: Settings, name: str, moments: list) -> dict:
    """The rows the monitor kept for each of ``moments`` (days, or hours) that has a partition of
    cost table ``name``."""
    backend = get_backend(settings)
    table, lake = _table(settings, name), backend.lake
    registered = backend.registry.partitions(table)
    found = {}
    for moment in moments:
        location = registered.get(tuple(_partition(moment).values()))
        if location is None:
            continue
        found[moment] = partitions.read_location(lake, table, location).to_pylist()
    return found


def _alerted_hourly(settings: Settings, day: dt.date) -> set[str]:
    """The kinds the hourly watch alerted on ``day``."""
    hours = [dt.datetime.combine(day, dt.time(h)) for h in range(24)]
    return _alerted(_stored(settings, "hourly_cost_anomalies", hours))


def _alerted(kept: Mapping[object, list[dict[str, object]]]) -> set[str]:
    """The kinds the kept rows say were alerted."""
    return {str(r["kind"]) for rows in kept.values() for r in rows if r["alerted"]}


def daily_totals(settings: Settings, start: dt.date, end: dt.date) -> dict[dt.date, DailyUsage]:
    """Each day's totals: the monitor's own ``daily_costs`` where it kept the day (costed query by
    query), else ``usage.daily_usage`` (on aws, CloudWatch, whose per-day sums know no per-query
    minimum: a lower bound)."""
    series = usage.daily_usage(settings, start, end)
    for day, rows in _stored(settings, "daily_costs", list(series)).items():
        for row in rows:
            series[day] = DailyUsage(day, str(row["workgroup"]), int(row["queries"]), int(row["failed"]),
                                     int(row["bytes_scanned"]), float(row["cost_usd"]),
                                     float(row.get("max_query_cost_usd") or 0.0))
    return series


def _series(settings: Settings, day: dt.date, records: list[QueryRecord]) -> dict[dt.date, DailyUsage]:
    """The daily totals the detector needs (the month so far and 5 weeks before the last week):
    :func:`daily_totals`, with the day itself costed query by query from ``records`` (where
    CloudWatch's figures are larger, they win: the history then misses queries, and a warning
    says so)."""
    series = daily_totals(settings, min(day.replace(day=1), day - dt.timedelta(days=BASELINE_DAYS + TREND_DAYS)), day)
    measured = series[day]  # CloudWatch's figures, or what an earlier run of this day kept
    exact = DailyUsage(day, settings.workgroup)
    for record in records:
        usage.add_query(exact, record)
    if measured.cost_usd > exact.cost_usd * 1.05 + 0.01 or measured.queries > exact.queries:
        log.warning("CloudWatch counts %d queries and %s on %s, the query history %d and %s: the history is "
                    "missing queries (another workgroup setting, its retention?); using the larger figures",
                    measured.queries, _usd(measured.cost_usd), day, exact.queries, _usd(exact.cost_usd))
    series[day] = DailyUsage(day, settings.workgroup, max(exact.queries, measured.queries),
                             max(exact.failed, measured.failed), max(exact.bytes_scanned, measured.bytes_scanned),
                             max(exact.cost_usd, measured.cost_usd),
                             max(exact.max_query_cost_usd, measured.max_query_cost_usd))
    return series


def record_costs(settings: Settings, day: dt.date) -> dict[str, object]:
    """Cost every query of the day, who ran it and why it cost what it did, into ``query_costs``."""
    records = usage.query_history(settings, day, day)
    _write(settings, "query_costs", day, [{
        **{k: v for k, v in r.as_dict().items() if k != "tags"},
        "submitted_at": r.submitted_at.replace(tzinfo=None), "run_by": who(r),
        "dag_id": r.tags.get("dag_id"), "task_id": r.tags.get("task_id"), "run_id": r.tags.get("run_id"),
        "ds": r.tags.get("ds"), "reasons": "; ".join(reasons(r)) or None,
    } for r in records])
    by_task: dict[str, float] = defaultdict(float)
    for r in records:
        by_task[who(r)] += r.cost_usd
    total = sum(by_task.values())
    log.info("%s on %s: %d queries (%d failed), %.1f MB, %s", settings.workgroup, day, len(records),
             sum(r.state == "FAILED" for r in records), sum(r.bytes_scanned for r in records) / MB, _usd(total))
    for task, cost in sorted(by_task.items(), key=lambda kv: -kv[1]):
        log.info("  %s: %s", task, _usd(cost))
    return {"day": day.isoformat(), "queries": len(records), "cost_usd": total, "by_task": dict(by_task)}


def flag_anomalies(settings: Settings, day: dt.date) -> dict[str, object]:
    """The day's totals into ``daily_costs``; its anomalies, explained, into ``cost_anomalies``;
    one alert per new anomaly; and (``aws``) the month to date for the budget alarm.

    Idempotent: a re-run (or a retry) sends no alert that the day's kept anomalies say was sent.
    """
    records = usage.query_history(settings, day, day)
    series = _series(settings, day, records)
    yesterday = day - dt.timedelta(days=1)
    kept = _stored(settings, "cost_anomalies", [yesterday, day])
    # A day the monitor did not keep flagged nothing: what goes on from it is alerted again.
    previous = {str(r["kind"]) for r in kept.get(yesterday, [])}
    sent_before = _alerted({day: kept.get(day, [])})
    hourly = _alerted_hourly(settings, day)
    found = detect(series, day, settings, previous=previous, alerted_hourly=hourly)
    today, usual = series[day], baseline(series, day)
    spent, projected = month_to_date(series, day), projected_month(series, day)
    # First: an alert that fails to send below must not keep the budget alarm (aws) blind.
    get_backend(settings).publish_month_to_date(spent)
    sent = []
    for anomaly in found:
        anomaly.explanation = explain(anomaly, records)
        if anomaly.alerted and anomaly.kind not in sent_before:
            sent.append(_send(settings, anomaly, day.isoformat()))
        elif anomaly.alerted:
            log.info("alerted by an earlier run of this day: %s", anomaly.summary)
        elif anomaly.kind in hourly:
            log.info("alerted within its hour by the hourly cost watch: %s", anomaly.summary)
        else:
            log.info("still going on (alerted before): %s", anomaly.summary)
        for line in anomaly.explanation:
            log.info("  %s", line)
    _write(settings, "daily_costs", day, [{
        "workgroup": today.workgroup, "queries": today.queries, "failed": today.failed,
        "failure_rate": today.failure_rate, "bytes_scanned": today.bytes_scanned, "cost_usd": today.cost_usd,
        "max_query_cost_usd": today.max_query_cost_usd, "baseline_usd": usual[0] if usual else None,
        "month_to_date_usd": spent, "projected_month_usd": projected, "budget_usd": settings.monthly_budget_usd,
        "anomalies": len(found)}])
    _write(settings, "cost_anomalies", day, _rows(found))
    log.info("%s on %s: %s (usual %s); month to date %s, projected %s of %s", today.workgroup, day,
             _usd(today.cost_usd), _usd(usual[0]) if usual else "not known yet", _usd(spent), _usd(projected),
             _usd(settings.monthly_budget_usd))
    return {"day": day.isoformat(), "cost_usd": today.cost_usd, "month_to_date_usd": spent,
            "projected_month_usd": projected, "anomalies": [a.as_dict() for a in found], "alerts": sent}


def _rows(found: list[Anomaly]) -> list[dict[str, object]]:
    """Anomalies as the rows of ``cost_anomalies`` and ``hourly_cost_anomalies``."""
    return [{"workgroup": a.workgroup, "kind": a.kind, "alerted": a.alerted, "value": a.value,
             "baseline": a.baseline, "threshold": a.threshold, "summary": a.summary,
             "explanation": "\n".join(a.explanation)} for a in found]


def _send(settings: Settings, anomaly: Anomaly, day: str) -> dict[str, object]:
    sent = alerts.send(settings, alerts.Alert(
        source="ioc_cost_monitor", kind=anomaly.kind, day=day, title=anomaly.summary,
        details=anomaly.explanation, runbook="docs/operations.md#cost-governance"))
    log.warning("ALERT %s: %s", anomaly.kind, anomaly.summary)
    return sent


def watch_hour(settings: Settings, hour: dt.datetime) -> dict[str, object]:
    """The hour's runaway queries and failure burst (:func:`detect_hour`), explained as the daily
    monitor explains them, one alert each, kept in ``hourly_cost_anomalies``.

    Idempotent: a re-run (or a retry) of the hour alerts nothing its kept partition says was sent.
    """
    hour = hour.replace(minute=0, second=0, microsecond=0, tzinfo=None)
    start, end = hour.replace(tzinfo=dt.UTC), (hour + dt.timedelta(hours=1)).replace(tzinfo=dt.UTC)
    records = usage.query_history(settings, (hour - dt.timedelta(days=1)).date(), hour.date())
    in_hour = [r for r in records if start <= r.submitted_at < end]
    totals, before = DailyUsage(hour.date(), settings.workgroup), DailyUsage(hour.date(), settings.workgroup)
    for record in in_hour:
        usage.add_query(totals, record)
    for record in records:
        if start - dt.timedelta(days=1) <= record.submitted_at < start:
            usage.add_query(before, record)
    found = detect_hour(hour, totals, usual_failure_rate(before), settings)
    sent_before = _alerted(_stored(settings, "hourly_cost_anomalies", [hour]))
    sent = []
    for anomaly in found:
        anomaly.explanation = explain(anomaly, in_hour)
        if anomaly.kind in sent_before:
            log.info("alerted by an earlier run of this hour: %s", anomaly.summary)
        else:
            sent.append(_send(settings, anomaly, hour.date().isoformat()))
        for line in anomaly.explanation:
            log.info("  %s", line)
    _write(settings, "hourly_cost_anomalies", hour, _rows(found))  # each alerted, by this run or an earlier
    log.info("%s %s:00 UTC: %d queries (%d failed), %s; %s", settings.workgroup, f"{hour:%Y-%m-%d %H}", totals.queries,
             totals.failed, _usd(totals.cost_usd), "; ".join(a.summary for a in found) or "nothing unusual")
    return {"hour": hour.isoformat(), "queries": totals.queries, "failed": totals.failed, "cost_usd": totals.cost_usd,
            "anomalies": [a.as_dict() for a in found], "alerts": sent}
