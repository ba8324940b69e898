"""Weekly maintenance and the monthly cost report (the guide's "Weekly Tasks" and "Monthly Tasks").

Each step writes what it found to the lake, under ``maintenance/`` (JSON for tools, Markdown for
people), logs it, and returns a summary for XCom:

- :func:`expensive_queries`: the week's ten most expensive queries, the same SQL text (tags and
  bound values aside) counted as one query, with their cost, runs, who ran them, why they were
  expensive and what to change.
- :func:`expired_results`: on ``local``, the query log keeps ``HISTORY_DAYS`` (45) days, as
  Athena's query history does (the local engine keeps no result files); on ``aws``, the results
  bucket's lifecycle rule is checked against ``ioc setup``'s, and results past their expiry
  (plus the 2 days S3 may take) are counted.
- :func:`schema_drift`: every file of the week's raw partitions against the data contract (the
  quality gate's comparison, ``contract.schema_drift``): missing, unexpected or retyped columns. Drift
  fails the task, after the report, so on-call hears of it.
- :func:`small_files`: raw partitions of the week holding more than ``SMALL_FILES`` files averaging
  under ``SMALL_FILE_BYTES``. On ``local`` each is compacted into one file; on ``aws`` they are
  reported (see the function for why).
- :func:`empty_partitions`: partitions registered in the catalog (the local registry, or Glue)
  whose location holds nothing: they are unregistered, so the catalog agrees with the lake.
- :func:`monthly_cost_report`: the month's cost by day, DAG and task, its ten most expensive
  queries, failures, against the budget and the month before.
"""

from __future__ import annotations

import calendar
import datetime as dt
import json
import logging
import re
from collections import defaultdict
from typing import Any

from ioc_analytics.backends import get_backend
from ioc_analytics.cost import usage
from ioc_analytics.engine.base import MB, without_tags
from ioc_analytics.errors import DataQualityError
from ioc_analytics.lake import partitions
from ioc_analytics.lake.catalog import Table
from ioc_analytics.lake.store import is_hidden
from ioc_analytics.lake.tables import RAW_TABLES
from ioc_analytics.settings import Settings

log = logging.getLogger(__name__)

TOP = 10
#: A partition with more files than this, averaging less than SMALL_FILE_BYTES, is compacted.
SMALL_FILES = 8
SMALL_FILE_BYTES = 32 * MB
#: Partitions younger than this are left alone: the daily DAG may still be reading them.
SETTLED_DAYS = 2

_ADVICE = {
    # Both of the cost guard's partition findings end so: no filter at all, or none on the date.
    "Athena would scan every": "filter on the partition keys (date, or year and month)",
    "SELECT *": "name the columns it needs",
    "scanned": "read an aggregate table, or a narrower date range, instead of the raw events",
}


# -- where reports go --------------------------------------------------------------------------

def _keep(settings: Settings, folder: str, name: str, report: dict[str, Any], markdown: str) -> str:
    lake = get_backend(settings).lake
    base = f"{settings.lake_uri}/maintenance/{folder}"
    lake.put_bytes(f"{base}/{name}.json", json.dumps(report, indent=2, default=str).encode())
    lake.put_bytes(f"{base}/{name}.md", markdown.encode())
    log.info("report kept at %s/%s.md (and .json)", base, name)
    return f"{base}/{name}.md"


def _fingerprint(record: usage.QueryRecord) -> str:
    """The query as written: tags aside, whitespace collapsed (bound values never are in the text)."""
    return re.sub(r"\s+", " ", without_tags(record.query)).strip()


def _rank(records: list[usage.QueryRecord]) -> list[dict[str, Any]]:
    """The most expensive queries, each SQL text once, with why and what to change."""
    from ioc_analytics.cost.monitor import reasons, who

    groups: dict[str, list[usage.QueryRecord]] = defaultdict(list)
    for record in records:
        groups[_fingerprint(record)].append(record)
    ranked = []
    for text, group in sorted(groups.items(), key=lambda kv: -sum(r.cost_usd for r in kv[1]))[:TOP]:
        worst = max(group, key=lambda r: r.bytes_scanned)
        why = reasons(worst)
        ranked.append({
            "cost_usd": round(sum(r.cost_usd for r in group), 6), "runs": len(group),
            "failed": sum(r.state == "FAILED" for r in group),
            "bytes_scanned": sum(r.bytes_scanned for r in group), "run_by": sorted({who(r) for r in group}),
            "why": why, "change": sorted({advice for key, advice in _ADVICE.items() if any(key in w for w in why)}),
            "example_query_id": worst.query_id, "sql": text[:2000],
        })
    return ranked


def _queries_markdown(ranked: list[dict[str, Any]]) -> list[str]:
    lines = ["| # | cost | runs | run by | why | change |", "|---:|---:|---:|---|---|---|"]
    for n, q in enumerate(ranked, 1):
        lines.append(f"| {n} | ${q['cost_usd']:.4f} | {q['runs']} | {', '.join(q['run_by'])} | "
                     f"{'; '.join(q['why']) or 'nothing found in its SQL'} | {'; '.join(q['change']) or '-'} |")
    lines.append("")
    for n, q in enumerate(ranked, 1):
        lines += [f"{n}. `{q['sql'][:300]}`"]
    return lines


# -- weekly ------------------------------------------------------------------------------------

def week(monday: dt.date) -> tuple[dt.date, dt.date]:
    """The 7 days a weekly run covers, from its logical date."""
    return monday, monday + dt.timedelta(days=6)


def expensive_queries(settings: Settings, start: dt.date, end: dt.date) -> dict[str, Any]:
    records = usage.query_history(settings, start, end)
    ranked = _rank(records)
    report = {"week": [start.isoformat(), end.isoformat()], "queries_in_week": len(records),
              "cost_usd": round(sum(r.cost_usd for r in records), 6), "top": ranked}
    markdown = "\n".join([f"# The most expensive queries, {start} to {end}", "",
                          f"{len(records)} queries, ${report['cost_usd']:.4f} in all.", "",
                          *_queries_markdown(ranked)])
    report["kept_at"] = _keep(settings, f"weekly/{start.isoformat()}", "expensive_queries", report, markdown)
    for n, q in enumerate(ranked, 1):
        log.info("%d. $%.6f in %d runs by %s: %s", n, q["cost_usd"], q["runs"], ", ".join(q["run_by"]),
                 "; ".join(q["change"]) or "nothing to change")
    return report


def expired_results(settings: Settings, today: dt.date) -> dict[str, Any]:
    """Query results and history past their keep: dropped on local, the S3 lifecycle rule checked on aws."""
    return get_backend(settings).expire_results(today)


def _week_partitions(table: Table, start: dt.date, end: dt.date) -> list[dict[str, str]]:
    """The raw partitions holding the week's data, as the layout names them."""
    days = [start + dt.timedelta(days=n) for n in range((end - start).days + 1)]
    if table.partition_names == ("date", "assessment_type"):
        return [{"date": d.strftime("%Y/%m/%d"), "assessment_type": t}
                for d in days for t in table.enum_values("assessment_type")]
    months = sorted({(d.strftime("%Y"), d.strftime("%m")) for d in days})
    return [{"year": y, "month": m} for y, m in months]


def schema_drift(settings: Settings, start: dt.date, end: dt.date) -> dict[str, Any]:
    from ioc_analytics.lake.contract import schema_drift as compare

    backend = get_backend(settings)
    catalog, lake = backend.catalog, backend.lake
    found, files = [], 0
    for name in RAW_TABLES:
        table = catalog.table(name)
        for values in _week_partitions(table, start, end):
            for file in lake.partition_files(table, values):
                files += 1
                missing, extra, retyped = compare(name, lake.footer(file).schema.to_arrow_schema())
                if missing or extra or retyped:
                    found.append({"table": name, "file": file.path, "missing": missing, "unexpected": extra,
                                  "retyped": retyped})
    report = {"week": [start.isoformat(), end.isoformat()], "files_checked": files, "drift": found}
    lines = [f"# Schema drift, {start} to {end}", "", f"{files} files checked against the data contract.", ""]
    lines += [f"- `{d['file']}`: missing {d['missing'] or '-'}, unexpected {d['unexpected'] or '-'}, "
              f"retyped {d['retyped'] or '-'}" for d in found] or ["No drift."]
    report["kept_at"] = _keep(settings, f"weekly/{start.isoformat()}", "schema_drift", report, "\n".join(lines))
    if found:
        tables = sorted({d["table"] for d in found})
        raise DataQualityError(
            f"{len(found)} of {files} files of {start} to {end} differ from the contract ({', '.join(tables)}; first: "
            f"{found[0]['file']}: missing {found[0]['missing']}, unexpected {found[0]['unexpected']}, retyped "
            f"{found[0]['retyped']}). The report is {report['kept_at']}: change the contract and the DDL if the "
            "producer changed on purpose (then run `ioc setup`), or have the files re-delivered")
    return report


def small_files(settings: Settings, start: dt.date, end: dt.date, today: dt.date) -> dict[str, Any]:
    """Compact (``local``) or report (``aws``) raw partitions of many small files.

    On ``local`` a partition is compacted by writing its rows into one file in a hidden sibling
    folder, then swapping the folders with two renames; a reader in between finds the partition
    missing and fails (``NoDataError``), never a mix of old and new files, which would count rows
    twice. On ``aws`` the raw tables use partition projection, so there is no catalog entry to
    switch, and S3 has no atomic multi-object rename: compacting in place would let a query read
    both the old and the new files. There, the partitions are reported for a rewrite by the
    producer (or an Athena ``INSERT`` into a new prefix).
    """
    backend = get_backend(settings)
    catalog, lake = backend.catalog, backend.lake
    settled = min(end, today - dt.timedelta(days=SETTLED_DAYS))
    found = []
    for name in RAW_TABLES:
        table = catalog.table(name)
        for values in _week_partitions(table, start, settled) if settled >= start else []:
            files = lake.partition_files(table, values)
            if len(files) <= SMALL_FILES or sum(f.size for f in files) / len(files) >= SMALL_FILE_BYTES:
                continue
            entry = {"table": name, "partition": values, "files": len(files), "bytes": sum(f.size for f in files)}
            if backend.can_compact(table, values, today):
                rows = backend.compact(table, values, files)
                entry["compacted_into"] = 1
                log.info("%s %s: %d files compacted into one (%d rows)", name, values, len(files), rows)
            else:
                log.warning("%s %s: %d files averaging %.1f MB: ask the producer to write fewer, larger files",
                            name, values, len(files), entry["bytes"] / len(files) / MB)
            found.append(entry)
    return {"week": [start.isoformat(), end.isoformat()], "partitions": found}


def empty_partitions(settings: Settings) -> dict[str, Any]:
    backend = get_backend(settings)
    catalog, lake, registry = backend.catalog, backend.lake, backend.registry
    removed = []
    for table in catalog.tables.values():
        if table.projection_enabled:
            continue
        for key, location in registry.partitions(table).items():
            if not [f for f in lake.list_all(location) if not is_hidden(f.path.rsplit("/", 1)[-1])
                    or f.path.endswith(partitions.COMMIT_MARKER)]:
                values = dict(zip(table.partition_names, key, strict=True))
                registry.unregister(table, values)
                removed.append({"table": table.name, "partition": values, "location": location})
                log.warning("%s %s pointed at %s, which holds nothing: unregistered", table.name, values, location)
    return {"unregistered": removed}


# -- monthly -----------------------------------------------------------------------------------

def monthly_cost_report(settings: Settings, month: dt.date) -> dict[str, Any]:
    """The month of ``month`` (any day of it)."""
    from ioc_analytics.cost.monitor import daily_totals, who

    first = month.replace(day=1)
    last = first.replace(day=calendar.monthrange(first.year, first.month)[1])
    before = (first - dt.timedelta(days=1)).replace(day=1)
    days = daily_totals(settings, first, last)
    previous = daily_totals(settings, before, first - dt.timedelta(days=1))
    records = usage.query_history(settings, first, last)
    total = sum(d.cost_usd for d in days.values())
    by_task: dict[str, float] = defaultdict(float)
    for record in records:
        by_task[who(record)] += record.cost_usd
    report = {
        "month": first.strftime("%Y-%m"), "cost_usd": round(total, 6), "budget_usd": settings.monthly_budget_usd,
        "previous_month_usd": round(sum(d.cost_usd for d in previous.values()), 6),
        "queries": sum(d.queries for d in days.values()), "failed": sum(d.failed for d in days.values()),
        "bytes_scanned": sum(d.bytes_scanned for d in days.values()),
        "by_day": {d.isoformat(): round(u.cost_usd, 6) for d, u in days.items()},
        "by_task": dict(sorted(((k, round(v, 6)) for k, v in by_task.items()), key=lambda kv: -kv[1])),
        "top": _rank(records),
    }
    share = total / settings.monthly_budget_usd
    lines = [f"# Athena cost, {first:%B %Y} ({settings.workgroup})", "",
             f"${total:.4f} of the ${settings.monthly_budget_usd:.2f} budget ({share:.0%}); "
             f"${report['previous_month_usd']:.4f} the month before. {report['queries']} queries "
             f"({report['failed']} failed), {report['bytes_scanned'] / MB:,.1f} MB scanned.", "",
             "## By DAG and task", "", "| who | cost |", "|---|---:|",
             *(f"| {k} | ${v:.4f} |" for k, v in report["by_task"].items()), "",
             "## The most expensive queries", "", *_queries_markdown(report["top"]), "",
             "## By day", "", "| day | cost |", "|---|---:|",
             *(f"| {k} | ${v:.4f} |" for k, v in report["by_day"].items())]
    report["kept_at"] = _keep(settings, f"monthly/{report['month']}", "cost_report", report, "\n".join(lines))
    log.info("%s: $%.4f of $%.2f (%.0f%%), %d queries", report["month"], total, settings.monthly_budget_usd,
             share * 100, report["queries"])
    return report
