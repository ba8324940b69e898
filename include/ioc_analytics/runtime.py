"""What every task body needs from Airflow: its settings, logical date and query tags, and a
failure that retries only when a retry can help.

Task bodies are written as::

    with runtime.step() as (settings, day, tags):
        return pipeline.build_aggregate(settings, day, "daily_active_users", tags)

Every step reaches the backend (engine, lake, registry, ...) through
:func:`ioc_analytics.backends.get_backend`, which builds it once per process: ``step`` builds it
before the task body runs, so a misconfigured backend fails the task at once, with its fix.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from airflow.sdk import get_current_context
from airflow.sdk.exceptions import AirflowFailException

from ioc_analytics.backends import get_backend
from ioc_analytics.engine.base import Resume
from ioc_analytics.engine.base import resumable as _under
from ioc_analytics.errors import IocError
from ioc_analytics.settings import Settings, get_settings


def run_moment(context: Mapping[str, Any]) -> dt.datetime:
    """The UTC moment a run processes: its logical date, else the start of its data interval.

    Airflow 3 lets a run be triggered without a logical date (the API's ``logical_date: null``);
    the DAGs' data-interval timetables then give it the last complete day (or hour).
    """
    moment = context.get("logical_date") or context.get("data_interval_start")
    if moment is None:
        raise AirflowFailException(
            "this run has neither a logical date nor a data interval, so there is nothing to process: "
            "trigger it again with a logical date (the day, e.g. 2024-01-15, or the hour, 2024-01-15T07:00)"
        )
    return moment.astimezone(dt.UTC)


def run_day(context: Mapping[str, Any]) -> dt.date:
    """The UTC day a run processes (see :func:`run_moment`)."""
    return run_moment(context).date()


@contextmanager
def step() -> Iterator[tuple[Settings, dt.date, dict[str, str]]]:
    """The running task's settings, date and query tags; turns a non-retryable
    :class:`IocError` into :class:`AirflowFailException`.

    Airflow retries every exception by default. A missing partition, a failed quality gate or bad
    SQL will fail the same way on every try, and retrying them only delays the alert by the
    retry delays; ``AirflowFailException`` fails the task at once with the same message. Errors a
    retry can cure (Athena's retryable errors, time-outs, throttling, the network) propagate as
    they are, and Airflow retries them with backoff.
    """
    context = get_current_context()
    ti = context["ti"]
    day = run_day(context)
    tags = {"dag_id": ti.dag_id, "task_id": ti.task_id, "run_id": ti.run_id, "ds": day.isoformat()}
    try:
        settings = get_settings()
        get_backend(settings)  # built once per process and checked before the step; steps get this one
        yield settings, day, tags
    except IocError as error:
        if error.retryable:
            raise
        raise AirflowFailException(f"{type(error).__name__}: {error}") from error


@contextmanager
def resumable(context: Mapping[str, Any], settings: Settings) -> Iterator[Resume | None]:
    """Run the block's queries under a :class:`~ioc_analytics.engine.base.Resume` kept in the
    task's ``task_state_store`` (see :mod:`ioc_analytics.analytics.operators`).

    The store is cleared when the block returns or fails for good (a later clear of the task
    rebuilds afresh); it is kept when the block defers, fails in a way a retry can cure, or dies.
    """
    from airflow.sdk.exceptions import TaskDeferred

    store = context.get("task_state_store")
    ti = context["ti"]
    resume = None if store is None else Resume(
        journal=store, scope=f"{ti.dag_id}/{ti.run_id}/{ti.task_id}/{ti.map_index}", attempt=ti.try_number,
        defer_after_s=settings.athena_defer_after_s)
    try:
        with _under(resume):
            yield resume
    except TaskDeferred:
        raise
    except IocError as error:
        if store is not None and not error.retryable:
            store.clear()
        raise
    except AirflowFailException:
        if store is not None:
            store.clear()
        raise
    else:
        if store is not None:
            store.clear()
