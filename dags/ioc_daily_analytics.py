"""
### IOC daily analytics

Builds the day's analytics from the assessment lake, checks them, and publishes them. Each run
processes one UTC day, its logical date, and is scheduled just after that day ends; a run
triggered without a logical date processes the last complete day.

`check_freshness -> register_partitions -> build_daily_active_users -> quality_gate -> export_csv`

**Tasks, and what to do when one fails**

- `check_freshness`: the date's `assessment_events` partitions (any assessment type) and the
  month's `ocean_scores` partition hold data. *Fails when* the upstream export is late or failed;
  the message names the partitions and where it looked. Re-run once the data has landed.
- `register_partitions`: makes the date's partitions visible to the engine; a logged no-op for
  tables with partition projection. *Fails when* Glue refuses a partition: check the `aws`
  connection's permissions.
- `build_daily_active_users`: replaces the date's partition of `daily_active_users`
  (`include/sql/daily_active_users.sql`). *Fails when* the query fails; the message has the
  error and the query id (local query log, or the Athena history).
- `quality_gate`: `include/sql/checks/daily_active_users.sql`, one check per column. *Fails
  when* the data is wrong: nothing of the date is exported. Fix the source, then clear the run.
- `export_csv`: writes `daily_active_users_<date>.csv` under the exports root. *Fails when* the
  exports location is not writable.

Failures a retry can cure (Athena's transient errors, time-outs, the network) are retried twice
with backoff; the others (missing data, a failed check, bad SQL or settings) fail at once, so the
alert comes without delay. Re-running a date replaces exactly that date's outputs.

The backend (`local` or `aws`) and all locations come from `IOC_*` settings (README,
"Configuration"), never from this file.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import Asset, CronDataIntervalTimetable, dag, task

# Assets are named after the table. A URI (s3://...) would make Airflow import every provider's
# URI handlers, boto3 included, at parse time.
DAILY_ACTIVE_USERS = Asset(name="ioc.daily_active_users")


@dag(
    # A run covers one UTC day and starts once that day has ended: its logical date is the day it
    # processes. (Airflow 3's "@daily" is a trigger timetable whose logical date is the moment it
    # fires, which would make the midnight run process the day that has just begun.)
    schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
    start_date=datetime(2024, 1, 1),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["ioc", "daily", "analytics"],
    default_args={
        "owner": "ioc-analytics",
        "retries": 2,
        "retry_delay": timedelta(minutes=2),
        "retry_exponential_backoff": True,
        "execution_timeout": timedelta(minutes=30),
    },
)
def ioc_daily_analytics():
    @task
    def check_freshness() -> dict:
        from ioc_analytics import pipeline, runtime

        with runtime.step() as (settings, day, _):
            return pipeline.check_freshness(settings, day)

    @task
    def register_partitions() -> dict:
        from ioc_analytics import pipeline, runtime

        with runtime.step() as (settings, day, _):
            return pipeline.register_partitions(settings, day)

    @task(outlets=[DAILY_ACTIVE_USERS])
    def build_daily_active_users() -> dict:
        from ioc_analytics import pipeline, runtime

        with runtime.step() as (settings, day, tags):
            return pipeline.build_aggregate(settings, day, "daily_active_users", tags)

    @task
    def quality_gate() -> dict:
        from ioc_analytics import pipeline, runtime

        with runtime.step() as (settings, day, tags):
            return pipeline.quality_gate(settings, day, "daily_active_users", tags)

    @task
    def export_csv() -> str:
        from ioc_analytics import pipeline, runtime

        with runtime.step() as (settings, day, tags):
            return pipeline.export_csv(settings, day, "daily_active_users", tags)

    check_freshness() >> register_partitions() >> build_daily_active_users() >> quality_gate() >> export_csv()


ioc_daily_analytics()
