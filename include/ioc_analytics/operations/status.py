"""``ioc status``: the state of each day of the lake, table by table, in one screen.

For a raw table, how far a day got: ``missing`` (no data file for it), ``landed``, ``validated``
or ``failed`` (its kept quality report). For an aggregate: ``missing``, ``built`` (its partition
is registered), ``exported`` (the export's manifest names that very partition), ``failed`` (its
check failed), and ``stale`` above all: a source file it reads was written after the partition
was built, and holds rows the build reads (a raw day delivered again, say). What a build reads
is its SQL for the day, planned (not run) by the engine's planner: the partitions it selects and,
from each file's footer, whether the file has rows in the query's time window (the 30-day
look-back of returning users, the month to date of the percentiles). A stale day is re-run, with
the days that read it (the DAG's backfill, or ``ioc recover`` for a day that failed).

The daily DAG's ``repair_partitions`` task reports the stale aggregates of the days before its own
(:func:`stale`), where a re-delivered day goes unnoticed otherwise.
"""

from __future__ import annotations

import datetime as dt
import re
import textwrap
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ioc_analytics.analytics import state
from ioc_analytics.backends import get_backend
from ioc_analytics.errors import IocError
from ioc_analytics.lake import sql
from ioc_analytics.lake.sources import rows_between, rows_on, source_partitions
from ioc_analytics.lake.tables import AGGREGATES, RAW_TABLES, STATES
from ioc_analytics.settings import Settings
from ioc_analytics.text import plural

#: Short column names for the screen (the legend under it says which is which).
SHORT = {"assessment_events": "events", "ocean_scores": "scores", "daily_active_users": "dau",
         "completion_rates": "completion", "user_breakdowns": "breakdowns", "assessment_funnel": "funnel",
         "ocean_trait_percentiles": "percentiles", "facet_summary": "facets", "dark_side_summary": "dark_side"}
_VERSION_TIME = re.compile(r"/v(\d{8}T\d{12})-[0-9a-f]+/?$")


@dataclass
class Cell:
    state: str
    #: For ``stale`` and ``changed``: the source files written after the build or the validation.
    files: list[str] = field(default_factory=list)


def built_at(location: str) -> dt.datetime | None:
    """When a partition's version was written: its folder's name says (``v<UTC time>-<id>``)."""
    found = _VERSION_TIME.search(location)
    return dt.datetime.strptime(found[1], "%Y%m%dT%H%M%S%f").replace(tzinfo=dt.UTC) if found else None


def _window(bounds: Iterable[tuple]) -> tuple[dt.datetime, dt.datetime]:
    """The [start, end) of ``timestamp`` that a scan's comparisons allow (all time where none)."""
    start, end = dt.datetime.min, dt.datetime.max
    for column, operator, value in bounds:
        if column != "timestamp" or not isinstance(value, dt.datetime):
            continue
        value = value.replace(tzinfo=None)
        if operator in (">=", ">"):
            start = max(start, value)
        elif operator in ("<", "<="):
            end = min(end, value + dt.timedelta(microseconds=1) if operator == "<=" else value)
        elif operator == "=":
            start, end = max(start, value), min(end, value + dt.timedelta(microseconds=1))
    return start, end


class _ListedOnce:
    """The lake, each table listed once: a screen or the DAG's report plans the same tables for
    every day and aggregate, and a listing of S3 is a round trip per thousand objects."""

    def __init__(self, lake: Any) -> None:
        self._lake, self._listings = lake, {}

    def list_table(self, table: Any) -> Any:
        if table.name not in self._listings:
            self._listings[table.name] = self._lake.list_table(table)
        return self._listings[table.name]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._lake, name)


@dataclass
class _Screen:
    """What one screen or one report keeps while it lives: a planner whose lake lists each table
    once, and the state's sources, each day's listed and fingerprinted once."""

    plans: Any
    sources: Any


def planner(settings: Settings) -> _Screen:
    """A planner for one screen or one report (its listings kept while it lives)."""
    backend = get_backend(settings)
    return _Screen(backend.planner(_ListedOnce(backend.lake)), state.Sources(settings))


def stale_sources(settings: Settings, name: str, day: dt.date, since: dt.datetime,
                  plans: Any = None) -> list[str]:
    """The source files (relative to the lake) that aggregate ``name`` reads for ``day`` and that
    were written after ``since`` with rows it reads; none if it is up to date. ``plans``: a
    :func:`planner` to share between calls."""
    backend = get_backend(settings)
    rendered = sql.render(name, day)
    try:
        plans = plans or planner(settings)
        scans = plans.plans.plan(rendered.sql, rendered.parameters, with_bounds=True).scans
    except IocError:
        return []  # nothing to read any more (a source deleted): repair and the sensors say so
    changed = []
    for scan in scans:
        if scan.table.name in STATES:
            # A state partition is stale when a day it embodies changed since it was derived, and the
            # aggregate is when the state was derived again after it was built.
            for partition in scan.partitions:
                changed += state.changed_sources(settings, scan.table.name, partition.values, plans.sources)
                changed += [f.path for f in partition.files if f.modified is not None
                            and f.modified > since.timestamp()]
            continue
        if scan.table.name not in RAW_TABLES:
            continue
        start, end = _window(scan.bounds)
        for file in (f for partition in scan.partitions for f in partition.files):
            if (file.modified is not None and file.modified > since.timestamp()
                    and rows_between(backend.lake.footer(file), start, end)):
                changed.append(file.path)
    return sorted({path.removeprefix(settings.lake_uri + "/") for path in changed})


def _built(settings: Settings, name: str, day: dt.date, plans: Any) -> tuple[str | None, list[str]]:
    """Where the day's partition of aggregate ``name`` is registered (None: not built), and the
    source files written after it was built that it reads."""
    backend = get_backend(settings)
    location = backend.registry.location(backend.catalog.table(name), {"date": sql.date_values(day)["lake_date"]})
    since = built_at(location) if location else None
    return location, stale_sources(settings, name, day, since, plans) if since else []


def day_status(settings: Settings, day: dt.date, plans: Any = None) -> dict[str, Cell]:
    """Every table's state for ``day`` (see the module); ``plans`` as for :func:`stale_sources`."""
    plans = plans or planner(settings)
    from ioc_analytics.quality import read_report

    backend = get_backend(settings)
    cells: dict[str, Cell] = {}
    wanted = source_partitions(settings, day)
    for table in RAW_TABLES:
        landed = any(backend.lake.partition_files(backend.catalog.table(table), values) for values in wanted[table])
        report = read_report(backend.lake, f"{settings.lake_uri}/quality/{table}/{day.isoformat()}.json")
        if not report:
            cells[table] = Cell("landed" if landed else "missing")
            continue
        checked = dt.datetime.fromisoformat(report["validated_at"]).timestamp() + 1  # kept to the second
        newer = sorted(f.path.removeprefix(settings.lake_uri + "/") for values in wanted[table]
                       for f in backend.lake.partition_files(backend.catalog.table(table), values)
                       if f.modified is not None and f.modified > checked and rows_on(backend.lake.footer(f), day))
        if newer:  # delivered again after its validation: the report is of files no longer there
            cells[table] = Cell("changed", newer)
        else:
            cells[table] = Cell("validated" if report.get("passed") else "failed")
    for name in AGGREGATES:
        location, changed = _built(settings, name, day, plans)
        if location is None:
            cells[name] = Cell("missing")
            continue
        if changed:
            cells[name] = Cell("stale", changed)
            continue
        check = read_report(backend.lake, f"{settings.lake_uri}/quality/{name}/{day.isoformat()}.json")
        manifest = backend.exports.get_bytes(f"{backend.exports.root}/{name}/{day.isoformat()}/manifest.json")
        if check is not None and not check.get("passed"):
            cells[name] = Cell("failed")
        elif manifest is not None and location in manifest.decode():
            cells[name] = Cell("exported")
        else:
            cells[name] = Cell("built")
    return cells


def stale(settings: Settings, days: Iterable[dt.date]) -> dict[dt.date, dict[str, list[str]]]:
    """The stale aggregates of ``days``: for each day that has some, each one and the source
    files written after it was built."""
    found: dict[dt.date, dict[str, list[str]]] = {}
    plans = planner(settings)
    for day in days:
        for name in AGGREGATES:
            if changed := _built(settings, name, day, plans)[1]:
                found.setdefault(day, {})[name] = changed
    return found


def describe(day: dt.date, names: list[str], files: list[str]) -> str:
    """One line: a day's stale aggregates and the files behind them."""
    shown = ", ".join(files[:3]) + (f" and {plural(len(files) - 3, 'more file')}" if len(files) > 3 else "")
    return f"{day}: {', '.join(names)} {'reads' if len(names) == 1 else 'read'} files written after the build: {shown}"


#: What to do about a stale day.
RERUN = ("re-run each stale day to rebuild it from its sources: a backfill of the daily DAG with its completed "
         "runs re-run (the UI's backfill, or `airflow backfill create --dag-id ioc_daily_analytics --from-date "
         "DAY --to-date DAY --reprocess-behavior completed`)")


def render(settings: Settings, days: list[dt.date]) -> tuple[str, bool]:
    """The screen, and whether every day is as it should be (validated and exported, nothing
    stale)."""
    tables = [*RAW_TABLES, *AGGREGATES]
    widths = {t: max(len(SHORT[t]), 9) for t in tables}
    lines = ["day         " + "  ".join(SHORT[t].ljust(widths[t]) for t in tables).rstrip()]
    notes, healthy = [], True
    plans = planner(settings)
    for day in days:
        cells = day_status(settings, day, plans)
        lines.append(f"{day.isoformat()}  " + "  ".join(cells[t].state.ljust(widths[t]) for t in tables).rstrip())
        healthy &= all(cells[t].state in ("validated", "exported") for t in tables)
        for table in RAW_TABLES:
            if cells[table].state == "changed":
                notes.append(f"{day}: {table} was delivered again after its validation: "
                             f"{', '.join(cells[table].files[:3])}")
        if stale_here := [t for t in AGGREGATES if cells[t].state == "stale"]:
            notes.append(describe(day, stale_here, sorted({f for t in stale_here for f in cells[t].files})))
    legend = ["columns: " + ", ".join(f"{SHORT[t]} = {t}" for t in tables),
              "raw tables: missing, landed, validated, failed, changed (delivered again after its validation)",
              "aggregates: missing, built, exported, failed, stale (a source it reads was written after it was "
              "built)"]
    lines += ["", *(wrapped for line in legend for wrapped in textwrap.wrap(line, 100, subsequent_indent="  "))]
    if notes:
        lines += ["", *notes, RERUN]
    return "\n".join(lines), healthy
