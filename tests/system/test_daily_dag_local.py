"""The daily DAG run end to end with `airflow dags test` on the local backend, as `make demo` does."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from ioc_analytics.tables import AGGREGATES
from tests.helpers import (
    TODAY,
    expected_aggregates,
    export_file,
    read_aggregate,
    read_events,
    read_scores,
    suppressed,
)

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


def _aggregates(state: Path, day: dt.date) -> dict[str, pd.DataFrame]:
    return {name: read_aggregate(state, name, day) for name in AGGREGATES}


def test_daily_dag_builds_checks_and_exports_the_day_and_reruns_identically(airflow_db, sample_lake, tmp_path):
    lake = tmp_path / "lake"
    shutil.copytree(sample_lake, lake, ignore=shutil.ignore_patterns("aggregates"))
    day = TODAY - dt.timedelta(days=2)
    lake_date = day.strftime("%Y/%m/%d")

    run = airflow_dags_test(day, lake, tmp_path)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    first = _aggregates(tmp_path / "state", day)

    expected = expected_aggregates(read_events(lake), read_scores(lake), day)["daily_active_users"]
    assert expected.loc[0, "returning_users"] > 0, "the generator should produce returning users"
    assert first["daily_active_users"].drop(columns="date").to_dict("records") == expected.to_dict("records")

    for name, table in first.items():
        assert len(table) > 0 and set(table["date"]) == {lake_date}, name
        exported = pd.read_csv(export_file(tmp_path / "exports", name, day), dtype={"date": str, "month": str})
        pd.testing.assert_frame_equal(exported, suppressed(table, name), check_dtype=False, obj=name)

    log = [json.loads(line) for line in (tmp_path / "state" / "query_log.jsonl").read_text().splitlines()]
    succeeded = {r["tags"].get("task_id") for r in log if r["state"] == "SUCCEEDED"}
    assert {f"{name}.{step}" for name in AGGREGATES for step in ("build", "check", "export")} <= succeeded
    assert all(r["tags"]["dag_id"] == "ioc_daily_analytics" and r["tags"]["ds"] == day.isoformat() for r in log)

    rerun = airflow_dags_test(day, lake, tmp_path)
    assert rerun.returncode == 0, rerun.stdout[-4000:] + rerun.stderr[-4000:]
    second = _aggregates(tmp_path / "state", day)
    for name in AGGREGATES:
        approximate = [c for c in first[name].columns if c.endswith(("_p25", "_p50", "_p75"))]
        pd.testing.assert_frame_equal(second[name].drop(columns=approximate), first[name].drop(columns=approximate),
                                      obj=name)

    # The cost monitor on the same machine: today's usage is these two runs' queries.
    today = dt.datetime.now(dt.UTC).date()
    monitor = airflow_dags_test(today, lake, tmp_path, dag_id="ioc_cost_monitor")
    assert monitor.returncode == 0, monitor.stdout[-4000:] + monitor.stderr[-4000:]
    log = [json.loads(line) for line in (tmp_path / "state" / "query_log.jsonl").read_text().splitlines()]
    from ioc_analytics.engine.local import LocalEngine
    from ioc_analytics.settings import get_settings

    reader = LocalEngine(get_settings(backend="local", lake_root=str(lake), state_dir=str(tmp_path / "state")))
    part = [today.strftime("%Y/%m/%d")]
    costed = reader.query("SELECT task_id, count(*) AS n, sum(cost_usd) AS usd FROM query_costs WHERE date = ? "
                          "AND dag_id = 'ioc_daily_analytics' GROUP BY task_id", part).to_pandas()
    assert costed.n.sum() == len(log) and set(costed.task_id) == {r["tags"]["task_id"] for r in log}
    assert costed.usd.sum() == pytest.approx(sum(r["cost_usd"] for r in log))
    daily = reader.query("SELECT queries, cost_usd, anomalies FROM daily_costs WHERE date = ?", part).to_pandas()
    assert daily.queries[0] == len(log) and daily.anomalies[0] == 0, "no history yet, nothing to compare"


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
