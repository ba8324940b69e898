"""Data-quality gates: the raw tables held to their data contract before anything is built.

The contract (``contract.py``) says what a valid row of each table is; this module turns the raw
tables' contract into Great Expectations suites (:func:`suite`: one ``UnexpectedRowsExpectation``
per column and unique key, reporting each of its rules; nothing kept beside it) and runs them on
the day, with the checks that need no rows.
A day is validated in *slices*: for ``assessment_events`` the day's partition of each assessment
type, for ``ocean_scores`` the files of the month's partition that hold the day's rows. Slices are
the unit of attribution (the message names the partition) and of quarantine.

What runs where:

- From the Parquet footers alone (no data is read; S3 ranged GETs on ``aws``): every file is
  Parquet, its columns are the contract's, each of a type that reads as declared, the slice has
  rows, and the day's volume is in line with the same weekday of the trailing weeks.
- The contract's rules run as SQL on DuckDB under GX: each expectation's query runs over a view
  of the day's files (``read_parquet`` of exactly those files, the view the local engine builds),
  so only counts and a few sample rows reach Python and memory does not grow with the day. On
  ``aws`` the slice's objects are first copied to the worker's scratch disk (streamed) and
  validated the same way. Running the expectations on Athena instead (GX supports
  ``awsathena+rest://``) would cost a query per expectation and metric, at Athena's 10 MB minimum
  each, for a day's few hundred MB; and DuckDB's own S3 reader (``httpfs``) is an extension
  downloaded at run time, which a locked, offline install cannot rely on.
- The aggregates are held to their contract and to the invariants under ``include/ioc_analytics/sql/checks/``
  by their ``check`` task (``pipeline.quality_gate``), which keeps its result here
  (:func:`keep_checks`).

Every breach is reported in the contract's words: table, partition, column, class of breach,
count and samples. An earlier day that failed its own checks stops the later days whose
aggregates read it (the 30-day look-back, the month to date); the message names that day and
what failed there, and ``ioc recover`` (``recover.py``) is the way back.

Why a private GX attribute is touched: GX 1.24 opens a new pooled connection per metric for
dialects it does not know, and duckdb-engine's pooled connections lose their results on the
rollback at return, so every expectation fails with ``MetricResolutionError: list index out of
range`` (GX issue 11579). Adding DuckDB to GX's persisted-connection dialects keeps one
connection, as GX does for SQLite; ``tests/unit/test_quality.py`` holds the pinned GX version to
that.

Quarantine (``IOC_QUARANTINE=true``): a slice that fails an error-level check and that the day
can do without (an assessment type not in ``IOC_REQUIRED_ASSESSMENT_TYPES``) is moved to
``<lake>/quarantine/<table>/<partition>/<stamp>/`` with a ``_quarantine.json`` saying why; it is
kept, flagged, and no longer under the table, so neither DuckDB nor Athena reads it. A later
validation of the date clears it: if the partition was delivered again and passes, the entry is
marked released; if the quarantined files themselves now pass (fixed in place, or the contract
corrected), they are moved back.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import logging
import uuid
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from ioc_analytics.backends import get_backend
from ioc_analytics.errors import BadDataFileError, ConfigError, DataQualityError
from ioc_analytics.lake import contract, sources, sql
from ioc_analytics.lake.catalog import Table
from ioc_analytics.lake.contract import ERROR, WARNING, Check
from ioc_analytics.lake.store import DataFile, Lake, Partition, is_hidden
from ioc_analytics.lake.tables import RAW_TABLES
from ioc_analytics.settings import Settings

log = logging.getLogger(__name__)

#: How many failing values a report quotes.
SAMPLES = contract.SAMPLES
#: The volume check compares the day with the same weekday of this many weeks before it.
VOLUME_WEEKS = 4
#: Day rows / trailing median outside WARN is a warning, outside ERROR an error.
VOLUME_WARN = (0.5, 2.0)
VOLUME_ERROR = (0.2, 5.0)
#: The checks of a raw table beside its contract's rules: files are Parquet, their schema, rows,
#: volume, earlier days, files outside the partitions.
TABLE_CHECKS = 6

#: DuckDB's memory for a validation: past it, DuckDB spills to disk instead of growing, so the
#: worker's memory stays flat whatever the day's volume (bench/bench_quality.py).
DUCKDB_MEMORY = "256MB"

QUARANTINED = "quarantined"
#: GX's name for each contract severity.
_GX_SEVERITY = {ERROR: "critical", WARNING: "warning"}


def suite(table_name: str) -> list[Check]:
    """A raw table's contract as its GX suite: one expectation per column (and unique key), each
    reporting every rule of it that rows break."""
    return contract.checks(table_name)


@dataclass
class Failure:
    """A check that failed, in the contract's words."""

    check: str
    column: str | None
    severity: str
    count: int | None
    samples: list[Any] = field(default_factory=list)
    detail: str = ""
    #: The slice it was found in (the day's partition prefix when no single slice holds it).
    partition: str = ""
    #: The class of breach (``contract.BREACHES``).
    breach: str = ""
    table: str = ""

    def describe(self) -> str:
        # A column's failure is named by its rule (``facets values: NaN``), a table's by its class.
        what = (self.check if self.column else f"{self.breach}: {self.check}"
                if self.breach == contract.INVARIANT else self.breach or self.check)
        unit = {contract.DUPLICATE_KEY: "key", contract.EARLIER_DAY: "day"}.get(self.breach, "row")
        count = f", {_plural(self.count, unit)}" if self.count is not None else ""
        samples = f", for example {self.samples}" if self.samples else ""
        detail = f" ({self.detail})" if self.detail else ""
        return f"[{self.partition}] {what}{count}{samples}{detail}"

    @classmethod
    def from_dict(cls, kept: dict[str, Any]) -> Failure:
        """A failure as kept in a report (reports kept before the contract used GX's words)."""
        kept = dict(kept)
        if "expectation" in kept:
            kept["check"] = kept.pop("expectation")
            kept["count"] = kept.pop("unexpected_count", None)
            if kept["check"].startswith("earlier days"):
                kept["breach"] = contract.EARLIER_DAY
        if kept.get("severity") == "critical":
            kept["severity"] = ERROR
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in kept.items() if k in names})


def _plural(count: int, unit: str) -> str:
    return f"{count} {unit}" + ("" if count == 1 else "s")


@dataclass
class QualityReport:
    table: str
    day: str
    rows: int | None  # None for an aggregate's checks
    evaluated: int
    slices: list[dict[str, Any]] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    #: Quarantine entries made by this validation, and those it cleared.
    quarantined: list[str] = field(default_factory=list)
    released: list[str] = field(default_factory=list)
    validated_at: str = field(default_factory=lambda: dt.datetime.now(dt.UTC).isoformat(timespec="seconds"))
    #: Where the report is kept (set by :func:`keep`).
    kept_at: str = ""

    @property
    def errors(self) -> list[Failure]:
        return [f for f in self.failures if f.severity == ERROR]

    @property
    def warnings(self) -> list[Failure]:
        return [f for f in self.failures if f.severity != ERROR]

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "errors": len(self.errors), "warnings": len(self.warnings),
                "passed": not self.errors}


@dataclass
class _Slice:
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


def validate_source(settings: Settings, day: dt.date, table_name: str) -> QualityReport:
    """Validate ``day`` of raw ``table_name``, quarantine or release slices, keep and return the report."""
    backend = get_backend(settings)
    table, lake = backend.catalog.table(table_name), backend.lake
    lake.check()
    read = functools.cache(lake.footer)  # a month's files are read to pick the day's, then checked
    slices = _slices(settings, lake, read, table, day)
    checks = suite(table_name)
    for piece in slices:
        piece.failures += _footer_checks(read, table, piece, day)
    report = QualityReport(table.name, day.isoformat(), rows=sum(s.rows for s in slices),
                           evaluated=TABLE_CHECKS + sum(len(c.rules) for c in checks))
    report.failures += (_volume(lake, table, settings, day, report.rows) + _earlier_failures(settings, lake, table, day)
                        + _unknown_partitions(lake, table, slices))
    sound = [s for s in slices if not s.failures and s.rows]
    if sound:
        _run_suite(settings, table, day, sound, checks, report)
    for piece in slices:
        report.failures += piece.failures
        report.slices.append({"partition": piece.label, "rows": piece.rows, "files": [f.path for f in piece.files],
                              "from_quarantine": piece.entry})
    for failure in report.failures:
        failure.table = table.name
    _quarantine_or_release(settings, lake, table, day, slices, report)
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


# -- slices and the footer checks ------------------------------------------------------------


def _slices(settings: Settings, lake: Lake, read: Callable[[DataFile], Any], table: Table,
            day: dt.date) -> list[_Slice]:
    required = sources.required_partitions(settings, day, table.name)
    pending = _pending_quarantine(lake, settings, table, day)
    slices = []
    for values in sources.source_partitions(settings, day)[table.name]:
        files = lake.partition_files(table, values)
        key = table.partition_location(values)[len(table.location):].strip("/")
        if "date" not in table.partition_names:  # a monthly partition: the files with the day's rows
            key = f"{key}/{day.isoformat()}"
            # and those with no row of the month at all, which no day would validate otherwise
            files = [f for f in files if _on_day(read, f, day) or _outside_month(read, f, day)]
        piece = _Slice(values, key, files, values in required)
        if key in pending and not files:  # not delivered again: re-validate the quarantined files
            piece.entry, piece.files = pending[key], lake.files_in(pending[key])
        slices.append(piece)
    return slices


def _on_day(read: Callable[[DataFile], Any], file: DataFile, day: dt.date) -> bool:
    try:
        return sources.rows_on(read(file), day) > 0
    except BadDataFileError:
        return True  # an unreadable file in the month is reported by the footer checks


def _next_month(day: dt.date) -> dt.date:
    """The first day of the month after ``day``'s."""
    return (day.replace(day=28) + dt.timedelta(days=4)).replace(day=1)


def _outside_month(read: Callable[[DataFile], Any], file: DataFile, day: dt.date) -> bool:
    """A file of the month's partition whose rows all lie outside the month (misfiled)."""
    start = dt.datetime(day.year, day.month, 1)
    end = dt.datetime.combine(_next_month(day), dt.time())
    try:
        meta = read(file)
    except BadDataFileError:
        return False  # _on_day takes it: the footer checks report it
    return meta.num_rows > 0 and sources.rows_between(meta, start, end) == 0


def _footer_checks(read: Callable[[DataFile], Any], table: Table, piece: _Slice, day: dt.date) -> list[Failure]:
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


def _unknown_partitions(lake: Lake, table: Table, slices: list[_Slice]) -> list[Failure]:
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
                        f"{_plural(len(strays), 'folder')} that no engine reads; the known values are {kinds}: add "
                        "the new value to the DDL's projection and the contract, or move the files"))]


def _volume(lake: Lake, table: Table, settings: Settings, day: dt.date, rows: int) -> list[Failure]:
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


def _earlier_days(table: Table, day: dt.date) -> list[dt.date]:
    """The days before ``day`` that its aggregates also read: the look-back of returning users
    (``sql.LOOKBACK_DAYS``) for events, the month to date for scores."""
    if "date" in table.partition_names:
        return [day - dt.timedelta(days=n) for n in range(1, sql.LOOKBACK_DAYS + 1)]
    return [day.replace(day=d) for d in range(1, day.day)]


def later_days(table_name: str, day: dt.date) -> list[dt.date]:
    """The days after ``day`` whose aggregates read it: the inverse of :func:`_earlier_days`."""
    if "date" in (k.name for k in contract.contract(table_name).partition_keys):
        return [day + dt.timedelta(days=n) for n in range(1, sql.LOOKBACK_DAYS + 1)]
    return [day + dt.timedelta(days=n) for n in range(1, (_next_month(day) - day).days)]


def own_failures(report: dict[str, Any]) -> list[Failure]:
    """A kept report's error-level failures of its own day (not those of an earlier day it read)."""
    found = [Failure.from_dict(f) for f in report.get("failures", [])]
    return [f for f in found if f.severity == ERROR and f.breach != contract.EARLIER_DAY]


def blocking_failures(report: dict[str, Any]) -> list[Failure]:
    """A kept report's failures that stop the later days reading its day: bad rows they would read.
    Not a day's volume, a partition without rows, files no engine reads, nor its own look-back
    (``contract.DAY_LEVEL``): a later day reads no bad row from those."""
    return [f for f in own_failures(report) if f.breach not in contract.DAY_LEVEL]


def read_report(lake: Lake, path: str) -> dict[str, Any] | None:
    """A kept report, or None if there is none; a damaged one is named."""
    kept = lake.get_bytes(path)
    if kept is None:
        return None
    try:
        report = json.loads(kept)
    except ValueError as err:
        raise ConfigError(f"the quality report {path} is not JSON ({err}): delete it and validate the day "
                          "again (`ioc quality <date> --validate`)") from None
    if not isinstance(report, dict) or "table" not in report:
        raise ConfigError(f"the quality report {path} is not a report: delete it and validate the day again "
                          "(`ioc quality <date> --validate`)")
    return report


def _earlier_failures(settings: Settings, lake: Lake, table: Table, day: dt.date) -> list[Failure]:
    """A day whose own validation found bad rows is still in the lake, and later days read it
    (returning users, month-to-date percentiles): their outputs would carry its bad rows. Days
    validated before this project kept reports (no report) are taken as they are."""
    failed: list[tuple[str, Failure]] = []
    for earlier in _earlier_days(table, day):
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


# -- the contract's rules, by Great Expectations on DuckDB ---------------------------------------


def _run_suite(settings: Settings, table: Table, day: dt.date, sound: list[_Slice], checks: list[Check],
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

    from ioc_analytics.backends.local.engine import view_body

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
        import great_expectations as gx
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


# -- quarantine ------------------------------------------------------------------------------

_MANIFEST, _RELEASED = "_quarantine.json", "_released.json"


def _quarantine_root(settings: Settings, table: Table) -> str:
    return f"{settings.lake_uri}/quarantine/{table.name}"


def _pending_quarantine(lake: Lake, settings: Settings, table: Table, day: dt.date) -> dict[str, str]:
    """Quarantine entries of the day not yet released, by slice key: the newest entry's location."""
    root = _quarantine_root(settings, table)
    entries: dict[str, set[str]] = {}
    for file in lake.list_all(f"{root}/"):
        folder, name = file.path.rsplit("/", 1)
        entries.setdefault(folder, set()).add(name)
    pending: dict[str, str] = {}
    for folder in sorted(entries):
        names = entries[folder]
        if _MANIFEST in names and _RELEASED not in names:
            manifest = json.loads(lake.get_bytes(f"{folder}/{_MANIFEST}") or b"{}")
            if manifest.get("day") == day.isoformat():
                pending[manifest["key"]] = folder + "/"
    return pending


def _quarantine_or_release(settings: Settings, lake: Lake, table: Table, day: dt.date, slices: list[_Slice],
                           report: QualityReport) -> None:
    pending = _pending_quarantine(lake, settings, table, day)
    for piece in slices:
        failed = [f for f in piece.failures if f.severity == ERROR]
        entry = pending.get(piece.key)
        if not failed:
            if entry:
                how = "the partition was delivered again and passed"
                if piece.entry:  # the files validated were the quarantined ones: put them back
                    how = "the quarantined files passed and were moved back"
                    manifest = json.loads(lake.get_bytes(f"{entry}{_MANIFEST}") or b"{}")
                    for file in piece.files:
                        lake.move(file.path, manifest["files"][Path(file.path).name])
                lake.put_bytes(f"{entry}{_RELEASED}", json.dumps(
                    {"released_at": dt.datetime.now(dt.UTC).isoformat(), "how": how}).encode())
                report.released.append(f"{entry} ({how})")
            continue
        if piece.entry:  # still failing where it was set aside: it stays there, the day goes on
            for failure in failed:
                failure.severity = QUARANTINED
            continue
        if not settings.quarantine or piece.required:
            continue  # the day stops on it
        location = (f"{_quarantine_root(settings, table)}/{piece.key}/"
                    f"{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}/")
        # The manifest first: whatever happens next, nothing sits in quarantine unexplained.
        originals = {Path(file.path).name: file.path for file in piece.files}
        lake.put_bytes(location + _MANIFEST, json.dumps({
            "table": table.name, "day": day.isoformat(), "key": piece.key, "partition": piece.values,
            "files": originals, "failures": [asdict(f) for f in failed],
            "quarantined_at": dt.datetime.now(dt.UTC).isoformat()}, indent=2, default=str).encode())
        for name, path in originals.items():
            lake.move(path, location + name)
        for failure in failed:  # reported, and the day goes on without the slice
            failure.severity = QUARANTINED
        report.quarantined.append(location)


# -- reports ---------------------------------------------------------------------------------


def keep(settings: Settings, report: QualityReport) -> str:
    """Store the report in the lake, per table and date, beside (not inside) the tables."""
    path = report.kept_at = f"{settings.lake_uri}/quality/{report.table}/{report.day}.json"
    get_backend(settings).lake.put_bytes(path, json.dumps(report.as_dict(), indent=2, default=str).encode())
    return path


def keep_checks(settings: Settings, day: dt.date, name: str, checks: dict[str, bool],
                breaches: list[contract.Breach], partition: str) -> QualityReport:
    """Keep the result of an aggregate's ``check`` task as its report: the invariants of
    ``include/ioc_analytics/sql/checks/<name>.sql`` and the rules of its contract."""
    failures = [Failure(check, None, ERROR, None, partition=partition, breach=contract.INVARIANT, table=name)
                for check, passed in checks.items() if not passed]
    failures += [breach_failure(b, partition) for b in breaches]
    report = QualityReport(name, day.isoformat(), rows=None, evaluated=len(checks) + len(contract.rules(name)),
                           failures=failures)
    keep(settings, report)
    return report


def breach_failure(breach: contract.Breach, partition: str) -> Failure:
    """A contract breach found by :func:`contract.check_rows`, as a report's failure."""
    rule = breach.rule
    return Failure(rule.name, rule.column, rule.severity, breach.count, breach.samples, rule.expects, partition,
                   rule.breach, rule.table)


def load_reports(settings: Settings, day: dt.date) -> list[dict[str, Any]]:
    """Every report kept for ``day``, raw tables first."""
    lake = get_backend(settings).lake
    reports = []
    for file in lake.list_all(f"{settings.lake_uri}/quality/"):
        if file.path.endswith(f"/{day.isoformat()}.json") and (report := read_report(lake, file.path)):
            reports.append(report)
    return sorted(reports, key=lambda r: (r["table"] not in RAW_TABLES, r["table"]))


def render(reports: list[dict[str, Any]]) -> str:
    """A plain-text report of a day, for a person on call."""
    if not reports:
        return "no data-quality reports for this date: the daily DAG has not validated it yet"
    lines = []
    for r in reports:
        state = "PASSED" if r["passed"] else "FAILED"
        rows = "" if r["rows"] is None else f", {r['rows']} rows"
        lines.append(f"{r['table']:<26} {state}  {r['evaluated']} checks{rows}, "
                     f"{r['errors']} errors, {r['warnings']} warnings  (validated {r['validated_at']})")
        for f in sorted((Failure.from_dict(f) for f in r["failures"]), key=lambda f: f.severity != ERROR):
            lines.append(f"    {f.severity:<11} {f.describe()}")
        lines += [f"    quarantined  {q}" for q in r.get("quarantined", [])]
        lines += [f"    released     {q}" for q in r.get("released", [])]
    return "\n".join(lines)

