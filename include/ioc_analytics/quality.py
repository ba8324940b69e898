"""Data-quality suites, kept as code, and the gate that stops bad source data before it is built.

Each raw table has a suite of Great Expectations expectations (:func:`event_suite`,
:func:`score_suite`). A day is validated in *slices*: for ``assessment_events`` the day's
partition of each assessment type, for ``ocean_scores`` the files of the month's partition that
hold the day's rows. Slices are the unit of attribution (the message names the partition) and of
quarantine.

What runs where:

- From the Parquet footers alone (no data is read; S3 ranged GETs on ``aws``): every file is
  Parquet, the schema matches the DDL (a column missing, added or retyped), the slice has rows,
  and the day's volume is in line with the same weekday of the trailing weeks.
- Row-level expectations run as SQL on DuckDB: GX compiles each expectation to a query over a
  view of the day's files (``read_parquet`` of exactly those files, the same view the local
  engine builds), so only counts and a few sample values reach Python and memory does not grow
  with the day. The map checks on ``ocean_scores`` are GX ``UnexpectedRowsExpectation`` queries
  written in Athena's dialect (GX has no map expectations) and transpiled with sqlglot.
  On ``aws`` the slice's objects are first copied to the worker's scratch disk (streamed, not
  held in memory) and validated the same way. Running the expectations on Athena instead (GX
  supports ``awsathena+rest://``) would cost a query per expectation and metric, at Athena's
  10 MB minimum each, for a day's few hundred MB; and DuckDB's own S3 reader (``httpfs``) is an
  extension downloaded at run time, which a locked, offline install cannot rely on.
- The aggregates' invariants are the SQL files under ``include/sql/checks/``, run by the
  engine itself (DuckDB or Athena) because they compare an aggregate with its sources, which a
  single-table GX expectation cannot; their results are kept the same way (:func:`keep_checks`).

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
marked released; if the quarantined files themselves now pass (fixed in place, or a suite
corrected), they are moved back.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import logging
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import sqlglot
from sqlglot import exp

from ioc_analytics import pipeline, sql
from ioc_analytics.catalog import Table, load_catalog
from ioc_analytics.errors import BadDataFileError, DataQualityError
from ioc_analytics.generate import DARK_SIDE_INDICATORS, FACET_KEYS, TRAITS, VERSIONS
from ioc_analytics.lake import DataFile, Lake, Partition, get_lake, is_hidden
from ioc_analytics.settings import Settings

log = logging.getLogger(__name__)

#: The values the product sends; anything else is a fault upstream.
DEVICES = ("desktop", "mobile", "tablet")
PLATFORMS = ("web", "ios", "android")
#: A session longer than this is a clock or tracking fault (4 hours).
MAX_COMPLETION_TIME_S = 4 * 3600
#: How many failing values a report quotes.
SAMPLES = 5
#: The volume check compares the day with the same weekday of this many weeks before it.
VOLUME_WEEKS = 4
#: Day rows / trailing median outside WARN is a warning, outside ERROR an error.
VOLUME_WARN = (0.5, 2.0)
VOLUME_ERROR = (0.2, 5.0)

#: DuckDB's memory for a validation: past it, DuckDB spills to disk instead of growing, so the
#: worker's memory stays flat whatever the day's volume (bench/bench_quality.py).
DUCKDB_MEMORY = "256MB"

CRITICAL, WARNING, QUARANTINED = "critical", "warning", "quarantined"


@dataclass(frozen=True)
class Check:
    """One expectation of a suite: a GX expectation class name and its arguments."""

    kind: str
    kwargs: dict[str, Any]
    severity: str = CRITICAL


def event_suite(day: dt.date) -> list[Check]:
    """The expectations on one day of ``assessment_events``."""
    start = dt.datetime.combine(day, dt.time())
    return [
        *[Check("ExpectColumnValuesToNotBeNull", {"column": c})
          for c in ("anonymous_user_id", "session_id", "assessment_id", "timestamp")],
        Check("ExpectColumnValuesToBeInSet", {"column": "device", "value_set": list(DEVICES)}),
        Check("ExpectColumnValuesToBeInSet", {"column": "platform", "value_set": list(PLATFORMS)}),
        Check("ExpectColumnValuesToBeBetween", {"column": "completion_time", "min_value": 0,
                                                "max_value": MAX_COMPLETION_TIME_S}),
        Check("ExpectColumnValuesToBeBetween", {"column": "timestamp", "min_value": start,
                                                "max_value": start + dt.timedelta(days=1), "strict_max": True}),
        Check("ExpectColumnValuesToBeUnique", {"column": "assessment_id"}),
        Check("ExpectColumnValuesToBeUnique", {"column": "session_id"}),
        # A new app release is news, not bad data: reported, and the day goes on.
        Check("ExpectColumnValuesToBeInSet", {"column": "version", "value_set": list(VERSIONS)}, WARNING),
    ]


def _keys_differ(column: str, keys: tuple[str, ...]) -> str:
    """Rows whose map ``column`` lacks one of ``keys`` or holds another. (Map keys are unique, so
    "as many keys as expected, none unknown" is "exactly these keys"; it runs three times faster
    on DuckDB than comparing sorted key lists.)"""
    expected = "ARRAY[" + ", ".join(f"'{k}'" for k in sorted(keys)) + "]"
    return (f"SELECT assessment_id, array_except({expected}, map_keys({column})) AS missing_keys, "
            f"array_except(map_keys({column}), {expected}) AS unknown_keys FROM batch "
            f"WHERE {column} IS NULL OR cardinality(map_keys({column})) <> {len(keys)} "
            f"OR cardinality(filter(map_keys({column}), k -> NOT contains({expected}, k))) > 0")


def score_suite(day: dt.date) -> list[Check]:
    """The expectations on one day of ``ocean_scores``: ranges, the two maps, one set per assessment."""
    start = dt.datetime.combine(day, dt.time())
    facet = "transform(map_values(facets), f -> f.{})"
    return [
        *[Check("ExpectColumnValuesToNotBeNull", {"column": c})
          for c in ("anonymous_user_id", "assessment_id", "timestamp", *TRAITS)],
        *[Check("ExpectColumnValuesToBeBetween", {"column": c, "min_value": 0, "max_value": 100}) for c in TRAITS],
        *[Check("ExpectColumnValuesToBeBetween", {"column": c, "min_value": 0, "max_value": 1})
          for c in ("consistency", "completeness")],
        Check("ExpectColumnValuesToBeBetween", {"column": "timestamp", "min_value": start,
                                                "max_value": start + dt.timedelta(days=1), "strict_max": True}),
        Check("ExpectColumnValuesToBeUnique", {"column": "assessment_id"}),
        Check("UnexpectedRowsExpectation", {
            "description": f"facets hold exactly the {len(FACET_KEYS)} NEO facets",
            "unexpected_rows_query": _keys_differ("facets", FACET_KEYS)}),
        Check("UnexpectedRowsExpectation", {
            "description": "facet scores are in [0, 100], with at least one response and a std_dev >= 0",
            "unexpected_rows_query": (
                f"SELECT * FROM (SELECT assessment_id, array_min({facet.format('score')}) AS lowest_score, "
                f"array_max({facet.format('score')}) AS highest_score, "
                f"array_min({facet.format('responses')}) AS fewest_responses, "
                f"array_min({facet.format('std_dev')}) AS lowest_std_dev FROM batch) "
                "WHERE NOT COALESCE(lowest_score >= 0 AND highest_score <= 100 AND fewest_responses >= 1 "
                "AND lowest_std_dev >= 0, false)")}),
        Check("UnexpectedRowsExpectation", {
            "description": f"dark_side_indicators hold exactly the {len(DARK_SIDE_INDICATORS)} derailers",
            "unexpected_rows_query": _keys_differ("dark_side_indicators", DARK_SIDE_INDICATORS)}),
        Check("UnexpectedRowsExpectation", {
            "description": "dark-side risks are in [0, 100]",
            "unexpected_rows_query": (
                "SELECT * FROM (SELECT assessment_id, array_min(map_values(dark_side_indicators)) AS lowest, "
                "array_max(map_values(dark_side_indicators)) AS highest FROM batch) "
                "WHERE NOT COALESCE(lowest >= 0 AND highest <= 100, false)")}),
    ]


SUITES = {"assessment_events": event_suite, "ocean_scores": score_suite}


@dataclass
class Failure:
    expectation: str
    column: str | None
    severity: str
    unexpected_count: int | None
    samples: list[Any] = field(default_factory=list)
    detail: str = ""
    #: The slice it was found in (the day's partition prefix when no single slice holds it).
    partition: str = ""

    def describe(self) -> str:
        where = f" on {self.column}" if self.column else ""
        count = f": {self.unexpected_count} rows fail" if self.unexpected_count is not None else ""
        samples = f", for example {self.samples}" if self.samples else ""
        detail = f" ({self.detail})" if self.detail else ""
        return f"[{self.partition}] {self.expectation}{where}{count}{samples}{detail}"


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
        return [f for f in self.failures if f.severity == CRITICAL]

    @property
    def warnings(self) -> list[Failure]:
        return [f for f in self.failures if f.severity != CRITICAL]

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
    table = load_catalog(settings.lake_uri, settings.database).table(table_name)
    lake = get_lake(settings)
    lake.check()
    read = functools.cache(lake.footer)  # a month's files are read to pick the day's, then checked
    slices = _slices(settings, lake, read, table, day)
    suite = SUITES[table_name](day)
    for piece in slices:
        piece.failures += _footer_checks(read, table, piece, day)
    report = QualityReport(table.name, day.isoformat(), rows=sum(s.rows for s in slices),
                           evaluated=6 + len(suite))
    report.failures += (_volume(lake, table, settings, day, report.rows) + _earlier_failures(settings, lake, table, day)
                        + _unknown_partitions(lake, table, slices))
    sound = [s for s in slices if not s.failures and s.rows]
    if sound:
        _run_suite(settings, table, day, sound, suite, report)
    for piece in slices:
        report.failures += piece.failures
        report.slices.append({"partition": piece.label, "rows": piece.rows, "files": [f.path for f in piece.files],
                              "from_quarantine": piece.entry})
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
        raise DataQualityError(
            f"{report.table} for {report.day} failed {len(report.errors)} of {report.evaluated} checks "
            f"({report.rows} rows): " + "; ".join(f.describe() for f in report.errors)
            + ". Nothing that reads this table is built or exported for the date; the report is "
            f"{report.kept_at} (`ioc quality {report.day}`). Fix the source "
            "partition, then clear this task.")
    log.info("%s for %s passed %d checks (%d rows, %d warnings)", report.table, report.day, report.evaluated,
             report.rows, len(report.warnings))
    return {"rows": report.rows, "warnings": len(report.warnings), "quarantined": report.quarantined}


# -- slices and the footer checks ------------------------------------------------------------


def _slices(settings: Settings, lake: Lake, read: Callable[[DataFile], Any], table: Table,
            day: dt.date) -> list[_Slice]:
    required = pipeline.required_partitions(settings, day, table.name)
    pending = _pending_quarantine(lake, settings, table, day)
    slices = []
    for values in pipeline.source_partitions(settings, day)[table.name]:
        files = lake.partition_files(table, values)
        key = table.partition_location(values)[len(table.location):].strip("/")
        if "date" not in table.partition_names:  # a monthly partition: only the files with the day's rows
            key = f"{key}/{day.isoformat()}"
            files = [f for f in files if _on_day(read, f, day)]
        piece = _Slice(values, key, files, values in required)
        if key in pending and not files:  # not delivered again: re-validate the quarantined files
            piece.entry, piece.files = pending[key], lake.files_in(pending[key])
        slices.append(piece)
    return slices


def _on_day(read: Callable[[DataFile], Any], file: DataFile, day: dt.date) -> bool:
    try:
        return pipeline.rows_on(read(file), day) > 0
    except BadDataFileError:
        return True  # an unreadable file in the month is reported by the footer checks


def _footer_checks(read: Callable[[DataFile], Any], table: Table, piece: _Slice, day: dt.date) -> list[Failure]:
    """Files are Parquet, columns match the DDL by name and type, and the slice has rows."""
    failures = []
    by_day = "date" not in table.partition_names
    for file in piece.files:
        try:
            meta = read(file)
        except BadDataFileError as err:
            failures.append(Failure("files are Parquet", None, CRITICAL, None, detail=str(err)))
            continue
        piece.rows += pipeline.rows_on(meta, day) if by_day else meta.num_rows
        schema = meta.schema.to_arrow_schema()
        piece.columns |= {f.name.lower() for f in schema}
        missing, extra, retyped = schema_drift(table, schema)
        if missing or extra or retyped:
            failures.append(Failure("schema matches the DDL", None, CRITICAL, None, detail=(
                f"{Path(file.path).name}: missing {missing or 'nothing'}, unexpected {extra or 'nothing'}"
                + (f", retyped: {'; '.join(retyped)}" if retyped else ""))))
    if not failures and piece.rows == 0 and (piece.files or piece.required):
        failures.append(Failure("partition has rows", None, CRITICAL if piece.required else WARNING, 0,
                                detail=f"{len(piece.files)} files, no rows of {day.isoformat()}"))
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
    return [Failure("files are in partitions of the table", None, CRITICAL, None, strays[:SAMPLES],
                    partition=day_folder, detail=(
                        f"{len(strays)} folders that no engine reads; the known values are {kinds}: add the new "
                        "value to the DDL's projection, or move the files"))]


def schema_drift(table: Table, schema: pa.Schema) -> tuple[list[str], list[str], list[str]]:
    """How a file's schema differs from the DDL's: columns missing, columns the DDL lacks, and
    columns of another type family (int32 and int64 are the same family)."""
    declared = {f.name.lower(): f.type for f in table.arrow_schema}
    held = {f.name.lower(): f.type for f in schema}
    missing = sorted(set(declared) - set(held))
    extra = sorted(set(held) - set(declared))
    retyped = sorted(f"{name} is {held[name]}, the DDL says {declared[name]}" for name in set(held) & set(declared)
                     if _family(held[name]) != _family(declared[name]))
    return missing, extra, retyped


def _family(dtype: pa.DataType) -> str:
    """A type's kind, so that int32 and int64, or timestamp[ms] and [us], count as the same."""
    for kind, test in (("integer", pa.types.is_integer), ("float", pa.types.is_floating),
                       ("string", lambda t: pa.types.is_string(t) or pa.types.is_large_string(t)),
                       ("timestamp", pa.types.is_timestamp), ("map", pa.types.is_map),
                       ("struct", pa.types.is_struct), ("boolean", pa.types.is_boolean)):
        if test(dtype):
            return kind
    return str(dtype)


def _volume(lake: Lake, table: Table, settings: Settings, day: dt.date, rows: int) -> list[Failure]:
    """The day's rows against the median of the same weekday over the last VOLUME_WEEKS weeks
    (weekly seasonality is the strongest in assessment traffic). Footers only."""
    history = []
    for week in range(1, VOLUME_WEEKS + 1):
        past = day - dt.timedelta(weeks=week)
        count = 0
        for values in pipeline.source_partitions(settings, past)[table.name]:
            for file in lake.partition_files(table, values):
                try:
                    meta = lake.footer(file)
                except BadDataFileError:
                    continue
                count += meta.num_rows if "date" in table.partition_names else pipeline.rows_on(meta, past)
        if count:
            history.append(count)
    if len(history) < 2 or rows == 0:
        return []  # too little history to judge (or no data at all, which the slices report)
    baseline = sorted(history)[len(history) // 2]
    ratio = rows / baseline
    if VOLUME_WARN[0] <= ratio <= VOLUME_WARN[1]:
        return []
    severity = WARNING if VOLUME_ERROR[0] <= ratio <= VOLUME_ERROR[1] else CRITICAL
    return [Failure("row count in line with the trailing weeks", None, severity, rows, partition=f"{day}", detail=(
        f"{rows} rows, {ratio:.0%} of the median {baseline} of the same weekday over the last "
        f"{len(history)} weeks"))]


def _earlier_days(table: Table, day: dt.date) -> list[dt.date]:
    """The days before ``day`` that its aggregates also read: the look-back of returning users
    (``sql.LOOKBACK_DAYS``) for events, the month to date for scores."""
    if "date" in table.partition_names:
        return [day - dt.timedelta(days=n) for n in range(1, sql.LOOKBACK_DAYS + 1)]
    return [day.replace(day=d) for d in range(1, day.day)]


def _earlier_failures(settings: Settings, lake: Lake, table: Table, day: dt.date) -> list[Failure]:
    """A day whose own validation failed is still in the lake, and later days read it (returning
    users, month-to-date percentiles): their outputs would carry its bad rows. Days validated
    before this project kept reports (no report) are taken as they are."""
    failed = []
    for earlier in _earlier_days(table, day):
        kept = lake.get_bytes(f"{settings.lake_uri}/quality/{table.name}/{earlier.isoformat()}.json")
        if kept and not json.loads(kept)["passed"]:
            failed.append(earlier.isoformat())
    if not failed:
        return []
    return [Failure("earlier days read by this day's aggregates passed", None, CRITICAL, None, failed[:SAMPLES],
                    partition=f"{table.name} {day}", detail=(
                        f"{len(failed)} of them failed their own checks; fix and re-run those days first "
                        "(or quarantine their bad partitions)"))]


# -- the row-level suite, by Great Expectations on DuckDB ------------------------------------


def _run_suite(settings: Settings, table: Table, day: dt.date, sound: list[_Slice], suite: list[Check],
               report: QualityReport) -> None:
    """Validate the sound slices together; if anything fails, again one by one to say where."""
    with tempfile.TemporaryDirectory(prefix="ioc-quality-") as scratch:
        database = Path(scratch) / "batch.duckdb"
        lake = get_lake(settings)  # on aws, the objects are copied to the scratch folder first
        readable = [Partition(piece.values, [lake.fetch(f, Path(scratch) / f"{i}-{n}.parquet")
                                             for n, f in enumerate(piece.files)]) for i, piece in enumerate(sound)]
        columns = [piece.columns for piece in sound]
        views = {"day": (readable, columns)}
        if len(sound) > 1:
            views |= {f"slice_{i}": ([readable[i]], [columns[i]]) for i in range(len(sound))}
        _create_views(database, table, day, views)
        validator = _Validator(database, suite)
        failures = validator.run("day")
        if not failures:
            return
        if len(sound) == 1:
            for failure in failures:
                failure.partition = sound[0].label
            sound[0].failures += failures
            return
        found = set()
        for i, piece in enumerate(sound):
            for failure in validator.run(f"slice_{i}"):
                failure.partition = piece.label
                piece.failures.append(failure)
                found.add((failure.expectation, failure.column, failure.detail))
        # What no single slice shows (a duplicate across two partitions) belongs to the whole day.
        for failure in failures:
            if (failure.expectation, failure.column, failure.detail) not in found:
                failure.partition = f"{table.name} {day}"
                report.failures.append(failure)


def _create_views(database: Path, table: Table, day: dt.date,
                  views: dict[str, tuple[list[Partition], list[set[str]]]]) -> None:
    import duckdb

    from ioc_analytics.engine.local import view_body

    start = dt.datetime.combine(day, dt.time())
    # A literal, not a parameter: DuckDB views cannot hold parameters, and the value is a date
    # this function formats itself, never user input.
    end = start + dt.timedelta(days=1)
    on_day = ("" if "date" in table.partition_names else
              f" WHERE \"timestamp\" >= TIMESTAMP '{start}' AND \"timestamp\" < TIMESTAMP '{end}'")
    con = duckdb.connect(str(database))
    try:
        for name, (selected, present) in views.items():
            body = view_body(table, selected, present)
            con.execute(f"CREATE OR REPLACE VIEW {name} AS SELECT * FROM ({body}){on_day}")
    finally:
        con.close()


class _Validator:
    """One GX ephemeral context over the DuckDB file; ``run(view)`` validates one view."""

    def __init__(self, database: Path, suite: list[Check]) -> None:
        import great_expectations as gx
        from great_expectations.data_context.types.base import ProgressBarsConfig
        from great_expectations.execution_engine import sqlalchemy_execution_engine as gx_sql

        _persist_duckdb_connections(gx_sql)
        context = gx.get_context(mode="ephemeral")
        context.variables.progress_bars = ProgressBarsConfig(globally=False)  # task logs, not a terminal
        self.source = context.data_sources.add_sql(
            name="lake", connection_string=f"duckdb:///{database}?memory_limit={DUCKDB_MEMORY}",
            create_temp_table=False)
        # GX takes the result format per validation: SUMMARY quotes a few unexpected values of a
        # column check; COMPLETE returns an unexpected-rows query's rows (GX caps them at 200).
        columns = [c for c in suite if c.kind != "UnexpectedRowsExpectation"]
        rows = [Check(c.kind, {**c.kwargs, "unexpected_rows_query": _duckdb_query(c.kwargs["unexpected_rows_query"])},
                      c.severity) for c in suite if c.kind == "UnexpectedRowsExpectation"]
        self.suites = [
            (gx.ExpectationSuite(name=f"suite_{n}", expectations=[
                getattr(gx.expectations, c.kind)(**c.kwargs, severity=c.severity) for c in checks]), result_format)
            for n, (checks, result_format) in enumerate((
                (columns, {"result_format": "SUMMARY", "partial_unexpected_count": SAMPLES}),
                (rows, {"result_format": "COMPLETE"})))
            if checks]

    def run(self, view: str) -> list[Failure]:
        batch = self.source.add_table_asset(name=view, table_name=view).add_batch_definition_whole_table(
            "all").get_batch()
        outcomes = [o for suite, result_format in self.suites
                    for o in batch.validate(suite, result_format=result_format).results]
        failures = []
        for outcome in outcomes:
            if outcome.success:
                continue
            config = outcome.expectation_config
            exception = (outcome.exception_info or {}).get("exception_message")
            severity = str(config.severity).split(".")[-1].lower()
            if config.type == "unexpected_rows_expectation":
                rows = outcome.result.get("details", {}).get("unexpected_rows") or []
                failures.append(Failure(config.description, None, severity, outcome.result.get("observed_value"),
                                        [_plain(r) for r in rows[:SAMPLES]], detail=exception or ""))
            else:
                failures.append(Failure(
                    config.type, config.kwargs.get("column"), severity, outcome.result.get("unexpected_count"),
                    [str(v) for v in outcome.result.get("partial_unexpected_list", [])[:SAMPLES]],
                    detail=exception or ""))
        return failures


def _duckdb_query(athena_sql: str) -> str:
    """An unexpected-rows query, written in Athena's dialect over ``batch``, for GX on DuckDB."""
    tree = sqlglot.parse_one(athena_sql, read="athena")
    for table in tree.find_all(exp.Table):
        if table.name == "batch":
            table.set("this", exp.to_identifier("__ioc_batch__"))
    return tree.sql(dialect="duckdb").replace("__ioc_batch__", "{batch}")


def _plain(row: Any) -> dict[str, Any]:
    return {k: (v if isinstance(v, (int, float, str, type(None))) else str(v)) for k, v in dict(row).items()}


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
        failed = [f for f in piece.failures if f.severity == CRITICAL]
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
    get_lake(settings).put_bytes(path, json.dumps(report.as_dict(), indent=2, default=str).encode())
    return path


def keep_checks(settings: Settings, day: dt.date, name: str, checks: dict[str, bool]) -> QualityReport:
    """Keep the result of an aggregate's ``include/sql/checks/<name>.sql`` as a report."""
    report = QualityReport(name, day.isoformat(), rows=None, evaluated=len(checks), failures=[
        Failure(check, None, CRITICAL, None, partition=f"date={sql.date_values(day)['lake_date']}")
        for check, passed in checks.items() if not passed])
    keep(settings, report)
    return report


def load_reports(settings: Settings, day: dt.date) -> list[dict[str, Any]]:
    """Every report kept for ``day``, raw tables first."""
    lake = get_lake(settings)
    reports = []
    for file in lake.list_all(f"{settings.lake_uri}/quality/"):
        if file.path.endswith(f"/{day.isoformat()}.json"):
            reports.append(json.loads(lake.get_bytes(file.path) or b"{}"))
    return sorted(reports, key=lambda r: (r["table"] not in SUITES, r["table"]))


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
        for f in r["failures"]:
            lines.append(f"    {f['severity']:<11} {Failure(**f).describe()}")
        lines += [f"    quarantined  {q}" for q in r.get("quarantined", [])]
        lines += [f"    released     {q}" for q in r.get("released", [])]
    return "\n".join(lines)

