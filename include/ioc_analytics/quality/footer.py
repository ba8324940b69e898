"""The checks that read no rows, only the Parquet footers (S3 ranged GETs on ``aws``): every file is
Parquet, its columns are the contract's, of a type that reads as declared; the slice has rows; the
day's volume is in line with the same weekday of the trailing weeks; no file lies outside the
layout's partitions."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ioc_analytics.errors import BadDataFileError
from ioc_analytics.lake import contract, sources
from ioc_analytics.lake.catalog import Table
from ioc_analytics.lake.contract import ERROR, WARNING
from ioc_analytics.lake.store import DataFile, Lake, is_hidden
from ioc_analytics.quality.reports import SAMPLES, Failure
from ioc_analytics.quality.slices import Slice
from ioc_analytics.settings import Settings
from ioc_analytics.text import plural

log = logging.getLogger("ioc_analytics.quality")

#: The volume check compares the day with the same weekday of this many weeks before it.
VOLUME_WEEKS = 4

#: Day rows / trailing median outside WARN is a warning, outside ERROR an error.
VOLUME_WARN = (0.5, 2.0)

VOLUME_ERROR = (0.2, 5.0)


def footer_checks(read: Callable[[DataFile], Any], table: Table, piece: Slice, day: dt.date) -> list[Failure]:
    """Files are Parquet, their columns the contract's and of types that read as declared, and
    the slice has rows. One failure per column and class, naming the files."""
    failures: list[Failure] = []
    drift: dict[tuple[str, str], tuple[list[str], str]] = {}
    by_day = "date" not in table.partition_names
    for file in piece.files:
        name = Path(file.path).name
        try:
            meta = read(file)
        except BadDataFileError as err:
            failures.append(Failure("files are Parquet", None, ERROR, None, [name], detail=str(err),
                                    breach=contract.NOT_PARQUET))
            continue
        piece.rows += sources.rows_on(meta, day) if by_day else meta.num_rows
        schema = meta.schema.to_arrow_schema()
        piece.columns |= {f.name.lower() for f in schema}
        missing, extra, retyped = contract.schema_drift(table.name, schema)
        found = ([(contract.MISSING_COLUMN, c, "") for c in missing]
                 + [(contract.UNEXPECTED_COLUMN, c, "") for c in extra]
                 + [(contract.TYPE, *text.split(" is ", 1)) for text in retyped])
        for breach, column, detail in found:
            drift.setdefault((breach, column), ([], detail))[0].append(name)
    for (breach, column), (names, detail) in drift.items():
        failures.append(Failure(f"{column}: {breach}", column, ERROR, None, names[:SAMPLES], detail=detail,
                                breach=breach))
    if not failures and piece.rows == 0 and (piece.files or piece.required):
        failures.append(Failure("partition has rows", None, ERROR if piece.required else WARNING, 0,
                                detail=f"{len(piece.files)} files, no rows of {day.isoformat()}",
                                breach=contract.NO_ROWS))
    for failure in failures:
        failure.partition = piece.label
    return failures


def unknown_partitions(lake: Lake, table: Table, slices: list[Slice]) -> list[Failure]:
    """Files of the day in a folder that is no partition of the layout (an assessment type the
    DDL's projection does not list) are read by no engine: say so rather than drop them."""
    if "date" not in table.partition_names or len(table.partition_names) < 2:
        return []
    known = {table.partition_location(s.values).rstrip("/") for s in slices}
    day_folder = min(known).rsplit("/", 1)[0]
    strays = sorted({f.path.rsplit("/", 1)[0] for f in lake.list_all(f"{day_folder}/")
                     if f.path.rsplit("/", 1)[0] not in known
                     and not any(is_hidden(part) for part in f.path[len(day_folder):].split("/"))})
    if not strays:
        return []
    kinds = ", ".join(sorted(v for s in slices for k, v in s.values.items() if k != "date"))
    return [Failure("files are in partitions of the table", None, ERROR, None, strays[:SAMPLES],
                    partition=day_folder, breach=contract.UNKNOWN_PARTITION, detail=(
                        f"{plural(len(strays), 'folder')} that no engine reads; the known values are {kinds}: add "
                        "the new value to the DDL's projection and the contract, or move the files"))]


def volume_check(lake: Lake, table: Table, settings: Settings, day: dt.date, rows: int) -> list[Failure]:
    """The day's rows against the median of the same weekday over the last VOLUME_WEEKS weeks
    (weekly seasonality is the strongest in assessment traffic). Footers only."""
    history = []
    for week in range(1, VOLUME_WEEKS + 1):
        past = day - dt.timedelta(weeks=week)
        count = 0
        for values in sources.source_partitions(settings, past)[table.name]:
            for file in lake.partition_files(table, values):
                try:
                    meta = lake.footer(file)
                except BadDataFileError:
                    continue
                count += meta.num_rows if "date" in table.partition_names else sources.rows_on(meta, past)
        if count:
            history.append(count)
    if len(history) < 2 or rows == 0:
        return []  # too little history to judge (or no data at all, which the slices report)
    baseline = sorted(history)[len(history) // 2]
    ratio = rows / baseline
    if VOLUME_WARN[0] <= ratio <= VOLUME_WARN[1]:
        return []
    severity = WARNING if VOLUME_ERROR[0] <= ratio <= VOLUME_ERROR[1] else ERROR
    return [Failure("row count in line with the trailing weeks", None, severity, rows, partition=f"{day}",
                    breach=contract.VOLUME, detail=(
                        f"{rows} rows, {ratio:.0%} of the median {baseline} of the same weekday over the last "
                        f"{len(history)} weeks"))]
