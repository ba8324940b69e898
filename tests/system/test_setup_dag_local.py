"""The setup DAG run with ``dag.test()`` on the local backend: the aws-only steps are skipped, the
steps after them still run, and the run succeeds."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

RUN = """
import json, os
from airflow.dag_processing.dagbag import DagBag
dag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"]).dags["ioc_setup"]
run = dag.test()
print("RUN-RESULT " + json.dumps({"state": str(run.state),
                                  "tasks": {ti.task_id: str(ti.state) for ti in run.get_task_instances()}}))
"""


def test_setup_dag_on_local(airflow_db, sample_lake, tmp_path):
    env = {**os.environ, "IOC_BACKEND": "local", "IOC_LAKE_ROOT": str(sample_lake),
           "IOC_STATE_DIR": str(tmp_path / "state"), "IOC_EXPORTS_ROOT": str(tmp_path / "exports"),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    out = subprocess.run([sys.executable, "-c", RUN], capture_output=True, text=True, env=env, timeout=300)
    [line] = [line for line in out.stdout.splitlines() if line.startswith("RUN-RESULT ")]
    result = json.loads(line.removeprefix("RUN-RESULT "))
    assert result == {"state": "success", "tasks": {
        "catalog": "success", "results_bucket": "skipped", "workgroup": "success", "alerts": "success",
        "quicksight": "skipped", "readiness": "success"}}, out.stdout[-3000:] + out.stderr[-3000:]
    recorded = json.loads((tmp_path / "state" / "setup.json").read_text())["steps"]
    assert set(recorded) == {"catalog", "workgroup", "alerts"}
    assert (tmp_path / "exports").is_dir()
    assert "Readiness: the guide's activation criteria" in out.stdout + out.stderr
