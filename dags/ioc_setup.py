"""
### IOC setup

What the pipelines need before their first run, made or checked: the guide's `npm run
setup:athena` (`ioc setup` on the command line runs the same steps). Trigger it by hand (it has
no schedule): once before the first daily run, and again after changing a setting it manages
(`IOC_BYTES_SCANNED_CUTOFF`, `IOC_MONTHLY_BUDGET_USD`, `IOC_BUDGET_ALERT_PCT`,
`IOC_QUERY_COST_ALERT_USD`, `IOC_FAILURE_RATE_ALERT_PCT`, `IOC_ATHENA_OUTPUT`, ...).

**It is safe to run twice.** Each task creates what is missing and brings back what has drifted
(a threshold edited in the console, a lifecycle rule changed by hand), compares only the fields it
manages, and leaves everything else alone. Its log shows a table of every resource, `created`,
`changed` (with what differed) or `unchanged`; the same report is its XCom.

**Tasks** (on the `local` backend the aws-only ones are skipped):

- `catalog`: aws: the Glue database and tables from `include/ioc_analytics/sql/ddl/`. local: the lake, state
  and exports folders, and every DDL table parsed.
- `results_bucket` (aws only): the Athena results bucket (`IOC_ATHENA_OUTPUT`) and its lifecycle
  rule `delete-old-query-results` (results deleted after 30 days); the bucket's other rules are
  kept.
- `workgroup`: aws: the workgroup's per-query bytes-scanned cutoff (1 GiB), enforced
  configuration, CloudWatch metrics and SSE-S3 results. local: the same cutoff, which the local
  engine enforces, recorded in `<state_dir>/setup.json`.
- `alerts`: aws: the on-call SNS topic (`IOC_ALERT_TOPIC`) and three CloudWatch alarms
  (month-to-date budget, single query cost, query failure rate). local: the same thresholds,
  which the cost monitor DAG evaluates. A log note says when nobody is subscribed to the topic.
- `quicksight` (aws only): the QuickSight data source and datasets.
- `readiness`: the guide's activation criteria over the last 30 complete days: assessments in
  the lake (target 10,000 a month) and analytics queries (target 100 a month); MRR and team size
  are reported as not measured. A criterion not met is reported, not failed.

*When a task fails*: a setting it cannot use (a results location that is not `s3://`, a bucket
another account owns, a file where a folder belongs) fails at once with the fix in the message;
AWS refusing a call (permissions, throttling) is retried, then fails with AWS's reason: check the
`IOC_AWS_CONN_ID` connection's permissions. Clear the task once fixed; nothing is half-made that
a second run does not finish. docs/operations.md, "Cost governance".
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import dag, task

from ioc_analytics.operations.notify import task_defaults


@dag(
    schedule=None,  # triggered by hand
    start_date=datetime(2024, 1, 1),
    catchup=False,
    max_active_runs=1,  # two setups at once would race for the same resources
    doc_md=__doc__,
    tags=["ioc", "setup", "cost"],
    # A skipped aws-only step on local must not skip the steps after it: none_failed.
    default_args=task_defaults(retries=2, retry_delay=timedelta(seconds=30), execution_timeout=timedelta(minutes=15),
                               trigger_rule="none_failed"),
)
def ioc_setup():
    @task(multiple_outputs=False)
    def setup_step(step: str) -> dict:
        from airflow.sdk.exceptions import AirflowSkipException

        from ioc_analytics import runtime
        from ioc_analytics.backends import get_backend
        from ioc_analytics.operations import setup

        with runtime.step() as (settings, day, tags):
            if reason := get_backend(settings).not_here.get(step):
                raise AirflowSkipException(f"{step}: nothing to do on this backend ({reason})")
            report = setup.ensure(settings, [step], tags=tags, today=day)
            print(report.render())
            return report.as_dict()

    steps = {name: setup_step.override(task_id=name)(name)
             for name in ("catalog", "results_bucket", "workgroup", "alerts", "quicksight", "readiness")}
    # The workgroup writes to the results bucket; QuickSight and the readiness query use the
    # workgroup and the tables. The alerts depend on nothing.
    steps["results_bucket"] >> steps["workgroup"]
    [steps["catalog"], steps["workgroup"]] >> steps["quicksight"]
    [steps["catalog"], steps["workgroup"]] >> steps["readiness"]


ioc_setup()
