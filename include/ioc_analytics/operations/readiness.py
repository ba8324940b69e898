"""Readiness: how far IOC is from the guide's activation criteria, over the 30 complete days before
a day (the last step of ``ioc setup``)."""

from __future__ import annotations

import datetime as dt
import logging

from ioc_analytics.backends import get_backend
from ioc_analytics.cost import usage
from ioc_analytics.errors import NoDataError
from ioc_analytics.lake import sql
from ioc_analytics.operations.setup_report import Criterion, Report
from ioc_analytics.settings import Settings

log = logging.getLogger("ioc_analytics.operations.setup")

# -- the guide's activation criteria ("Activation Criteria"); measured over READINESS_DAYS ----------
READINESS_DAYS = 30

MRR_TARGET_USD = 5_000

ASSESSMENTS_TARGET = 10_000

QUERIES_TARGET = 100


def measure(settings: Settings, report: Report, tags: dict[str, str], today: dt.date) -> None:
    """The guide's activation criteria over the 30 complete days before ``today``."""
    backend = get_backend(settings)
    first, last = today - dt.timedelta(days=READINESS_DAYS), today - dt.timedelta(days=1)
    report.window = (first, last)
    rendered = sql.render("readiness/assessment_volume", today)
    try:
        result = backend.engine.query(rendered.sql, rendered.parameters, tags)
        values = result.table.column(0).to_pylist() if result.table.num_rows else [0]
        assessments = int(values[0] or 0)
    except NoDataError:  # the local engine refuses a query over no partitions: here it means none
        assessments = 0
    # Setup's own queries are not analytics; the pipelines' are, but the count says how many.
    history = [r for r in usage.query_history(settings, first, last) if r.tags.get("dag_id") != "ioc_setup"]
    queries, from_dags = len(history), sum(bool(r.tags.get("dag_id")) for r in history)
    source = backend.history_source

    def met(value: int, target: int) -> str:
        return "met" if value >= target else "not met"

    report.readiness = [
        Criterion("MRR", f"${MRR_TARGET_USD:,}+ a month", None, "not measured",
                  "revenue is in neither the lake nor AWS usage: confirm with finance"),
        Criterion("Data volume", f"{ASSESSMENTS_TARGET:,}+ assessments a month", assessments,
                  met(assessments, ASSESSMENTS_TARGET), "rows of assessment_events in the window"),
        Criterion("Query frequency", f"{QUERIES_TARGET:,}+ analytics queries a month", queries,
                  met(queries, QUERIES_TARGET), f"queries in workgroup {settings.workgroup} ({from_dags} run by "
                  f"DAGs, setup's own excluded), from {source}"),
        Criterion("Team size", "an analytics team or a dedicated BI resource", None, "not measured",
                  "a staffing question, not measurable from here"),
    ]
    for criterion in report.readiness:
        log.info("readiness: %s %s (%s)", criterion.name, criterion.status, criterion.measured)
