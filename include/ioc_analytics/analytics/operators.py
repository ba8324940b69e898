"""The pipeline's own operators: the build (one aggregate's day, or one hourly metric's hour, built
so that its queries outlive the worker that runs it), the check and the export, each reporting its
lineage to OpenLineage.

Every one is a :class:`StepOperator`: its step runs under a lineage record
(:mod:`ioc_analytics.engine.lineage`) that the engines, the partition switch and the exports report
to, and the OpenLineage provider's listener asks the operator for it when the task ends
(``get_openlineage_facets_on_complete`` / ``_on_failure``): the tables and partitions it read, the
partition or files it wrote, and a cost facet with its bytes scanned and dollars. (TaskFlow tasks
cannot answer the listener: the provider's Python extractor reports their source code only.)

The build:

A build is a few queries (the state it reads, made current first, then its own partition), each
an UNLOAD on ``aws`` that may run for minutes. Run as a plain task, the worker would hold its slot
while Athena works, and a worker that dies would leave the retry to submit (and pay for) every
query again. So the build runs under a :class:`~ioc_analytics.engine.base.Resume` whose journal is
Airflow's ``task_state_store`` (kept per task instance in the metadata database, across
deferrals and tries):

- each query is recorded there before it is submitted, with its idempotency token, and then with
  its id; the build run again (after a deferral, or on the retry of a worker that died) finds it
  and reconnects to it, running or finished, instead of submitting it again;
- a query still running after ``IOC_ATHENA_DEFER_AFTER_S`` defers the task to the trigger the
  engine names (:class:`~ioc_analytics.backends.aws.trigger.AthenaQueryTrigger`): the worker slot is
  free while the triggerer waits; the trigger stops the query at its timeout;
- when the trigger fires, the build runs again from the top (:meth:`BuildOperator.resume`): what
  it has published is current and skipped, the query it waited for is reconnected to, and it goes
  on (and may defer again for its next query).

The journal is cleared when the build ends, passed or failed for good, so a build cleared later
(to rebuild on re-delivered data) starts afresh; it is kept when the build is deferred, fails in a
way a retry can cure, or dies with its worker. This follows Airflow's ``ResumableJobMixin`` (which
keeps one job id in the same store) for a task that runs several queries, one after the other;
the mixin's known gap, a worker dying between submitting and recording, is closed by Athena's
``ClientRequestToken``.

On ``local`` the queries run inside the task (DuckDB): nothing to defer or reconnect to, and a
build killed half-way leaves an unpublished version that the retry replaces.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseOperator


class StepOperator(BaseOperator):
    """A step of the pipeline for ``table`` on the run's day, which records its lineage."""

    def __init__(self, *, table: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.table = table
        self._lineage: Any = None

    def execute(self, context: Any) -> dict:
        return self._recorded(context, self.run)

    def run(self, context: Any, settings: Any, day: Any, tags: dict[str, str]) -> dict:
        raise NotImplementedError

    def _recorded(self, context: Any, step: Any) -> dict:
        from ioc_analytics import runtime
        from ioc_analytics.backends import get_backend
        from ioc_analytics.engine import lineage

        with runtime.step() as (settings, day, tags):
            with lineage.recording(get_backend(settings).engine.lineage_name) as self._lineage:
                return step(context, settings, day, tags)

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        from ioc_analytics.engine import lineage

        return lineage.operator_lineage(self._lineage)

    def get_openlineage_facets_on_failure(self, task_instance: Any) -> Any:
        return self.get_openlineage_facets_on_complete(task_instance)


class BuildOperator(StepOperator):
    """Builds ``table`` for the run's day (``hourly``: the run's hour); XCom: the query's statistics."""

    ui_color = "#fff3e0"

    def __init__(self, *, table: str, hourly: bool = False, **kwargs: Any) -> None:
        super().__init__(table=table, **kwargs)
        self.hourly = hourly

    def resume(self, context: Any, event: dict[str, Any] | None = None) -> dict:
        """Back from the triggerer: the query it waited for is final (or was stopped at its timeout)."""
        if event and event.get("status") == "timeout":
            from ioc_analytics.errors import QueryTimeoutError

            # Retryable: the retry submits the query afresh (this one was cancelled).
            raise QueryTimeoutError(event["message"], query_id=event.get("query_id"))
        return self._recorded(context, self.run)

    def run(self, context: Any, settings: Any, day: Any, tags: dict[str, str]) -> dict:
        from ioc_analytics import runtime
        from ioc_analytics.analytics import pipeline
        from ioc_analytics.engine.base import QueryPending

        with runtime.resumable(context, settings):
            try:
                if self.hourly:
                    hour = runtime.run_moment(context)
                    return pipeline.build_hourly(settings, hour, self.table, {**tags, "hour": hour.strftime("%H")})
                return pipeline.build_aggregate(settings, day, self.table, tags)
            except QueryPending as pending:
                self.log.info("%s: %s; the triggerer waits for it, holding no worker slot", self.table, pending)
                self.defer(trigger=pending.trigger, method_name="resume", timeout=pending.timeout)


class CheckOperator(StepOperator):
    """Holds the day's partition of ``table`` to its checks (rolled back if it fails); XCom: the result."""

    ui_color = "#e8f5e9"

    def run(self, context: Any, settings: Any, day: Any, tags: dict[str, str]) -> dict:
        from ioc_analytics.analytics import pipeline

        return pipeline.quality_gate(settings, day, self.table, tags)


class ExportOperator(StepOperator):
    """Publishes the day's export set of ``table``; XCom: its manifest."""

    ui_color = "#e3f2fd"

    def run(self, context: Any, settings: Any, day: Any, tags: dict[str, str]) -> dict:
        from ioc_analytics.publishing import exports

        return exports.export_aggregate(settings, day, self.table, tags)
