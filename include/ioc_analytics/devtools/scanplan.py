"""What the local engine would read for a query, without running it (the benchmarks' scan planning:
bench/run.py sizes a day's reads from it)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ioc_analytics.backends.local.engine import LocalEngine


@dataclass
class ScanPlan:
    """What one table reference of a query would read (:func:`scan_plan`)."""

    table: str
    files: list[str]
    columns: set[str]
    #: ``(column, operator, value)``: the WHERE's comparisons of a data column with a constant.
    bounds: list[tuple[str, str, object]]
    #: The columns read only by those comparisons.
    filter_only: set[str]


def scan_plan(engine: LocalEngine, sql: str, parameters: Sequence[object] = ()) -> list[ScanPlan]:
    """What the query would read, without running it: per table reference, the files of the
    partitions it selects, the columns it reads, and the comparisons that the row groups'
    statistics can decide."""
    plan = engine.plan(sql, list(parameters), with_bounds=True)
    return [ScanPlan(s.table.name, s.files, s.columns_read, s.bounds, s.filter_only) for s in plan.scans]
