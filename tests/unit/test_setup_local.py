"""``ioc setup`` on the local backend: folders, the catalog, the guard rails recorded in
``<state_dir>/setup.json``, and the readiness report, computed independently from the lake."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from ioc_analytics.errors import ConfigError
from ioc_analytics.jsonlines import JsonLines
from ioc_analytics.lake.catalog import load_catalog
from ioc_analytics.operations import setup
from tests.helpers import TODAY, read_events

IOC = str(Path(sys.executable).parent / "ioc")


def run_ioc(*args: str, lake: Path, state: Path, **env: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "IOC_BACKEND": "local", "IOC_LAKE_ROOT": str(lake), "IOC_STATE_DIR": str(state),
           "IOC_EXPORTS_ROOT": str(state.parent / "exports"), **env}
    return subprocess.run([IOC, *args], capture_output=True, text=True, env=env, timeout=120)


def _statuses(report: setup.Report) -> dict[tuple[str, str], str]:
    return {(r.kind, r.name): r.status for r in report.resources}


def test_first_run_creates_second_changes_nothing_a_new_cutoff_is_changed(local_settings, tmp_path):
    settings = replace(local_settings, exports_root=str(tmp_path / "new" / "exports"))
    tables = set(load_catalog(settings.lake_uri).tables)

    first = setup.ensure(settings, steps=["catalog", "workgroup", "alerts"])
    statuses = _statuses(first)
    assert statuses == {
        ("folder", "lake"): "unchanged", ("folder", "state"): "created", ("folder", "exports"): "created",
        **{("table", name): "created" for name in tables},
        ("guard rail", "bytes-scanned-cutoff"): "created",
        ("threshold", "ioc-analytics-month-to-date-budget"): "created",
        ("threshold", "ioc-analytics-single-query-cost"): "created",
        ("threshold", "ioc-analytics-query-failure-rate"): "created",
    }, first.render()
    assert (tmp_path / "new" / "exports").is_dir() and (tmp_path / "state").is_dir()
    assert all(r.detail.startswith("ready: ") for r in first.resources if r.kind == "table")
    assert any("cost monitor DAG" in note for note in first.notes)  # the alarms are aws only
    # 1 GiB at most per query costs $0.005: the $0.50 threshold is a guard against a raised cutoff.
    assert any(note.startswith("ioc-analytics-single-query-cost cannot fire") for note in first.notes)
    recorded = json.loads((tmp_path / "state" / "setup.json").read_text())["steps"]
    assert recorded["workgroup"] == {"bytes-scanned-cutoff": {"bytes_scanned_cutoff": 1_073_741_824}}
    assert recorded["alerts"]["ioc-analytics-month-to-date-budget"]["threshold_usd"] == 40.0
    assert set(recorded["catalog"]) == tables

    before = (tmp_path / "state" / "setup.json").stat().st_mtime_ns
    second = setup.ensure(settings, steps=["catalog", "workgroup", "alerts"])
    assert set(_statuses(second)) == set(statuses) and set(_statuses(second).values()) == {"unchanged"}
    assert (tmp_path / "state" / "setup.json").stat().st_mtime_ns == before, "nothing to record, nothing written"

    third = setup.ensure(replace(settings, bytes_scanned_cutoff=2 * 1_073_741_824, failure_rate_alert_pct=5),
                             steps=["workgroup", "alerts"])
    assert {r.name: r.detail for r in third.resources if r.status == "changed"} == {
        "bytes-scanned-cutoff": "bytes_scanned_cutoff: 1073741824 -> 2147483648",
        "ioc-analytics-query-failure-rate": "threshold_pct: 10 -> 5",
    }
    assert {r.status for r in third.resources if r.status != "changed"} == {"unchanged"}
    recorded = json.loads((tmp_path / "state" / "setup.json").read_text())["steps"]
    assert recorded["workgroup"]["bytes-scanned-cutoff"]["bytes_scanned_cutoff"] == 2 * 1_073_741_824
    assert set(recorded["catalog"]) == tables, "the other steps' records are kept"


def test_readiness_counts_the_lake_and_the_query_log(local_settings, local_engine):
    """The window is the 30 complete days before ``today``; setup's own queries are not counted."""
    for _ in range(3):
        local_engine.query("SELECT COUNT(*) FROM ocean_scores WHERE year = '2024' AND month = '01'",
                           tags={"dag_id": "ioc_daily_analytics", "task_id": "t"})
    # The log stamps the queries with the wall clock; the engine's own records, moved to the lake's
    # fixed last day, fall inside the window with its data.
    log = JsonLines(local_settings.query_log_path)
    ran = list(log)
    log.keep(lambda record: False)
    for record in ran:
        log.append({**record, "submitted_at": dt.datetime.combine(TODAY, dt.time(6), dt.UTC).isoformat()})
    tomorrow = TODAY + dt.timedelta(days=1)

    report = setup.ensure(local_settings, steps=["readiness"], today=tomorrow)

    events = read_events(Path(local_settings.lake_root))
    first, last = tomorrow - dt.timedelta(days=30), TODAY
    expected = int(((events["date"] >= f"{first:%Y/%m/%d}") & (events["date"] <= f"{last:%Y/%m/%d}")).sum())
    assert expected > 10_000
    assert report.window == (first, last)
    assert {c.name: (c.measured, c.status) for c in report.readiness} == {
        "MRR": (None, "not measured"), "Data volume": (expected, "met"),
        "Query frequency": (3, "not met"), "Team size": (None, "not measured")}
    assert "(3 run by DAGs, setup's own excluded)" in report.readiness[2].detail
    again = setup.ensure(local_settings, steps=["readiness"], today=tomorrow)
    assert [c.measured for c in again.readiness] == [c.measured for c in report.readiness]
    log = [json.loads(line) for line in local_settings.query_log_path.read_text().splitlines()]
    assert [e["tags"] for e in log if "assessment_events" in e["query"]] == [setup.DEFAULT_TAGS] * 2


def test_an_empty_lake_is_zero_assessments_not_an_error(tmp_path):
    from ioc_analytics.settings import get_settings

    settings = get_settings(backend="local", lake_root=str(tmp_path / "lake"), state_dir=str(tmp_path / "state"),
                            exports_root=str(tmp_path / "exports"))
    report = setup.ensure(settings)
    assert (tmp_path / "lake").is_dir() and report.status("folder", "lake") == "created"
    assert [(c.name, c.measured) for c in report.readiness][1:3] == [("Data volume", 0), ("Query frequency", 0)]
    assert any("results_bucket: nothing to do on local" in n for n in report.notes)
    assert report.as_dict()["readiness"]["criteria"][1]["status"] == "not met"
    json.dumps(report.as_dict())  # XCom-ready


def test_a_file_where_a_folder_belongs_and_a_damaged_record_are_clear_errors(local_settings, tmp_path):
    (tmp_path / "exports-file").write_text("")
    with pytest.raises(ConfigError, match="IOC_EXPORTS_ROOT=.* is a file, not a folder"):
        setup.ensure(replace(local_settings, exports_root=str(tmp_path / "exports-file")), steps=["catalog"])
    (tmp_path / "state").mkdir(exist_ok=True)
    (tmp_path / "state" / "setup.json").write_text("{not json")
    with pytest.raises(ConfigError, match="setup.json is not valid JSON: delete it"):
        setup.ensure(local_settings, steps=["workgroup"])
    with pytest.raises(ConfigError, match="unknown setup step nope"):
        setup.ensure(local_settings, steps=["nope"])


def test_ioc_setup_prints_the_report_and_exits_0_then_2_on_bad_settings(sample_lake, tmp_path):
    out = run_ioc("setup", "--today", TODAY.isoformat(), lake=sample_lake, state=tmp_path / "state")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "ioc setup (local backend)"
    assert any(line.split()[:4] == ["catalog", "table", "assessment_events", "created"] for line in lines)
    assert any(line.startswith("Readiness: the guide's activation criteria") for line in lines)
    expected = f"{_events_in_window(sample_lake):,}"
    assert any(line.split()[:3] == ["Data", "volume", expected] for line in lines)
    assert any(line.startswith("MRR") and "not measured" in line for line in lines)

    again = run_ioc("setup", lake=sample_lake, state=tmp_path / "state")
    assert again.returncode == 0 and " created " not in again.stdout and " changed " not in again.stdout

    bad = run_ioc("setup", lake=sample_lake, state=tmp_path / "state", IOC_WORKGROUP="no spaces allowed")
    assert bad.returncode == 2 and bad.stdout == ""
    assert bad.stderr.startswith("error: IOC_WORKGROUP='no spaces allowed' is not a workgroup name")
    assert "Traceback" not in bad.stderr


def _events_in_window(lake) -> int:
    events = read_events(lake)
    first, last = TODAY - dt.timedelta(days=30), TODAY - dt.timedelta(days=1)
    return int(((events["date"] >= f"{first:%Y/%m/%d}") & (events["date"] <= f"{last:%Y/%m/%d}")).sum())
