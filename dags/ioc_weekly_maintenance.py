"""
### IOC weekly maintenance

The guide's weekly tasks, once a week for the 7 days that have just ended (Monday to Sunday, UTC;
the run starts at 03:00 on the Monday after). Each task keeps its report in the lake under
`maintenance/weekly/<monday>/` (Markdown and JSON) and in its log. The tasks are independent: one
failing does not stop the others.

- `expensive_queries`: the week's ten most expensive queries (the same SQL counted once), with
  their cost, runs, who ran them, why they were expensive (no partition filter, `SELECT *`, the
  bytes scanned) and what to change. Start the "Optimize top 10 queries" review here.
- `expired_results`: `local`: the query log keeps 45 days, as Athena's query history does.
  `aws`: the results bucket's lifecycle rule (`ioc setup`) is in place, and no result outlived it.
  *Fails when* the rule is gone: run `ioc setup`.
- `schema_drift`: every file of the week's raw partitions against the DDL. *Fails when* a file
  has missing, unexpected or retyped columns (the message names the first; the report lists all):
  change the DDL if the producer changed on purpose (then `ioc setup`), or have the files
  re-delivered. The daily quality gate will have stopped those days already.
- `small_files`: raw partitions (2 days old or more) of more than 8 files averaging under 32 MB:
  compacted into one file on `local`; reported on `aws`, for the producer to write fewer files.
- `empty_partitions`: partitions registered in the catalog (local registry or Glue) whose
  location holds nothing: unregistered, and listed in the log.

Retries back off from 5 minutes; every failed task sends one alert to on-call with its log.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import CronDataIntervalTimetable, dag, task

from ioc_analytics.operations.notify import task_defaults


@dag(
    # The data interval is the week, Monday 03:00 to Monday 03:00: its logical date is the Monday
    # that starts the week it covers.
    schedule=CronDataIntervalTimetable("0 3 * * 1", timezone="UTC"),
    start_date=datetime(2024, 1, 1),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["ioc", "weekly", "maintenance"],
    default_args=task_defaults(retries=2, retry_delay=timedelta(minutes=5), execution_timeout=timedelta(minutes=30)),
)
def ioc_weekly_maintenance():
    @task(multiple_outputs=False)
    def expensive_queries() -> dict:
        from ioc_analytics import runtime
        from ioc_analytics.operations import maintenance

        with runtime.step() as (settings, monday, _):
            return maintenance.expensive_queries(settings, *maintenance.week(monday))

    @task(multiple_outputs=False)
    def expired_results() -> dict:
        import datetime as dt

        from ioc_analytics import runtime
        from ioc_analytics.operations import maintenance

        with runtime.step() as (settings, _, _):
            return maintenance.expired_results(settings, dt.datetime.now(dt.UTC).date())

    @task(multiple_outputs=False)
    def schema_drift() -> dict:
        from ioc_analytics import runtime
        from ioc_analytics.operations import maintenance

        with runtime.step() as (settings, monday, _):
            return maintenance.schema_drift(settings, *maintenance.week(monday))

    @task(multiple_outputs=False)
    def small_files() -> dict:
        import datetime as dt

        from ioc_analytics import runtime
        from ioc_analytics.operations import maintenance

        with runtime.step() as (settings, monday, _):
            return maintenance.small_files(settings, *maintenance.week(monday), today=dt.datetime.now(dt.UTC).date())

    @task(multiple_outputs=False)
    def empty_partitions() -> dict:
        from ioc_analytics import runtime
        from ioc_analytics.operations import maintenance

        with runtime.step() as (settings, _, _):
            return maintenance.empty_partitions(settings)

    expensive_queries()
    expired_results()
    schema_drift()
    small_files()
    empty_partitions()


ioc_weekly_maintenance()
