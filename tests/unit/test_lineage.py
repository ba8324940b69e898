"""The lineage a step reports (ioc_analytics.engine.lineage): the partitions it says each query read
are the ones the local engine's partition pruning read, for every SQL file the pipeline runs; the
cost is the sum of the queries' own statistics; what a build publishes is the version the catalog
points at. The events as the Airflow provider writes them are tests/system/test_demo_runs.py's."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from openlineage.client.serde import Serde

from ioc_analytics.analytics import pipeline
from ioc_analytics.backends import get_backend
from ioc_analytics.engine import lineage
from ioc_analytics.errors import NoDataError
from ioc_analytics.lake import sql
from ioc_analytics.lake.tables import AGGREGATES, RAW_TABLES
from ioc_analytics.settings import SQL_DIR
from tests.helpers import TODAY

DAY = TODAY - dt.timedelta(days=2)


def _facet_partitions(facet: dict) -> list[dict[str, str]]:
    condition = facet["inputCondition"]
    assert condition["type"] == "partition", condition
    return [p["dimensions"] for p in condition["partitions"]]


def _statements() -> list[str]:
    """Every aggregate, state, hourly and check file of the pipeline."""
    names = [*AGGREGATES, *(f"checks/{n}" for n in AGGREGATES),
             *(f"{folder}/{p.stem}" for folder in ("state", "hourly")
               for p in sorted((SQL_DIR / folder).glob("*.sql")))]
    return [n for n in names if (SQL_DIR / f"{n}.sql").is_file()]


@pytest.mark.parametrize("name", _statements())
def test_the_partitions_a_query_is_said_to_read_are_those_the_engine_read(local_engine, name):
    rendered = sql.render_with(name, sql.values_for(name, DAY), sql.STATE_VARIANTS[0])
    reads = lineage.reads(local_engine.catalog, rendered.sql, rendered.parameters)
    try:
        plan = local_engine.plan(rendered.sql, list(rendered.parameters))
    except NoDataError:  # it reads only state, which this test derives none of: the day's, then
        assert reads and all(t not in RAW_TABLES and DAY.strftime("%Y/%m/%d") in c for t, c in reads), reads
        return
    assert [t for t, _ in reads] == list(dict.fromkeys(s.table.name for s in plan.scans))
    for table, condition in reads:
        dataset = lineage.Dataset("ns", table, conditions=[condition])
        facets = json.loads(Serde.to_json(lineage._input_facets(dataset)["subset"]))
        scanned = {tuple(sorted(p.values.items()))
                   for s in plan.scans if s.table.name == table for p in s.partitions}
        if facets["inputCondition"]["type"] != "partition":  # a range: every partition scanned is inside it
            bounds = [c["right"]["value"] for c in _leaves(facets["inputCondition"])]
            dates = {dict(p)["date"] for p in scanned}
            assert dates and min(bounds) <= min(dates) and max(dates) <= max(bounds), (table, bounds, dates)
            continue
        said = _facet_partitions(facets)
        # Each partition scanned is one the facet names (a key it leaves out is any value), and
        # each one it names was scanned, where the lake holds it (the raw tables, for the day;
        # this test derives no state).
        def named_by(p, named):
            return all(dict(p)[k] == v for k, v in named.items())

        assert all(any(named_by(p, named) for named in said) for p in scanned), name
        assert table not in RAW_TABLES or all(any(named_by(p, named) for p in scanned) for named in said), name


def _leaves(condition: dict) -> list[dict]:
    if condition["type"] == "binary":
        return _leaves(condition["left"]) + _leaves(condition["right"])
    return [condition]


def test_a_build_reports_its_reads_what_it_published_and_its_queries_cost(local_settings):
    backend = get_backend(local_settings)
    with lineage.recording(backend.engine.lineage_name) as record:
        stats = pipeline.build_aggregate(local_settings, DAY, "daily_active_users", {"task_id": "t", "ds": str(DAY)})
    log = [json.loads(line) for line in open(local_settings.query_log_path)]
    assert record.queries == len(log) > 1  # the state first, then the aggregate
    assert record.bytes_scanned == sum(q["bytes_scanned"] for q in log) > 0
    assert record.cost_usd == pytest.approx(sum(q["cost_usd"] for q in log))
    built = backend.catalog.table("daily_active_users")
    location = backend.registry.location(built, {"date": DAY.strftime("%Y/%m/%d")})
    namespace, name = backend.engine.lineage_name("daily_active_users")
    assert name == f"{local_settings.database}.daily_active_users" and namespace.startswith("duckdb://")
    assert record.outputs[(namespace, name)].partitions == [({"date": DAY.strftime("%Y/%m/%d")}, location)]
    assert location.startswith(built.location) and stats["state"] == "SUCCEEDED"

    emitted = lineage.operator_lineage(record)
    facet = json.loads(Serde.to_json(emitted.run_facets["ioc_cost"]))
    assert facet["bytesScanned"] == record.bytes_scanned and facet["queries"] == record.queries
    assert facet["_schemaURL"] == lineage.COST_FACET_SCHEMA
    [events] = [d for d in emitted.inputs if d.name.endswith(".assessment_events")]
    days = {p["date"] for p in _facet_partitions(json.loads(Serde.to_json(events.inputFacets["subset"])))}
    assert DAY.strftime("%Y/%m/%d") in days


def test_each_task_records_only_its_own_queries(local_engine):
    """A query outside a recording (the CLI) reports to none; two recordings one after the other (two
    tasks of ``airflow dags test`` in one process) each hold their own."""
    local_engine.query("SELECT count(*) AS n FROM assessment_events WHERE date = ?", [DAY.strftime("%Y/%m/%d")])
    with lineage.recording(local_engine.lineage_name) as first:
        local_engine.query("SELECT count(*) AS n FROM ocean_scores WHERE year = ? AND month = ?",
                           [f"{DAY:%Y}", f"{DAY:%m}"])
    with lineage.recording(local_engine.lineage_name) as second:
        pass
    assert first.queries == 1 and [n for _, n in first.inputs] == ["ioc_analytics.ocean_scores"]
    assert second.queries == 0 and not second.inputs and lineage.operator_lineage(second).inputs == []
