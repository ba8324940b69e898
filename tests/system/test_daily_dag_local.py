"""The daily DAG run end to end with `airflow dags test` on the local backend, as `make demo` does."""

from __future__ import annotations

import csv
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tests.helpers import TODAY, read_events

pytestmark = pytest.mark.integration

AIRFLOW = str(Path(sys.executable).parent / "airflow")


def airflow_dags_test(day: dt.date, lake: Path, tmp_path: Path) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "IOC_BACKEND": "local",
        "IOC_LAKE_ROOT": str(lake),
        "IOC_STATE_DIR": str(tmp_path / "state"),
        "IOC_EXPORTS_ROOT": str(tmp_path / "exports"),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }
    return subprocess.run([AIRFLOW, "dags", "test", "ioc_daily_analytics", day.isoformat()],
                          capture_output=True, text=True, env=env, timeout=300)


def test_daily_dag_builds_checks_and_exports_the_day(airflow_db, sample_lake, tmp_path):
    lake = tmp_path / "lake"
    shutil.copytree(sample_lake, lake, ignore=shutil.ignore_patterns("aggregates"))
    day = TODAY - dt.timedelta(days=2)
    lake_date = day.strftime("%Y/%m/%d")

    run = airflow_dags_test(day, lake, tmp_path)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    assert "state=success" in run.stdout + run.stderr or "success" in (run.stdout + run.stderr).lower()

    events = read_events(lake)
    today_events = events[events["date"] == lake_date]
    window = events[(events["date"] >= (day - dt.timedelta(days=30)).strftime("%Y/%m/%d"))
                    & (events["date"] < lake_date)]
    expected = {
        "unique_users": today_events["anonymous_user_id"].nunique(),
        "total_sessions": len(today_events),
        "completed_sessions": int((today_events["completion_time"] > 0).sum()),
        "returning_users": len(set(today_events["anonymous_user_id"]) & set(window["anonymous_user_id"])),
    }
    assert expected["returning_users"] > 0, "the generator should produce returning users"

    aggregate = pq.read_table(lake / "aggregates" / "daily_active_users" / lake_date).to_pylist()
    assert aggregate == [expected]

    export = tmp_path / "exports" / "daily_active_users" / f"daily_active_users_{day.isoformat()}.csv"
    rows = list(csv.DictReader(export.open()))
    assert rows == [{"date": lake_date, **{k: str(v) for k, v in expected.items()}}]

    log = [json.loads(line) for line in (tmp_path / "state" / "query_log.jsonl").read_text().splitlines()]
    tasks = {r["tags"].get("task_id") for r in log if r["state"] == "SUCCEEDED"}
    assert {"build_daily_active_users", "quality_gate", "export_csv"} <= tasks
    assert all(r["tags"]["dag_id"] == "ioc_daily_analytics" and r["tags"]["ds"] == day.isoformat() for r in log)


def test_daily_dag_fails_clearly_when_the_day_has_no_data(airflow_db, sample_lake, tmp_path):
    day = dt.date(2024, 6, 15)  # inside the schedule, but the lake holds January 2024 and recent days
    run = airflow_dags_test(day, sample_lake, tmp_path)
    output = run.stdout + run.stderr
    assert run.returncode != 0 and "DagRun failed" in output, output[-3000:]
    assert "assessment_events has no data for 2024-06-15" in output, output[-3000:]
    # Missing data fails at once: a retry would fail the same way and only delay the alert.
    assert "new_state=failed" in output and "up_for_retry" not in output, output[-3000:]
    assert not (tmp_path / "exports").exists()
