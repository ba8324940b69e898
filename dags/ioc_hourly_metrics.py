"""
### IOC hourly metrics

The guide's scheduled queries (its hourly Lambda), as one run per UTC hour: each run processes
the hour of its logical date (`airflow dags test ioc_hourly_metrics 2024-01-15T14:00:00+00:00`
builds 14:00-15:00) and starts once that hour has ended.

One task per metric table, each replacing the hour's partition (`date`, `hour`) with
`include/ioc_analytics/sql/hourly/<name>.sql` (on `aws`, a query still running after
`IOC_ATHENA_DEFER_AFTER_S` waits in the triggerer, holding no worker slot), then holding it to the table's data contract
(`docs/data-contract.md`: counts not negative, rates in 0-1, no NaN, known labels): a re-run or a
backfill of an hour replaces exactly that hour.

- `user_growth_hourly`: users active in the hour, sessions, users new in the hour (no session in
  the 7 days before), the day's users so far.
- `platform_performance`: sessions, completion rate, mean and p95 completion time by platform and
  device.
- `assessment_quality`: by assessment type, the hour's completed sessions, how many are scored,
  their mean consistency and completeness, and how many are reliable.

Beside them, `cost_watch`: on-call within the hour for the incidents that cost money fast. The
hour's queries (the workgroup's, whoever ran them) are judged once the hour has ended: a query over
`IOC_QUERY_COST_ALERT_USD` is a *runaway query*; failures beyond what the usual failure rate of the
24 hours before explains (at least 3, over `IOC_FAILURE_RATE_ALERT_PCT`) are a *failure burst*.
Each is alerted once, explained as the daily cost monitor explains it (who ran it, the most
expensive queries and why, the errors by task), and kept in `hourly_cost_anomalies`; the daily
`ioc_cost_monitor` then does not alert it again (docs/operations.md, "Cost governance").

**When a task fails**: *no data for the day* (`NoDataError`) means the hour's day has not
landed in the lake yet: the daily DAG's `wait_for_assessment_events` says the same; clear the
task once it has. *Breaks its data contract* (`DataQualityError`) means the raw data let a bad
value through (the hourly metrics read the raw tables before the daily gates have seen the day):
the hour is rolled back; `ioc quality <date> --validate` names the bad rows; fix the source, then
clear the task. A quiet hour is not a failure: it gives an empty partition. A query error names
the query id (the local query log or the Athena history). Retries (3, backing off from 1 minute)
cover Athena's transient errors; the others fail at once, and on-call gets one alert per failed
task with its log and this page.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import CronDataIntervalTimetable, dag, task

from ioc_analytics.analytics.operators import BuildOperator
from ioc_analytics.lake.tables import HOURLY
from ioc_analytics.operations.notify import task_defaults


@dag(
    schedule=CronDataIntervalTimetable("0 * * * *", timezone="UTC"),
    start_date=datetime(2024, 1, 1),
    catchup=False,
    max_active_runs=2,
    doc_md=__doc__,
    tags=["ioc", "hourly", "analytics"],
    default_args=task_defaults(retries=3, retry_delay=timedelta(minutes=1), execution_timeout=timedelta(minutes=10)),
)
def ioc_hourly_metrics():
    for name in HOURLY:
        BuildOperator(task_id=name, table=name, hourly=True)

    @task(multiple_outputs=False)
    def cost_watch() -> dict:
        from airflow.sdk import get_current_context

        from ioc_analytics import runtime
        from ioc_analytics.cost import monitor

        with runtime.step() as (settings, _, _tags):
            return monitor.watch_hour(settings, runtime.run_moment(get_current_context()))

    cost_watch()


ioc_hourly_metrics()
