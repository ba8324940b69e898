"""The production shape, for real, on this machine: Airflow's API server, scheduler, DAG processor,
triggerer and two Celery workers, with a Redis broker and a Postgres metadata database (and Celery
result backend) made fresh for the test and dropped after; the ``aws`` backend against a moto
server whose Athena is answered by DuckDB over the same files (``athena_runs_on_duckdb``).

One test, because the crash needs the deployment:

1. A 3-day backfill of the daily DAG is created through the REST API, with every Athena query held
   in QUEUED (moto's state manager), so that the first build waits on its query in a worker.
2. That worker is killed with SIGKILL, its whole process group, as a machine dies. The hold is let
   go. The scheduler finds the task's heartbeat gone, and the retry runs on the other worker.
3. Every run succeeds, with every export in S3. The task instances name both workers
   (``[core] hostname_callable`` gives each worker its own name, ``tests/aws/worker_name.py``).
   The killed build's retry ran on the other worker and reconnected to the query the first try
   had started: Athena's history holds one query for it, and its partition is that query's.

Everything started here is stopped at the end, and the database and the Redis database dropped.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import psycopg2
import pytest
import redis

from ioc_analytics.backends.aws.glue import ensure_tables
from ioc_analytics.engine.base import read_tags
from ioc_analytics.lake.catalog import load_catalog
from ioc_analytics.lake.tables import AGGREGATES
from tests.aws.conftest import DATABASE, LAKE_BUCKET, WORKGROUP, ioc_environment
from tests.aws.test_daily_dag_aws import _upload_day
from tests.conftest import ROOT
from tests.helpers import TODAY

pytestmark = pytest.mark.integration

BIN = Path(sys.executable).parent
DAG = "ioc_daily_analytics"
LAST = TODAY - dt.timedelta(days=2)
DAYS = [LAST - dt.timedelta(days=n) for n in (2, 1, 0)]
WORKERS = ("worker-1", "worker-2")
POSTGRES = "postgresql://postgres@127.0.0.1:5432"


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def metadata_db():
    """A Postgres database of its own (dropped after) and a Redis database number nobody uses
    (flushed after)."""
    name = f"ioc_prod_{uuid.uuid4().hex[:10]}"
    admin = psycopg2.connect(f"{POSTGRES}/postgres")
    admin.autocommit = True
    admin.cursor().execute(f'CREATE DATABASE "{name}"')
    broker = None
    for number in range(15, 0, -1):
        candidate = redis.Redis(host="127.0.0.1", port=6379, db=number)
        if candidate.dbsize() == 0 and candidate.set(f"ioc-test-claim-{name}", "1", nx=True):
            broker = candidate
            break
    assert broker is not None, "no free Redis database number (1-15) for the test's broker"
    try:
        yield name, broker.connection_pool.connection_kwargs["db"]
    finally:
        broker.flushdb()
        admin.cursor().execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def _environment(tmp_path: Path, aws_settings, db: str, broker_db: int, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW__")}
    return env | ioc_environment(aws_settings, tmp_path / "state") | {
        "AIRFLOW_HOME": str(tmp_path / "airflow"),
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"postgresql+psycopg2://postgres@127.0.0.1:5432/{db}",
        "AIRFLOW__CELERY__BROKER_URL": f"redis://127.0.0.1:6379/{broker_db}",
        "AIRFLOW__CELERY__RESULT_BACKEND": f"db+postgresql://postgres@127.0.0.1:5432/{db}",
        "AIRFLOW__CELERY__WORKER_CONCURRENCY": "2",
        # More than the workers' 4 slots: the tasks a killed worker had taken from the queue hold
        # their executor slots until their heartbeat times out.
        "AIRFLOW__CORE__PARALLELISM": "8",
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__HOSTNAME_CALLABLE": "tests.aws.worker_name.hostname",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
        "AIRFLOW__API_AUTH__JWT_SECRET": "a-test-only-secret",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        # A task whose worker died is failed (and retried) this long after its last heartbeat.
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "20",
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "5",
        "PYTHONPATH": str(ROOT),
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        # The workers wait on their queries themselves (the deferral has its own test), so that
        # killing one kills a build in the middle of its query.
        "IOC_ATHENA_DEFER_AFTER_S": "3000",
    }


class Deployment:
    """The Airflow processes, each in a process group of its own, logging to a file."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env, self.logs = env, logs
        self.processes: dict[str, subprocess.Popen] = {}
        logs.mkdir(parents=True, exist_ok=True)

    def start(self, name: str, *command: str, **extra: str) -> None:
        out = (self.logs / f"{name}.log").open("w")
        self.processes[name] = subprocess.Popen([str(BIN / "airflow"), *command], env=self.env | extra,
                                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)

    def kill(self, name: str) -> None:
        os.killpg(self.processes[name].pid, signal.SIGKILL)
        self.processes[name].wait(timeout=30)

    def stop(self) -> list[int]:
        """SIGTERM to each group, SIGKILL to what is left; returns what had to be killed."""
        for process in self.processes.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 60
        for process in self.processes.values():
            try:
                process.wait(timeout=max(deadline - time.monotonic(), 1))
            except subprocess.TimeoutExpired:
                pass
        import psutil

        leftover = []
        for found in psutil.process_iter():
            try:
                if found.environ().get("AIRFLOW_HOME") == self.env["AIRFLOW_HOME"] and found.status() != "zombie":
                    leftover.append(found.pid)
                    found.kill()
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
        return leftover

    def log(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text(errors="replace")


def _get(base: str, path: str, **params) -> dict:
    response = httpx.get(f"{base}/api/v2{path}", params=params, timeout=30)
    response.raise_for_status()
    return response.json()


def _task_instances(base: str) -> list[dict]:
    runs = _get(base, f"/dags/{DAG}/dagRuns", limit=100)["dag_runs"]
    found = []
    for run in runs:
        if run["run_type"] == "backfill":
            found += _get(base, f"/dags/{DAG}/dagRuns/{run['dag_run_id']}/taskInstances", limit=100)["task_instances"]
    return found


def _athena(moto) -> list[dict]:
    athena = moto.client("athena")
    ids = athena.list_query_executions(WorkGroup=WORKGROUP)["QueryExecutionIds"]
    return [athena.get_query_execution(QueryExecutionId=i)["QueryExecution"] for i in ids]


def _wait(what: str, check, deployment: Deployment, timeout_s: float, every_s: float = 2.0):
    deadline = time.monotonic() + timeout_s
    while True:
        found = check()
        if found:
            return found
        for name, process in deployment.processes.items():
            assert process.poll() is None or name in deployment.killed, \
                f"{name} exited while waiting for {what}:\n{deployment.log(name)[-3000:]}"
        assert time.monotonic() < deadline, f"no {what} within {timeout_s:.0f} s"
        time.sleep(every_s)


def test_celery_workers_on_postgres_and_redis_backfill_and_survive_a_killed_worker(
        tmp_path, aws_settings, moto, sample_lake, athena_runs_on_duckdb, metadata_db):
    db, broker_db = metadata_db
    ensure_tables(aws_settings, load_catalog(aws_settings.lake_uri, DATABASE))
    _upload_day(moto, sample_lake)
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    env = _environment(tmp_path, aws_settings, db, broker_db, port)
    migrate = subprocess.run([str(BIN / "airflow"), "db", "migrate"], env=env, capture_output=True, text=True,
                             timeout=300)
    assert migrate.returncode == 0, migrate.stdout[-3000:] + migrate.stderr[-3000:]

    deployment = Deployment(env, tmp_path / "logs")
    deployment.killed = set()
    try:
        deployment.start("api-server", "api-server", "--port", str(port))
        deployment.start("scheduler", "scheduler")
        deployment.start("dag-processor", "dag-processor")
        deployment.start("triggerer", "triggerer")
        for worker in WORKERS:
            deployment.start(worker, "celery", "worker", "--celery-hostname", f"{worker}@%h", "--skip-serve-logs",
                             "--without-gossip", "--without-mingle", IOC_TEST_WORKER=worker)

        def dag_parsed():
            try:
                return _get(base, f"/dags/{DAG}")
            except httpx.HTTPError:
                return None

        _wait("parsed daily DAG", dag_parsed, deployment, 240)
        # Hold every Athena query in QUEUED: the first build to submit one waits on it in its worker.
        moto.set_transition("athena::execution", {"progression": "manual", "times": 10**9})
        httpx.patch(f"{base}/api/v2/dags/{DAG}", json={"is_paused": False}, timeout=30).raise_for_status()
        backfill = httpx.post(f"{base}/api/v2/backfills", timeout=30, json={
            "dag_id": DAG, "from_date": f"{DAYS[0]}T00:00:00Z", "to_date": f"{DAYS[-1]}T00:00:00Z",
            "max_active_runs": 3, "reprocess_behavior": "none"})
        assert backfill.status_code == 200, backfill.text

        def a_build_waiting():
            builds = [e for e in _athena(moto) if read_tags(e["Query"]).get("task_id", "").endswith(".build")]
            return builds[0] if builds else None

        held = _wait("build submitting its query", a_build_waiting, deployment, 420)
        tags = read_tags(held["Query"])
        time.sleep(2)  # the query id reaches the task state store just after the submission
        [victim] = [ti for ti in _task_instances(base)
                    if ti["task_id"] == tags["task_id"] and ti["dag_run_id"] == tags["run_id"]]
        assert victim["state"] == "running" and victim["hostname"] in WORKERS, victim
        deployment.kill(victim["hostname"])
        deployment.killed.add(victim["hostname"])
        survivor = next(w for w in WORKERS if w != victim["hostname"])
        moto.unset_transition("athena::execution")

        def all_done():
            runs = [r for r in _get(base, f"/dags/{DAG}/dagRuns", limit=100)["dag_runs"] if r["run_type"] == "backfill"]
            states = {r["logical_date"][:10]: r["state"] for r in runs}
            return states if len(states) == 3 and set(states.values()) <= {"success", "failed"} else None

        states = _wait("3 finished backfill runs", all_done, deployment, 900, every_s=5)
        assert states == {d.isoformat(): "success" for d in DAYS}, states

        instances = _task_instances(base)
        ran = [ti for ti in instances if ti["state"] != "skipped"]  # a skipped task never reached a worker
        assert {ti["hostname"] for ti in ran} == set(WORKERS), "tasks ran on both workers"
        [retried] = [ti for ti in instances
                     if ti["task_id"] == tags["task_id"] and ti["dag_run_id"] == tags["run_id"]]
        assert retried["try_number"] == 2 and retried["hostname"] == survivor, retried
        # One query for the killed build in Athena's history: the retry reconnected to it.
        mine = [e for e in _athena(moto) if read_tags(e["Query"]).get("task_id") == tags["task_id"]
                and read_tags(e["Query"]).get("run_id") == tags["run_id"] and "state" not in read_tags(e["Query"])]
        assert [e["QueryExecutionId"] for e in mine] == [held["QueryExecutionId"]]
        [attempt] = (Path(env["AIRFLOW_HOME"]) / "logs").glob(
            f"dag_id={DAG}/run_id={tags['run_id']}/task_id={tags['task_id']}/attempt=2.log")
        assert f"Reconnecting to Athena query {held['QueryExecutionId']}" in attempt.read_text()
        name = tags["task_id"].split(".")[0]
        if name in AGGREGATES:
            day = dt.date.fromisoformat(tags["ds"])
            partition = moto.client("glue").get_partition(DatabaseName=DATABASE, TableName=name,
                                                          PartitionValues=[day.strftime("%Y/%m/%d")])
            assert partition["Partition"]["StorageDescriptor"]["Location"] in held["Query"]
        # Every day's exports are in S3.
        s3 = moto.client("s3")
        for day in DAYS:
            for aggregate in AGGREGATES:
                manifest = json.loads(s3.get_object(Bucket=LAKE_BUCKET,
                                                    Key=f"exports/{aggregate}/{day}/manifest.json")["Body"].read())
                assert sorted(f["format"] for f in manifest["files"]) == ["csv", "json", "parquet", "xlsx"]
    finally:
        moto.unset_transition("athena::execution")
        leftover = deployment.stop()
    assert not leftover, f"processes left behind: {leftover}"
