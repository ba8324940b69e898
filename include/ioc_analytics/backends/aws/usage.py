"""Athena's query history and CloudWatch's daily metrics of the workgroup (``aws`` backend)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

from ioc_analytics.engine.base import (
    MIN_BILLED_BYTES,
    PRICE_PER_TB_USD,
    TB,
    DailyUsage,
    QueryRecord,
    athena_cost,
    read_tags,
    utc_bounds,
)
from ioc_analytics.settings import Settings

#: The custom metric the cost monitor publishes daily on ``aws`` (the month-to-date alarm reads it).
METRIC_NAMESPACE = "IOC/Analytics"
MTD_METRIC = "MonthToDateCostUSD"
#: Athena's own metrics; each is published per query with these dimensions.
ATHENA_NAMESPACE = "AWS/Athena"
ATHENA_STATES = ("SUCCEEDED", "FAILED", "CANCELED")


def athena_dimensions(workgroup: str, state: str) -> list[dict[str, str]]:
    return [{"Name": "QueryState", "Value": state}, {"Name": "QueryType", "Value": "DML"},
            {"Name": "WorkGroup", "Value": workgroup}]


def athena_history(settings: Settings, since: dt.datetime) -> Iterator[QueryRecord]:
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


def cloudwatch_days(settings: Settings, days: dict[dt.date, DailyUsage]) -> None:
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
    first, last = utc_bounds(min(days), max(days))
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


def publish_month_to_date(settings: Settings, spent: float) -> None:
    """The month-to-date cost as a CloudWatch metric: ``ioc setup``'s budget alarm watches it."""
    from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook

    client = AwsBaseHook(aws_conn_id=settings.aws_conn_id, client_type="cloudwatch",
                         region_name=settings.region).get_conn()
    client.put_metric_data(Namespace=METRIC_NAMESPACE, MetricData=[{
        "MetricName": MTD_METRIC, "Dimensions": [{"Name": "WorkGroup", "Value": settings.workgroup}],
        "Value": round(spent, 6), "Unit": "None"}])
