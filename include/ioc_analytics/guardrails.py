"""The guide's guard rails as the settings set them: the three cost and failure alarms (CloudWatch
alarms on ``aws``; thresholds the cost monitor evaluates on ``local``), their thresholds and what
each fires on, in words."""

from __future__ import annotations

from ioc_analytics.engine.base import PRICE_PER_TB_USD, TB
from ioc_analytics.settings import Settings

#: Where on-call reads what to do.
README_SECTION = 'docs/operations.md, "Cost governance"'


def budget_threshold_usd(settings: Settings) -> float:
    return settings.monthly_budget_usd * settings.budget_alert_pct / 100


def query_cost_threshold_bytes(settings: Settings) -> float:
    """The bytes one query scans to cost ``query_cost_alert_usd`` at Athena's price."""
    return settings.query_cost_alert_usd / PRICE_PER_TB_USD * TB


def alarm_names(settings: Settings) -> dict[str, str]:
    """The three alarms (on ``aws``) and thresholds (on ``local``), by what they watch."""
    return {kind: f"{settings.workgroup}-{kind}"
            for kind in ("month-to-date-budget", "single-query-cost", "query-failure-rate")}


def threshold_texts(settings: Settings) -> dict[str, str]:
    """What each alarm or threshold fires on, in words, by alarm name."""
    names = alarm_names(settings)
    return {
        names["month-to-date-budget"]: f"month to date >= ${budget_threshold_usd(settings):,.2f} "
                                       f"({settings.budget_alert_pct}% of ${settings.monthly_budget_usd:,.2f})",
        names["single-query-cost"]: f"a query > ${settings.query_cost_alert_usd:,.2f} "
                                    f"({query_cost_threshold_bytes(settings) / 2**30:,.1f} GiB scanned)",
        names["query-failure-rate"]: f"failed queries > {settings.failure_rate_alert_pct}%",
    }


def unreachable_alarm_note(settings: Settings) -> str | None:
    """Why the single-query alarm cannot fire, when the per-query cutoff stops every query first."""
    if settings.bytes_scanned_cutoff < query_cost_threshold_bytes(settings):
        return (f"{alarm_names(settings)['single-query-cost']} cannot fire while the per-query cutoff "
                f"({settings.bytes_scanned_cutoff / 2**30:,.1f} GiB) stops every query before it reaches its "
                "threshold: it guards against a raised IOC_BYTES_SCANNED_CUTOFF")
    return None
