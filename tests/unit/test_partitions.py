"""Partition registry, versioned writes and repair on the local backend (tests/aws: on Glue)."""

from __future__ import annotations

import datetime as dt
import shutil
import sqlite3
from pathlib import Path

import pytest

from ioc_analytics.analytics import pipeline
from ioc_analytics.backends import get_backend
from ioc_analytics.errors import NoDataError
from ioc_analytics.lake import partitions
from ioc_analytics.lake.catalog import load_catalog
from ioc_analytics.settings import get_settings
from tests.helpers import REPAIR_WINDOW, TODAY, check_repair, read_aggregate, repair_scenario


def _put(location: str, name: str) -> None:
    Path(location).mkdir(parents=True, exist_ok=True)
    (Path(location) / name).write_bytes(b"x")


def test_repair_registers_missing_repoints_behind_and_reports_stale_and_unfinished(tmp_path):
    settings = get_settings(lake_root=str(tmp_path / "lake"), state_dir=str(tmp_path / "state"))
    table = load_catalog(settings.lake_uri).table("daily_active_users")
    registry = get_backend(settings).registry
    expected = repair_scenario(table, _put, registry)
    lake = get_backend(settings).lake

    report = partitions.repair(lake, registry, table, REPAIR_WINDOW)

    check_repair(report, registry, table, expected)
    again = partitions.repair(lake, registry, table, REPAIR_WINDOW)
    assert (again.added, again.repointed) == ([], []), "a second repair has nothing to do"


def test_the_pipeline_step_repairs_aggregates_and_skips_projected_tables(sample_lake, tmp_path):
    day = TODAY - dt.timedelta(days=3)
    lake, state = tmp_path / "lake", tmp_path / "state"
    shutil.copytree(sample_lake, lake, ignore=shutil.ignore_patterns("aggregates"))
    settings = get_settings(lake_root=str(lake), state_dir=str(state))
    pipeline.build_aggregate(settings, day, "daily_active_users", {})
    before = read_aggregate(state, "daily_active_users", day)
    (state / "catalog.sqlite").unlink()  # the registry is lost: the aggregate disappears from queries
    with pytest.raises(NoDataError, match="daily_active_users has no data"):
        get_backend(settings).engine.query("SELECT * FROM daily_active_users")

    outcome = pipeline.repair_partitions(settings, day)

    assert outcome["assessment_events"] == outcome["ocean_scores"] == "projection"
    assert outcome["daily_active_users"]["added"] == [{"date": day.strftime("%Y/%m/%d")}]
    assert outcome["completion_rates"] == {"added": [], "repointed": [], "stale": [], "incomplete": 0}
    assert read_aggregate(state, "daily_active_users", day).equals(before)


def test_unregistered_data_is_invisible_as_on_athena(sample_lake, tmp_path):
    """A table without projection shows only registered partitions, whatever the folders hold."""
    day = TODAY - dt.timedelta(days=3)
    lake, state = tmp_path / "lake", tmp_path / "state"
    shutil.copytree(sample_lake, lake, ignore=shutil.ignore_patterns("aggregates"))
    settings = get_settings(lake_root=str(lake), state_dir=str(state))
    for d in (day, day - dt.timedelta(days=1)):
        pipeline.build_aggregate(settings, d, "daily_active_users", {})
    registry = get_backend(settings).registry
    table = load_catalog(settings.lake_uri).table("daily_active_users")
    with sqlite3.connect(state / "catalog.sqlite") as con:
        con.execute("DELETE FROM partitions WHERE key LIKE ?", (f'%{day.strftime("%Y/%m/%d")}%',))
    assert len(registry.partitions(table)) == 1
    rows = get_backend(settings).engine.query("SELECT date FROM daily_active_users").table.column("date").to_pylist()
    assert rows == [(day - dt.timedelta(days=1)).strftime("%Y/%m/%d")]


def test_concurrent_registrations_all_land(tmp_path):
    """Parallel registrations of one table (a backfill) all land: SQLite serialises them."""
    from concurrent.futures import ThreadPoolExecutor

    settings = get_settings(lake_root=str(tmp_path / "lake"), state_dir=str(tmp_path / "state"))
    table = load_catalog(settings.lake_uri).table("daily_active_users")
    registry = get_backend(settings).registry
    days = [f"2024/01/{d:02d}" for d in range(1, 29)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda d: registry.register(table, {"date": d}, f"/x/{d}/"), days))
    assert sorted(k[0] for k in registry.partitions(table)) == days


def test_publish_keeps_the_previous_version_and_a_write_still_in_progress(tmp_path):
    settings = get_settings(lake_root=str(tmp_path / "lake"), state_dir=str(tmp_path / "state"))
    table = load_catalog(settings.lake_uri).table("daily_active_users")
    registry, lake = get_backend(settings).registry, get_backend(settings).lake
    values = {"date": "2024/01/15"}

    def version(name, committed):
        location = partitions.version_location(table, values, name)
        _put(location, "part-00000.parquet")
        if committed:
            _put(location, partitions.COMMIT_MARKER)
        return location

    abandoned = version("v20240101T000000000000-000000", committed=False)  # a writer that died long ago
    oldest = version("v20240102T000000000000-111111", committed=True)
    previous = version("v20240103T000000000000-222222", committed=True)
    registry.register(table, values, previous)
    in_progress = version(partitions.new_version(), committed=False)  # another run, still writing
    current = partitions.version_location(table, values, partitions.new_version())
    _put(current, "part-00000.parquet")

    partitions.publish(lake, registry, table, values, current)

    assert registry.location(table, values) == current
    assert Path(current, partitions.COMMIT_MARKER).exists()
    kept = {p.name for p in Path(table.partition_location(values)).iterdir()}
    assert kept == {Path(previous).name, Path(in_progress).name, Path(current).name}
    assert not Path(abandoned).exists() and not Path(oldest).exists()


def _two_runs(tmp_path):
    settings = get_settings(lake_root=str(tmp_path / "lake"), state_dir=str(tmp_path / "state"))
    table = load_catalog(settings.lake_uri).table("daily_active_users")
    values = {"date": "2024/01/15"}
    older, newer = (partitions.version_location(table, values, partitions.new_version()) for _ in range(2))
    for location in (older, newer):
        _put(location, "part-00000.parquet")
    return table, values, get_backend(settings).registry, get_backend(settings).lake, older, newer


def test_a_publish_never_replaces_a_newer_version(tmp_path):
    """Two runs of one day: the later-started one published first; the earlier one then finishes."""
    table, values, registry, lake, older, newer = _two_runs(tmp_path)
    partitions.publish(lake, registry, table, values, newer)
    partitions.publish(lake, registry, table, values, older)
    assert registry.location(table, values) == newer and Path(newer, "part-00000.parquet").exists()


def test_a_publish_never_deletes_what_a_concurrent_run_just_registered(tmp_path):
    """The older run registers between the newer run's switch and its clean-up (the race a
    registry without compare-and-swap allows): the registered version must survive."""
    table, values, registry, lake, older, newer = _two_runs(tmp_path)
    real_register = registry.register

    def register_then_intrude(table_, values_, location):
        real_register(table_, values_, location)
        if location == newer:
            _put(older, partitions.COMMIT_MARKER)
            real_register(table_, values_, older)

    registry.register = register_then_intrude
    partitions.publish(lake, registry, table, values, newer)

    registered = registry.location(table, values)
    assert registered == older and Path(registered, "part-00000.parquet").exists()
    assert Path(newer, "part-00000.parquet").exists()
    # Repair then settles on the newest committed version, the rule publish follows too.
    registry.register = real_register
    report = partitions.repair(lake, registry, table, [values])
    assert report.repointed == [values] and registry.location(table, values) == newer
