"""The weekly maintenance and monthly cost report DAGs, run with `airflow dags test` on a small lake."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from ioc_analytics.devtools.generate import generate_lake
from tests.system.test_daily_dag_local import airflow_dags_test

pytestmark = pytest.mark.integration


def test_weekly_and_monthly_runs_keep_their_reports(airflow_db, tmp_path):
    today = dt.datetime.now(dt.UTC).date()
    monday = today - dt.timedelta(days=today.weekday() + 7)  # the last complete week
    lake = tmp_path / "lake"
    generate_lake(lake, monday, 7, 300, seed=3)
    (tmp_path / "state").mkdir()
    stamp = dt.datetime.combine(monday + dt.timedelta(days=1), dt.time(3), dt.UTC).isoformat()
    with (tmp_path / "state" / "query_log.jsonl").open("w") as log:
        log.write(json.dumps({"query_id": "q1", "submitted_at": stamp, "state": "SUCCEEDED", "cost_usd": 0.25,
                              "workgroup": "ioc-analytics", "query": "SELECT * FROM assessment_events",
                              "tags": {"dag_id": "adhoc", "task_id": "notebook"}}) + "\n")

    weekly = airflow_dags_test(monday, lake, tmp_path, dag_id="ioc_weekly_maintenance")
    assert weekly.returncode == 0, weekly.stdout[-4000:] + weekly.stderr[-4000:]
    folder = lake / "maintenance" / "weekly" / monday.isoformat()
    top = json.loads((folder / "expensive_queries.json").read_text())["top"]
    assert [(q["run_by"], q["cost_usd"]) for q in top] == [(["adhoc.notebook"], 0.25)]
    assert json.loads((folder / "schema_drift.json").read_text())["drift"] == []

    month = (monday.replace(day=1))
    monthly = airflow_dags_test(month, lake, tmp_path, dag_id="ioc_monthly_cost_report")
    assert monthly.returncode == 0, monthly.stdout[-4000:] + monthly.stderr[-4000:]
    report = json.loads((lake / "maintenance" / "monthly" / f"{month:%Y-%m}" / "cost_report.json").read_text())
    assert report["cost_usd"] == (0.25 if stamp[:7] == f"{month:%Y-%m}" else 0.0)
