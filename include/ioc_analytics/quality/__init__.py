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

from ioc_analytics.quality.gate import TABLE_CHECKS, gate, validate_source
from ioc_analytics.quality.reports import (
    Failure,
    QualityReport,
    blocking_failures,
    keep,
    keep_checks,
    later_days,
    load_reports,
    own_failures,
    read_report,
    render,
)
from ioc_analytics.quality.runner import suite

__all__ = ["TABLE_CHECKS", "Failure", "QualityReport", "blocking_failures", "gate", "keep", "keep_checks",
           "later_days", "load_reports", "own_failures", "read_report", "render", "suite", "validate_source"]
