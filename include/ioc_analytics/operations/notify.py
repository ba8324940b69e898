"""The failure alert every task of every DAG sends (``on_failure_callback``), once it has failed
for good: Airflow calls failure callbacks after the last try, not on a retry.

One alert per failed task, to where on-call reads them (``alerts.send``: SNS on ``aws``, the
alert log or a webhook on ``local``), carrying the DAG, the task, the day the run processes, the
try number, the error's first line, the task log's URL and the runbook: the DAG's page in the
Airflow UI, whose "Docs" are the DAG's ``doc_md`` (what each task does, what its failure means and
what to do).

Kept free of heavy imports: DAG files import it at parse time.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from airflow.sdk.bases.notifier import BaseNotifier


class OnCallNotifier(BaseNotifier):
    def notify(self, context: Any) -> None:
        from airflow.configuration import conf

        from ioc_analytics import runtime
        from ioc_analytics.operations import alerts
        from ioc_analytics.settings import get_settings

        ti = context["ti"]
        error = context.get("exception")
        first_line = next((line.strip() for line in str(error or "").splitlines() if line.strip()),
                          "the task failed without an exception (timed out or killed): see its log")
        try:
            day = runtime.run_day(context).isoformat()
        except Exception:  # a run without a date still gets its alert
            day = "unknown"
        base = conf.get("api", "base_url", fallback="http://localhost:8080/").rstrip("/")
        runbook = f"{base}/dags/{ti.dag_id} (the DAG's Docs: task {ti.task_id})"
        alerts.send(get_settings(), alerts.Alert(
            source=ti.dag_id, kind="task_failed", day=day,
            title=f"{ti.dag_id}.{ti.task_id} failed for {day} (try {ti.try_number}): {first_line}",
            runbook=runbook, task=ti.task_id, try_number=ti.try_number, error=first_line,
            log_url=getattr(ti, "log_url", None)))


def task_defaults(*, retries: int, retry_delay: dt.timedelta, execution_timeout: dt.timedelta,
                  **more: Any) -> dict[str, Any]:
    """Every DAG's ``default_args``: the team as owner, retries backing off exponentially, a
    timeout, and one on-call alert per task that fails for good (the DAG policy test checks them)."""
    return {"owner": "ioc-analytics", "retries": retries, "retry_delay": retry_delay,
            "retry_exponential_backoff": True, "execution_timeout": execution_timeout,
            "on_failure_callback": OnCallNotifier(), **more}
