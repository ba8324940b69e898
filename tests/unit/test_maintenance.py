"""Weekly maintenance and the monthly cost report on the local backend, on a generated lake and the
real engine's query log."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from ioc_analytics.backends import get_backend
from ioc_analytics.devtools.faults import inject_fault
from ioc_analytics.devtools.generate import generate_lake
from ioc_analytics.errors import DataQualityError
from ioc_analytics.jsonlines import JsonLines
from ioc_analytics.lake.catalog import load_catalog
from ioc_analytics.operations import maintenance
from ioc_analytics.settings import get_settings

TODAY = dt.datetime.now(dt.UTC).date()
START, END = TODAY - dt.timedelta(days=6), TODAY


@pytest.fixture()
def settings(tmp_path):
    lake = tmp_path / "lake"
    generate_lake(lake, START, 7, 300, seed=5)
    return get_settings(backend="local", lake_root=str(lake), state_dir=str(tmp_path / "state"))


def report(settings, path: str) -> dict:
    return json.loads(Path(f"{settings.lake_uri}/maintenance/{path}.json").read_text())


def test_the_weeks_most_expensive_queries_count_each_sql_once_and_say_what_to_change(settings):
    engine = get_backend(settings).engine
    tags = {"dag_id": "ioc_daily_analytics", "task_id": "completion_rates.build"}
    for day in (START, START + dt.timedelta(days=1), START + dt.timedelta(days=2)):
        engine.query("SELECT device, COUNT(*) AS n FROM assessment_events WHERE date = ? GROUP BY device",
                     [day.strftime("%Y/%m/%d")], tags=tags)
    engine.query("SELECT * FROM assessment_events", tags={"dag_id": "adhoc", "task_id": "notebook"})
    # The week to the day the queries ran (the engine stamps them with the wall clock, which may
    # have passed midnight since this module was imported).
    end = dt.datetime.now(dt.UTC).date()
    start = end - dt.timedelta(days=6)
    found = maintenance.expensive_queries(settings, start, end)
    assert found["queries_in_week"] == 4 and len(found["top"]) == 2
    daily = next(q for q in found["top"] if q["runs"] == 3)
    assert daily["run_by"] == ["ioc_daily_analytics.completion_rates.build"] and daily["change"] == []
    scan = next(q for q in found["top"] if q["runs"] == 1)
    assert scan["run_by"] == ["adhoc.notebook"]
    assert scan["change"] == ["filter on the partition keys (date, or year and month)", "name the columns it needs"]
    assert report(settings, f"weekly/{start}/expensive_queries")["top"] == found["top"]
    markdown = Path(found["kept_at"]).read_text()
    assert "| adhoc.notebook |" in markdown and "SELECT * on the raw table" in markdown


def test_every_partition_finding_gets_its_advice():
    from ioc_analytics.cost.usage import QueryRecord

    def record(sql):
        return QueryRecord(sql, "ioc-analytics", dt.datetime.now(dt.UTC), "SUCCEEDED", 0, 0, 0.1, sql)

    ranked = maintenance._rank([record("SELECT device FROM assessment_events WHERE assessment_type = 'career'"),
                                record("SELECT device FROM assessment_events")])
    assert [q["change"] for q in ranked] == [["filter on the partition keys (date, or year and month)"]] * 2


def test_the_query_log_keeps_45_days_as_athenas_history_does(settings):
    log = JsonLines(settings.query_log_path)
    for age in (50, 46, 44, 0):
        stamp = dt.datetime.combine(TODAY - dt.timedelta(days=age), dt.time(6), dt.UTC)
        log.append({"query_id": f"q{age}", "submitted_at": stamp.isoformat(), "state": "SUCCEEDED"})
    assert maintenance.expired_results(settings, TODAY) == {"removed": 2, "kept_days": 45}
    assert [r["query_id"] for r in log] == ["q44", "q0"]
    log.append({"query_id": "new", "submitted_at": dt.datetime.now(dt.UTC).isoformat(), "state": "SUCCEEDED"})
    assert [r["query_id"] for r in log] == ["q44", "q0", "new"], "appends after a rewrite land in the new file"


def test_schema_drift_names_the_file_and_fails_after_keeping_the_report(settings):
    assert maintenance.schema_drift(settings, START, END)["drift"] == []
    day = START + dt.timedelta(days=3)
    inject_fault(settings.lake_uri, day, "column-added", "career")
    with pytest.raises(DataQualityError,
                       match=r"1 of \d+ files .* differ from the contract \(assessment_events; first: "):
        maintenance.schema_drift(settings, START, END)
    drift = report(settings, f"weekly/{START}/schema_drift")["drift"]
    assert len(drift) == 1 and f"{day:%Y/%m/%d}/career/" in drift[0]["file"] and drift[0]["unexpected"]


def test_a_partition_of_many_small_files_is_compacted_and_reads_the_same(settings):
    day = START + dt.timedelta(days=1)  # settled: more than 2 days old
    table = load_catalog(settings.lake_uri).table("assessment_events")
    folder = Path(table.partition_location({"date": day.strftime("%Y/%m/%d"), "assessment_type": "personality"}))
    (original,) = folder.glob("*.parquet")
    data = pq.read_table(original)
    original.unlink()
    for n in range(12):
        pq.write_table(data.slice(n * len(data) // 12, len(data) // 12 + (len(data) if n == 11 else 0)),
                       folder / f"part-{n:02d}.parquet")
    query = "SELECT COUNT(*) AS n, COUNT(DISTINCT session_id) AS s FROM assessment_events WHERE date = ?"
    before = get_backend(settings).engine.query(query, [day.strftime("%Y/%m/%d")]).table.to_pylist()
    found = maintenance.small_files(settings, START, END, today=TODAY)
    assert [(f["partition"]["assessment_type"], f["files"], f.get("compacted_into")) for f in found["partitions"]] == [
        ("personality", 12, 1)]
    assert [p.name for p in folder.iterdir()] == ["part-compacted.parquet"]
    assert get_backend(settings).engine.query(query, [day.strftime("%Y/%m/%d")]).table.to_pylist() == before
    assert not list(folder.parent.glob(".*")), "no hidden folders left behind"
    # Recent partitions are left alone: the daily DAG may still read them.
    assert maintenance.small_files(settings, START, END, today=START + dt.timedelta(days=2))["partitions"] == []


def test_registered_partitions_that_hold_nothing_are_unregistered(settings, tmp_path):
    table = load_catalog(settings.lake_uri).table("daily_active_users")
    registry = get_backend(settings).registry
    registry.register(table, {"date": "2024/01/15"}, f"{settings.lake_uri}/aggregates/daily_active_users/nowhere/")
    kept = {"date": START.strftime("%Y/%m/%d")}
    get_backend(settings).engine.replace_partition(
        "daily_active_users", kept, "SELECT 1 AS unique_users, 2 AS total_sessions, 1 AS completed_sessions, "
        "0 AS returning_users")
    found = maintenance.empty_partitions(settings)
    assert [(r["table"], r["partition"]) for r in found["unregistered"]] == [("daily_active_users",
                                                                               {"date": "2024/01/15"})]
    assert set(registry.partitions(table)) == {(kept["date"],)}


def test_the_monthly_report_totals_the_month_by_task_against_the_budget(settings):
    log = JsonLines(settings.query_log_path)
    month = dt.date(2024, 2, 1)
    for n, (task, cost) in enumerate([("a.build", 0.5), ("a.build", 0.25), ("b.check", 1.0), ("b.check", 0.0)]):
        stamp = dt.datetime.combine(month + dt.timedelta(days=n * 7), dt.time(3), dt.UTC)
        log.append({"query_id": f"q{n}", "submitted_at": stamp.isoformat(), "state": "FAILED" if not cost else
                    "SUCCEEDED", "cost_usd": cost, "bytes_scanned": 0, "workgroup": settings.workgroup,
                    "query": f"SELECT {n}", "tags": {"dag_id": "d", "task_id": task}})
    log.append({"query_id": "jan", "submitted_at": "2024-01-31T23:59:00+00:00", "state": "SUCCEEDED",
                "cost_usd": 2.0, "workgroup": settings.workgroup, "query": "SELECT 9", "tags": {}})
    tight = get_settings(**{**dataclasses.asdict(settings), "monthly_budget_usd": 2.0})
    found = maintenance.monthly_cost_report(tight, dt.date(2024, 2, 1))
    assert found["month"] == "2024-02" and found["cost_usd"] == 1.75 and found["previous_month_usd"] == 2.0
    assert found["queries"] == 4 and found["failed"] == 1 and len(found["by_day"]) == 29
    assert found["by_task"] == {"d.b.check": 1.0, "d.a.build": 0.75}
    assert "$1.7500 of the $2.00 budget (88%)" in Path(found["kept_at"]).read_text()
    # A day the cost monitor kept counts as it kept it (on aws: costed query by query, where
    # CloudWatch knows only the day's sums).
    from ioc_analytics.cost import monitor

    monitor._write(tight, "daily_costs", dt.date(2024, 2, 8), [{
        "workgroup": tight.workgroup, "queries": 1, "failed": 0, "failure_rate": 0.0, "bytes_scanned": 0,
        "cost_usd": 0.4, "max_query_cost_usd": 0.4, "month_to_date_usd": 0.4, "projected_month_usd": 0.4,
        "budget_usd": 2.0, "anomalies": 0}])
    kept = maintenance.monthly_cost_report(tight, dt.date(2024, 2, 1))
    assert kept["cost_usd"] == pytest.approx(1.75 - 0.25 + 0.4) and kept["by_day"]["2024-02-08"] == 0.4
