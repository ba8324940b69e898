"""Incremental state: what lets a day's build read one day of raw data, whatever its look-back.

The aggregates with a look-back (returning users over 30 days, new users over 7, the month to
date of the percentiles) and the day's facets (too wide to read in one query at full volume) read
compact *state tables* derived from the raw tables, instead of the raw days themselves
(``include/ioc_analytics/sql/state/``, DDL in ``sql/ddl/``, the tables in
:data:`ioc_analytics.lake.tables.STATES`):

- ``user_activity`` (a chain over 30 days): each user active in the 30 days up to a day, when
  last active, and for the day's users when active before. Day *d* is day *d-1*'s state plus day
  *d*'s user ids. ``daily_active_users`` and ``user_growth_hourly`` read it. Exact.
- ``month_users`` (a chain over the month): the month's users to date by industry.
  ``ocean_trait_percentiles`` counts its users from it. Exact.
- ``score_digest`` (one day each): the day's trait scores as a histogram by industry, to a tenth
  of a point. The percentiles add the month's histograms up. Exact nearest-rank percentiles of the
  scores rounded to a tenth (the generated and the product's scores carry one decimal; a score
  with more is within 0.05 points); the raw-table query it replaced was approximate.
- ``facet_moments`` (four hours each): each slice's facet counts, mean and sum of squared
  deviations, merged exactly by ``facet_summary``.

**Every state partition records what it derives from.** Beside its data, each version holds
``_ioc_inputs.json``: for every day whose raw data it embodies (its own day; the 30 days, or the
month's days, of a chain), a fingerprint of that day's source files (path, size, modification
time). A state partition is *current* when those days are exactly its window and each
fingerprint matches the lake now. Before anything reads a state partition it is made current
(:func:`ensure`): a per-day state is rebuilt from its day; a chain is rebuilt forward from its
latest current day within the window (or from the window's first day, without a base, if none
is). So a re-delivered day, a re-run or a backfill in any order, or a missing day all end in the
same tables as a clean run, and a re-run of a day that changed its state also re-derives the
chain's later days that embody it (:func:`ensure` goes forward until a later day is current
again or not built).

Why this is written here: Airflow's assets and the task state store say *that* something ran,
not which source files a derived partition was computed from; the fingerprints are what make a
chain safe to re-run out of order.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field

from ioc_analytics.backends import get_backend
from ioc_analytics.lake import partitions, sources, sql
from ioc_analytics.lake.store import fingerprint
from ioc_analytics.lake.tables import STATE_READS, STATES
from ioc_analytics.settings import Settings

log = logging.getLogger(__name__)

INPUTS_FILE = "_ioc_inputs.json"
#: The first hours of the four-hour slices of a day (``facet_moments``).
SLICE_HOURS = tuple(range(0, 24, sql.SLICE_HOURS))
_EMPTY = fingerprint([])


def _lake_date(day: dt.date) -> str:
    return day.strftime("%Y/%m/%d")


def window(name: str, day: dt.date) -> list[dt.date]:
    """The days whose raw data state ``name`` holds for ``day``: its day; the day and the 30
    before it (``user_activity``: its users are those of the 30 days to the day, and whether the
    day's users were active before reaches 30 days back); or the month to it (``month_users``)."""
    chain = STATES[name][1]
    if chain == "rolling":
        return [day - dt.timedelta(days=n) for n in range(sql.LOOKBACK_DAYS, -1, -1)]
    if chain == "month":
        return [day.replace(day=n) for n in range(1, day.day + 1)]
    return [day]


@dataclass
class Sources:
    """One ensure's (or one status screen's) view of the lake: each day's source files, listed
    and fingerprinted once."""

    settings: Settings
    tags: Mapping[str, str] = field(default_factory=dict)
    fingerprints: dict[tuple[str, dt.date], tuple[str, list[str]]] = field(default_factory=dict)
    #: Each month file's footer, read once (on S3 a ranged GET each): a month to date of days
    #: asks of the same files.
    footers: dict[str, object] = field(default_factory=dict)
    listings: dict[str, list] = field(default_factory=dict)

    def source(self, table_name: str, day: dt.date) -> tuple[str, list[str]]:
        """The fingerprint of the day's files of raw table ``table_name``, and the files (those of
        the day's partitions, or, for a table by month, the month's files with rows on the day)."""
        key = (table_name, day)
        if key not in self.fingerprints:
            backend = get_backend(self.settings)
            table = backend.catalog.table(table_name)
            by_day = "date" in table.partition_names
            files = []
            for values in sources.source_partitions(self.settings, day)[table_name]:
                where = table.partition_location(values)
                if where not in self.listings:
                    self.listings[where] = backend.lake.partition_files(table, values)
                for file in self.listings[where]:
                    if not by_day and file.path not in self.footers:
                        self.footers[file.path] = backend.lake.footer(file)
                    if by_day or sources.rows_on(self.footers[file.path], day):
                        files.append(file)
            self.fingerprints[key] = (fingerprint(files), [f.path for f in files])
        return self.fingerprints[key]

    def inputs(self, name: str, days: list[dt.date]) -> dict[str, str]:
        return {_lake_date(d): self.source(STATES[name][0], d)[0] for d in days}


def _partitions(name: str, day: dt.date) -> list[dict[str, str]]:
    if name == "facet_moments":
        return [{"date": _lake_date(day), "hour": f"{h:02d}"} for h in SLICE_HOURS]
    return [{"date": _lake_date(day)}]


def recorded(settings: Settings, name: str, values: Mapping[str, str]) -> dict[str, str] | None:
    """The inputs the registered version of a state partition records (None: not built)."""
    backend = get_backend(settings)
    location = backend.registry.location(backend.catalog.table(name), dict(values))
    if location is None:
        return None
    data = backend.lake.get_bytes(location.rstrip("/") + "/" + INPUTS_FILE)
    return json.loads(data)["days"] if data else None


def _current(ctx: Sources, name: str, day: dt.date) -> bool:
    return _embodies_since(ctx, name, day, window(name, day)[0])


def _embodies_since(ctx: Sources, name: str, day: dt.date, first: dt.date) -> bool:
    """Whether ``day``'s state embodies exactly the days from ``first`` to it, as a fold begun
    without a base at ``first`` leaves it: a base as good as a current one for a later day whose
    window starts at ``first`` (so a build run again half-way, resumed or retried, goes on from
    where it was instead of starting the fold over)."""
    wanted = ctx.inputs(name, [d for d in window(name, day) if d >= first])
    return all(recorded(ctx.settings, name, values) == wanted for values in _partitions(name, day))


def ensure(settings: Settings, reader: str, day: dt.date, tags: Mapping[str, str] | None = None) -> list[str]:
    """Make current every state partition that ``reader`` (an aggregate or hourly metric) reads
    for ``day`` (:data:`~ioc_analytics.lake.tables.STATE_READS`); returns what was built, as
    ``"<state> <day>"``."""
    ctx = Sources(settings, dict(tags or {}))
    built: list[str] = []
    for name, when in STATE_READS.get(reader, ()):
        if when == "day_before":
            days = [day - dt.timedelta(days=1)]
        elif when == "month_to_date":
            days = [day.replace(day=n) for n in range(1, day.day + 1)]
        else:
            days = [day]
        for wanted in days:
            built += _ensure_one(ctx, name, wanted)
    return built


def _ensure_one(ctx: Sources, name: str, day: dt.date) -> list[str]:
    if STATES[name][1] is None:
        if _current(ctx, name, day):
            return []
        _build(ctx, name, day, previous=False)
        return [f"{name} {day}"]
    first = window(name, day)[0]
    base = day
    while base >= first and not (_current(ctx, name, base) or _embodies_since(ctx, name, base, first)):
        base -= dt.timedelta(days=1)
    if base == day:
        return []
    built = _fold(ctx, name, base, day, has_base=base >= first)
    # The chain's later days that embody a day this one re-derived: forward, while they are built
    # and not current (a day delivered again re-derives what depends on it).
    later = day + dt.timedelta(days=1)
    while (day in window(name, later) and recorded(ctx.settings, name, _partitions(name, later)[0]) is not None
           and not _current(ctx, name, later)):
        built += _fold(ctx, name, later - dt.timedelta(days=1), later, has_base=True)
        later += dt.timedelta(days=1)
    return built


def _fold(ctx: Sources, name: str, base: dt.date, day: dt.date, has_base: bool) -> list[str]:
    """Build the chain's days after ``base`` up to ``day``, each from the one before (from none
    where there is no base, or on a month's first day for a month's chain: the state then holds
    the days since, and only a day whose window they cover is current). Leading days without data
    and without a base are carried in the next one's inputs, not written."""
    built = []
    carried = (recorded(ctx.settings, name, _partitions(name, base)[0]) or {}) if has_base else {}
    written = has_base
    current = base + dt.timedelta(days=1)
    while current <= day:
        restart = STATES[name][1] == "month" and current.day == 1
        previous = written and not restart
        keep = {_lake_date(d) for d in window(name, current)}
        inputs = {k: v for k, v in carried.items() if k in keep and not restart} | ctx.inputs(name, [current])
        if previous or current == day or ctx.source(STATES[name][0], current)[0] != _EMPTY:
            _build(ctx, name, current, previous=previous, inputs=inputs)
            built.append(f"{name} {current}")
            written = True
        carried = inputs
        current += dt.timedelta(days=1)
    return built


def _build(ctx: Sources, name: str, day: dt.date, previous: bool, inputs: dict[str, str] | None = None) -> None:
    """Write the state partition(s) of ``day`` with its inputs recorded beside the data."""
    backend = get_backend(ctx.settings)
    inputs = inputs if inputs is not None else ctx.inputs(name, window(name, day))
    sidecar = {INPUTS_FILE: json.dumps({"table": name, "days": inputs}, sort_keys=True).encode()}
    today = ctx.source(STATES[name][0], day)[0] != _EMPTY
    table = backend.catalog.table(name)
    for values in _partitions(name, day):
        if len(_partitions(name, day)) > 1 and recorded(ctx.settings, name, values) == inputs:
            continue  # a slice already written from these inputs (by this build, before it was resumed)
        if not today and not previous:  # nothing to read: the state is empty (written without a query)
            partitions.write_partition(backend.lake, backend.registry, table, values,
                                       table.arrow_schema.empty_table(), sidecars=sidecar)
            continue
        given = sql.date_values(day) | (sql.slice_values(day, int(values["hour"])) if "hour" in values else {})
        rendered = sql.render_with(f"state/{name}", given, {"previous": previous, "today": today})
        stats = backend.engine.replace_partition(name, values, rendered.sql, rendered.parameters,
                                                 tags={**ctx.tags, "state": name}, sidecars=sidecar)
        log.info("state %s for %s: %s", name, " ".join(values.values()), stats.summary())


def changed_sources(settings: Settings, name: str, values: Mapping[str, str],
                    sources: Sources | None = None) -> list[str]:
    """The source files (as listed) of the days a state partition embodies whose files changed
    since it was built; none if it is current or not built. ``sources``: one :class:`Sources` to
    share between calls (a screen asks of the same days many times)."""
    wanted = recorded(settings, name, values)
    if wanted is None:
        return []
    ctx = sources or Sources(settings)
    day = dt.datetime.strptime(values["date"], "%Y/%m/%d").date()
    changed: list[str] = []
    for d in window(name, day):
        fingerprint, files = ctx.source(STATES[name][0], d)
        if wanted.get(_lake_date(d)) != fingerprint:
            changed += files
    return sorted(set(changed))
