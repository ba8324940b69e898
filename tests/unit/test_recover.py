"""``ioc recover``'s plan from the kept quality reports, and what stops it before any run starts.
The re-runs themselves go through Airflow's REST API: tests/system/test_airflow_e2e.py does the
whole way back on a real Airflow."""

from __future__ import annotations

import datetime as dt
import shutil

import pyarrow.parquet as pq
import pytest

from ioc_analytics import quality
from ioc_analytics.devtools.faults import inject_fault
from ioc_analytics.errors import ConfigError, DataQualityError
from ioc_analytics.operations import recover
from ioc_analytics.settings import get_settings
from tests.unit.test_cli import run_ioc

BAD = dt.date(2024, 1, 10)
LATER = [BAD + dt.timedelta(days=n) for n in (1, 2)]


@pytest.fixture()
def blocked(sample_lake, tmp_path):
    """A bad day (an unknown device); the day after it stopped by it; the one after that validated
    before it, as two days of one backfill can be, so built from it."""
    lake = tmp_path / "lake"
    for day in (BAD, *LATER):
        folder = f"{day:%Y/%m/%d}"
        shutil.copytree(sample_lake / "assessments" / folder, lake / "assessments" / folder)
    good = pq.read_table(lake / "assessments" / f"{BAD:%Y/%m/%d}" / "personality" / "part-00000.parquet")
    inject_fault(lake, BAD, "unknown-device", "personality")
    settings = get_settings(backend="local", lake_root=str(lake), state_dir=str(tmp_path / "state"),
                            airflow_url="http://127.0.0.1:9")
    quality.gate(quality.validate_source(settings, LATER[1], "assessment_events"))
    for day in (BAD, LATER[0]):
        with pytest.raises(DataQualityError) as caught:
            quality.gate(quality.validate_source(settings, day, "assessment_events"))
        if day != BAD:
            assert f"ioc recover {BAD}" in str(caught.value)
    return settings, lake, good


def test_the_plan_names_the_bad_day_what_failed_and_the_days_it_blocked(blocked):
    settings, _, _ = blocked
    plan = recover.plan(settings, [BAD])
    assert list(plan.bad) == [BAD] and plan.blocked == LATER[:1] and plan.read == LATER[1:]
    assert plan.later == LATER and "device: unknown label" in plan.bad[BAD]["assessment_events"]
    lines = plan.describe()
    assert lines[0].startswith(f"{BAD} failed its own checks: assessment_events: [date=2024/01/10, "
                               "assessment_type=personality] device: unknown label")
    assert lines[1:] == [f"it blocked 1 later day: {LATER[0]}",
                         f"1 later day read it and was built anyway (validated before it failed), re-run too: "
                         f"{LATER[1]}"]


def test_a_day_that_did_not_fail_its_own_checks_is_refused_with_the_days_that_did(blocked):
    settings, _, _ = blocked
    with pytest.raises(ConfigError, match=f"{LATER[0]} did not fail its own checks .* days whose own checks "
                                          f"failed: {BAD}"):
        recover.plan(settings, [LATER[0]])
    with pytest.raises(ConfigError, match=f"name the days to recover .* failed: {BAD}$"):
        recover.plan(settings, [])


def test_a_fix_that_did_not_take_stops_before_any_run(blocked):
    settings, _, _ = blocked
    with pytest.raises(recover.RecoveryError, match=f"{BAD} still fails: assessment_events: .*device: unknown "
                                                    "label.* nothing was re-run"):
        recover.recover(settings, [BAD], echo=lambda _: None)


def test_after_the_fix_it_needs_airflow_and_says_where_it_looked(blocked):
    settings, lake, good = blocked
    pq.write_table(good, lake / "assessments" / f"{BAD:%Y/%m/%d}" / "personality" / "part-00000.parquet")
    said = []
    with pytest.raises(recover.RecoveryError, match=r"cannot reach Airflow's API at http://127.0.0.1:9 .*"
                                                    r"start Airflow \(`make airflow`\), or set IOC_AIRFLOW_URL"):
        recover.recover(settings, [BAD], echo=said.append)
    assert said[-1] == f"validated again: {BAD} passes"
    assert quality.load_reports(settings, BAD)[0]["passed"], "the fixed day's report says so"


def test_the_command_dry_run_and_its_errors(blocked, tmp_path):
    settings, lake, _ = blocked
    state = tmp_path / "state"
    dry = run_ioc("recover", str(BAD), "--dry-run", lake=lake, state=state)
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.splitlines()[1] == f"it blocked 1 later day: {LATER[0]}"
    assert dry.stdout.splitlines()[-1] == "dry run: nothing validated, nothing re-run"
    none = run_ioc("recover", lake=lake, state=state)
    assert none.returncode == 2 and none.stderr == f"error: name the days to recover (YYYY-MM-DD); days whose own " \
                                                   f"checks failed: {BAD}\n"
    usage = run_ioc("recover", "--help", lake=lake, state=state)
    assert "example:\n  ioc recover 2024-01-15" in usage.stdout and "IOC_AIRFLOW_URL" in usage.stdout


def test_later_days_are_backfilled_in_stretches_of_consecutive_days():
    days = [dt.date(2024, 1, d) for d in (6, 7, 8, 20, 21)] + [dt.date(2024, 2, 3)]
    assert recover._stretches(days) == [(dt.date(2024, 1, 6), dt.date(2024, 1, 8)),
                                        (dt.date(2024, 1, 20), dt.date(2024, 1, 21)),
                                        (dt.date(2024, 2, 3), dt.date(2024, 2, 3))]


def test_a_fixed_day_that_reads_another_bad_day_stops_until_that_one_is_named(blocked):
    settings, lake, good = blocked
    pq.write_table(good, lake / "assessments" / f"{BAD:%Y/%m/%d}" / "personality" / "part-00000.parquet")
    earlier = BAD - dt.timedelta(days=3)
    quality.keep(settings, quality.QualityReport("assessment_events", earlier.isoformat(), rows=10, evaluated=1,
                                                 failures=[quality.Failure("device: unknown label", "device", "error",
                                                                           1, breach="unknown label")]))
    with pytest.raises(recover.RecoveryError, match=f"{BAD} still fails: assessment_events: it reads {earlier}, which "
                                                    "failed too: name it as well"):
        recover.recover(settings, [BAD], echo=lambda _: None)


def test_a_busy_airflow_is_asked_again_and_one_that_stays_busy_is_named(monkeypatch):
    """Airflow answers 503 or 500 "Database error" while SQLite is locked by its scheduler
    (``make airflow``); the client waits and asks again, and says what to do if it stays busy.
    An HTTP server on localhost stands in for Airflow's API: the client is what is tested."""
    import http.server
    import json
    import threading

    monkeypatch.setattr(recover, "BUSY_RETRY_S", (0.01, 0.01, 0.01))
    busy = {"left": 2}

    class Api(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 (the stdlib's name)
            self.rfile.read(int(self.headers["Content-Length"]))
            code, body = ((503, {"detail": "Database is locked."}) if busy["left"] % 2 else
                          (500, {"detail": {"reason": "Database error"}})) if busy["left"] else (200, {"id": 7})
            busy["left"] -= 1
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(json.dumps(body).encode())

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Api)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        api = recover.AirflowApi(f"http://127.0.0.1:{server.server_port}")
        assert api.backfill("d", BAD, BAD, max_active_runs=1, reprocess="none") == 7
        busy["left"] = 10
        with pytest.raises(recover.RecoveryError, match=r"stayed busy .*Database .*run `ioc recover` again"):
            api.backfill("d", BAD, BAD, max_active_runs=1, reprocess="none")
    finally:
        server.shutdown()
