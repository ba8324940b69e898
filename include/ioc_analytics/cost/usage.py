"""What the query engine was used for: each query, and each day's totals, on either backend.

========================  ==================================  =====================================
                          ``local``                           ``aws``
========================  ==================================  =====================================
each query (history)      the engine's query log              Athena ``ListQueryExecutions`` and
                          (``<state_dir>/query_log.jsonl``)   ``GetQueryExecution`` per query
each day's totals         the query log, summed               CloudWatch ``AWS/Athena`` metrics of
                                                              the workgroup (``GetMetricData``)
========================  ==================================  =====================================

On ``aws`` the daily totals come from CloudWatch, which keeps them for 15 months, rather than from
the query history, which Athena keeps for 45 days. CloudWatch gives each day's sum, count and
largest value of ``ProcessedBytes``, not each query's bytes, so the 10 MB per-query minimum can
only be applied to the day's average query: a lower bound on the bill when queries are small. The
cost monitor therefore costs the day it examines query by query from the history, and keeps the
result (``daily_costs``); CloudWatch's figure serves only days the monitor has not kept.

Both sources read the workgroup in ``settings.workgroup``.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field

from ioc_analytics.engine.base import MIN_BILLED_BYTES, PRICE_PER_TB_USD, TB, athena_cost, read_tags
from ioc_analytics.errors import ConfigError
from ioc_analytics.jsonlines import JsonLines
from ioc_analytics.settings import Settings

log = logging.getLogger(__name__)

#: The custom metric the cost monitor publishes daily on ``aws`` (the month-to-date alarm reads it).
METRIC_NAMESPACE = "IOC/Analytics"
MTD_METRIC = "MonthToDateCostUSD"
#: Athena's own metrics; each is published per query with these dimensions.
ATHENA_NAMESPACE = "AWS/Athena"
ATHENA_STATES = ("SUCCEEDED", "FAILED", "CANCELED")


def athena_dimensions(workgroup: str, state: str) -> list[dict[str, str]]:
    return [{"Name": "QueryState", "Value": state}, {"Name": "QueryType", "Value": "DML"},
            {"Name": "WorkGroup", "Value": workgroup}]


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


def _utc_bounds(start: dt.date, end: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """The instants from the start of ``start`` to the end of ``end`` (UTC)."""
    first = dt.datetime.combine(start, dt.time(), dt.UTC)
    return first, dt.datetime.combine(end + dt.timedelta(days=1), dt.time(), dt.UTC)


# -- each query --------------------------------------------------------------------------------

def query_history(settings: Settings, start: dt.date, end: dt.date) -> list[QueryRecord]:
    """The workgroup's queries submitted on the days ``start`` to ``end`` (UTC), oldest first."""
    first, last = _utc_bounds(start, end)
    records = _local_history(settings) if settings.backend == "local" else _athena_history(settings, first)
    kept = [r for r in records if r.workgroup == settings.workgroup and first <= r.submitted_at < last]
    return sorted(kept, key=lambda r: r.submitted_at)


def _local_history(settings: Settings) -> Iterator[QueryRecord]:
    for entry in JsonLines(settings.query_log_path):
        try:
            submitted = dt.datetime.fromisoformat(str(entry["submitted_at"]))
            if submitted.tzinfo is None:
                raise ValueError(f"submitted_at {entry['submitted_at']} has no time zone")
            record = QueryRecord(
                query_id=str(entry["query_id"]),
                workgroup=str(entry.get("workgroup") or settings.workgroup),
                submitted_at=submitted.astimezone(dt.UTC),
                state=str(entry["state"]),
                bytes_scanned=int(entry.get("bytes_scanned") or 0),
                engine_ms=round(float(entry.get("elapsed_s") or 0) * 1000),
                cost_usd=float(entry.get("cost_usd") or 0.0),
                query=str(entry.get("query") or ""),
                error=entry.get("error"),  # type: ignore[arg-type]
                tags=dict(entry.get("tags") or read_tags(str(entry.get("query") or ""))),  # type: ignore[arg-type]
            )
        except (KeyError, ValueError, TypeError) as err:
            raise ConfigError(f"{settings.query_log_path}: query {entry.get('query_id', '?')} is not a whole query "
                              f"record ({type(err).__name__}: {err}): fix or delete its line") from None
        yield record


def _athena_history(settings: Settings, since: dt.datetime) -> Iterator[QueryRecord]:
    """The history, newest first as Athena lists it, down to the first page older than ``since``.

    Each query is read with ``GetQueryExecution``: ``BatchGetQueryExecution`` would take 50 at a
    time, but moto (the tests' server) does not implement it, and a day of this project's queries
    is a few hundred calls.
    """
    from airflow.providers.amazon.aws.hooks.athena import AthenaHook

    client = AthenaHook(aws_conn_id=settings.aws_conn_id, region_name=settings.region).get_conn()
    for page in client.get_paginator("list_query_executions").paginate(WorkGroup=settings.workgroup):
        oldest = None
        for query_id in page.get("QueryExecutionIds", []):
            execution = client.get_query_execution(QueryExecutionId=query_id)["QueryExecution"]
            record = _athena_record(execution, settings.workgroup)
            oldest = record.submitted_at if oldest is None else min(oldest, record.submitted_at)
            yield record
        if oldest is not None and oldest < since:
            return


def _athena_record(execution: dict, workgroup: str) -> QueryRecord:
    status, stats = execution.get("Status", {}), execution.get("Statistics", {})
    submitted = status.get("SubmissionDateTime")
    if isinstance(submitted, int | float):
        submitted = dt.datetime.fromtimestamp(submitted, dt.UTC)
    state = status.get("State", "UNKNOWN")
    scanned = int(stats.get("DataScannedInBytes") or 0)
    text = execution.get("Query", "")
    return QueryRecord(
        query_id=execution["QueryExecutionId"],
        workgroup=execution.get("WorkGroup") or workgroup,
        submitted_at=submitted.astimezone(dt.UTC),
        state=state,
        bytes_scanned=scanned,
        engine_ms=int(stats.get("EngineExecutionTimeInMillis") or 0),
        cost_usd=athena_cost(scanned, succeeded=state != "FAILED"),  # cancelled ones pay for their scan
        query=text,
        error=status.get("StateChangeReason") or (status.get("AthenaError") or {}).get("ErrorMessage"),
        tags=read_tags(text),
    )


# -- each day's totals -------------------------------------------------------------------------

def daily_usage(settings: Settings, start: dt.date, end: dt.date) -> dict[dt.date, DailyUsage]:
    """The workgroup's totals for each day from ``start`` to ``end``; a day without queries is
    present, with zeros."""
    days = {start + dt.timedelta(days=n): DailyUsage(start + dt.timedelta(days=n), settings.workgroup)
            for n in range((end - start).days + 1)}
    if settings.backend == "local":
        for record in query_history(settings, start, end):
            add_query(days[record.submitted_at.date()], record)
    else:
        _cloudwatch_days(settings, days)
    return days


def add_query(day: DailyUsage, record: QueryRecord) -> None:
    day.queries += 1
    day.failed += record.state == "FAILED"
    day.bytes_scanned += record.bytes_scanned
    day.cost_usd += record.cost_usd
    day.max_query_cost_usd = max(day.max_query_cost_usd, record.cost_usd)


def _cloudwatch_days(settings: Settings, days: dict[dt.date, DailyUsage]) -> None:
    """Fill ``days`` from ``AWS/Athena``: per state, the day's query count (``SampleCount`` of
    ``TotalExecutionTime``) and bytes (``Sum`` and ``Maximum`` of ``ProcessedBytes``)."""
    from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook

    client = AwsBaseHook(aws_conn_id=settings.aws_conn_id, client_type="cloudwatch",
                         region_name=settings.region).get_conn()
    queries = []
    for state in ATHENA_STATES:
        for metric, stat in (("TotalExecutionTime", "SampleCount"), ("ProcessedBytes", "Sum"),
                             ("ProcessedBytes", "Maximum"), ("ProcessedBytes", "SampleCount")):
            queries.append({
                "Id": f"{state.lower()}_{metric.lower()}_{stat.lower()}",
                "MetricStat": {"Metric": {"Namespace": ATHENA_NAMESPACE, "MetricName": metric,
                                          "Dimensions": athena_dimensions(settings.workgroup, state)},
                               "Period": 86400, "Stat": stat},
                "ReturnData": True,
            })
    first, last = _utc_bounds(min(days), max(days))
    values: dict[str, dict[dt.date, float]] = {}
    for page in client.get_paginator("get_metric_data").paginate(
            MetricDataQueries=queries, StartTime=first, EndTime=last, ScanBy="TimestampAscending"):
        for result in page["MetricDataResults"]:
            series = values.setdefault(result["Id"], {})
            for stamp, value in zip(result["Timestamps"], result["Values"], strict=True):
                day = stamp.astimezone(dt.UTC).date()
                series[day] = series.get(day, 0.0) + value
    for day, usage in days.items():
        def get(state: str, metric: str, stat: str, day: dt.date = day) -> float:
            return values.get(f"{state.lower()}_{metric.lower()}_{stat.lower()}", {}).get(day, 0.0)

        usage.queries = round(sum(get(s, "TotalExecutionTime", "SampleCount") for s in ATHENA_STATES))
        usage.failed = round(get("FAILED", "TotalExecutionTime", "SampleCount"))
        billed = 0.0
        for state in ("SUCCEEDED", "CANCELED"):  # failed queries are free
            total, count = get(state, "ProcessedBytes", "Sum"), get(state, "ProcessedBytes", "SampleCount")
            usage.bytes_scanned += round(total)
            billed += max(total, count * MIN_BILLED_BYTES)
        usage.cost_usd = billed / TB * PRICE_PER_TB_USD
        largest = max(get("SUCCEEDED", "ProcessedBytes", "Maximum"), get("CANCELED", "ProcessedBytes", "Maximum"))
        usage.max_query_cost_usd = athena_cost(round(largest)) if largest else 0.0
