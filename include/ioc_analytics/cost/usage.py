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

from ioc_analytics.backends import get_backend
from ioc_analytics.engine.base import DailyUsage, QueryRecord, add_query, in_window, utc_bounds
from ioc_analytics.settings import Settings

__all__ = ["DailyUsage", "QueryRecord", "add_query", "daily_usage", "query_history"]


def query_history(settings: Settings, start: dt.date, end: dt.date) -> list[QueryRecord]:
    """The workgroup's queries submitted on the days ``start`` to ``end`` (UTC), oldest first."""
    first, last = utc_bounds(start, end)
    records = get_backend(settings).query_history(first)
    return sorted(in_window(records, settings.workgroup, first, last), key=lambda r: r.submitted_at)


def daily_usage(settings: Settings, start: dt.date, end: dt.date) -> dict[dt.date, DailyUsage]:
    """The workgroup's totals for each day from ``start`` to ``end``; a day without queries is
    present, with zeros."""
    days = {start + dt.timedelta(days=n): DailyUsage(start + dt.timedelta(days=n), settings.workgroup)
            for n in range((end - start).days + 1)}
    get_backend(settings).fill_daily_usage(days)
    return days
