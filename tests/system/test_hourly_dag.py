"""The hourly metrics DAG run with `airflow dags test` for one hour of the sample lake."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3

import pytest

from ioc_analytics.lake.tables import HOURLY
from tests.helpers import ONE_DAY
from tests.system.test_daily_dag_local import airflow_dags_test

pytestmark = pytest.mark.integration


def test_hourly_dag_builds_the_hour_of_each_metric(airflow_db, sample_lake, tmp_path):
    hour = dt.datetime.combine(ONE_DAY, dt.time(14), dt.UTC)
    run = airflow_dags_test(hour, sample_lake, tmp_path, dag_id="ioc_hourly_metrics")
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    key = json.dumps([ONE_DAY.strftime("%Y/%m/%d"), "14"])
    with sqlite3.connect(tmp_path / "state" / "catalog.sqlite") as con:
        registered = {r[0] for r in con.execute("SELECT table_name FROM partitions WHERE key = ?", (key,))}
    assert registered == set(HOURLY)
    log = [json.loads(line) for line in (tmp_path / "state" / "query_log.jsonl").read_text().splitlines()]
    assert {r["tags"]["task_id"] for r in log} == set(HOURLY)
    assert all(r["tags"]["dag_id"] == "ioc_hourly_metrics" and r["tags"]["hour"] == "14" for r in log)
