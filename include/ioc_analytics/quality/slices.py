"""The slices a day is validated in: for ``assessment_events`` the day's partition of each
assessment type, for ``ocean_scores`` the files of the month's partition that hold the day's rows.
Slices are the unit of attribution (the message names the partition) and of quarantine."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ioc_analytics.errors import BadDataFileError
from ioc_analytics.lake import sources
from ioc_analytics.lake.catalog import Table
from ioc_analytics.lake.store import DataFile, Lake
from ioc_analytics.quality.quarantine import pending_quarantine
from ioc_analytics.quality.reports import Failure, next_month
from ioc_analytics.settings import Settings

log = logging.getLogger("ioc_analytics.quality")


@dataclass
class Slice:
    """The files of one partition (for ``ocean_scores``, of the day within its month) under validation."""

    values: dict[str, str]
    key: str  # the partition path below the table, e.g. "2024/01/10/career" or "2024/01/2024-01-10"
    files: list[DataFile]
    required: bool
    #: Where the files are: the table's partition, or a quarantine entry being re-validated.
    entry: str | None = None
    rows: int = 0
    columns: set[str] = field(default_factory=set)
    failures: list[Failure] = field(default_factory=list)

    @property
    def label(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.values.items()) + (
            "" if "date" in self.values else f" (rows of {self.key.rsplit('/', 1)[-1]})")


def slices_of(settings: Settings, lake: Lake, read: Callable[[DataFile], Any], table: Table,
            day: dt.date) -> list[Slice]:
    required = sources.required_partitions(settings, day, table.name)
    pending = pending_quarantine(lake, settings, table, day)
    slices = []
    for values in sources.source_partitions(settings, day)[table.name]:
        files = lake.partition_files(table, values)
        key = table.partition_location(values)[len(table.location):].strip("/")
        if "date" not in table.partition_names:  # a monthly partition: the files with the day's rows
            key = f"{key}/{day.isoformat()}"
            # and those with no row of the month at all, which no day would validate otherwise
            files = [f for f in files if _on_day(read, f, day) or _outside_month(read, f, day)]
        piece = Slice(values, key, files, values in required)
        if key in pending and not files:  # not delivered again: re-validate the quarantined files
            piece.entry, piece.files = pending[key], lake.files_in(pending[key])
        slices.append(piece)
    return slices


def _on_day(read: Callable[[DataFile], Any], file: DataFile, day: dt.date) -> bool:
    try:
        return sources.rows_on(read(file), day) > 0
    except BadDataFileError:
        return True  # an unreadable file in the month is reported by the footer checks


def _outside_month(read: Callable[[DataFile], Any], file: DataFile, day: dt.date) -> bool:
    """A file of the month's partition whose rows all lie outside the month (misfiled)."""
    start = dt.datetime(day.year, day.month, 1)
    end = dt.datetime.combine(next_month(day), dt.time())
    try:
        meta = read(file)
    except BadDataFileError:
        return False  # _on_day takes it: the footer checks report it
    return meta.num_rows > 0 and sources.rows_between(meta, start, end) == 0
