"""Airflow for real: `scripts/airflow.sh` (what `make airflow` runs, `airflow standalone`) started
on localhost; a 3-day backfill of the daily DAG created through the REST API whose first day is
bad, so that it fails and stops the two days after it (the look-back); the day fixed and
`ioc recover` run, which re-runs it and the days it blocked through the REST API; every run
succeeded, the aggregates and exports checked against pandas, the lineage events in the default
file, the grid screenshotted in headless
Chromium, and every process stopped.

The simple auth manager runs with every user an admin (``SIMPLE_AUTH_MANAGER_ALL_ADMINS``) so
that the browser needs no login; the query API's test covers Airflow's authentication.
Set ``IOC_SAVE_SCREENSHOTS=<folder>`` to keep the screenshot (docs/airflow-grid.png is made that way).
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pandas as pd
import pytest

from ioc_analytics.devtools.faults import inject_fault
from ioc_analytics.lake.tables import AGGREGATES
from ioc_analytics.operations.recover import AirflowApi
from tests.conftest import ROOT
from tests.helpers import (
    TODAY,
    assert_matches_pandas,
    expected_aggregates,
    export_file,
    read_aggregate,
    read_events,
    read_scores,
    suppressed,
)
from tests.system.conftest import FLAGS

pytestmark = pytest.mark.integration

# 3 days up to yesterday: the backfill holds the latest interval, so unpausing the DAG schedules no
# run of its own (the scheduler skips a date that has a run). The first day is bad.
DAYS = [TODAY - dt.timedelta(days=n) for n in range(3, 0, -1)]
BAD = DAYS[0]
DAG = "ioc_daily_analytics"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def read_costs(state: Path, day: dt.date) -> pd.DataFrame:
    """The day's ``query_costs`` partition, found through the local registry."""
    import sqlite3

    import pyarrow.parquet as pq

    with sqlite3.connect(state / "catalog.sqlite") as con:
        (location,), = con.execute("SELECT location FROM partitions WHERE table_name = 'query_costs' AND key = ?",
                                   (json.dumps([day.strftime("%Y/%m/%d")]),)).fetchall()
    return pq.read_table(location).to_pandas()


def _started_here(home: Path) -> list[int]:
    """The processes still running with this Airflow home (standalone and its parts)."""
    import psutil

    found = []
    for process in psutil.process_iter():
        try:
            if process.environ().get("AIRFLOW_HOME") == str(home) and process.status() != psutil.STATUS_ZOMBIE:
                found.append(process.pid)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


@pytest.fixture(scope="module")
def airflow(sample_lake, tmp_path_factory):
    root = tmp_path_factory.mktemp("standalone")
    lake = root / "lake"
    shutil.copytree(sample_lake, lake, ignore=shutil.ignore_patterns("aggregates", "quality", "costs"))
    port = _free_port()
    env = {**os.environ, "AIRFLOW_HOME": str(root / "home"), "AIRFLOW_PORT": str(port),
           "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
           "AIRFLOW__API_AUTH__JWT_SECRET": "a-test-only-secret",
           # The log servers' ports too: another Airflow may be running on this machine (the
           # production-shape test's, beside this one).
           "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(_free_port()),
           "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(_free_port()),
           "IOC_LAKE_ROOT": str(lake), "IOC_STATE_DIR": str(root / "state"),
           "IOC_EXPORTS_ROOT": str(root / "exports"),
           "PATH": f"{ROOT / '.venv' / 'bin'}{os.pathsep}{os.environ['PATH']}"}
    env = {k: v for k, v in env.items() if not k.startswith("AIRFLOW__DATABASE")}
    log = (root / "standalone.log").open("w")
    process = subprocess.Popen(
        ["bash", str(ROOT / "scripts" / "airflow.sh")], env=env, stdout=log, stderr=subprocess.STDOUT,
        # Standalone stops its parts only on SIGINT, which a background process ignores by default.
        start_new_session=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                if httpx.get(f"{base}/api/v2/dags/{DAG}", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None and time.monotonic() < deadline, (root / "standalone.log").read_text()[-4000:]
            time.sleep(1)
        yield {"base": base, "root": root, "lake": lake, "state": root / "state", "exports": root / "exports"}
    finally:
        # As a terminal's Ctrl-C: SIGINT to the whole process group (scripts/airflow.sh hands it on).
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)
        deadline = time.monotonic() + 30
        while (leftover := _started_here(root / "home")) and time.monotonic() < deadline:
            time.sleep(0.5)
        for pid in leftover:
            os.kill(pid, signal.SIGKILL)
        log.close()
        assert not leftover, "standalone left processes behind after Ctrl-C"


def _api(method: str, url: str, **kwargs) -> httpx.Response:
    """One call of Airflow's REST API through `ioc recover`'s client, which asks again while SQLite
    is busy with the scheduler."""
    base, path = url.split("/api/", 1)
    return _client(base).request(method, f"/api/{path}", **kwargs)


@functools.cache
def _client(base: str) -> AirflowApi:
    return AirflowApi(base)


def _runs(base: str) -> tuple[dict[str, str], list[dict]]:
    """The runs of the test's days. (Unpaused, the DAG also gets its scheduled run for the wall
    clock's yesterday, which the fixed clock's lake has no data for: not the test's.)"""
    runs = _api("GET", f"{base}/api/v2/dags/{DAG}/dagRuns", params={"limit": 50}).json()["dag_runs"]
    ours = [r for r in runs if r["logical_date"][:10] in {d.isoformat() for d in DAYS}]
    return {r["logical_date"][:10]: r["state"] for r in ours}, ours


def _wait_until_done(base: str, deadline_s: float = 900) -> tuple[dict[str, str], list[dict]]:
    deadline = time.monotonic() + deadline_s
    while True:
        states, runs = _runs(base)
        if len(states) >= len(DAYS) and set(states.values()) <= {"success", "failed"}:
            return states, runs
        assert time.monotonic() < deadline, f"runs not done in {deadline_s / 60:.0f} minutes: {states}"
        time.sleep(5)


def _task_state(base: str, run: dict, task: str) -> str:
    path = f"/api/v2/dags/{DAG}/dagRuns/{run['dag_run_id']}/taskInstances/{task}"
    return _api("GET", f"{base}{path}").json()["state"]


def test_a_bad_day_blocks_the_next_days_and_ioc_recover_turns_them_all_green(airflow, chromium, tmp_path):
    base, lake = airflow["base"], airflow["lake"]
    partition = lake / "assessments" / BAD.strftime("%Y/%m/%d") / "personality" / "part-00000.parquet"
    good = partition.read_bytes()
    inject_fault(lake, BAD, "unknown-device", "personality")

    # One day at a time, in order, so that each later day is validated after the bad one.
    # Through `ioc recover`'s client, which retries Airflow's 503 (SQLite busy with the scheduler).
    AirflowApi(base).backfill(DAG, DAYS[0], DAYS[-1], max_active_runs=1, reprocess="none")
    # New DAGs start paused, and a paused DAG's backfill runs wait: unpause it.
    assert _api("PATCH", f"{base}/api/v2/dags/{DAG}", json={"is_paused": False}).status_code == 200
    states, runs = _wait_until_done(base)
    assert states == {d.isoformat(): "failed" for d in DAYS}, states
    for run in runs:
        assert _task_state(base, run, "validate_assessment_events") == "failed", run["logical_date"]
        assert _task_state(base, run, "ocean_trait_percentiles.export") == "success", "the other table goes on"
    for day in DAYS[1:]:
        [stopped] = json.loads((lake / "quality" / "assessment_events" / f"{day}.json").read_text())["failures"]
        assert stopped["breach"] == "earlier day failed" and stopped["samples"] == [BAD.isoformat()], stopped
        assert "device: unknown label" in stopped["detail"] and f"`ioc recover {BAD}`" in stopped["detail"]
    assert export_file(airflow["exports"], "daily_active_users", DAYS[1]) is None
    # The failed task's log, as the UI shows it: short, no third-party chatter below WARNING, and
    # the project's own message (what failed, the report, the fix) within its last 20 lines.
    [bad_run] = [r for r in runs if r["logical_date"][:10] == BAD.isoformat()]
    log = (airflow["root"] / "home" / "logs" / f"dag_id={DAG}" / f"run_id={bad_run['dag_run_id']}"
           / "task_id=validate_assessment_events" / "attempt=1.log")
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    chatter = [line for line in lines if line.get("logger", "").split(".")[0] in {"great_expectations", "sqlalchemy",
                                                                                "duckdb_engine"}]
    assert not chatter, chatter
    assert any(f"DataQualityError: assessment_events for {BAD} failed" in json.dumps(line)
               and f"ioc recover {BAD}" in json.dumps(line) for line in lines[-20:]), lines[-20:]

    partition.write_bytes(good)  # upstream delivers the day again
    env = {**os.environ, "IOC_LAKE_ROOT": str(lake), "IOC_STATE_DIR": str(airflow["state"]),
           "IOC_EXPORTS_ROOT": str(airflow["exports"]), "IOC_AIRFLOW_URL": base,
           "AIRFLOW_HOME": str(airflow["root"] / "home")}  # where standalone wrote the admin's password
    recovered = subprocess.run([str(ROOT / ".venv" / "bin" / "ioc"), "recover", BAD.isoformat()], env=env,
                               capture_output=True, text=True, timeout=900)
    assert recovered.returncode == 0, recovered.stdout + recovered.stderr
    said = recovered.stdout
    assert f"it blocked 2 later days: {DAYS[1]}, {DAYS[2]}" in said and f"validated again: {BAD} passes" in said
    # What docs/data-quality.md shows (the backfill ids aside).
    assert re.search(rf"^backfill \d+ of {DAG}, {BAD} to {BAD} \(a fixed day\): its runs re-run, missing ones "
                     rf"created\n  {BAD}  success$", said, re.M), said
    assert re.search(rf"^backfill \d+ of {DAG}, {DAYS[1]} to {DAYS[2]} \(later days that read it\): its runs "
                     rf"re-run, missing ones created\n  {DAYS[1]}  success\n  {DAYS[2]}  success$", said, re.M), said
    assert said.rstrip().endswith("recovered: 1 fixed day and 2 later ones re-run"), said

    states, runs = _runs(base)
    assert states == {d.isoformat(): "success" for d in DAYS}, states
    assert {r["run_type"] for r in runs} == {"backfill"}
    events, scores = read_events(lake), read_scores(lake)
    for day in DAYS:  # each day's aggregates are a clean run's: the plain pandas answer on the files
        expected = expected_aggregates(events, scores, day)
        for name in AGGREGATES:
            if name != "ocean_trait_percentiles":  # approximate: tests/unit/test_aggregates.py
                assert_matches_pandas(read_aggregate(airflow["state"], name, day), expected[name], name)
            assert export_file(airflow["exports"], name, day) is not None, (name, day)
    assert expected_aggregates(events, scores, DAYS[-1])["daily_active_users"].loc[0, "returning_users"] > 0
    # The last day's exports are its aggregates, suppressed.
    day = DAYS[-1]
    for name in AGGREGATES:
        table = read_aggregate(airflow["state"], name, day)
        exported = pd.read_csv(export_file(airflow["exports"], name, day), dtype={"date": str, "month": str})
        pd.testing.assert_frame_equal(exported, suppressed(table, name), check_dtype=False, obj=name)
    # Every query says which run, task and day it served: what the cost monitor attributes by.
    log = [json.loads(line) for line in (airflow["state"] / "query_log.jsonl").read_text().splitlines()]
    for day in DAYS:
        succeeded = {r["tags"]["task_id"] for r in log
                     if r["state"] == "SUCCEEDED" and r["tags"]["ds"] == day.isoformat()}
        assert {f"{name}.{step}" for name in AGGREGATES for step in ("build", "check", "export")} <= succeeded, day

    # Lineage went where `make airflow` sends it by default: each day's builds, checks and exports,
    # each with the cost of its queries (tests/system/test_demo_runs.py reads them in full).
    lineage = [json.loads(line) for line in (airflow["state"] / "lineage.jsonl").read_text().splitlines()]
    for day in DAYS:
        done = {e["job"]["name"] for e in lineage if e["eventType"] == "COMPLETE"
                and e["run"]["facets"]["nominalTime"]["nominalStartTime"].startswith(str(day))
                and e["run"]["facets"].get("ioc_cost", {}).get("queries", 0) > 0}
        assert {f"{DAG}.{name}.{step}" for name in AGGREGATES for step in ("build", "check", "export")} <= done, day

    # The cost monitor, triggered through the API for today, costs those queries. (Its logical date
    # is the start of today: a run whose logical date is still to come waits for it.)
    today = dt.datetime.now(dt.UTC).date()
    monitor = "ioc_cost_monitor"
    assert _api("PATCH", f"{base}/api/v2/dags/{monitor}", json={"is_paused": False}).status_code == 200
    run = _api("POST", f"{base}/api/v2/dags/{monitor}/dagRuns",
               json={"logical_date": f"{today}T00:00:00Z", "dag_run_id": "e2e-today"})
    assert run.status_code == 200, run.text
    deadline = time.monotonic() + 300
    while (state := _api("GET", f"{base}/api/v2/dags/{monitor}/dagRuns/e2e-today").json()["state"]) not in (
            "success", "failed"):
        assert time.monotonic() < deadline, f"the cost monitor's run is still {state}"
        time.sleep(3)
    assert state == "success"
    costed = read_costs(airflow["state"], today)
    today_log = [r for r in log if r["submitted_at"][:10] == today.isoformat()]
    assert len(costed) >= len(today_log) > 0 and set(costed.run_by) >= {
        f"{DAG}.{name}.build" for name in AGGREGATES}

    shot = tmp_path / "grid.png"
    done = subprocess.run([chromium, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1600,1000",
                           "--virtual-time-budget=20000", f"--screenshot={shot}", f"{base}/dags/{DAG}"],
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 0 and shot.is_file(), done.stderr[-2000:]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
    if os.environ.get("IOC_SAVE_SCREENSHOTS"):
        shutil.copy(shot, Path(os.environ["IOC_SAVE_SCREENSHOTS"]) / "airflow-grid.png")
