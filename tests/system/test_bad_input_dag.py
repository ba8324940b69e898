"""The bad-input corpus end to end through the daily DAG on the local backend.

One fault for each way a bad day meets the DAG (``DAG_FAULTS``: a bad row of each raw table, a file
that is not Parquet, which the freshness sensor lets through to the gate, and a partition without
rows, which the sensor stops) damages its own day of one copy of the sample lake; the DAG runs
every day in one process (tests/system/dag_runner.py, ``dag.test()`` as ``airflow dags test``
does). For each: the run fails at the gate of the damaged table with the on-call message, nothing
that reads that table is built or exported for the day, and the aggregates of the other table
still are. Every other fault meets the DAG the same way; tests/unit/test_quality.py checks each
fault's message, tests/unit/test_contract_properties.py every class of bad value. Then
quarantine: a bad optional partition is set aside, the day is exported without it, and a fixed
re-run puts it back.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from ioc_analytics import safety
from ioc_analytics.devtools.faults import FAULTS, inject_fault
from ioc_analytics.lake.tables import AGGREGATES
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


def run_days(runs: list[dict], processes: int = 2) -> tuple[dict[str, dict], dict[str, str]]:
    """Run the DAG once per ``{"name", "date", "env"}``; the results and the logs, by name.

    The runs are shared among ``processes`` runner processes, one per core, each with its own copy
    of the migrated metadata database (SQLite takes one writer at a time).
    """
    home = Path(os.environ["AIRFLOW_HOME"])
    chunks = [runs[n::processes] for n in range(processes) if runs[n::processes]]
    started = []
    for n, chunk in enumerate(chunks):
        database = home / f"runner-{n}-{uuid.uuid4().hex[:6]}.db"
        shutil.copy(home / "airflow.db", database)
        env = {**os.environ, "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_FOLDER),
               "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{database}"}
        output = database.with_suffix(".log").open("w+")  # a file, not a pipe: no runner waits on a reader
        started.append((subprocess.Popen([sys.executable, str(RUNNER), json.dumps(chunk)], stdout=output,
                                         stderr=subprocess.STDOUT, text=True, env=env), output))
    results, logs = {}, {}
    for chunk, (process, file) in zip(chunks, started, strict=True):
        process.wait(timeout=900)
        file.seek(0)
        output = file.read()
        file.close()
        assert process.returncode == 0, output[-5000:]
        found = [json.loads(line[len("RUN-RESULT "):]) for line in output.splitlines()
                 if line.startswith("RUN-RESULT ")]
        # Each run's log: what on-call reads in the task logs.
        pieces = output.split("RUN-START ")[1:]
        assert len(found) == len(pieces) == len(chunk), output[-3000:]
        for run, result, log in zip(chunk, found, pieces, strict=True):
            results[run["name"]], logs[run["name"]] = result, log
    return results, logs


#: The quarantine scenario's first run shares the corpus's processes; its fixed re-run follows alone.
QUARANTINE = "quarantine-first-run"
#: One fault of each path through the DAG: the spreadsheet formula in a label and the NaN that the
#: file's statistics hide (the events and the scores gate), a file that is not Parquet (past the
#: sensor, named by the gate), a partition without rows (stopped by the sensor).
DAG_FAULTS = ("formula-label", "nan-trait", "not-parquet", "empty-partition")


@pytest.fixture(scope="module")
def corpus(sample_lake, tmp_path_factory, airflow_db):
    """Every fault in its own copy of the lake, and the quarantine scenario's first run, all run in
    the runner processes."""
    root = tmp_path_factory.mktemp("faults")
    runs = []
    for fault in DAG_FAULTS:
        inject_fault(copy_lake(sample_lake, root / fault), DAY, fault, "personality")
        runs.append({"name": fault, "date": DAY.isoformat(), "env": settings_env(root / fault)})
    lake = copy_lake(sample_lake, root / QUARANTINE)
    good = pq.read_table(lake / "assessments" / DAY.strftime("%Y/%m/%d") / "career" / "part-00000.parquet")
    inject_fault(lake, DAY, "unknown-device", "career")
    runs.append({"name": QUARANTINE, "date": DAY.isoformat(),
                 "env": {**settings_env(root / QUARANTINE), "IOC_QUARANTINE": "true"}})
    results, logs = run_days(runs)
    return root, results, logs, good


def test_the_corpus_covers_every_fault():
    assert set(fault_messages(TODAY)) == set(FAULTS) and set(DAG_FAULTS) <= set(FAULTS)


@pytest.mark.parametrize("fault", DAG_FAULTS)
def test_each_fault_stops_what_reads_the_bad_table_and_nothing_bad_is_exported(corpus, fault):
    root, results, logs, _ = corpus
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
    for path in (folder / "exports").rglob("*.csv"):  # what was exported is safe to open
        assert not [c for row in csv.reader(path.open()) for c in row if safety.is_formula_like(c)], path


def test_quarantine_exports_the_day_without_the_bad_partition_and_a_fixed_rerun_restores_it(corpus):
    root, results, logs, good = corpus
    folder = root / QUARANTINE
    lake = folder / "lake"
    partition = lake / "assessments" / DAY.strftime("%Y/%m/%d") / "career"
    assert results[QUARANTINE]["state"] == "success", results[QUARANTINE]
    assert "quarantined to" in logs[QUARANTINE]
    rates = pd.read_csv(export_file(folder / "exports", "completion_rates", DAY))
    assert "career" not in set(rates["assessment_type"]) and "smart_fridge" not in set(rates["device"])
    [entry] = [p.parent for p in (lake / "quarantine").rglob("_quarantine.json")]
    assert not list(partition.glob("*.parquet"))

    pq.write_table(good, entry / "part-00000.parquet")  # the source is fixed where it was set aside
    run = {"date": DAY.isoformat(), "env": {**settings_env(folder), "IOC_QUARANTINE": "true"}}
    second, logs = run_days([{**run, "name": "second"}])
    assert second["second"]["state"] == "success", second
    assert "cleared" in logs["second"] and (entry / "_released.json").is_file()
    rates = pd.read_csv(export_file(folder / "exports", "completion_rates", DAY))
    assert "career" in set(rates["assessment_type"])
    assert pq.read_table(partition / "part-00000.parquet").equals(good)
