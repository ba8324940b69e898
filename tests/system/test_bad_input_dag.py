"""The bad-input corpus end to end through the daily DAG on the local backend.

Each fault of ``generate.FAULTS`` damages its own day of one copy of the sample lake; the DAG
runs every day in one process (tests/system/dag_runner.py, ``dag.test()`` as ``airflow dags
test`` does). For every fault: the run fails at the gate of the damaged table with the on-call
message, nothing that reads that table is built or exported for the day, and the aggregates of
the other table still are. Then quarantine: a bad optional partition is set aside, the day is
exported without it, and a fixed re-run puts it back.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from ioc_analytics.generate import FAULTS, inject_fault
from ioc_analytics.tables import AGGREGATES
from tests.conftest import DAGS_FOLDER
from tests.helpers import TODAY, export_file, fault_messages

pytestmark = pytest.mark.integration

RUNNER = Path(__file__).with_name("dag_runner.py")
#: The damaged day, with four weeks of history before it in the sample lake.
DAY = TODAY - dt.timedelta(days=2)


def settings_env(folder: Path) -> dict[str, str]:
    return {"IOC_BACKEND": "local", "IOC_LAKE_ROOT": str(folder / "lake"), "IOC_STATE_DIR": str(folder / "state"),
            "IOC_EXPORTS_ROOT": str(folder / "exports")}


def copy_lake(sample_lake: Path, folder: Path) -> Path:
    """The sample lake's recent days (the ones the runs read), in ``folder/lake``."""
    lake = folder / "lake"
    shutil.copytree(sample_lake, lake, ignore=shutil.ignore_patterns("aggregates", "quality", "quarantine"))
    return lake


def run_days(runs: list[dict]) -> tuple[dict[str, dict], dict[str, str]]:
    """Run the DAG once per ``{"name", "date", "env"}``; the results and the logs, by name."""
    env = {**os.environ, "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_FOLDER)}
    done = subprocess.run([sys.executable, str(RUNNER), json.dumps(runs)], capture_output=True, text=True,
                          env=env, timeout=900)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-5000:]
    results = [json.loads(line[len("RUN-RESULT "):]) for line in done.stdout.splitlines()
               if line.startswith("RUN-RESULT ")]
    # Each run's log: what on-call reads in the task logs.
    logs = output.split("RUN-START ")[1:]
    assert len(results) == len(logs) == len(runs), output[-3000:]
    return ({run["name"]: r for run, r in zip(runs, results, strict=True)},
            {run["name"]: log for run, log in zip(runs, logs, strict=True)})


@pytest.fixture(scope="module")
def corpus(sample_lake, tmp_path_factory, airflow_db):
    """Every fault in its own copy of the lake, all run in one process."""
    root = tmp_path_factory.mktemp("faults")
    runs = []
    for fault in sorted(FAULTS):
        inject_fault(copy_lake(sample_lake, root / fault), DAY, fault, "personality")
        runs.append({"name": fault, "date": DAY.isoformat(), "env": settings_env(root / fault)})
    results, logs = run_days(runs)
    return root, results, logs


def test_the_corpus_covers_every_fault():
    assert set(fault_messages(TODAY)) == set(FAULTS)


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_each_fault_stops_what_reads_the_bad_table_and_nothing_bad_is_exported(corpus, fault):
    root, results, logs = corpus
    day, folder = DAY, root / fault
    table, words = fault_messages(day)[fault]
    result, log = results[fault], logs[fault]
    assert result["state"] == "failed", result
    if fault == "empty-partition":  # no rows is missing data: the sensor says so before any gate
        gate, words = "wait_for_assessment_events", [
            f"assessment_events has no data in its required partitions for {day}",
            f"assessments/{day:%Y/%m/%d}/personality/"]
    else:
        gate = f"validate_{table}"
        words = [f"DataQualityError: {table} for {day} failed", "Nothing that reads this table is built", *words]
    assert result["tasks"][gate] == "failed", result
    for word in words:
        assert word in log, f"{word!r} not in the log of {day}:\n{log[-3000:]}"
    for name, sources in AGGREGATES.items():
        if table in sources:
            assert result["tasks"][f"{name}.build"] == "upstream_failed", (name, result)
            assert export_file(folder / "exports", name, day) is None, name
        else:
            assert result["tasks"][f"{name}.export"] == "success", (name, json.dumps(result["tasks"]))
            assert export_file(folder / "exports", name, day).is_file(), name


def test_quarantine_exports_the_day_without_the_bad_partition_and_a_fixed_rerun_restores_it(
        sample_lake, tmp_path, airflow_db):
    lake = copy_lake(sample_lake, tmp_path)
    partition = lake / "assessments" / DAY.strftime("%Y/%m/%d") / "career"
    good = pq.read_table(partition / "part-00000.parquet")
    inject_fault(lake, DAY, "unknown-device", "career")
    run = {"date": DAY.isoformat(), "env": {**settings_env(tmp_path), "IOC_QUARANTINE": "true"}}

    first, logs = run_days([{**run, "name": "first"}])
    assert first["first"]["state"] == "success", first
    assert "quarantined to" in logs["first"]
    rates = pd.read_csv(export_file(tmp_path / "exports", "completion_rates", DAY))
    assert "career" not in set(rates["assessment_type"]) and "smart_fridge" not in set(rates["device"])
    [entry] = [p.parent for p in (lake / "quarantine").rglob("_quarantine.json")]
    assert not list(partition.glob("*.parquet"))

    pq.write_table(good, entry / "part-00000.parquet")  # the source is fixed where it was set aside
    second, logs = run_days([{**run, "name": "second"}])
    assert second["second"]["state"] == "success", second
    assert "cleared" in logs["second"] and (entry / "_released.json").is_file()
    rates = pd.read_csv(export_file(tmp_path / "exports", "completion_rates", DAY))
    assert "career" in set(rates["assessment_type"])
    assert pq.read_table(partition / "part-00000.parquet").equals(good)
