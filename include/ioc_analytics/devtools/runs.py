"""DAG runs created the ordinary way and executed in this one process: how ``make demo`` builds a
month.

``airflow dags test`` runs a DAG in one process, but its run is a test run: its data interval
ends where its day begins and its start date is its logical date, so the grid shows it lasting a
day or more, and a scheduler started afterwards finds the interval it wants to create taken and
says so every second. Here the runs are made as Airflow makes them, by its backfill (the runs of
past days, each with its day as the data interval) or a trigger (a manual run, now); then each
run is done as a scheduler and an executor would do it, its tasks in dependency order, each by
the per-task runner that ``DAG.test()`` uses, in this process. One start-up (Airflow, DuckDB,
Great Expectations) serves every run, where a scheduler starts a process for each task: about
6 s a day at the demo's volume, not a minute. The runs are then the ordinary backfill and manual
runs that a scheduler would have made, and one started afterwards carries on after the last.

    python -m ioc_analytics.devtools.runs --backfill ioc_daily_analytics 2024-01-31 2024-01-31 \\
        --backfill ioc_daily_analytics 2026-11-01 2026-11-30 --trigger ioc_cost_monitor

Airflow's settings (``AIRFLOW_HOME``, the DAGs folder) come from the environment, as for
``airflow``; the metadata database must exist (``airflow db migrate``). A backfill of the same
days again re-runs them (``reprocess_behavior: completed``).

Written here because Airflow has no executor that runs a DAG's tasks in its own process (the
debug and sequential executors were removed in Airflow 3), and ``DAG.test()`` makes test runs
only. The loop below is ``DAG.test()``'s, on a run that exists.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import sys
import time
import traceback
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

#: Who created the runs, as the UI shows it.
USER = "ioc-demo"


def _load_dags(dag_ids: set[str]) -> dict[str, Any]:
    """The DAGs, parsed from their bundles and synced to the metadata database as the DAG
    processor does (their runs can then be created, and each DAG's next run follows its latest)."""
    from airflow import settings
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import BundleDagBag, sync_bag_to_db

    manager = DagBundlesManager()
    with settings.Session() as session:
        manager.sync_bundles_to_db(session=session)
        session.commit()
    found: dict[str, Any] = {}
    for bundle in manager.get_all_dag_bundles():
        if not bundle.is_initialized:
            bundle.initialize()
        bag = BundleDagBag(dag_folder=bundle.path, bundle_path=bundle.path, bundle_name=bundle.name)
        sync_bag_to_db(bag, bundle.name, bundle.version)
        found.update({k: v for k, v in bag.dags.items() if k in dag_ids})
    if missing := sorted(dag_ids - set(found)):
        raise SystemExit(f"error: no DAG {', '.join(missing)} in the DAG bundles (AIRFLOW__CORE__DAGS_FOLDER)")
    return found


def _scheduler_dag(dag: Any) -> Any:
    """The DAG as the scheduler holds it, with the DAG-level callbacks (as ``DAG.test()`` does)."""
    from airflow.serialization.serialized_objects import DagSerialization

    serialized = DagSerialization.deserialize_dag(DagSerialization.serialize_dag(dag))
    serialized.on_success_callback = dag.on_success_callback
    serialized.on_failure_callback = dag.on_failure_callback
    return serialized


def backfill(dag_id: str, first: dt.date, last: dt.date) -> int:
    """A backfill of the days ``first`` to ``last``, created by Airflow; its id."""
    from airflow.models.backfill import ReprocessBehavior, _create_backfill

    def moment(day: dt.date) -> dt.datetime:
        return dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)

    # _create_backfill is what `airflow backfill create` and the REST API call.
    created = _create_backfill(dag_id=dag_id, from_date=moment(first), to_date=moment(last), max_active_runs=1,
                               reverse=False, dag_run_conf=None, triggering_user_name=USER,
                               reprocess_behavior=ReprocessBehavior.COMPLETED)
    return created.id


def trigger(dag_id: str) -> str:
    """A manual run of ``dag_id`` now, as the UI's trigger makes it; its run id."""
    from airflow.api.common.trigger_dag import trigger_dag
    from airflow.utils.types import DagRunTriggeredByType

    now = dt.datetime.now(dt.UTC)
    run = trigger_dag(dag_id, triggered_by=DagRunTriggeredByType.CLI, triggering_user_name=USER,
                      run_after=now, logical_date=now)
    return run.run_id


def execute(dag: Any, run_id: str) -> str:
    """Do a queued run: start it, then run each task that is ready, in this process, until the
    run is finished; its final state."""
    from airflow import settings
    from airflow.models.dagrun import DagRun
    from airflow.sdk.definitions.dag import _run_task
    from airflow.utils.state import DagRunState, TaskInstanceState
    from sqlalchemy import select

    scheduler_dag = _scheduler_dag(dag)
    with settings.Session() as session:
        run = session.scalars(select(DagRun).where(DagRun.dag_id == dag.dag_id, DagRun.run_id == run_id)).one()
        run.dag = scheduler_dag
        run.state = DagRunState.RUNNING  # as the scheduler starts a queued run
        run.start_date = dt.datetime.now(dt.UTC)
        session.commit()
        while run.state == DagRunState.RUNNING:
            session.expire_all()
            ready, _ = run.update_state(session=session)
            for ti in ready:
                if ti.state != TaskInstanceState.UP_FOR_RESCHEDULE:
                    ti.try_number += 1
                ti.state = TaskInstanceState.SCHEDULED
                ti.scheduled_dttm = dt.datetime.now(dt.UTC)
            session.commit()
            scheduled = [ti for ti in run.get_task_instances(session=session)
                         if ti.state == TaskInstanceState.SCHEDULED]
            if not scheduled and run.state == DagRunState.RUNNING:
                time.sleep(1)  # a task waits for its retry delay, or a sensor for its next poke
            for ti in scheduled:
                with _task_log(ti):
                    try:
                        _run_task(ti=ti, task=dag.task_dict[ti.task_id], run_triggerer=True)
                    except Exception:  # the task is failed; its log says why, and the run goes on
                        log.exception("task %s of %s failed", ti.task_id, run_id)
        return str(run.state)


class _JsonLines(logging.Handler):
    """Log records as the JSON lines of an Airflow 3 task log (timestamp, level, event, logger)."""

    def __init__(self, path: Path) -> None:
        super().__init__(logging.INFO)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.file = path.open("a")

    def emit(self, record: logging.LogRecord) -> None:
        event = record.getMessage()
        if record.exc_info:
            event += "\n" + "".join(traceback.format_exception(*record.exc_info))
        self.file.write(json.dumps({"timestamp": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(),
                                    "level": record.levelname.lower(), "event": event, "logger": record.name})
                        + "\n")
        self.file.flush()

    def close(self) -> None:
        self.file.close()
        super().close()


@contextmanager
def _task_log(ti: Any) -> Iterator[None]:
    """While a task runs, its log also goes to the file where Airflow's UI looks for it (the
    ``[logging] log_filename_template`` under ``base_log_folder``), as a worker would write it: the
    task's own lines there, every task's on this process's output."""
    import jinja2
    from airflow.configuration import conf

    name = jinja2.Template(conf.get("logging", "log_filename_template")).render(ti=ti, try_number=ti.try_number)
    handler = _JsonLines(Path(conf.get("logging", "base_log_folder")) / name)
    # Not the in-process runner's own "[DAG TEST] running task" lines: a worker's log has none.
    handler.addFilter(lambda record: record.name != "airflow.sdk.definitions.dag")
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield
    finally:
        root.removeHandler(handler)
        handler.close()


def _complete(backfill_id: int) -> None:
    """Mark the backfill complete, as the scheduler does once its runs are all finished."""
    from airflow import settings
    from airflow.models.backfill import Backfill

    with settings.Session() as session:
        session.get(Backfill, backfill_id).completed_at = dt.datetime.now(dt.UTC)
        session.commit()


def _backfill_runs(backfill_id: int) -> list[tuple[str, dt.date]]:
    """The backfill's runs still to do (queued, or running when an earlier try was stopped)."""
    from airflow import settings
    from airflow.models.dagrun import DagRun
    from airflow.utils.state import DagRunState
    from sqlalchemy import select

    with settings.Session() as session:
        runs = session.scalars(select(DagRun).where(
            DagRun.backfill_id == backfill_id, DagRun.state.in_([DagRunState.QUEUED, DagRunState.RUNNING]))
            .order_by(DagRun.logical_date)).all()
        return [(r.run_id, r.logical_date.date()) for r in runs]


def _unfinished_backfills(dag_ids: set[str]) -> list[tuple[str, int]]:
    """Backfills of these DAGs that an interrupted earlier run of this tool left incomplete."""
    from airflow import settings
    from airflow.models.backfill import Backfill
    from sqlalchemy import select

    with settings.Session() as session:
        found = session.scalars(select(Backfill).where(Backfill.dag_id.in_(dag_ids),
                                                       Backfill.completed_at.is_(None))).all()
        return [(b.dag_id, b.id) for b in found]


def _day(text: str) -> dt.date:
    from ioc_analytics.text import parse_day

    try:
        return parse_day(text)
    except ValueError as err:
        raise SystemExit(f"error: {err}") from None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ioc_analytics.devtools.runs", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backfill", nargs=3, action="append", default=[], metavar=("DAG_ID", "FIRST", "LAST"),
                        help="backfill the days FIRST to LAST (YYYY-MM-DD); repeatable, done in order")
    parser.add_argument("--trigger", action="append", default=[], metavar="DAG_ID",
                        help="trigger a manual run now, after the backfills; repeatable")
    parser.add_argument("--progress", default="-", metavar="PATH",
                        help="where each run's line goes (default: standard output; the tasks' logs "
                             "go there too, so `make demo` sends them to a file and this to /dev/fd/3)")
    args = parser.parse_args(argv)
    backfills = [(dag_id, _day(first), _day(last)) for dag_id, first, last in args.backfill]
    dag_ids = {b[0] for b in backfills} | set(args.trigger)
    if not dag_ids:
        parser.error("name a --backfill or a --trigger")

    from airflow.exceptions import AirflowException

    # Appended to: a redirected output (`make demo > log`) is not truncated.
    progress = sys.stdout if args.progress == "-" else open(args.progress, "a")  # noqa: SIM115 (to the end)

    def say(line: str) -> None:
        print(line, file=progress, flush=True)

    dags = _load_dags(dag_ids)
    failed = []

    def run(dag_id: str, run_id: str, label: str) -> None:
        started = time.monotonic()
        state = execute(dags[dag_id], run_id)
        say(f"{dag_id} {label}: {state} ({time.monotonic() - started:.1f} s)")
        if state != "success":
            failed.append(f"{dag_id} {label}")

    def finish(dag_id: str, backfill_id: int) -> None:
        for run_id, day in _backfill_runs(backfill_id):
            run(dag_id, run_id, day.isoformat())
        _complete(backfill_id)

    for dag_id, backfill_id in _unfinished_backfills(dag_ids):
        say(f"finishing {dag_id}'s backfill {backfill_id}, left unfinished by an earlier run")
        finish(dag_id, backfill_id)
    for dag_id, first, last in backfills:
        try:
            backfill_id = backfill(dag_id, first, last)
        except AirflowException as err:  # no days in the range, a non-periodic DAG: Airflow says which
            say(f"error: cannot backfill {dag_id} from {first} to {last}: {err}")
            return 2
        finish(dag_id, backfill_id)
    for dag_id in args.trigger:
        run(dag_id, trigger(dag_id), "triggered now")
    # The DAG processor's next parse would do it: each DAG's next run, after the runs made here
    # (else a scheduler started now would first try to create the last day's run again).
    _load_dags(dag_ids)
    if failed:
        say(f"failed: {', '.join(failed)} (the log of each failed task says why)")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
