"""
### IOC daily analytics

Builds the day's aggregate tables from the assessment lake, checks them, and exports them. Each
run processes one UTC day, its logical date, and is scheduled just after that day ends; a run
triggered without a logical date processes the last complete day.

For each raw table, `wait_for_<table> -> validate_<table>`; for each aggregate,
`repair_partitions` and the validations of the raw tables it reads `-> <name>.build ->
<name>.check -> <name>.export`. A late or bad `ocean_scores` holds back only the aggregates that
read it.

Aggregates (one partition per day; under `include/ioc_analytics/sql/`: DDL in `ddl/`, query in `<name>.sql`):
`daily_active_users`, `completion_rates`, `user_breakdowns`, `assessment_funnel`,
`ocean_trait_percentiles` (month to date), `facet_summary`, `dark_side_summary`. Each is an
asset (`ioc.<name>`) that its `check` task updates once the day's partition has passed.

**Tasks, and what to do when one fails**

- `wait_for_<table>`: waits (in reschedule mode, holding no worker slot) until the day's
  partitions of the source table hold rows: the assessment types in
  `IOC_REQUIRED_ASSESSMENT_TYPES` must, a quiet optional one is only logged; the month's
  `ocean_scores` must reach into the day. *Fails when* the day is more than 6 h overdue: the
  message names the partitions, where it looked and how late they are. Clear it once the
  upstream export has landed.
- `validate_<table>`: the table's data contract on the day (`include/ioc_analytics/lake/contract.py`,
  as Great Expectations on DuckDB; `docs/data-contract.md` lists every column): files are Parquet
  with the contract's columns and types, ids present and well formed, labels known and safe (no
  spreadsheet formula, no control characters), numbers in range and never NaN, timestamps inside
  the day, no duplicates, maps with their keys, volume in line with the same weekday of the last
  4 weeks, and no earlier day that the day's aggregates read (the 30-day look-back, the month to
  date) failing its own checks. *Fails when* an error-level rule breaks: the message names the
  partition, the column, the class of breach, how many rows and a few of them, and nothing that
  reads the table is built or exported for the day. The report is kept in the lake
  (`quality/<table>/<date>.json`; `ioc quality <date>` prints the day). Warnings (a new industry,
  role, region or app version, a moderate volume change) are logged and the day goes on. With
  `IOC_QUARANTINE=true`, a failing partition of an optional assessment type is moved to
  `quarantine/` and the day goes on without it (a passing re-run releases it).
  **The way back**: fix or re-deliver the day the message names, then run
  `ioc recover <that day>` (with `IOC_AIRFLOW_URL` and a login, docs/data-quality.md): it
  validates the day again, re-runs it, then every later day it blocked or that read it, with
  backfills through the REST API. When the failure names an *earlier* day ("earlier day
  failed"), this day's data is fine: recover that earlier day, and this one is re-run with it.
- `repair_partitions`: makes the catalog's partitions of the aggregate tables (Glue on `aws`,
  the local registry on `local`) agree with the lake over the last 31 days; logs what it added,
  repointed, and what points at nothing. The raw tables use partition projection: nothing to do.
  *Fails when* Glue refuses a call: check the `aws` connection's permissions.
- `<name>.build`: writes the day's rows as a new version of the partition, then switches the
  partition to it in one catalog update: readers see the old day or the new one, never half.
  On `aws`, a query still running after `IOC_ATHENA_DEFER_AFTER_S` is handed to the triggerer
  (the task shows *deferred* and holds no worker slot), and a retry after a worker died
  reconnects to the query it had started instead of running it again.
  *Fails when* the query fails; the message has the error and the query id (the local query
  log, or the Athena history). The previous version stays in place.
- `<name>.check`: the aggregate's data contract (no NaN, rates in 0-1, known and safe labels,
  unique keys) and `include/ioc_analytics/sql/checks/<name>.sql` (its invariants against the sources). *Fails
  when* the data is wrong: the partition is rolled back to its earlier version (or to no data), so
  readers never keep a day that failed, and nothing is exported. Fix the source, then clear the
  `build` task.
- `<name>.export`: publishes the day's export set under the exports root,
  `<name>/<date>/manifest.json` and the CSV, Excel, JSON and Parquet files it lists; breakdown
  rows with fewer than `IOC_MIN_GROUP_USERS` users are blanked; text a spreadsheet would evaluate
  is neutralised in the CSV and Excel files (the manifest counts it). *Fails when* the exports location
  is not writable, or the day has no passing quality report (clear the `check` task).

- `dashboard` (local backend; skipped on aws): once every export has finished or failed, writes the day's HTML dashboard
  (`<exports root>/dashboard/<date>.html` and `index.html`): daily active users, completion
  rates, OCEAN percentiles and the day's data-quality status. What is missing is said on the
  page. *Fails when* the exports location is not writable.

Failures that a retry can cure (Athena's transient errors and throttling, time-outs, the
network) are retried twice with backoff; the others (missing data, a failed check, bad SQL or
settings) fail at once, so the alert comes without delay. Re-running or backfilling a date
replaces exactly that date's partitions and exports, in any order.

The backend (`local` or `aws`) and all locations come from `IOC_*` settings
(docs/configuration.md), never from this file.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import Asset, CronDataIntervalTimetable, TaskGroup, dag, task

from ioc_analytics.analytics.operators import BuildOperator, CheckOperator, ExportOperator
from ioc_analytics.analytics.sensors import LakeFreshnessSensor
from ioc_analytics.lake.tables import AGGREGATES, RAW_TABLES
from ioc_analytics.operations.notify import task_defaults


@dag(
    # A run covers one UTC day and starts once that day has ended: its logical date is the day it
    # processes. (Airflow 3's "@daily" is a trigger timetable whose logical date is the moment it
    # fires, which would make the midnight run process the day that has just begun.)
    schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
    start_date=datetime(2024, 1, 1),
    catchup=False,
    # Runs of different days touch different partitions and may overlap; two at a time keeps a
    # backfill moving without starving the 2-core local machine.
    max_active_runs=2,
    doc_md=__doc__,
    tags=["ioc", "daily", "analytics"],
    default_args=task_defaults(retries=2, retry_delay=timedelta(minutes=2), execution_timeout=timedelta(minutes=30)),
)
def ioc_daily_analytics():
    waits = {table: LakeFreshnessSensor(task_id=f"wait_for_{table}", table=table) for table in RAW_TABLES}

    # multiple_outputs=False: a step's summary dict is one XCom (Airflow would also push each key
    # as an XCom of its own, one API call each).
    @task(multiple_outputs=False)
    def repair_partitions() -> dict:
        from ioc_analytics import runtime
        from ioc_analytics.analytics import pipeline

        with runtime.step() as (settings, day, _):
            return pipeline.repair_partitions(settings, day)

    @task(multiple_outputs=False)
    def validate(table: str) -> dict:
        from ioc_analytics import runtime
        from ioc_analytics.analytics import pipeline

        with runtime.step() as (settings, day, _):
            return pipeline.validate_source(settings, day, table)

    @task(trigger_rule="all_done")  # whatever was exported, and the day's quality status
    def dashboard() -> str:
        from airflow.sdk.exceptions import AirflowSkipException

        from ioc_analytics import runtime
        from ioc_analytics.backends import NotOnThisBackend, get_backend
        from ioc_analytics.publishing import dashboard

        with runtime.step() as (settings, day, tags):
            try:
                get_backend(settings).dashboard()
            except NotOnThisBackend as skip:
                raise AirflowSkipException(str(skip)) from None
            return dashboard.render(settings, day, tags)

    @task(trigger_rule="one_failed", on_failure_callback=None)  # the failed task has alerted already
    def run_failed() -> None:
        # The dashboard runs after failures too, so it would be the run's only leaf and the run
        # would succeed; this watcher, downstream of every task, fails the run when any failed.
        from airflow.sdk.exceptions import AirflowFailException

        raise AirflowFailException("a task of this run failed (see it for why); the dashboard shows what passed")

    repaired = repair_partitions()
    validated = {table: validate.override(task_id=f"validate_{table}")(table) for table in RAW_TABLES}
    for table in RAW_TABLES:
        waits[table] >> validated[table]
    exported, steps = [], [*waits.values(), *validated.values(), repaired]
    for name, sources in AGGREGATES.items():
        with TaskGroup(group_id=name):
            # Their own operators, not TaskFlow tasks: each reports its lineage (what it read, wrote
            # and cost) to OpenLineage (include/ioc_analytics/analytics/operators.py).
            built = BuildOperator(task_id="build", table=name)
            checked = CheckOperator(task_id="check", table=name, outlets=[Asset(name=f"ioc.{name}")])
            exported.append(ExportOperator(task_id="export", table=name))
            [repaired, *(validated[source] for source in sources)] >> built >> checked >> exported[-1]
            steps += [built, checked, exported[-1]]
    drawn = dashboard()
    exported >> drawn
    [*steps, drawn] >> run_failed()


ioc_daily_analytics()
