"""Data-quality suites, kept as code, run by Great Expectations on the engine's SQL (issue 5).

Work in progress: the raw ``assessment_events`` suite on the ``local`` backend. GX validates a
day without loading it into Python: its expectations become SQL that DuckDB runs over a view of
the day's Parquet files (the same view the local engine builds, so partition pruning and the
catalog's schema apply), and only counts and a few sample values come back.

Why a private GX attribute is touched: GX 1.24 opens a new pooled connection per metric for
dialects it does not know, and duckdb-engine's pooled connections lose their results on the
rollback at return, so every expectation fails with ``MetricResolutionError: list index out of
range`` (GX issue 11579). Adding DuckDB to GX's persisted-connection dialects keeps one
connection, as GX does for SQLite; ``tests/unit/test_quality.py`` holds the pinned GX version to
that. The schema check reads the Parquet footers instead, since the view fills a missing column
with NULLs (as Athena reads Parquet by name) and would hide the drift.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ioc_analytics import sql
from ioc_analytics.catalog import load_catalog
from ioc_analytics.engine.local import LocalEngine
from ioc_analytics.errors import ConfigError, DataQualityError
from ioc_analytics.settings import Settings

log = logging.getLogger(__name__)

#: The values the product sends; anything else is a fault upstream.
DEVICES = ("desktop", "mobile", "tablet")
PLATFORMS = ("web", "ios", "android")
#: A session longer than this is a clock or tracking fault (4 hours).
MAX_COMPLETION_TIME_S = 4 * 3600
#: How many failing values a report quotes.
SAMPLES = 5


@dataclass
class Failure:
    expectation: str
    column: str | None
    severity: str
    unexpected_count: int | None
    samples: list[Any] = field(default_factory=list)
    detail: str = ""

    def describe(self) -> str:
        where = f" on {self.column}" if self.column else ""
        count = f": {self.unexpected_count} rows fail" if self.unexpected_count is not None else ""
        samples = f", for example {self.samples}" if self.samples else ""
        detail = f" ({self.detail})" if self.detail else ""
        return f"{self.expectation}{where}{count}{samples}{detail}"


@dataclass
class QualityReport:
    table: str
    partition: str
    rows: int
    evaluated: int
    failures: list[Failure] = field(default_factory=list)

    @property
    def errors(self) -> list[Failure]:
        return [f for f in self.failures if f.severity == "critical"]

    @property
    def warnings(self) -> list[Failure]:
        return [f for f in self.failures if f.severity != "critical"]

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "errors": len(self.errors), "warnings": len(self.warnings)}


def event_suite(day: dt.date) -> list[tuple[str, dict[str, Any]]]:
    """The expectations on one day of ``assessment_events``, as (GX class name, arguments)."""
    start = dt.datetime.combine(day, dt.time())
    end = start + dt.timedelta(days=1)
    return [
        *[("ExpectColumnValuesToNotBeNull", {"column": c})
          for c in ("anonymous_user_id", "session_id", "assessment_id", "timestamp")],
        ("ExpectColumnValuesToBeInSet", {"column": "device", "value_set": list(DEVICES)}),
        ("ExpectColumnValuesToBeInSet", {"column": "platform", "value_set": list(PLATFORMS)}),
        ("ExpectColumnValuesToBeBetween", {"column": "completion_time", "min_value": 0,
                                           "max_value": MAX_COMPLETION_TIME_S}),
        ("ExpectColumnValuesToBeBetween", {"column": "timestamp", "min_value": start, "max_value": end,
                                           "strict_max": True}),
        ("ExpectColumnValuesToBeUnique", {"column": "assessment_id"}),
        ("ExpectColumnValuesToBeUnique", {"column": "session_id"}),
    ]


def validate_events(settings: Settings, day: dt.date) -> QualityReport:
    """Run the ``assessment_events`` suite on ``day``; the results are kept under the state folder."""
    if settings.backend != "local":
        raise ConfigError("data-quality suites run on the local backend only so far (issue 5 is in progress)")
    table = load_catalog(settings.lake_uri, settings.database).table("assessment_events")
    engine = LocalEngine(settings)
    lake_date = sql.date_values(day)["lake_date"]
    with tempfile.TemporaryDirectory(prefix="ioc-quality-") as scratch:
        database = Path(scratch) / "batch.duckdb"
        scan = engine.create_view(f"SELECT * FROM {table.name} WHERE date = ?", [lake_date], database, "batch")
        suite = event_suite(day)
        report = QualityReport(table.name, f"date={lake_date}", rows=scan.rows, evaluated=1 + len(suite))
        report.failures += _schema_drift(table, scan) + _run_gx(database, suite)
    _keep(settings, report, day)
    return report


def gate(report: QualityReport) -> None:
    """Raise :class:`DataQualityError` on any error-level failure; log the warnings."""
    for warning in report.warnings:
        log.warning("%s %s: %s", report.table, report.partition, warning.describe())
    if report.errors:
        raise DataQualityError(
            f"{report.table} {report.partition} failed {len(report.errors)} of {report.evaluated} checks "
            f"({report.rows} rows): " + "; ".join(f.describe() for f in report.errors)
            + ". Nothing of this date is built or exported; fix the source partition, then clear the task.")


def _schema_drift(table, scan) -> list[Failure]:
    expected = {c.name.lower() for c in table.columns}
    failures = []
    for partition, present in zip(scan.partitions, scan.present, strict=True):
        missing, extra = sorted(expected - present), sorted(present - expected)
        if missing or extra:
            failures.append(Failure("schema matches the DDL", None, "critical", None, detail=(
                f"{partition.label()}: missing {missing or 'nothing'}, unexpected {extra or 'nothing'}")))
    return failures


def _run_gx(database: Path, suite: list[tuple[str, dict[str, Any]]]) -> list[Failure]:
    import great_expectations as gx
    from great_expectations.execution_engine import sqlalchemy_execution_engine as gx_sql

    _persist_duckdb_connections(gx_sql)
    context = gx.get_context(mode="ephemeral")
    asset = context.data_sources.add_sql(name="lake", connection_string=f"duckdb:///{database}").add_table_asset(
        name="batch", table_name="batch")
    expectations = gx.ExpectationSuite(name="batch", expectations=[
        getattr(gx.expectations, kind)(**kwargs, result_format={"result_format": "SUMMARY",
                                                                "partial_unexpected_count": SAMPLES})
        for kind, kwargs in suite])
    result = asset.add_batch_definition_whole_table("all").get_batch().validate(expectations)
    failures = []
    for outcome in result.results:
        if outcome.success:
            continue
        config = outcome.expectation_config
        exception = (outcome.exception_info or {}).get("exception_message")
        severity = str(getattr(config, "severity", "critical")).split(".")[-1].lower()
        failures.append(Failure(
            config.type, config.kwargs.get("column"), severity,
            outcome.result.get("unexpected_count"),
            [str(v) for v in outcome.result.get("partial_unexpected_list", [])[:SAMPLES]],
            detail=exception or ""))
    return failures


def _persist_duckdb_connections(gx_sql: Any) -> None:
    class _DuckDB(str):  # GX compares dialect names as strings and reads ``.value`` elsewhere
        value = "duckdb"

    if "duckdb" not in gx_sql._PERSISTED_CONNECTION_DIALECTS:
        gx_sql._PERSISTED_CONNECTION_DIALECTS = (*gx_sql._PERSISTED_CONNECTION_DIALECTS, _DuckDB("duckdb"))


def _keep(settings: Settings, report: QualityReport, day: dt.date) -> Path:
    path = Path(settings.state_dir).expanduser().resolve() / "quality" / report.table / f"{day.isoformat()}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report.as_dict(), indent=2, default=str))
    return path
