"""The hourly metrics DAG run with `airflow dags test` for one hour of the sample lake: each metric
built, and the cost watch alerting the hour's failure burst (queries of the hour put in the query
log first, as a broken deployment would leave them)."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3

import pytest

from ioc_analytics.jsonlines import JsonLines
from ioc_analytics.lake.tables import HOURLY
from tests.helpers import ONE_DAY
from tests.system.test_daily_dag_local import airflow_dags_test

pytestmark = pytest.mark.integration


def test_hourly_dag_builds_the_hour_of_each_metric_and_watches_its_cost(airflow_db, sample_lake, tmp_path):
    hour = dt.datetime.combine(ONE_DAY, dt.time(14), dt.UTC)
    earlier = JsonLines(tmp_path / "state" / "query_log.jsonl")
    for n in range(30):  # the hour: 6 of 30 queries fail; the day before: 30, none failed
        at = hour - dt.timedelta(hours=24) + dt.timedelta(minutes=28 * n)
        earlier.append({"query_id": f"before-{n}", "submitted_at": at.isoformat(), "workgroup": "ioc-analytics",
                        "state": "SUCCEEDED", "cost_usd": 0.0001, "bytes_scanned": 1, "query": "SELECT 1",
                        "tags": {"dag_id": "d", "task_id": "t"}})
        earlier.append({"query_id": f"hour-{n}", "submitted_at": (hour + dt.timedelta(minutes=2 * n)).isoformat(),
                        "workgroup": "ioc-analytics", "state": "FAILED" if n % 5 == 0 else "SUCCEEDED",
                        "error": "HIVE_BAD_DATA: broken", "cost_usd": 0.0001, "bytes_scanned": 1,
                        "query": "SELECT 1", "tags": {"dag_id": "ioc_daily_analytics", "task_id": "x.build"}})
    run = airflow_dags_test(hour, sample_lake, tmp_path, dag_id="ioc_hourly_metrics")
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    key = json.dumps([ONE_DAY.strftime("%Y/%m/%d"), "14"])
    with sqlite3.connect(tmp_path / "state" / "catalog.sqlite") as con:
        registered = {r[0] for r in con.execute("SELECT table_name FROM partitions WHERE key = ?", (key,))}
    assert registered == set(HOURLY) | {"hourly_cost_anomalies"}
    [alert] = [json.loads(line) for line in (tmp_path / "state" / "alerts.jsonl").read_text().splitlines()]
    assert alert["kind"] == "failure_burst" and alert["source"] == "ioc_cost_monitor", alert
    assert alert["title"].startswith(f"6 of 30 queries failed in the hour {ONE_DAY} 14:00-14:59 UTC"), alert
    assert alert["details"] == ["6 failed in ioc_daily_analytics.x.build: HIVE_BAD_DATA: broken"], alert
    log = [json.loads(line) for line in (tmp_path / "state" / "query_log.jsonl").read_text().splitlines()]
    log = [r for r in log if not r["query_id"].startswith(("before-", "hour-"))]
    assert {r["tags"]["task_id"] for r in log} == set(HOURLY)
    assert all(r["tags"]["dag_id"] == "ioc_hourly_metrics" and r["tags"]["hour"] == "14" for r in log)
