"""What DuckDB's profiler says a query read: the bytes (billed as Athena bills its scans) and, per
table scan, the rows of the row groups it read."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass

import duckdb

from ioc_analytics.errors import (
    QueryError,
)

DATA_READ = re.compile(r"Data Read:\s*([\d.]+)\s*(B|kB|MB|GB|TB)\b")


UNITS = {"B": 1, "kB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12}


def scanned_bytes(con: duckdb.DuckDBPyConnection) -> int:
    """The bytes the last query read, from DuckDB's profiler.

    When DuckDB answers a query from Parquet statistics alone (``COUNT(*)``, ``MAX`` of one file:
    the plan is a constant "Column Data Scan"), its JSON profile says only ``"result": "error"``
    (DuckDB 2.0.1); the text summary still reports the footer bytes it read, so use that.
    """
    profile = json.loads(con.get_profiling_information(format="json"))
    if "query" in profile:
        return int(profile["query"]["total_bytes_scanned"])
    match = DATA_READ.search(con.get_profiling_information(format="text"))
    if match is None:
        raise QueryError("DuckDB's profiler reported no bytes scanned for this query")
    return round(float(match.group(1)) * UNITS[match.group(2)])


@dataclass
class ScanProfile:
    """One table scan of a query run: the table, the columns read, the rows of the row groups read."""

    table: str
    columns: list[str]
    rows: int


def table_scans(profile: dict, tables: Mapping[str, str]) -> list[ScanProfile]:
    """The ``TABLE_SCAN`` operators of a JSON profile whose files belong to ``tables`` (path to
    table name)."""
    found = []
    pending = list(profile.get("children", [])) + list(profile.get("operator", []))
    while pending:
        node = pending.pop()
        pending += node.get("children", [])
        info = node.get("extra_info", {})
        if node.get("type") != "TABLE_SCAN" or "Filename(s)" not in info:
            continue
        first = str(info["Filename(s)"]).split(",")[0].strip()
        projections = info.get("Projections", [])
        columns = projections if isinstance(projections, list) else str(projections).replace(",", "\n").split("\n")
        if first in tables:
            found.append(ScanProfile(tables[first], [c.strip() for c in columns if c.strip()],
                                     int(node.get("rows_scanned", 0))))
    return found
