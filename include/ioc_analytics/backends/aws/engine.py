"""Athena SQL on Athena (``aws`` backend), through the Amazon provider's hooks.

How a query runs:

1. The tags go into a leading comment (``with_tags``), so the query history names the DAG, task
   and date that ran it.
2. ``StartQueryExecution`` with the workgroup, the database as ``QueryExecutionContext``, the
   result location, and the parameters as ``ExecutionParameters``: Athena binds them to the ``?``
   placeholders, so no value is ever pasted into the SQL text. Each parameter travels as an
   Athena literal (:func:`athena_literal`).
3. ``GetQueryExecution`` is polled until the query is final, for at most
   ``settings.query_timeout_s``; past that the query is stopped and :class:`QueryTimeoutError`
   raised. A task killed while it waits (timeout, SIGTERM) stops the query too. Under a build's
   :class:`~ioc_analytics.engine.base.Resume`, each query is recorded in the task's journal and
   submitted with an idempotency token, so the build run again reconnects to it; and a query
   still running after ``IOC_ATHENA_DEFER_AFTER_S`` is handed to the triggerer
   (:class:`~ioc_analytics.backends.aws.trigger.AthenaQueryTrigger`), which stops it at the
   timeout (see ``_execute``).
4. A failed or cancelled query raises a :class:`QueryError` naming the query id and Athena's
   reason (:func:`athena_error` picks the subclass). A successful one is read page by page with
   ``GetQueryResults`` into a typed ``pyarrow.Table`` (:func:`result_table`), and its statistics
   (``DataScannedInBytes``, ``TotalExecutionTimeInMillis``) become the :class:`QueryStats`.

Results travel through ``GetQueryResults`` (1,000 rows per call), which suits the aggregates and
metrics this project reads; a query returning millions of rows belongs in an ``UNLOAD``.

The Amazon provider is imported when an engine is built, never when this module is imported.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import math
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from ioc_analytics.engine import lineage
from ioc_analytics.engine.base import QueryPending, QueryResult, QueryStats, athena_cost, current_resume, with_tags
from ioc_analytics.errors import (
    BytesScannedCutoffError,
    QueryError,
    QueryTimeoutError,
    SqlSyntaxError,
    UnknownColumnError,
    UnknownTableError,
)
from ioc_analytics.settings import Settings

if TYPE_CHECKING:
    from airflow.providers.amazon.aws.hooks.athena import AthenaHook

    from ioc_analytics.backends.aws.lake import S3Lake
    from ioc_analytics.backends.aws.registry import GlueRegistry
    from ioc_analytics.lake.catalog import Catalog, Table

log = logging.getLogger(__name__)

#: Seconds between two polls of a running query: short at first, then backing off to the cap.
POLL_FIRST_S = 0.2
POLL_MAX_S = 2.0


class AthenaEngine:
    """The :class:`~ioc_analytics.engine.base.Engine` of the ``aws`` backend."""

    backend = "aws"

    def __init__(self, settings: Settings, catalog: Catalog, lake: S3Lake,
                 registry: GlueRegistry) -> None:
        """Built by the backend (:func:`ioc_analytics.backends.get_backend`), which hands it its parts."""
        from airflow.providers.amazon.aws.hooks.athena import AthenaHook

        self.settings = settings
        self.catalog: Catalog = catalog
        self.lake: S3Lake = lake
        self.registry: GlueRegistry = registry
        self.hook: AthenaHook = AthenaHook(aws_conn_id=settings.aws_conn_id, region_name=settings.region)

    # -- the Engine interface -------------------------------------------------------------

    def lineage_name(self, table: str) -> tuple[str, str]:
        """A table's OpenLineage namespace and name, as OpenLineage names Athena's tables."""
        namespace = f"awsathena://athena.{self.settings.region}.amazonaws.com"
        return namespace, f"AwsDataCatalog.{self.catalog.database}.{table}"

    def query(
        self,
        sql: str,
        parameters: Sequence[object] = (),
        tags: Mapping[str, str] | None = None,
        reuse_minutes: int = 0,
    ) -> QueryResult:
        """Run one query and return all its rows, typed from Athena's result metadata. With
        ``reuse_minutes``, Athena answers from the result of the same query text run within that
        many minutes in the workgroup, if it has one (query result reuse: nothing scanned)."""
        query_id, execution = self._execute(sql, parameters, tags, reuse_minutes)
        pages = self.hook.get_query_results_paginator(query_id)
        if pages is None:  # the hook logs why; the query was final and SUCCEEDED a moment ago
            raise QueryError(f"Athena query {query_id} succeeded but its results cannot be read", query_id=query_id)
        table = result_table(pages, header=execution.get("StatementType", "DML") == "DML")
        stats = _stats(query_id, execution, tags)
        stats.rows = table.num_rows
        return QueryResult(table, stats)

    def replace_partition(
        self,
        table: str,
        partition: Mapping[str, str],
        select_sql: str,
        parameters: Sequence[object] = (),
        tags: Mapping[str, str] | None = None,
        sidecars: Mapping[str, bytes] | None = None,
    ) -> QueryStats:
        """Publish the rows of ``select_sql`` as the partition's new version: UNLOAD, then switch
        (with ``sidecars``, hidden files, written beside the data before the switch).

        1. ``UNLOAD (select_sql) TO '<partition>/<new version>/' WITH (format = 'PARQUET',
           compression = 'SNAPPY')`` writes the files into a fresh prefix that no reader looks
           at (``parameters`` bind as in :meth:`query`);
        2. the version is marked committed and the Glue partition pointed at it, in one
           ``UpdatePartition`` (or ``CreatePartition``), so a reader sees the old rows or the new
           ones, never a mix; versions older than the previous one are deleted
           (:func:`ioc_analytics.lake.partitions.publish`).

        If UNLOAD fails, the partition keeps its old version and the unfinished one is deleted.
        ``select_sql`` returns the table's data columns (not its partition keys) in DDL order;
        when its select list names them, the names are checked before anything runs.
        """
        from ioc_analytics.lake import partitions

        target = self.catalog.table(table)
        values = dict(partition)
        partitions.check_versioned(target)
        _check_select_columns(target, select_sql)
        self.registry.storage_descriptor(target)  # the Glue table must exist before anything runs

        def unload(entry: dict[str, Any]) -> str:
            # The new version's prefix is chosen once per submission and kept with it, so that the
            # step run again (after a deferral, or a retry after its worker died) reconnects to the
            # same UNLOAD and publishes what it wrote.
            location = entry.setdefault("location",
                                        partitions.version_location(target, values, partitions.new_version()))
            return unload_sql(select_sql, location)

        identity = json.dumps({"partition": [table, values], "select": select_sql,
                               "parameters": [athena_literal(p) for p in parameters],
                               "sidecars": {k: hashlib.sha256(v).hexdigest() for k, v in (sidecars or {}).items()}},
                              sort_keys=True)
        entry: dict[str, Any] = {}
        try:
            query_id, execution = self._execute(unload, parameters, tags, identity=identity, entry=entry,
                                                select=select_sql)
            partitions.write_sidecars(self.lake, entry["location"], sidecars)
        except QueryPending:
            raise  # still running: the step comes back for it
        except BaseException:
            if "location" in entry:
                self.lake.delete_prefix(entry["location"])
            raise
        partitions.publish(self.lake, self.registry, target, values, entry["location"])
        return _stats(query_id, execution, tags)

    # -- running a query ------------------------------------------------------------------

    def _execute(
        self,
        sql: str | Callable[[dict[str, Any]], str],
        parameters: Sequence[object],
        tags: Mapping[str, str] | None,
        reuse_minutes: int = 0,
        *,
        identity: str | None = None,
        entry: dict[str, Any] | None = None,
        select: str | None = None,
    ) -> tuple[str, dict[str, Any]]:
        """Start a query (or, under a :class:`Resume`, reconnect to the one this step started) and
        wait for it; return its id and its final ``QueryExecution``.

        ``sql`` may be a function of the submission's record (``entry``), for a text that holds
        something chosen once per submission (an UNLOAD's target); ``identity`` then names the
        work, for the journal, and ``select`` is the query the text runs (for the task's lineage,
        :mod:`ioc_analytics.engine.lineage`). Under a ``Resume`` (:func:`~ioc_analytics.engine.base.current_resume`):

        - the record is kept in the task's journal *before* submitting (with the idempotency token
          and the chosen target) and again with the query id after, so a step run again finds it;
        - a query found there that is running or has succeeded is reconnected to, not submitted
          again; one that failed or was cancelled in an earlier try is submitted afresh (a new
          token, a new target);
        - ``StartQueryExecution`` carries ``ClientRequestToken``, derived from the task instance,
          the work and the number of earlier failures: a retry whose worker died between
          submitting and recording submits the same request, which Athena answers with the query
          already running instead of starting another;
        - a query still running after ``defer_after_s`` raises :class:`QueryPending`, with the
          trigger that waits for it; its timeout counts from when it was first submitted.
        """
        resume = current_resume()
        entry = {} if entry is None else entry
        query_id: str | None = None
        key = ""
        if resume is not None:
            key = "athena-" + hashlib.sha256(
                (identity or json.dumps([sql, [athena_literal(p) for p in parameters], reuse_minutes])).encode()
            ).hexdigest()[:40]
            entry.update(resume.journal.get(key) or {})
            query_id = entry.get("query_id")
            if query_id:
                state = self.hook.get_query_info(query_id)["QueryExecution"]["Status"]["State"]
                if state in ("FAILED", "CANCELLED") and entry.get("attempt", 0) < resume.attempt:
                    log.warning("Athena query %s, submitted by try %s, ended %s: submitting it afresh",
                                query_id, entry.get("attempt"), state)
                    failures = entry.get("failures", 0) + 1
                    entry.clear()
                    entry["failures"] = failures
                    query_id = None
                else:
                    log.info("Reconnecting to Athena query %s (%s), submitted by try %s of this task",
                             query_id, state, entry.get("attempt"))
        text = sql(entry) if callable(sql) else sql
        if query_id is None:
            if resume is not None:
                entry.setdefault("token", hashlib.sha256(
                    f"{resume.scope}|{key}|{entry.get('failures', 0)}".encode()).hexdigest())
                entry.setdefault("started", time.time())
                resume.journal.set(key, entry)
            query_id = self._start(text, parameters, tags, reuse_minutes, entry.get("token"))
            if resume is not None:
                entry.update(query_id=query_id, attempt=resume.attempt)
                resume.journal.set(key, entry)
        deadline = entry.get("started", time.time()) + self.settings.query_timeout_s
        execution = self._wait(query_id, deadline, resume.defer_after_s if resume else None)
        if execution is None:
            from ioc_analytics.backends.aws.trigger import AthenaQueryTrigger

            trigger = AthenaQueryTrigger(query_id=query_id, deadline=deadline, timeout_s=self.settings.query_timeout_s,
                                         aws_conn_id=self.settings.aws_conn_id, region_name=self.settings.region)
            # Airflow's own timeout for the deferral is a backstop a minute past the trigger's.
            raise QueryPending(query_id, trigger, dt.timedelta(seconds=max(deadline - time.time(), 0) + 60))
        status = execution["Status"]
        lineage.queried(self.catalog, select or text, parameters, _stats(query_id, execution, tags))
        if status["State"] != "SUCCEEDED":
            raise athena_error(query_id, status)
        return query_id, execution

    def _start(self, text: str, parameters: Sequence[object], tags: Mapping[str, str] | None,
               reuse_minutes: int, token: str | None) -> str:
        from botocore.exceptions import ClientError

        request: dict[str, Any] = {
            "QueryString": with_tags(text, tags),
            "QueryExecutionContext": {"Database": self.settings.database},
            # Passed per query, not left to the workgroup: GetQueryExecution then always reports
            # it (and a workgroup that enforces its own location still wins on real Athena).
            "ResultConfiguration": {"OutputLocation": self.settings.athena_output},
            "WorkGroup": self.settings.workgroup,
        }
        if parameters:
            request["ExecutionParameters"] = [athena_literal(p) for p in parameters]
        if reuse_minutes:
            request["ResultReuseConfiguration"] = {
                "ResultReuseByAgeConfiguration": {"Enabled": True, "MaxAgeInMinutes": reuse_minutes}}
        if token:
            request["ClientRequestToken"] = token
        log.info(
            "Starting Athena query in workgroup %s, database %s%s:\n%s",
            self.settings.workgroup, self.settings.database,
            f", parameters {request['ExecutionParameters']}" if parameters else "", request["QueryString"],
        )
        try:
            return self.hook.get_conn().start_query_execution(**request)["QueryExecutionId"]
        except ClientError as err:
            error = err.response.get("Error", {})
            failure = athena_error(
                None, {"State": "FAILED", "StateChangeReason": f"{error.get('Code')}: {error.get('Message')}"}
            )
            # Throttling (the account's concurrent-query limit) and server errors pass with time:
            # botocore has already retried them a few times; let Airflow retry with its backoff.
            status = err.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
            failure.retryable = error.get("Code") in _TRANSIENT_CODES or status >= 500
            raise failure from None

    def _wait(self, query_id: str, deadline: float, defer_after_s: float | None = None) -> dict[str, Any] | None:
        """The query's final ``QueryExecution``; ``None`` if it is still running after
        ``defer_after_s`` (the caller hands it to the triggerer). Past ``deadline`` (epoch
        seconds) it is stopped and :class:`QueryTimeoutError` raised."""
        handover = None if defer_after_s is None else time.monotonic() + defer_after_s
        delay = POLL_FIRST_S
        try:
            while True:
                execution = self.hook.get_query_info(query_id)["QueryExecution"]
                if execution["Status"]["State"] in self.hook.TERMINAL_STATES:
                    return execution
                remaining = deadline - time.time()
                if remaining <= 0:
                    break
                if handover is not None and time.monotonic() >= handover:
                    return None
                pause = min(delay, remaining)
                if handover is not None:
                    pause = min(pause, max(handover - time.monotonic(), 0.0))
                time.sleep(pause)
                delay = min(delay * 1.5, POLL_MAX_S)
        except BaseException:
            # The task is being killed (or the connection broke): do not leave the query running.
            self._stop_quietly(query_id)
            raise
        self._stop_quietly(query_id)
        raise QueryTimeoutError.stopped(query_id, self.settings.query_timeout_s)

    def _stop_quietly(self, query_id: str) -> None:
        try:
            self.hook.stop_query(query_id)
        except Exception as err:  # stopping is best effort; the original failure matters more
            log.warning("Could not stop Athena query %s: %s", query_id, err)


# -- pure helpers: SQL text, literals, errors, results ------------------------------------------


def unload_sql(select_sql: str, prefix: str) -> str:
    """The UNLOAD statement that writes ``select_sql``'s rows as SNAPPY Parquet under ``prefix``."""
    body = select_sql.strip().rstrip(";").strip()
    target = prefix.replace("'", "''")
    return f"UNLOAD ({body})\nTO '{target}'\nWITH (format = 'PARQUET', compression = 'SNAPPY')"


def athena_literal(value: object) -> str:
    """One ``ExecutionParameters`` entry: the value as an Athena (Trino) SQL literal.

    Athena substitutes each entry for a ``?`` as literal text, so strings must be quoted (with
    quotes doubled) and numbers left bare.
    """
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise QueryError(f"cannot bind {value!r}: Athena parameters take finite numbers only")
        return repr(value)
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise QueryError(f"cannot bind {value!r}: Athena parameters take finite numbers only")
        return format(value, "f")
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
        return f"TIMESTAMP '{value.isoformat(sep=' ', timespec='milliseconds')}'"
    if isinstance(value, dt.date):
        return f"DATE '{value.isoformat()}'"
    raise QueryError(
        f"cannot bind a {type(value).__name__} ({value!r}) as an Athena parameter: "
        "use str, int, float, Decimal, bool, date, datetime or None"
    )


# Engine 3 names the error (TABLE_NOT_FOUND: ...); engine 2 said SYNTAX_ERROR for all three, so
# the column and table patterns are tried before the syntax ones.
_SYNTAX_MARKERS = ("SYNTAX_ERROR", "mismatched input", "extraneous input", "no viable alternative")
_TABLE_MARKERS = ("TABLE_NOT_FOUND", "SCHEMA_NOT_FOUND")
_COLUMN_MARKERS = ("COLUMN_NOT_FOUND",)
_COLUMN_RE = re.compile(r"Column '?[^ ]+'? cannot be resolved")
_TABLE_RE = re.compile(r"(Table|Schema) '?[^ ]+'? does not exist")
_CUTOFF_MARKERS = ("Bytes scanned limit was exceeded",)
#: API error codes that a later try can get past (throttling, Athena's own trouble).
_TRANSIENT_CODES = {"TooManyRequestsException", "ThrottlingException", "InternalServerException"}
#: AthenaError ErrorType codes for a query that ran out of time (Athena's error catalog).
_TIMEOUT_TYPES = {206, 210}


def athena_error(query_id: str | None, status: Mapping[str, Any]) -> QueryError:
    """The :class:`QueryError` for a FAILED or CANCELLED query's ``Status`` (pure: testable offline).

    The message carries Athena's own words (``AthenaError.ErrorMessage``, else
    ``StateChangeReason``) and the query id; the subclass says what kind of mistake it was.
    """
    state = status.get("State", "FAILED")
    athena = status.get("AthenaError") or {}
    reason = athena.get("ErrorMessage") or status.get("StateChangeReason") or ""
    where = f"Athena query {query_id}" if query_id else "Athena refused the query:"
    if state == "CANCELLED" and not reason:
        return QueryError(
            f"{where} was cancelled (by a user, a workgroup limit or a stopped task); re-run it", query_id=query_id
        )
    verb = "was cancelled" if state == "CANCELLED" else "failed"
    message = f"{where} {verb}: {reason}" if query_id else f"{where} {reason}"
    kind: type[QueryError] = QueryError
    if any(m in reason for m in _CUTOFF_MARKERS):
        kind = BytesScannedCutoffError
        message += (" (the workgroup's per-query bytes-scanned cutoff: filter on partition keys, "
                    "or raise the workgroup's BytesScannedCutoffPerQuery)")
    elif any(m in reason for m in _COLUMN_MARKERS) or _COLUMN_RE.search(reason):
        kind = UnknownColumnError
    elif any(m in reason for m in _TABLE_MARKERS) or _TABLE_RE.search(reason):
        kind = UnknownTableError
    elif any(m in reason for m in _SYNTAX_MARKERS):
        kind = SqlSyntaxError
    elif athena.get("ErrorType") in _TIMEOUT_TYPES:
        kind = QueryTimeoutError
    if athena.get("Retryable"):
        message += " (Athena marks this error retryable)"
        return kind(message, query_id=query_id, retryable=True)
    return kind(message, query_id=query_id)


def _parse_timestamp_tz(text: str) -> dt.datetime:
    """``2024-01-15 10:30:00.000 UTC`` (or a zone name or offset) -> an aware UTC datetime."""
    from zoneinfo import ZoneInfo

    local, _, zone = text.rpartition(" ")
    if zone[:1] in "+-":
        value = dt.datetime.fromisoformat(local + zone)
    else:
        value = dt.datetime.fromisoformat(local).replace(tzinfo=ZoneInfo(zone))
    return value.astimezone(dt.UTC)


def _bool(text: str) -> bool:
    return text.lower() == "true"


def _column_type(info: Mapping[str, Any]) -> tuple[pa.DataType, Callable[[str], object] | None]:
    """The Arrow type of one result column, and how to convert Athena's text to it."""
    kind = str(info.get("Type", "varchar")).lower()
    simple: dict[str, tuple[pa.DataType, Callable[[str], object] | None]] = {
        "varchar": (pa.string(), None),
        "char": (pa.string(), None),
        "string": (pa.string(), None),
        "tinyint": (pa.int8(), int),
        "smallint": (pa.int16(), int),
        "integer": (pa.int32(), int),
        "int": (pa.int32(), int),
        "bigint": (pa.int64(), int),
        "double": (pa.float64(), float),
        "float": (pa.float32(), float),
        "real": (pa.float32(), float),
        "boolean": (pa.bool_(), _bool),
        "date": (pa.date32(), dt.date.fromisoformat),
        "timestamp": (pa.timestamp("us"), dt.datetime.fromisoformat),
        "timestamp with time zone": (pa.timestamp("us", tz="UTC"), _parse_timestamp_tz),
        "time": (pa.time64("us"), dt.time.fromisoformat),
        "varbinary": (pa.binary(), bytes.fromhex),
    }
    if kind in simple:
        return simple[kind]
    if kind == "decimal":
        precision, scale = int(info.get("Precision") or 38), int(info.get("Scale") or 0)
        arrow = pa.decimal128(precision, scale) if precision <= 38 else pa.decimal256(precision, scale)
        return arrow, Decimal
    # array, map, row, json, interval, uuid...: Athena returns them as display text, which
    # cannot be parsed back reliably; keep it as text rather than guess.
    return pa.string(), None


def result_table(pages: Iterable[Mapping[str, Any]], *, header: bool = True) -> pa.Table:
    """All pages of ``GetQueryResults`` as one typed table.

    The first row of the first page is the header Athena adds to DML results (``header``); a
    cell without ``VarCharValue`` is NULL (an empty string has one).
    """
    columns: list[Mapping[str, Any]] | None = None
    cells: list[list[str | None]] = []
    for page_number, page in enumerate(pages):
        result_set = page.get("ResultSet", {})
        if columns is None:
            columns = list(result_set.get("ResultSetMetadata", {}).get("ColumnInfo", []))
        rows = result_set.get("Rows", [])
        if page_number == 0 and header and rows:
            rows = rows[1:]
        for row in rows:
            cells.append([cell.get("VarCharValue") for cell in row.get("Data", [])])
    columns = columns or []
    arrays: list[pa.Array] = []
    names: list[str] = []
    for index, info in enumerate(columns):
        arrow_type, convert = _column_type(info)
        name = info.get("Name") or info.get("Label") or f"_col{index}"
        texts = [row[index] if index < len(row) else None for row in cells]
        try:
            values = texts if convert is None else [None if t is None else convert(t) for t in texts]
        except (ValueError, ArithmeticError) as err:
            raise QueryError(f"result column {name} ({info.get('Type')}) has a value not of that type: {err}") from None
        arrays.append(pa.array(values, type=arrow_type))
        names.append(name)
    return pa.Table.from_arrays(arrays, names=names)


def _stats(query_id: str, execution: Mapping[str, Any], tags: Mapping[str, str] | None) -> QueryStats:
    statistics = execution.get("Statistics", {})
    scanned = int(statistics.get("DataScannedInBytes", 0) or 0)
    reused = bool(statistics.get("ResultReuseInformation", {}).get("ReusedPreviousResult", False))
    return QueryStats(
        query_id,
        execution["Status"]["State"],
        bytes_scanned=scanned,
        elapsed_s=int(statistics.get("TotalExecutionTimeInMillis", 0) or 0) / 1000,
        # a reused result scans nothing and is not billed
        cost_usd=0.0 if reused else athena_cost(scanned),
        tags=dict(tags or {}),
        reused=reused,
    )


def _check_select_columns(table: Table, select_sql: str) -> None:
    """Refuse, before anything is deleted, a SELECT whose named columns differ from the DDL's.

    UNLOAD writes whatever the SELECT returns and Athena reads Parquet columns by name, so a
    misnamed column would silently read back as NULL. A ``*`` or an unparsable query is left for
    Athena to judge.
    """
    import sqlglot

    try:
        tree = sqlglot.parse_one(select_sql, read="athena")
    except sqlglot.errors.ParseError:
        return
    names = getattr(tree, "named_selects", None)
    if not names or "*" in names:
        return
    names = [n or f"_col{i}" for i, n in enumerate(names)]  # what Athena calls an unnamed column
    expected = [c.name for c in table.columns]
    if [n.lower() for n in names] != [n.lower() for n in expected]:
        raise QueryError(
            f"the query for {table.name} returns columns ({', '.join(names)}) but the table declares "
            f"({', '.join(expected)}): make the SELECT list match the DDL, in order, without partition keys"
        )
