"""``make demo``'s runs (``devtools/runs.py``): the daily DAG backfilled over the wall clock's last
two days and the cost monitor triggered, in one process; then a real scheduler and DAG processor
started on the same metadata database, the DAG unpaused. The runs are ordinary ones (a backfill's,
each with its day as the data interval and a duration of seconds; a manual one), every task did
its work (the exports are there), each build, check and export told OpenLineage what it read,
wrote and cost (the demo's default file transport, ``scripts/lineage.sh``), and the scheduler
carries on after them: it creates no run of
its own for those days and never finds its next run already taken (what ``airflow dags test``'s
runs made it say every second).

The days are the wall clock's, since the scheduler's next interval is; no API server runs, so
the scheduler could create runs but not run their tasks.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ioc_analytics.devtools.generate import generate_lake
from ioc_analytics.lake.tables import AGGREGATES
from tests.conftest import ROOT
from tests.helpers import EVENTS_PER_DAY, export_file

pytestmark = pytest.mark.integration

BIN = Path(sys.executable).parent
DAG = "ioc_daily_analytics"


def _airflow(env: dict, *args: str) -> str:
    done = subprocess.run([str(BIN / "airflow"), *args], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def _runs(home: Path, dag_id: str) -> list[dict]:
    """The DAG's runs from the metadata database (`airflow dags list-runs` leaves out the type
    and the data interval)."""
    with sqlite3.connect(home / "airflow.db") as con:
        con.row_factory = sqlite3.Row
        return [dict(r) for r in con.execute(
            "SELECT run_id, run_type, state, logical_date, data_interval_start, data_interval_end, start_date, "
            "end_date FROM dag_run WHERE dag_id = ? ORDER BY logical_date", (dag_id,))]


def _assert_lineage(root: Path, days: list[dt.date]) -> None:
    """The OpenLineage events of each day's builds, checks and exports: the tables and partitions
    each read, the partition (the version the catalog now points at) or the files each wrote, and
    its cost, which is what the engine's query log records for that task and day."""
    events = [json.loads(line) for line in (root / "state" / "lineage.jsonl").read_text().splitlines()]
    queries = [json.loads(line) for line in (root / "state" / "query_log.jsonl").read_text().splitlines()]
    with sqlite3.connect(root / "state" / "catalog.sqlite") as con:
        registered = {(t, json.loads(k)[0]): loc for t, k, loc in con.execute(
            "SELECT table_name, key, location FROM partitions")}
    for day in days:
        lake_date = day.strftime("%Y/%m/%d")
        done = {e["job"]["name"].removeprefix(f"{DAG}."): e for e in events if e["eventType"] == "COMPLETE"
                and e["run"]["facets"]["nominalTime"]["nominalStartTime"].startswith(str(day))}
        raw_dates = set()
        for name in AGGREGATES:
            for step in ("build", "check", "export"):
                task = f"{name}.{step}"
                assert task in done, (task, day, sorted(done))
                event = done[task]
                ran = [q for q in queries if q["tags"].get("task_id") == task and q["tags"].get("ds") == str(day)]
                cost = event["run"]["facets"]["ioc_cost"]
                assert cost["queries"] == len(ran) > 0 and cost["bytesScanned"] == sum(q["bytes_scanned"] for q in ran)
                assert cost["costUsd"] == pytest.approx(sum(q["cost_usd"] for q in ran), abs=1e-8), (task, cost)
                inputs = {i["name"]: i for i in event["inputs"]}
                assert inputs and all(n.startswith("ioc_analytics.") for n in inputs), (task, inputs)
                for read in inputs.values():
                    partitions = read["inputFacets"]["subset"]["inputCondition"].get("partitions", [])
                    if read["name"] == "ioc_analytics.assessment_events":
                        raw_dates |= {p["dimensions"]["date"] for p in partitions}
                outputs = {(o["namespace"], o["name"]): o for o in event["outputs"]}
                if step == "build":
                    [written] = [o for (_, n), o in outputs.items() if n == f"ioc_analytics.{name}"]
                    assert written["outputFacets"]["subset"]["outputCondition"]["partitions"] == [
                        {"dimensions": {"date": lake_date}, "identifier": registered[(name, lake_date)]}]
                    assert written["outputFacets"]["ioc_cost"]["bytesScanned"] == cost["bytesScanned"]
                elif step == "check":
                    assert f"ioc_analytics.{name}" in inputs and not outputs, (task, inputs, outputs)
                else:
                    manifest = json.loads((root / "exports" / name / str(day) / "manifest.json").read_text())
                    assert set(outputs) == {("file", f["path"]) for f in manifest["files"]} | {
                        ("file", str(root / "exports" / name / str(day) / "manifest.json"))}, task
        # The day's builds read the day's raw events (the first day also derives its look-back).
        assert lake_date in raw_dates and max(raw_dates) == lake_date, (day, sorted(raw_dates))


def test_the_demos_runs_are_ordinary_runs_and_a_later_scheduler_carries_on(tmp_path):
    yesterday = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)
    days = [yesterday - dt.timedelta(days=1), yesterday]
    home = tmp_path / "home"
    home.mkdir()
    env = {**os.environ, "AIRFLOW_HOME": str(home), "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
           "IOC_BACKEND": "local", "IOC_LAKE_ROOT": str(tmp_path / "lake"), "IOC_STATE_DIR": str(tmp_path / "state"),
           "IOC_EXPORTS_ROOT": str(tmp_path / "exports"), "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    # The demo's lineage setting, from the script `make demo` and `make airflow` source.
    env["AIRFLOW__OPENLINEAGE__TRANSPORT"] = subprocess.run(
        ["bash", "-c", 'source scripts/lineage.sh && printf %s "$AIRFLOW__OPENLINEAGE__TRANSPORT"'],
        cwd=ROOT, env={k: v for k, v in env.items() if not k.startswith(("AIRFLOW__OPENLINEAGE", "OPENLINEAGE"))},
        capture_output=True, text=True, check=True).stdout
    # A metadata database of its own (the session's holds the runs other tests made in-process).
    _airflow(env, "db", "migrate")
    generate_lake(tmp_path / "lake", days[0], len(days), EVENTS_PER_DAY, seed=5)

    done = subprocess.run([str(BIN / "python"), "-m", "ioc_analytics.devtools.runs", "--backfill", DAG,
                           str(days[0]), str(days[-1]), "--trigger", "ioc_cost_monitor"],
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    said = [line for line in done.stdout.splitlines() if line.startswith("ioc_")]
    assert [line.split(" (")[0] for line in said] == [f"{DAG} {d}: success" for d in days] + [
        "ioc_cost_monitor triggered now: success"], said
    for day in days:
        for name in AGGREGATES:
            assert export_file(tmp_path / "exports", name, day) is not None, (name, day)
    _assert_lineage(tmp_path, days)

    for run in _runs(home, DAG):
        day = dt.date.fromisoformat(run["logical_date"][:10])
        assert day in days and run["run_type"] == "backfill" and run["state"] == "success", run
        assert (run["data_interval_start"][:10], run["data_interval_end"][:10]) == (
            str(day), str(day + dt.timedelta(days=1))), run
        lasted = dt.datetime.fromisoformat(run["end_date"]) - dt.datetime.fromisoformat(run["start_date"])
        assert dt.timedelta(0) < lasted < dt.timedelta(minutes=5), run  # not a day: the run's own time
        # Each task's log is where the UI reads it, as a worker would have written it.
        task_log = home / "logs" / f"dag_id={DAG}" / f"run_id={run['run_id']}" / "task_id=validate_assessment_events"
        lines = [json.loads(line) for line in (task_log / "attempt=1.log").read_text().splitlines()]
        assert any(line["event"].startswith(f"assessment_events for {day} passed") for line in lines), lines
        assert not [line for line in lines if "[DAG TEST]" in line["event"]], "a worker's log, not dag.test's"
    [monitor] = _runs(home, "ioc_cost_monitor")
    assert monitor["run_type"] == "manual" and monitor["state"] == "success", monitor

    _airflow(env, "dags", "unpause", DAG)
    started = dt.datetime.now(dt.UTC)
    logs = {name: (tmp_path / f"{name}.log").open("w") for name in ("scheduler", "dag-processor")}
    parts = {name: subprocess.Popen([str(BIN / "airflow"), name], env=env, stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True) for name, log in logs.items()}
    try:
        deadline = time.monotonic() + 120
        while True:  # until the DAG processor has parsed the DAG again, on the scheduler's side
            with sqlite3.connect(home / "airflow.db") as con:
                (parsed,), = con.execute("SELECT last_parsed_time FROM dag WHERE dag_id = ?", (DAG,)).fetchall()
            if parsed and dt.datetime.fromisoformat(parsed).replace(tzinfo=dt.UTC) > started:
                break
            assert all(p.poll() is None for p in parts.values()) and time.monotonic() < deadline, {
                n: (tmp_path / f"{n}.log").read_text()[-2000:] for n in parts}
            time.sleep(1)
        time.sleep(10)  # ten of the scheduler's loops with the DAG unpaused and parsed
        assert all(p.poll() is None for p in parts.values())
    finally:
        for process in parts.values():
            os.killpg(process.pid, signal.SIGTERM)
        for process in parts.values():
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        for log in logs.values():
            log.close()

    scheduler = (tmp_path / "scheduler.log").read_text()
    assert "already exists" not in scheduler, scheduler[-3000:]
    assert sorted(r["logical_date"][:10] for r in _runs(home, DAG)) == [str(d) for d in days], "no run of its own"
    following = _airflow(env, "dags", "next-execution", DAG).strip().splitlines()[-1]
    assert following.startswith(str(yesterday + dt.timedelta(days=1))), following
