"""The daily DAG run with `airflow dags test` on the local backend, as `make demo` does, on a day
without data; and the helper the other DAG tests run `airflow dags test` with. The whole DAG over
four days, in a real Airflow, is tests/system/test_airflow_e2e.py."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

AIRFLOW = str(Path(sys.executable).parent / "airflow")


def airflow_dags_test(day: dt.date, lake: Path, tmp_path: Path, dag_id: str = "ioc_daily_analytics"
                      ) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "IOC_BACKEND": "local",
        "IOC_LAKE_ROOT": str(lake),
        "IOC_STATE_DIR": str(tmp_path / "state"),
        "IOC_EXPORTS_ROOT": str(tmp_path / "exports"),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }
    return subprocess.run([AIRFLOW, "dags", "test", dag_id, day.isoformat()],
                          capture_output=True, text=True, env=env, timeout=300)


def test_daily_dag_fails_clearly_when_the_day_has_no_data(airflow_db, sample_lake, tmp_path):
    day = dt.date(2024, 6, 15)  # inside the schedule, but the lake holds January 2024 and recent days
    run = airflow_dags_test(day, sample_lake, tmp_path)
    output = run.stdout + run.stderr
    assert run.returncode != 0 and "DagRun failed" in output, output[-3000:]
    # The sensor names the table, the day, where it looked and how late the data is.
    assert "assessment_events has no data for 2024-06-15 (looked in" in output, output[-3000:]
    assert "due at 2024-06-16 00:00 UTC when the day ended, late by" in output, output[-3000:]
    # A day long past its deadline fails at once: retrying or waiting would change nothing.
    assert "new_state=failed" in output and "up_for_retry" not in output, output[-3000:]
    assert not list((tmp_path / "exports").glob("*/*/manifest.json")), "nothing exported"
    # One alert per failed task (both sensors), none from the watcher that fails the run.
    alerts = [json.loads(line) for line in (tmp_path / "state" / "alerts.jsonl").read_text().splitlines()]
    assert sorted(a["task"] for a in alerts) == ["wait_for_assessment_events", "wait_for_ocean_scores"], alerts
    alert = next(a for a in alerts if a["task"] == "wait_for_assessment_events")
    assert alert["source"] == "ioc_daily_analytics" and alert["day"] == "2024-06-15" and alert["try_number"] == 1
    assert alert["error"].startswith("assessment_events has no data for 2024-06-15")
    assert alert["log_url"].endswith("/tasks/wait_for_assessment_events?try_number=1")
    assert "/dags/ioc_daily_analytics" in alert["runbook"]
