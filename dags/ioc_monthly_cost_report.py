"""
### IOC monthly cost report

The guide's "Cost analysis report", once a month for the month that has just ended (the run
starts at 04:00 UTC on the 1st). It keeps `maintenance/monthly/<YYYY-MM>/cost_report.md` (and
`.json`) in the lake: the month's Athena cost against `IOC_MONTHLY_BUDGET_USD` and the month
before, queries and failures, the cost by DAG and task, the ten most expensive queries with what
to change, and the cost of each day. On `aws` the daily totals come from CloudWatch and the
queries from the Athena history (45 days: run it within two weeks of the month's end); on `local`
from the query log.

*Fails when* the usage cannot be read (the `aws` connection's permissions: CloudWatch
`GetMetricData`, Athena `ListQueryExecutions` and `GetQueryExecution`) or the lake is not
writable. Re-running replaces the report. On-call gets one alert per failed task.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import CronDataIntervalTimetable, dag, task

from ioc_analytics.operations.notify import task_defaults


@dag(
    # The data interval is the month, so the logical date is the 1st of the month it covers.
    schedule=CronDataIntervalTimetable("0 4 1 * *", timezone="UTC"),
    start_date=datetime(2024, 1, 1),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["ioc", "monthly", "cost"],
    default_args=task_defaults(retries=2, retry_delay=timedelta(minutes=5), execution_timeout=timedelta(minutes=30)),
)
def ioc_monthly_cost_report():
    @task(multiple_outputs=False)
    def cost_report() -> dict:
        from ioc_analytics import runtime
        from ioc_analytics.operations import maintenance

        with runtime.step() as (settings, month, _):
            return maintenance.monthly_cost_report(settings, month)

    cost_report()


ioc_monthly_cost_report()
