"""A raw table's day validated (:func:`validate_source`) and gated (:func:`gate`)."""

from __future__ import annotations

import datetime as dt
import functools
import logging
from typing import Any

from ioc_analytics.backends import get_backend
from ioc_analytics.errors import DataQualityError
from ioc_analytics.lake import contract
from ioc_analytics.lake.catalog import Table
from ioc_analytics.lake.contract import ERROR
from ioc_analytics.lake.store import Lake
from ioc_analytics.quality.footer import footer_checks, unknown_partitions, volume_check
from ioc_analytics.quality.quarantine import quarantine_or_release
from ioc_analytics.quality.reports import (
    SAMPLES,
    Failure,
    QualityReport,
    blocking_failures,
    earlier_days,
    keep,
    read_report,
)
from ioc_analytics.quality.runner import run_suite, suite
from ioc_analytics.quality.slices import slices_of
from ioc_analytics.settings import Settings

log = logging.getLogger("ioc_analytics.quality")

#: The checks of a raw table beside its contract's rules: files are Parquet, their schema, rows,
#: volume, earlier days, files outside the partitions.
TABLE_CHECKS = 6


def validate_source(settings: Settings, day: dt.date, table_name: str) -> QualityReport:
    """Validate ``day`` of raw ``table_name``, quarantine or release slices, keep and return the report."""
    backend = get_backend(settings)
    table, lake = backend.catalog.table(table_name), backend.lake
    lake.check()
    read = functools.cache(lake.footer)  # a month's files are read to pick the day's, then checked
    slices = slices_of(settings, lake, read, table, day)
    checks = suite(table_name)
    for piece in slices:
        piece.failures += footer_checks(read, table, piece, day)
    report = QualityReport(table.name, day.isoformat(), rows=sum(s.rows for s in slices),
                           evaluated=TABLE_CHECKS + sum(len(c.rules) for c in checks))
    report.failures += (volume_check(lake, table, settings, day, report.rows)
                        + _earlier_failures(settings, lake, table, day) + unknown_partitions(lake, table, slices))
    sound = [s for s in slices if not s.failures and s.rows]
    if sound:
        run_suite(settings, table, day, sound, checks, report)
    for piece in slices:
        report.failures += piece.failures
        report.slices.append({"partition": piece.label, "rows": piece.rows, "files": [f.path for f in piece.files],
                              "from_quarantine": piece.entry})
    for failure in report.failures:
        failure.table = table.name
    quarantine_or_release(settings, lake, table, day, slices, report)
    keep(settings, report)
    return report


def gate(report: QualityReport) -> dict[str, Any]:
    """Raise :class:`DataQualityError` on any error-level failure; log the warnings and quarantines."""
    for warning in report.warnings:
        log.warning("%s for %s: %s", report.table, report.day, warning.describe())
    for entry in report.quarantined:
        log.warning("%s for %s: quarantined to %s; the day goes on without it", report.table, report.day, entry)
    for entry in report.released:
        log.info("%s for %s: quarantine %s cleared", report.table, report.day, entry)
    if report.errors:
        own = [f for f in report.errors if f.breach != contract.EARLIER_DAY]
        earlier = sorted({str(d) for f in report.errors if f.breach == contract.EARLIER_DAY for d in f.samples})
        todo = (f" Fix or re-deliver what is named, then run `ioc recover {' '.join([*earlier, report.day])}`: it "
                f"re-runs {'the earlier days and ' if earlier else ''}this day, then the later days it blocked."
                if own else "")
        raise DataQualityError(
            f"{report.table} for {report.day} failed {len(report.errors)} of {report.evaluated} checks "
            f"({report.rows} rows): " + "; ".join(f.describe() for f in report.errors)
            + ". Nothing that reads this table is built or exported for the date; the report is "
            f"{report.kept_at} (`ioc quality {report.day}`)." + todo)
    log.info("%s for %s passed %d checks (%d rows, %d warnings)", report.table, report.day, report.evaluated,
             report.rows, len(report.warnings))
    return {"rows": report.rows, "warnings": len(report.warnings), "quarantined": report.quarantined}


def _earlier_failures(settings: Settings, lake: Lake, table: Table, day: dt.date) -> list[Failure]:
    """A day whose own validation found bad rows is still in the lake, and later days read it
    (returning users, month-to-date percentiles): their outputs would carry its bad rows. Days
    validated before this project kept reports (no report) are taken as they are."""
    failed: list[tuple[str, Failure]] = []
    for earlier in earlier_days(table, day):
        kept = read_report(lake, f"{settings.lake_uri}/quality/{table.name}/{earlier.isoformat()}.json")
        if kept and (blocking := blocking_failures(kept)):
            failed.append((earlier.isoformat(), blocking[0]))
    if not failed:
        return []
    days = sorted(d for d, _ in failed)
    reads = ("its 30-day look-back of returning users" if "date" in table.partition_names
             else "its month-to-date percentiles")
    one = len(days) == 1
    what = "; ".join(f"{d} failed {f.describe()}" for d, f in sorted(failed)[:3])
    return [Failure("earlier days read by this day's aggregates passed", None, ERROR, len(days), days[:SAMPLES],
                    partition=f"{table.name} {day}", breach=contract.EARLIER_DAY, detail=(
                        f"{table.name}: {what}; this day reads {'it' if one else 'them'} ({reads}). Fix or "
                        f"re-deliver {'that day' if one else 'those days'}, then run `ioc recover {' '.join(days)}`: "
                        f"it re-runs {'it' if one else 'them'}, then this day and every other day "
                        f"{'it' if one else 'they'} blocked"))]
