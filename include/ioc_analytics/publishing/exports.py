"""Exports: every validated aggregate of a date as CSV, Excel, JSON and Parquet, with a manifest.

**Layout and atomicity.** A date's export set is written into a new version folder, then its
manifest is written at a fixed place; the manifest is the commit point::

    <exports root>/<table>/<date>/manifest.json          which version is current, and what it holds
    <exports root>/<table>/<date>/<version>/<table>_<date>.{csv,xlsx,json,parquet}

A reader reads ``manifest.json`` first, then the files it lists: it sees the old set or the new
one, never half of either (one object write is atomic on S3 and, by rename, on a local disk). A
re-run writes a new version and replaces the manifest; the version before it is kept for
readers that are still reading it, older ones are deleted.

**Privacy.** Personality data is sensitive: in an aggregate that breaks people down by an
attribute (``tables.BREAKDOWN_USERS`` names the column counting the distinct users behind each
row), every numeric cell of a row with fewer than ``IOC_MIN_GROUP_USERS`` users is blanked (the
count itself included) before anything is written: :func:`suppress_small_groups`, which the
query API applies to its answers too. The manifest says how many rows and cells were
suppressed. Aggregates that are not breakdowns of people (the day's totals, a facet over
everyone) are exported whole.

**Only validated data.** A date is exported only if the aggregate's quality report for it (kept
by its ``check`` task) passed; the manifest quotes that report.

**Safe to open.** The data contract refuses formula-like labels at the gate; as a second line, every
text cell that a spreadsheet would evaluate (``safety.py``: a leading ``=``, ``+``, ``-``, ``@``,
tab or CR) is written with a leading single quote in the CSV and Excel files, as OWASP's CSV
injection guidance says, and every Excel text cell is typed as text, never as a formula. Numbers
stay numbers; JSON and Parquet keep the raw text. The manifest counts the neutralised cells.

The four files are written from the query result in the worker: an aggregate partition is tens
of rows, so this is not the place for Athena ``UNLOAD``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import logging
import math
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from sqlglot import exp

from ioc_analytics import safety
from ioc_analytics.backends import get_backend
from ioc_analytics.engine import lineage
from ioc_analytics.errors import DataQualityError
from ioc_analytics.lake import partitions, sql
from ioc_analytics.lake.catalog import Table
from ioc_analytics.lake.tables import BREAKDOWN_USERS
from ioc_analytics.settings import Settings

log = logging.getLogger(__name__)

FORMATS = ("csv", "xlsx", "json", "parquet")
#: Excel's rows per sheet (1,048,576) less the header row. A larger table is split across
#: sheets (``<table>``, ``<table> (2)``, ...), never truncated.
EXCEL_ROWS_PER_SHEET = 1_048_575
MANIFEST = "manifest.json"


def export_sql(table: Table, day: dt.date) -> sql.Rendered:
    """The date's partition of ``table``, every column."""
    name = exp.to_identifier(table.name).sql("athena")
    return sql.Rendered(f"SELECT * FROM {name} WHERE date = ?", [sql.date_values(day)["lake_date"]])


@dataclass
class Suppression:
    users_column: str | None
    min_group_users: int
    rows: int = 0
    cells: int = 0


def suppress_small_groups(data: pa.Table, users_column: str | None, min_users: int) -> tuple[pa.Table, Suppression]:
    """Blank every numeric cell (the user count included) of the rows with fewer than
    ``min_users`` in ``users_column`` (a missing count counts as too few). The labels stay, so a
    reader sees that the group exists and was suppressed. No-op without a users column."""
    report = Suppression(users_column, min_users)
    if users_column is None or data.num_rows == 0:
        return data, report
    if users_column not in data.column_names:
        raise DataQualityError(
            f"the rows lack their {users_column!r} column, so small groups cannot be suppressed and nothing is "
            f"published: rebuild the partition (its DDL has the column since the exports began)")
    counts = data.column(users_column)
    small = pc.fill_null(pc.less(counts, min_users), True)
    numeric = [i for i, f in enumerate(data.schema) if pa.types.is_integer(f.type) or pa.types.is_floating(f.type)]
    for i in numeric:
        column = data.column(i)
        data = data.set_column(i, data.field(i), pc.if_else(small, pa.nulls(len(column), column.type), column))
    report.rows = pc.sum(small.cast(pa.int64())).as_py() or 0
    report.cells = report.rows * len(numeric)
    return data, report


@dataclass
class ExportFile:
    format: str
    name: str
    data: bytes
    rows: int
    #: Text cells that a spreadsheet would have evaluated, written neutralised (CSV and Excel).
    neutralised: int = 0

    def describe(self, location: str) -> dict[str, Any]:
        return {"format": self.format, "path": location + self.name, "rows": self.rows, "bytes": len(self.data),
                "sha256": hashlib.sha256(self.data).hexdigest(), "neutralised_cells": self.neutralised}


def spreadsheet_safe(table: pa.Table) -> tuple[pa.Table, int]:
    """The table with every text cell that a spreadsheet would evaluate neutralised
    (``safety.neutralise``: a leading single quote, as OWASP describes), and how many were.
    Numbers, dates and the other columns are left as they are."""
    changed = 0
    for i, column in enumerate(table.schema):
        kind = column.type.value_type if pa.types.is_dictionary(column.type) else column.type
        if not (pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_string_view(kind)):
            continue
        text = table.column(i).cast(pa.string())  # dictionary-encoded or a view: plain text, as it reads
        safe = [safety.neutralise(v) if v is not None else (None, False) for v in text.to_pylist()]
        hits = sum(flag for _, flag in safe)
        changed += hits
        table = table.set_column(i, pa.field(column.name, pa.string()),
                                 pa.array([v for v, _ in safe], pa.string()) if hits else text)
    return table, changed


def render_file(table: pa.Table, stem: str, fmt: str, rows_per_sheet: int = EXCEL_ROWS_PER_SHEET) -> ExportFile:
    """The table as one file ``<stem>.<fmt>``. CSV and Excel, which spreadsheets open, hold no text
    they would evaluate; JSON and Parquet keep the raw values (JSON has no NaN: a non-finite
    number is null there)."""
    neutralised = 0
    if fmt == "csv":
        safe, neutralised = spreadsheet_safe(table)
        buffer = io.BytesIO()
        pacsv.write_csv(safe, buffer)
        data = buffer.getvalue()
    elif fmt == "parquet":
        buffer = io.BytesIO()
        pq.write_table(table, buffer, compression="snappy")
        data = buffer.getvalue()
    elif fmt == "json":
        data = json.dumps(json_rows(table), indent=1, allow_nan=False).encode()
    elif fmt == "xlsx":
        safe, neutralised = spreadsheet_safe(table)
        data = _xlsx(safe, stem, rows_per_sheet)
    else:
        raise ValueError(f"{fmt!r} is not one of {', '.join(FORMATS)}")
    return ExportFile(fmt, f"{stem}.{fmt}", data, table.num_rows, neutralised)


def render_files(table: pa.Table, stem: str, rows_per_sheet: int = EXCEL_ROWS_PER_SHEET) -> list[ExportFile]:
    """The table in every format."""
    return [render_file(table, stem, fmt, rows_per_sheet) for fmt in FORMATS]


def json_rows(table: pa.Table) -> list[dict[str, Any]]:
    """The rows as JSON values: text as it is, dates and times as text, non-finite numbers as null."""
    def plain(value: Any) -> Any:
        if isinstance(value, float) and not math.isfinite(value):
            return None
        if isinstance(value, dict):
            return {str(k): plain(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        if isinstance(value, (str, int, float, bool, type(None))):
            return value
        return str(value)

    return [plain(row) for row in table.to_pylist()]


def _xlsx(table: pa.Table, title: str, rows_per_sheet: int) -> bytes:
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

    book = Workbook(write_only=True)  # streams rows: memory stays flat for large sheets
    for sheet_number, start in enumerate(range(0, max(table.num_rows, 1), rows_per_sheet), start=1):
        suffix = f" ({sheet_number})" if sheet_number > 1 else ""
        sheet = book.create_sheet(title=title[: 31 - len(suffix)] + suffix)  # Excel's 31-character limit
        sheet.append(table.column_names)
        for batch in table.slice(start, rows_per_sheet).to_batches():
            for row in zip(*(column.to_pylist() for column in batch.columns), strict=True):
                cells = []
                for value in row:
                    cell = WriteOnlyCell(sheet, _excel_value(value, ILLEGAL_CHARACTERS_RE))
                    if isinstance(cell.value, str):
                        cell.data_type = "s"  # text is text: never a formula, whatever it holds
                    cells.append(cell)
                sheet.append(cells)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def _excel_value(value: Any, illegal: re.Pattern[str]) -> Any:
    # Excel has no time zones, no nested values, no NaN (a file holding one is "corrupt" to Excel),
    # and no control characters (openpyxl refuses them): shown as U+FFFD.
    if isinstance(value, dt.datetime):
        return value.replace(tzinfo=None)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (list, dict)):
        value = json.dumps(value, default=str)
    if isinstance(value, str):
        return illegal.sub("\ufffd", value)
    return value


def export_aggregate(settings: Settings, day: dt.date, name: str, tags: Mapping[str, str]) -> dict[str, Any]:
    """Publish the date's export set of aggregate ``name``; returns its manifest."""
    table = get_backend(settings).catalog.table(name)
    validation = _validation(settings, name, day)
    query = export_sql(table, day)
    result = get_backend(settings).engine.query(query.sql, query.parameters, tags=tags)
    data, suppression = suppress_small_groups(result.table, BREAKDOWN_USERS.get(name), settings.min_group_users)

    store = get_backend(settings).exports
    folder = f"{store.root}/{name}/{day.isoformat()}/"
    previous = _read_manifest(store, folder)
    version = partitions.new_version()
    location = f"{folder}{version}/"
    files = render_files(data, f"{name}_{day.isoformat()}")
    for file in files:
        store.put_bytes(location + file.name, file.data)
        lineage.wrote_file(location + file.name)
    manifest = {
        "table": name, "date": day.isoformat(), "version": version, "location": location,
        "exported_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "rows": data.num_rows,
        "suppression": asdict(suppression),
        # Text that a spreadsheet would evaluate, prefixed with ' in the CSV and Excel files.
        "neutralised_cells": max(f.neutralised for f in files),
        "source": {"partition": get_backend(settings).registry.location(table, {"date": sql.date_values(day)[
            "lake_date"]}), "validation": validation},
        "files": [file.describe(location) for file in files],
    }
    store.put_bytes(folder + MANIFEST, json.dumps(manifest, indent=2).encode())  # the commit point
    lineage.wrote_file(folder + MANIFEST)
    keep = {location, previous.get("location")} if previous else {location}
    for old in {f.path.rsplit("/", 1)[0] + "/" for f in store.list_all(folder)} - keep - {folder}:
        store.delete_prefix(old)
    log.info("exported %s for %s: %d rows in %s, %d rows suppressed (fewer than %d users); manifest %s%s",
             name, day, data.num_rows, ", ".join(FORMATS), suppression.rows, settings.min_group_users, folder, MANIFEST)
    return manifest


def _read_manifest(store: Any, folder: str) -> dict[str, Any]:
    raw = store.get_bytes(folder + MANIFEST)
    return json.loads(raw) if raw else {}


def _validation(settings: Settings, name: str, day: dt.date) -> dict[str, Any]:
    from ioc_analytics.quality import read_report

    path = f"{settings.lake_uri}/quality/{name}/{day.isoformat()}.json"
    report = read_report(get_backend(settings).lake, path)
    if not report or not report.get("passed"):
        state = "failed its checks" if report else "has not been checked"
        raise DataQualityError(f"{name} for {day.isoformat()} {state} (no passing report at {path}): only "
                               "validated data is exported; run the day's check task first")
    return {"passed": True, "checks": report["evaluated"], "validated_at": report["validated_at"], "report": path}
