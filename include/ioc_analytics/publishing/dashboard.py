"""The local dashboard: one static HTML page per day that a person opens in a browser.

It shows the daily active users of the last 30 days, the day's completion rates by device and
assessment type, the month-to-date OCEAN percentiles by industry, and the day's data-quality
status. The data comes through the query API's named queries (:mod:`ioc_analytics.publishing.api`), so it
is bound, row-limited and suppressed exactly as an API answer is; it is embedded in the page as
JSON and drawn as SVG by a small script in the page itself (no library: the page must open
without network access). Written to ``<exports root>/dashboard/<date>.html`` and
``dashboard/index.html`` (the latest run).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ioc_analytics import quality
from ioc_analytics.backends import get_backend
from ioc_analytics.publishing import api
from ioc_analytics.settings import Settings

log = logging.getLogger(__name__)

TEMPLATE = Path(__file__).resolve().parent / "templates" / "dashboard.html"


def _rows(settings: Settings, name: str, parameters: dict[str, Any],
          tags: Mapping[str, str]) -> tuple[list[dict[str, Any]], str | None]:
    """A named query's rows, every page of them, or none and why (a day not built yet is a
    message, not a failure)."""
    call = api.request({"query": name, "parameters": parameters})
    rows: list[dict[str, Any]] = []
    while True:
        try:
            answer = api.run(settings, call.query, call.values, "dashboard", dict(tags), offset=len(rows))
        except api.RequestError as err:
            return [], str(err)
        rows += json.loads(json.dumps(answer.table.to_pylist(), default=str))
        if not answer.more:
            return rows, None


def render(settings: Settings, day: dt.date, tags: Mapping[str, str] | None = None) -> str:
    """Write the day's dashboard; returns where. ``tags`` go on its queries."""
    tags = tags or {}
    start = (day - dt.timedelta(days=29)).isoformat()
    dau, dau_note = _rows(settings, "daily_active_users", {"start": start, "end": day.isoformat()}, tags)
    rates, rates_note = _rows(settings, "completion_rates", {"start": day.isoformat(), "end": day.isoformat()}, tags)
    traits, traits_note = _rows(settings, "ocean_trait_percentiles", {"date": day.isoformat()}, tags)
    reports = [{"table": r["table"], "passed": r["passed"], "checks": r["evaluated"], "errors": r["errors"],
                "warnings": r["warnings"], "rows": r["rows"], "quarantined": len(r.get("quarantined", []))}
               for r in quality.load_reports(settings, day)]
    data = {"day": day.isoformat(), "generated_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "min_group_users": settings.min_group_users,
            "dau": dau, "completion": rates, "percentiles": traits, "quality": reports,
            "notes": {k: v for k, v in (("dau", dau_note), ("completion", rates_note),
                                        ("percentiles", traits_note)) if v}}
    # The data goes into a <script> element: "</" must not end it early.
    payload = json.dumps(data).replace("</", "<\\/")
    page = TEMPLATE.read_text().replace("/*IOC_DATA*/null", payload).encode()
    store = get_backend(settings).exports
    path = f"{store.root}/dashboard/{day.isoformat()}.html"
    store.put_bytes(path, page)
    store.put_bytes(f"{store.root}/dashboard/index.html", page)
    log.info("dashboard for %s: %s (%d days of users, %d completion rows, %d industries, %d quality reports)",
             day, path, len(dau), len(rates), len(traits), len(reports))
    return path
