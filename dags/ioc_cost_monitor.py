"""
### IOC cost monitor

Once a day, what the Athena workgroup's queries cost, whether that is unusual, and why. Each run
covers one UTC day of usage (its logical date) and starts at 02:00 the next day, once the
queries of that day, the daily analytics run among them, have finished.

`record_costs -> flag_anomalies`

- `record_costs`: reads the day's queries (the Athena query history on `aws`, the engine's query
  log on `local`), costs each at Athena's price ($5 per TB, 10 MB minimum, failed queries free,
  cancelled ones paying what they scanned), attributes it to who ran it (the `ioc-tags` comment
  every query carries: a DAG's task, the CLI, the query API and its user; the rest are
  "untagged": the console, other clients), and writes the lake's cost table `query_costs` (each
  query, with why it was expensive). Query it like any table:
  `ioc query "SELECT run_by, sum(cost_usd) AS usd FROM query_costs WHERE date = '2024/01/15' GROUP BY run_by"`.
  *Fails when* the history or the lake cannot be read or written: check the `aws` connection.
- `flag_anomalies`: compares the day with the usual cost of the same kind of day (weekday or
  weekend) over the 4 weeks before (kept in `daily_costs` by earlier runs; else CloudWatch
  `AWS/Athena` on `aws`), and flags: a **cost spike**, a **cost increase** (a level shift or a
  drift over the last 7 days), a **runaway query** (one query over `IOC_QUERY_COST_ALERT_USD`,
  $0.50), a **failure burst** (over `IOC_FAILURE_RATE_ALERT_PCT`, 10 %, of the day's queries),
  and the **budget** (80 % of it spent, all of it spent, the month projected past it). It writes
  `daily_costs` (the day, its baseline, the month to date and the projection) and
  `cost_anomalies`, and sends one alert per anomaly to on-call (the SNS topic `IOC_ALERT_TOPIC` on
  `aws`, `<state_dir>/alerts.jsonl` or `IOC_ALERT_WEBHOOK` on `local`), saying which DAGs, tasks
  and queries drove it and why: no partition filter (a full-table scan), `SELECT *` on a raw
  table, the bytes scanned. A spike, an increase or a budget state kept as flagged for the day
  before is going on: recorded, not alerted again; runaway queries and failure bursts are alerted
  every day they happen. A re-run sends nothing already sent. On `aws` it first publishes the month
  to date (`IOC/Analytics MonthToDateCostUSD`) for the budget alarm of `ioc setup`. The task
  succeeds when it finds anomalies: they are findings, sent as alerts.

**When an alert comes** (docs/operations.md, "Cost governance"): open the run's `flag_anomalies` log or
`ioc query "SELECT run_by, cost_usd, reasons, query FROM query_costs WHERE date = '<day>' ORDER BY
cost_usd DESC"`; fix the
query or DAG named (add the partition filter, name the columns), or, for a failure burst, open
the failing task's log. A deliberate change (a backfill, a new dashboard) needs nothing: the
baseline follows it within 4 weeks.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import CronDataIntervalTimetable, dag, task

from ioc_analytics.operations.notify import task_defaults


@dag(
    # The data interval starts at 02:00 on the day it covers, so the logical date is that day.
    schedule=CronDataIntervalTimetable("0 2 * * *", timezone="UTC"),
    start_date=datetime(2024, 1, 1),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["ioc", "daily", "cost"],
    default_args=task_defaults(retries=2, retry_delay=timedelta(minutes=5), execution_timeout=timedelta(minutes=20)),
)
def ioc_cost_monitor():
    @task(multiple_outputs=False)
    def record_costs() -> dict:
        from ioc_analytics import runtime
        from ioc_analytics.cost import monitor

        with runtime.step() as (settings, day, _):
            return monitor.record_costs(settings, day)

    @task(multiple_outputs=False)
    def flag_anomalies() -> dict:
        from ioc_analytics import runtime
        from ioc_analytics.cost import monitor

        with runtime.step() as (settings, day, _):
            return monitor.flag_anomalies(settings, day)

    record_costs() >> flag_anomalies()


ioc_cost_monitor()
