"""What every query engine returns, what a query costs, how a query says who ran it, what the
query history records of each query, and how a step's queries outlive its worker."""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import asdict, dataclass, field
from typing import Protocol

import pyarrow as pa

from ioc_analytics.text import plural

# Athena's price: $5 per TB scanned, billed per whole MB, 10 MB minimum per query; DDL and failed
# queries are free. AWS bills storage and scans in binary units (1 MB = 2**20 bytes).
PRICE_PER_TB_USD = 5.0
MB = 2**20
TB = 2**40
MIN_BILLED_BYTES = 10 * MB


def athena_cost(bytes_scanned: int, *, succeeded: bool = True) -> float:
    """The dollars Athena charges for a query that scanned ``bytes_scanned`` bytes."""
    if not succeeded:
        return 0.0
    billed = max(math.ceil(bytes_scanned / MB) * MB, MIN_BILLED_BYTES)
    return billed / TB * PRICE_PER_TB_USD


# Query tags travel in a leading SQL comment, because Athena has no per-query tags: the query
# history keeps the text, so the cost monitor can attribute every query to its DAG, task and date.
_TAG_PREFIX = "/* ioc-tags: "
_TAG_RE = re.compile(r"^/\* ioc-tags: (\{.*?\}) \*/\n", re.S)


def with_tags(sql: str, tags: Mapping[str, str] | None) -> str:
    if not tags:
        return sql
    return f"{_TAG_PREFIX}{json.dumps(dict(tags), sort_keys=True)} */\n{sql}"


def without_tags(sql: str) -> str:
    return _TAG_RE.sub("", sql, count=1)


def read_tags(sql: str) -> dict[str, str]:
    match = _TAG_RE.match(sql)
    return json.loads(match.group(1)) if match else {}


@dataclass
class QueryStats:
    """What a query did, as the query history records it."""

    query_id: str
    state: str  # SUCCEEDED | FAILED | CANCELLED
    bytes_scanned: int = 0
    elapsed_s: float = 0.0
    cost_usd: float = 0.0
    rows: int = 0
    #: Partitions and files the engine read; ``None`` where the backend does not say (Athena).
    partitions_scanned: int | None = None
    files_scanned: int | None = None
    tags: dict[str, str] = field(default_factory=dict)
    error: str | None = None
    #: Answered from an earlier run's result (Athena's result reuse, the local result cache): no
    #: data scanned, nothing billed.
    reused: bool = False

    def as_dict(self) -> dict[str, object]:
        return asdict(self)

    def summary(self) -> str:
        scanned = f"{self.bytes_scanned / MB:,.2f} MB scanned"
        parts = f", {plural(self.partitions_scanned, 'partition')}" if self.partitions_scanned is not None else ""
        reused = ", from an earlier result" if self.reused else ""
        return (
            f"{self.rows:,} {'row' if self.rows == 1 else 'rows'}, {scanned}{parts}{reused}, {self.elapsed_s:.2f} s, "
            f"${self.cost_usd:.6f} at Athena's price (query {self.query_id})"
        )


@dataclass
class QueryResult:
    table: pa.Table
    stats: QueryStats

    def to_pandas(self):
        return self.table.to_pandas()


class Engine(Protocol):
    """One interface over DuckDB (``local``) and Athena (``aws``).

    ``sql`` is always Athena SQL; ``parameters`` bind to ``?`` placeholders (never pasted into
    the text); ``tags`` name who ran the query (DAG, task, date) for the cost monitor.
    ``reuse_minutes`` answers the query from the result of the same query over the same data
    run within that many minutes, if there is one (``QueryStats.reused``).
    """

    backend: str

    def query(
        self,
        sql: str,
        parameters: Sequence[object] = (),
        tags: Mapping[str, str] | None = None,
        reuse_minutes: int = 0,
    ) -> QueryResult: ...

    def replace_partition(
        self,
        table: str,
        partition: Mapping[str, str],
        select_sql: str,
        parameters: Sequence[object] = (),
        tags: Mapping[str, str] | None = None,
        sidecars: Mapping[str, bytes] | None = None,
    ) -> QueryStats:
        """Replace one partition of ``table`` with the rows of ``select_sql``, atomically for readers
        (a new version, then one switch of the registered location: ioc_analytics.lake.partitions).

        ``select_sql`` returns the table's data columns (not its partition keys) in DDL order.
        ``sidecars`` are hidden files (names starting with ``_``) written beside the data before the
        switch: what a state partition derives from.
        """
        ...


# -- what the engines record of each query, and a day's totals of them -----------------------------

@dataclass
class QueryRecord:
    """One query of the history."""

    query_id: str
    workgroup: str
    submitted_at: dt.datetime  # UTC
    state: str  # SUCCEEDED | FAILED | CANCELLED (Athena spells it CANCELLED in the history)
    bytes_scanned: int
    engine_ms: int
    cost_usd: float
    query: str  # the text as run, tag comment included
    error: str | None = None
    tags: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass
class DailyUsage:
    """One workgroup's day."""

    day: dt.date
    workgroup: str
    queries: int = 0
    failed: int = 0
    bytes_scanned: int = 0
    cost_usd: float = 0.0
    max_query_cost_usd: float = 0.0

    @property
    def failure_rate(self) -> float:
        return self.failed / self.queries if self.queries else 0.0


def add_query(day: DailyUsage, record: QueryRecord) -> None:
    day.queries += 1
    day.failed += record.state == "FAILED"
    day.bytes_scanned += record.bytes_scanned
    day.cost_usd += record.cost_usd
    day.max_query_cost_usd = max(day.max_query_cost_usd, record.cost_usd)


def utc_bounds(start: dt.date, end: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """The instants from the start of ``start`` to the end of ``end`` (UTC)."""
    first = dt.datetime.combine(start, dt.time(), dt.UTC)
    return first, dt.datetime.combine(end + dt.timedelta(days=1), dt.time(), dt.UTC)


def in_window(records: Iterable[QueryRecord], workgroup: str, first: dt.datetime,
              last: dt.datetime) -> Iterator[QueryRecord]:
    """The records of ``workgroup`` submitted in [first, last): what the cost monitor counts."""
    return (r for r in records if r.workgroup == workgroup and first <= r.submitted_at < last)


# -- queries that outlive the worker that started them ------------------------------------------


class Journal(Protocol):
    """Where a task keeps what it submitted, across its deferrals and its tries: Airflow's
    ``task_state_store`` (a key-value store per task instance, in the metadata database)."""

    def get(self, key: str, default: object = None) -> object: ...

    def set(self, key: str, value: object) -> None: ...


@dataclass(frozen=True)
class Resume:
    """How an engine's queries may outlive the worker of the step that submits them.

    Set around a step by the operator that runs it (``ioc_analytics.analytics.operators``). An
    engine that submits work to a remote service (Athena) records each query in ``journal`` before
    waiting on it, so that the step run again (resumed from a deferral, a retry after its worker
    died) reconnects to the query instead of submitting it again; and, with ``defer_after_s``,
    raises :class:`QueryPending` for a query still running after that long. An embedded engine
    (DuckDB) runs its queries in the step's own process and ignores this.
    """

    journal: Journal
    #: The task instance, as ``dag_id/run_id/task_id/map_index``: part of each submission's
    #: idempotency token, so two tasks never share one.
    scope: str
    #: The task's try number: a query that failed in an earlier try is submitted afresh; one that
    #: failed in this try (seen again after a deferral) is this try's failure.
    attempt: int
    #: Hand a query still running after this many seconds to the triggerer (``None``: wait in
    #: the worker).
    defer_after_s: float | None = None


class QueryPending(Exception):  # noqa: N818 (a signal, not an error: the operator defers on it)
    """A query is still running and the step may wait for it without a worker: ``trigger`` waits
    (in Airflow's triggerer) and the step is run again when it fires; the journal then reconnects
    the step to the query. Not an :class:`~ioc_analytics.errors.IocError`: nothing failed."""

    def __init__(self, query_id: str, trigger: object, timeout: dt.timedelta) -> None:
        super().__init__(f"query {query_id} is still running")
        self.query_id = query_id
        self.trigger = trigger
        self.timeout = timeout


_RESUME: ContextVar[Resume | None] = ContextVar("ioc_resume", default=None)


@contextmanager
def resumable(resume: Resume | None) -> Iterator[None]:
    """Run the block's queries under ``resume`` (see :class:`Resume`)."""
    token = _RESUME.set(resume)
    try:
        yield
    finally:
        _RESUME.reset(token)


def current_resume() -> Resume | None:
    """The :class:`Resume` the running step's queries are under (``None``: a plain call, such as
    the CLI's, which waits for its queries)."""
    return _RESUME.get()
