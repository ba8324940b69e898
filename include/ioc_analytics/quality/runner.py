"""The contract's rules as Great Expectations suites, run as SQL on DuckDB over views of the
slices' files (see the package docstring for why DuckDB, and why a private GX attribute)."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ioc_analytics.backends import get_backend
from ioc_analytics.lake import contract
from ioc_analytics.lake.catalog import Table
from ioc_analytics.lake.contract import ERROR, WARNING, Check
from ioc_analytics.lake.store import Partition
from ioc_analytics.quality.reports import SAMPLES, Failure, QualityReport
from ioc_analytics.quality.slices import Slice
from ioc_analytics.settings import Settings

log = logging.getLogger("ioc_analytics.quality")

#: DuckDB's memory for a validation: past it, DuckDB spills to disk instead of growing, so the
#: worker's memory stays flat whatever the day's volume (bench/bench_quality.py).
DUCKDB_MEMORY = "256MB"

#: GX's name for each contract severity.
_GX_SEVERITY = {ERROR: "critical", WARNING: "warning"}

#: Great Expectations logs about 470 INFO lines a validation (and thousands at DEBUG), some that
#: read like errors (its dialect probe's ``ProgrammingError ... pg_catalog.pg_collation``): in a
#: failed task's log they bury the gate's own message. Its loggers are held at WARNING (GX sets
#: some of its own to INFO when imported), so what GX warns of still shows, and what the gate found
#: is the log's last word.
QUIET = ("great_expectations", "duckdb_engine", "sqlalchemy")


def _quiet_third_party() -> None:
    for name in [*QUIET, *logging.root.manager.loggerDict]:
        if name.split(".")[0] in QUIET and logging.getLogger(name).level < logging.WARNING:
            logging.getLogger(name).setLevel(logging.WARNING)


def suite(table_name: str) -> list[Check]:
    """A raw table's contract as its GX suite: one expectation per column (and unique key), each
    reporting every rule of it that rows break."""
    return contract.checks(table_name)


def run_suite(settings: Settings, table: Table, day: dt.date, sound: list[Slice], checks: list[Check],
               report: QualityReport) -> None:
    """Validate the sound slices together; if a check fails, run it again on each slice to say where."""
    backend = get_backend(settings)
    with backend.scratch() as scratch:
        database = scratch / "batch.duckdb"
        lake = backend.lake  # on aws, the objects are copied to the scratch folder first
        readable = [Partition(piece.values, [lake.fetch(f, Path(scratch) / f"{i}-{n}.parquet")
                                             for n, f in enumerate(piece.files)]) for i, piece in enumerate(sound)]
        columns = [piece.columns for piece in sound]
        views = {"day": (readable, columns)}
        if len(sound) > 1:
            views |= {f"slice_{i}": ([readable[i]], [columns[i]]) for i in range(len(sound))}
        _create_views(database, table, day, views)
        validator = _Validator(database)
        failures = validator.run("day", checks)
        if not failures:
            return
        if len(sound) == 1:
            for failure in failures:
                failure.partition = sound[0].label
            sound[0].failures += failures
            return
        failed = {f.check for f in failures}
        again = [c for c in checks if failed & {r.name for r in c.rules}]
        found = set()
        for i, piece in enumerate(sound):
            for failure in validator.run(f"slice_{i}", again):
                if failure.check in failed:
                    failure.partition = piece.label
                    piece.failures.append(failure)
                    found.add(failure.check)
        # What no single slice shows (a duplicate across two partitions) belongs to the whole day.
        for failure in failures:
            if failure.check not in found:
                failure.partition = f"{table.name} {day}"
                report.failures.append(failure)


def _create_views(database: Path, table: Table, day: dt.date,
                  views: dict[str, tuple[list[Partition], list[set[str]]]]) -> None:
    import duckdb

    from ioc_analytics.engine.views import view_body

    start = dt.datetime.combine(day, dt.time())
    # A literal, not a parameter: DuckDB views cannot hold parameters, and the value is a date
    # this function formats itself, never user input.
    end = start + dt.timedelta(days=1)
    # A monthly partition's slice is its rows of the day; with them, the rows of the same files that
    # belong to no day of the month (no timestamp, or one outside the month), which no day's
    # aggregates would read: the contract's null and in-partition rules report them, not drop them.
    on_day = ("" if "date" in table.partition_names else
              f" WHERE (\"timestamp\" >= TIMESTAMP '{start}' AND \"timestamp\" < TIMESTAMP '{end}')"
              " OR \"timestamp\" IS NULL OR year(\"timestamp\") <> CAST(\"year\" AS INTEGER)"
              " OR month(\"timestamp\") <> CAST(\"month\" AS INTEGER)")
    # Timestamps as naive UTC whether a file marks them UTC-adjusted or not: GX's connection keeps
    # the machine's time zone, in which DuckDB would compare an adjusted one with the day's bounds.
    stamps = [c.name for c in contract.contract(table.name).columns if c.type == "timestamp"]
    naive = (" REPLACE (" + ", ".join(f'make_timestamp(epoch_us("{c}")) AS "{c}"' for c in stamps) + ")"
             if stamps else "")
    con = duckdb.connect(str(database))
    try:
        for name, (selected, present) in views.items():
            body = view_body(table, selected, present)
            con.execute(f"CREATE OR REPLACE VIEW {name} AS SELECT * FROM (SELECT *{naive} FROM ({body})){on_day}")
    finally:
        con.close()


class _Validator:
    """One GX ephemeral context over the DuckDB file; ``run(view, rules)`` validates one view."""

    def __init__(self, database: Path) -> None:
        _quiet_third_party()  # before the import, which logs its registrations
        import great_expectations as gx

        _quiet_third_party()  # and after it, for the loggers GX sets to INFO itself
        from great_expectations.data_context.types.base import ProgressBarsConfig
        from great_expectations.execution_engine import sqlalchemy_execution_engine as gx_sql

        _persist_duckdb_connections(gx_sql)
        self.gx = gx
        context = gx.get_context(mode="ephemeral")
        context.variables.progress_bars = ProgressBarsConfig(globally=False)  # task logs, not a terminal
        self.source = context.data_sources.add_sql(
            name="lake", create_temp_table=False,
            connection_string=f"duckdb:///{database}?memory_limit={DUCKDB_MEMORY}")

    def run(self, view: str, checks: Iterable[Check]) -> list[Failure]:
        """The rules that some rows of ``view`` break, one failure each (GX's COMPLETE result format
        returns the rows of an unexpected-rows query: here one per broken rule)."""
        by_name = {check.name: check for check in checks}
        gx = self.gx
        expectations = [gx.expectations.UnexpectedRowsExpectation(
            description=check.name, unexpected_rows_query=check.query,
            severity=_GX_SEVERITY[min((r.severity for r in check.rules), key=[ERROR, WARNING].index)])
            for check in by_name.values()]
        batch = self.source.add_table_asset(name=view, table_name=view).add_batch_definition_whole_table(
            "all").get_batch()
        outcome = batch.validate(gx.ExpectationSuite(name=f"{view}_contract", expectations=expectations),
                                 result_format={"result_format": "COMPLETE"})
        failures = []
        for result in outcome.results:
            if result.success:
                continue
            check = by_name[result.expectation_config.description]
            exception = (result.exception_info or {}).get("exception_message")
            if exception:  # the query itself failed: every rule of the check is unknown, so it is an error
                failures += [Failure(r.name, r.column, ERROR, None, detail=f"the check could not run: {exception}",
                                     breach=r.breach) for r in check.rules]
                continue
            rules = {r.name: r for r in check.rules}
            for row in result.result.get("details", {}).get("unexpected_rows") or []:
                rule = rules[row["rule"]]
                failures.append(Failure(rule.name, rule.column, rule.severity, int(row["rows"]),
                                        [_plain(v) for v in list(row["samples"] or [])[:SAMPLES]],
                                        detail=rule.expects, breach=rule.breach))
        return failures


def _plain(value: Any) -> Any:
    return value if isinstance(value, (int, float, str, type(None))) else str(value)


def _persist_duckdb_connections(gx_sql: Any) -> None:
    class _DuckDB(str):  # GX compares dialect names as strings and reads ``.value`` elsewhere
        value = "duckdb"

    if "duckdb" not in gx_sql._PERSISTED_CONNECTION_DIALECTS:
        gx_sql._PERSISTED_CONNECTION_DIALECTS = (*gx_sql._PERSISTED_CONNECTION_DIALECTS, _DuckDB("duckdb"))
