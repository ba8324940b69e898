"""The production shape, for real, on this machine: Airflow's API server, scheduler, DAG processor,
triggerer and two Celery workers, with a Redis broker and a Postgres metadata database (and Celery
result backend) made fresh for the test and dropped after; the ``aws`` backend against a moto
server whose Athena is answered by DuckDB over the same files (``athena_runs_on_duckdb``).

One test, because the crash needs the deployment:

1. A 3-day backfill of the daily DAG is created through the REST API, with every Athena query held
   in QUEUED (moto's state manager). ``worker-1`` hands a build's query still running after 5 s to
   the triggerer (``IOC_ATHENA_DEFER_AFTER_S``); ``worker-2`` waits on its queries itself, so a build
   there is running in the worker, waiting on its query.
2. ``worker-2`` is killed with SIGKILL, its whole process group, as a machine dies. The hold is let
   go. The scheduler finds the task's heartbeat gone, and the retry runs on the other worker.
3. Every run succeeds, with every export in S3. The task instances name both workers
   (``[core] hostname_callable`` gives each worker its own name, ``tests/aws/worker_name.py``).
   The killed build's retry ran on the other worker and reconnected to the query the first try
   had started; the builds that waited in the triggerer were resumed and reconnected to theirs;
   Athena's history holds each task's work once. What the DAG asks of AWS is the backend's
   contract: every aggregate UNLOADed into a new version prefix and its Glue partition pointed
   there, its rows the plain pandas answer on the raw files, the exports that partition; every
   query names the workgroup, the database and the result location, carries its tags and binds
   the day as parameters; the quality reports kept in the S3 lake.

Everything started here is stopped at the end, and the database and the Redis database dropped.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pandas as pd
import psycopg2
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import redis

from ioc_analytics.analytics import state
from ioc_analytics.backends.aws.engine import athena_literal
from ioc_analytics.backends.aws.glue import ensure_tables
from ioc_analytics.engine.base import read_tags, without_tags
from ioc_analytics.lake import sql
from ioc_analytics.lake.catalog import load_catalog
from ioc_analytics.lake.tables import AGGREGATES, RAW_TABLES, STATES
from ioc_analytics.publishing.exports import export_sql
from tests.aws.conftest import DATABASE, LAKE_BUCKET, RESULTS_BUCKET, WORKGROUP, ioc_environment
from tests.conftest import ROOT
from tests.helpers import TODAY, assert_matches_pandas, expected_aggregates, read_events, read_scores

pytestmark = pytest.mark.integration

BIN = Path(sys.executable).parent
DAG = "ioc_daily_analytics"
LAST = TODAY - dt.timedelta(days=2)
DAYS = [LAST - dt.timedelta(days=n) for n in (2, 1, 0)]
WORKERS = ("worker-1", "worker-2")
#: Seconds each worker's builds wait on a running query before handing it to the triggerer:
#: worker-1 defers (the real triggerer), worker-2 waits in the worker (the one killed).
DEFER_AFTER_S = {"worker-1": "5", "worker-2": "3000"}
POSTGRES = "postgresql://postgres@127.0.0.1:5432"


def _upload_days(moto, sample_lake: Path) -> None:
    """The raw Parquet files of the days and of the 30 days before the first (the state of the
    30-day look-back derives from them: every assessment type, and the months of scores) into S3."""
    s3 = moto.client("s3")
    days = [LAST - dt.timedelta(days=n) for n in range(33)]
    files = sorted({*(f for d in days for f in sample_lake.glob(f"assessments/{d:%Y/%m/%d}/*/*.parquet")),
                    *(f for d in days for f in sample_lake.glob(f"ocean_scores/{d:%Y/%m}/*.parquet"))})
    for path in files:
        s3.upload_file(str(path), LAKE_BUCKET, path.relative_to(sample_lake).as_posix())


def _work(execution: dict) -> str:
    """What a query computes: its text without the tags and, for an UNLOAD, without its target
    (a fresh version prefix per submission), with its bound values."""
    text = re.sub(r"\nTO '[^']+'.*", "", without_tags(execution["Query"]), flags=re.S)
    return json.dumps([text, execution.get("ExecutionParameters", [])])


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
        # The triggerer serves its logs on a port of its own: not the default, which another
        # Airflow on this machine (the end-to-end test's, running beside this one) may hold.
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(_free_port()),
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(_free_port()),
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        # A task whose worker died is failed (and retried) this long after its last heartbeat.
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "20",
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "5",
        "PYTHONPATH": str(ROOT),
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
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
    _upload_days(moto, sample_lake)
    # The state the builds read, derived first on the same backend (the local DAG tests and
    # test_state cover a DAG deriving it itself): each build then runs one query of its own, so the
    # query the killed build waits on is its own, not a state partition another build may derive.
    for day in DAYS:
        for name in AGGREGATES:
            state.ensure(aws_settings, name, day, {"prebuilt": "yes"})
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
                             "--without-gossip", "--without-mingle", IOC_TEST_WORKER=worker,
                             IOC_ATHENA_DEFER_AFTER_S=DEFER_AFTER_S[worker])

        def dag_parsed():
            try:
                return _get(base, f"/dags/{DAG}")
            except httpx.HTTPError:
                return None

        _wait("parsed daily DAG", dag_parsed, deployment, 240)
        # Hold every Athena query in QUEUED: a build on worker-2 waits on its query in the worker.
        moto.set_transition("athena::execution", {"progression": "manual", "times": 10**9})
        httpx.patch(f"{base}/api/v2/dags/{DAG}", json={"is_paused": False}, timeout=30).raise_for_status()
        backfill = httpx.post(f"{base}/api/v2/backfills", timeout=30, json={
            "dag_id": DAG, "from_date": f"{DAYS[0]}T00:00:00Z", "to_date": f"{DAYS[-1]}T00:00:00Z",
            "max_active_runs": 3, "reprocess_behavior": "none"})
        assert backfill.status_code == 200, backfill.text

        def a_build_waiting_in_worker_2():
            submitted = {}  # each task's latest query: the one it is waiting on
            for e in sorted(_athena(moto), key=lambda e: e["Status"]["SubmissionDateTime"]):
                submitted[(read_tags(e["Query"]).get("run_id"), read_tags(e["Query"]).get("task_id"))] = e
            for ti in _task_instances(base):
                held = submitted.get((ti["dag_run_id"], ti["task_id"]))
                if (ti["task_id"].endswith(".build") and ti["state"] == "running" and ti["hostname"] == "worker-2"
                        and held is not None):
                    return ti, held
            return None

        victim, held = _wait("a build on worker-2 waiting on its query", a_build_waiting_in_worker_2, deployment, 420)
        # And one of worker-1's builds handed its held query to the triggerer (the queries are held
        # until then, so that worker-1 takes a build before the crash, whatever the timing).
        _wait("a build of worker-1 in the triggerer", lambda: [
            ti for ti in _task_instances(base) if ti["task_id"].endswith(".build") and ti["state"] == "deferred"],
            deployment, 420)
        time.sleep(2)  # the query id reaches the task state store just after the submission
        deployment.kill("worker-2")
        deployment.killed.add("worker-2")
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
        logs = Path(env["AIRFLOW_HOME"]) / "logs" / f"dag_id={DAG}"
        # The killed build's retry ran on the other worker and reconnected to the query it had started.
        [retried] = [ti for ti in instances
                     if ti["task_id"] == victim["task_id"] and ti["dag_run_id"] == victim["dag_run_id"]]
        assert retried["try_number"] == 2 and retried["hostname"] == "worker-1", retried
        attempt = logs / f"run_id={victim['dag_run_id']}" / f"task_id={victim['task_id']}" / "attempt=2.log"
        assert f"Reconnecting to Athena query {held['QueryExecutionId']}" in attempt.read_text()
        # Builds on worker-1 handed their held queries to the triggerer, and, resumed, reconnected.
        deferred = [log for log in logs.glob("run_id=*/task_id=*.build/attempt=*.log")
                    if "the triggerer waits for it, holding no worker slot" in log.read_text()]
        assert deferred, "no build waited in the triggerer"
        for log in deferred:
            text = log.read_text()
            waited = text.index("the triggerer waits for it")
            assert "Reconnecting to Athena query" in text[waited:], log

        executions = _athena(moto)
        # Each task's work is in Athena's history once: the retry after the crash and the builds
        # resumed after the triggerer submitted nothing again.
        by_task: dict[tuple[str, str], list[dict]] = {}
        for execution in executions:
            tags = read_tags(execution["Query"])
            by_task.setdefault((tags.get("run_id"), tags.get("task_id")), []).append(execution)
        for (run_id, task_id), found in by_task.items():
            works = [_work(e) for e in found]
            assert len(works) == len(set(works)), f"{task_id} of {run_id} submitted the same query twice"
        _assert_the_aws_contract(moto, sample_lake, executions, logs)
    finally:
        moto.unset_transition("athena::execution")
        leftover = deployment.stop()
    assert not leftover, f"processes left behind: {leftover}"


def _assert_the_aws_contract(moto, sample_lake: Path, executions: list[dict], logs: Path) -> None:
    """What each day's run asked of AWS, and what it left in S3 and Glue."""
    s3, glue = moto.client("s3"), moto.client("glue")
    catalog = load_catalog(f"s3://{LAKE_BUCKET}", DATABASE)
    for execution in executions:
        tags = read_tags(execution["Query"])
        assert execution["WorkGroup"] == WORKGROUP and execution["QueryExecutionContext"]["Database"] == DATABASE
        assert execution["ResultConfiguration"]["OutputLocation"].startswith(f"s3://{RESULTS_BUCKET}/")
        if "state" in tags:  # the state the builds read: each a new version of a state partition
            assert tags["state"] in STATES and tags.get("prebuilt"), tags  # the DAG found it current
            target = re.search(r"\nTO '([^']+)'", execution["Query"]).group(1)
            assert target.startswith(f"s3://{LAKE_BUCKET}/state/{tags['state']}/"), target
        else:
            assert tags["dag_id"] == DAG, tags
    events, scores = read_events(sample_lake), read_scores(sample_lake)
    # (A run's id names the end of its data interval, the next day: the sensors' logs are read together.)
    sensed = "".join(log.read_text() for log in logs.glob("run_id=*/task_id=wait_for_assessment_events/*.log"))
    for day in DAYS:
        lake_date = day.strftime("%Y/%m/%d")
        run = [e for e in executions if read_tags(e["Query"]).get("ds") == day.isoformat()
               and "state" not in read_tags(e["Query"])]
        final = {read_tags(e["Query"])["task_id"]: e for e in run}
        assert len(final) == len(run) == 3 * len(AGGREGATES), "one query per build, check and export"
        expected = expected_aggregates(events, scores, day)
        for name in AGGREGATES:
            table = catalog.table(name)
            for step, rendered in (("build", sql.render(name, day)), ("check", sql.render(f"checks/{name}", day)),
                                   ("export", export_sql(table, day))):
                execution = final[f"{name}.{step}"]
                # The day's values reach Athena as execution parameters, in the order of the text.
                assert execution["ExecutionParameters"] == [athena_literal(v) for v in rendered.parameters]
                body = without_tags(execution["Query"]).strip()
                assert f"{day:%Y}" not in body.split("\nTO '")[0], "no date pasted into the SQL"
                assert rendered.sql.strip() in body
            unload = without_tags(final[f"{name}.build"]["Query"]).strip()
            assert unload.startswith(f"UNLOAD ({sql.render(name, day).sql.strip()})")
            target = re.search(r"\nTO '([^']+)'", unload).group(1)
            assert re.fullmatch(rf"s3://{LAKE_BUCKET}/aggregates/{name}/{lake_date}/v\d{{8}}T\d{{12}}-[0-9a-f]{{6}}/",
                                target)
            partition = glue.get_partition(DatabaseName=DATABASE, TableName=name, PartitionValues=[lake_date])
            assert partition["Partition"]["StorageDescriptor"]["Location"] == target
            prefix = target.split(f"{LAKE_BUCKET}/")[1]
            s3.head_object(Bucket=LAKE_BUCKET, Key=prefix + "_ioc_committed")
            manifest = json.loads(s3.get_object(Bucket=LAKE_BUCKET,
                                                Key=f"exports/{name}/{day}/manifest.json")["Body"].read())
            assert sorted(f["format"] for f in manifest["files"]) == ["csv", "json", "parquet", "xlsx"]
            assert manifest["source"]["partition"] == target and manifest["source"]["validation"]["passed"]
            # The partition UNLOAD wrote is the day's aggregate: the plain pandas answer on the files.
            keys = [o["Key"] for o in s3.list_objects_v2(Bucket=LAKE_BUCKET, Prefix=prefix).get("Contents", [])
                    if o["Key"].endswith(".parquet")]
            built = pa.concat_tables([pq.read_table(io.BytesIO(s3.get_object(Bucket=LAKE_BUCKET, Key=k)["Body"].read()))
                                      for k in keys]).to_pandas().assign(date=lake_date)
            assert_matches_pandas(built, expected[name], name)
            # The export is that partition, row for row, with its columns.
            [csv] = [f["path"] for f in manifest["files"] if f["format"] == "csv"]
            exported = pd.read_csv(io.BytesIO(s3.get_object(Bucket=LAKE_BUCKET,
                                                            Key=csv.split(f"{LAKE_BUCKET}/")[1])["Body"].read()))
            assert len(exported) == len(built) > 0 and set(exported.columns) >= {c.name for c in table.columns}, name
        # The gates ran on the day's S3 objects, and every table's report is kept in the S3 lake.
        for name in (*RAW_TABLES, *AGGREGATES):
            report = json.loads(s3.get_object(Bucket=LAKE_BUCKET, Key=f"quality/{name}/{day}.json")["Body"].read())
            assert report["passed"] and report["evaluated"] >= 1, (name, day)
        # The sensor read the day's objects in S3 (partition projection: Glue has nothing to say).
        assert f"assessment_events for {day}: 5 partitions hold rows, 0 are empty or missing" in sensed, day
