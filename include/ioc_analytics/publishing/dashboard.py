"""The local dashboard: one static HTML page per day that a person opens in a browser.

It shows the daily active users of the 30 days to the day (every day on the axis, a gap where a
day is not built), the day's completion rates by assessment type and device, the month-to-date
OCEAN percentiles by industry on a 0-100 axis, the day's data-quality status, and what the day's
run cost by task. The data comes through the query API's named queries
(:mod:`ioc_analytics.publishing.api`), so it is bound and suppressed exactly as an API answer
is; the cost from the query history. It is embedded in the page as JSON and drawn by Chart.js
(axes, legends, values on hover), whose script is vendored with the package
(``templates/vendor/``) and inlined, so the page opens with no server and no network. A chart with
no data says why. Written to ``<exports root>/dashboard/<date>.html``, and to
``dashboard/index.html`` unless a later day's page is there already.
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
#: Chart.js 4.6.1 (MIT), ``dist/chart.umd.min.js`` of the npm package ``chart.js``, unchanged.
CHARTJS = TEMPLATE.parent / "vendor" / "chart.umd.min.js"


def _rows(settings: Settings, name: str, parameters: dict[str, Any], tags: Mapping[str, str],
          unbuilt: str) -> tuple[list[dict[str, Any]], str | None]:
    """A named query's rows, every page of them, or none and why: ``unbuilt`` when the day has
    no data yet (a message, not a failure), else the API's message."""
    call = api.request({"query": name, "parameters": parameters})
    rows: list[dict[str, Any]] = []
    while True:
        try:
            answer = api.run(settings, call.query, call.values, "dashboard", dict(tags), offset=len(rows))
        except api.RequestError as err:
            return [], unbuilt if err.status == 404 else str(err)
        rows += json.loads(json.dumps(answer.table.to_pylist(), default=str))
        if not answer.more:
            return rows, None


def _cost(settings: Settings, day: dt.date, tags: Mapping[str, str]) -> dict[str, Any]:
    """What the run's queries cost, by task: the queries of the query history tagged with this
    run (or, outside a run, with the day), at Athena's price."""
    run_id = tags.get("run_id")
    by_task: dict[str, dict[str, Any]] = {}
    for record in get_backend(settings).query_history(dt.datetime.combine(day, dt.time(), dt.UTC)):
        mine = record.tags.get("run_id") == run_id if run_id else record.tags.get("ds") == day.isoformat()
        if not mine or record.tags.get("task_id") is None:
            continue
        task = by_task.setdefault(record.tags["task_id"], {"task": record.tags["task_id"], "queries": 0,
                                                           "bytes_scanned": 0, "cost_usd": 0.0})
        task["queries"] += 1
        task["bytes_scanned"] += record.bytes_scanned
        task["cost_usd"] += record.cost_usd
    tasks = sorted(by_task.values(), key=lambda t: -t["cost_usd"])
    return {"tasks": tasks, "total_usd": sum(t["cost_usd"] for t in tasks),
            "queries": sum(t["queries"] for t in tasks), "bytes_scanned": sum(t["bytes_scanned"] for t in tasks),
            "note": None if tasks else f"no query of {'this run' if run_id else day.isoformat()} is in the query "
                                       "history yet"}


def render(settings: Settings, day: dt.date, tags: Mapping[str, str] | None = None) -> str:
    """Write the day's dashboard; returns where. ``tags`` go on its queries."""
    tags = tags or {}
    start = (day - dt.timedelta(days=29)).isoformat()
    rerun = "run the daily DAG for it (or backfill it) to build it"
    dau, dau_note = _rows(settings, "daily_active_users", {"start": start, "end": day.isoformat()}, tags,
                          f"No day from {start} to {day} has its daily active users built yet: {rerun}.")
    rates, rates_note = _rows(settings, "completion_rates", {"start": day.isoformat(), "end": day.isoformat()}, tags,
                              f"The completion rates of {day} are not built yet: {rerun}.")
    traits, traits_note = _rows(settings, "ocean_trait_percentiles", {"date": day.isoformat()}, tags,
                                f"The OCEAN percentiles of {day} are not built yet: {rerun}.")
    reports = [{"table": r["table"], "passed": r["passed"], "checks": r["evaluated"], "errors": r["errors"],
                "warnings": r["warnings"], "rows": r["rows"], "quarantined": len(r.get("quarantined", []))}
               for r in quality.load_reports(settings, day)]
    data = {"day": day.isoformat(), "generated_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "min_group_users": settings.min_group_users,
            "days": [(day - dt.timedelta(days=n)).isoformat() for n in range(29, -1, -1)],
            "dau": dau, "completion": rates, "percentiles": traits, "quality": reports,
            "cost": _cost(settings, day, tags),
            "notes": {k: v for k, v in (("dau", dau_note), ("completion", rates_note),
                                        ("percentiles", traits_note)) if v}}
    # The data goes into a <script> element: "</" must not end it early (the library has none).
    payload = json.dumps(data).replace("</", "<\\/")
    script = CHARTJS.read_text()
    page = TEMPLATE.read_text().replace("/*IOC_DATA*/null", payload).replace("/*IOC_CHARTJS*/", script).encode()
    store = get_backend(settings).exports
    folder = f"{store.root}/dashboard/"
    path = f"{folder}{day.isoformat()}.html"
    store.put_bytes(path, page)
    days = [f.path.rsplit("/", 1)[-1].removesuffix(".html") for f in store.list_all(folder)]
    if max(d for d in days if d != "index") <= day.isoformat():  # re-running an older day leaves the index
        store.put_bytes(f"{folder}index.html", page)
    log.info("dashboard for %s: %s (%d days of users, %d completion rows, %d industries, %d quality reports, "
             "%d tasks' queries)", day, path, len(dau), len(rates), len(traits), len(reports),
             len(data["cost"]["tasks"]))
    return path
