"""``ioc costguard``: the static cost guard (:mod:`ioc_analytics.cost.guard`) over every SQL file,
and each query's scan estimated on a generated 90-day lake at the planned volume, against the
per-query cutoff (the workgroup would cancel such a query once the lake grows to that size). A
development and CI tool: it generates a sample lake and runs the local engine.

**The estimate** (:func:`estimate_files`). A scan costs the rows it reads times the bytes of the
columns it reads. Both are measured rather than guessed:

1. the bytes per row of each column come from the Parquet footers of one generated day at
   ``SIZING_EVENTS`` events (compressed sizes, as Athena bills them);
2. the rows come from running each query, with its values for the lake's last day, on a
   generated 90-day lake at ``SAMPLE_EVENTS`` events a day: DuckDB's profile says, for each table
   scan, the columns it read and the rows of the row groups it read, after partition pruning and
   after the row groups that the Parquet statistics rule out (Athena skips those too);
3. rows scale linearly to ``events_per_day`` (default ``PLANNED_EVENTS_PER_DAY``, 1,000,000, the
   benchmarks' medium scale: 3,000 times the guide's activation level of 10,000 a month);
4. the sum is multiplied by ``MARGIN``: column widths grow a little with the volume (a day of a
   million events has more distinct users than the sizing day), and against the scans that
   ``bench/run.py`` measured at a million events a day (its medium scale) on a month's last day, the
   unmargined estimate ran up to 29 % low (``dark_side_summary``: 11.9 MiB estimated, 16.6
   measured; ``daily_active_users``: 174 and 216). Where the row-group statistics do not
   narrow a month partition to the day (the month-to-date queries), it runs high instead.

The aggregate tables are not sized: each is a few hundred rows a day. A parameter without a
default (the API's ``industry``) takes the most common value of the column of the same name.
"""

from __future__ import annotations

import datetime as dt
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import sqlglot
from sqlglot import exp

from ioc_analytics.cost.guard import Finding, _query_files, _shown
from ioc_analytics.errors import NoDataError
from ioc_analytics.lake.catalog import load_catalog
from ioc_analytics.lake.tables import RAW_TABLES
from ioc_analytics.settings import SQL_DIR, Settings

LAKE_DAYS = 90


PLANNED_EVENTS_PER_DAY = 1_000_000


#: Events a day of the generated 90-day lake. The generator's user pool is three times a day's
#: events from 334 a day up (1,000 users below), so that the state tables' rows (users) grow with
#: the volume as they would at full scale.
SAMPLE_EVENTS = 400


SIZING_EVENTS = 50_000


MARGIN = 1.4


#: The last day of the generated lake: the last day of a 31-day month, the heaviest day for the
#: month-to-date queries.
LAKE_LAST_DAY = dt.date(2024, 3, 31)


@dataclass(frozen=True)
class Estimate:
    path: str
    #: The most one query of the file reads (its heaviest hour or slice, for those run by the hour
    #: or the slice).
    bytes: int
    #: Bytes per table, for the report (of that heaviest query).
    tables: tuple[tuple[str, int], ...]
    #: Why there is no estimate (a file that reads aggregate tables only: they are not sized).
    note: str | None = None
    #: What a day's schedule reads with it: once a day, each hour, or each slice of the day; 0 for
    #: the files no schedule runs (the query API's, readiness).
    day_bytes: int = 0


def _runs(name: str) -> list[dict[str, object]]:
    """The values each of a day's scheduled runs of file ``name`` takes (none: not scheduled)."""
    from ioc_analytics.analytics import state
    from ioc_analytics.lake import sql

    if name.startswith(("queries/", "readiness/")):
        return []
    if name.startswith("hourly/"):
        return [sql.hour_values(dt.datetime.combine(LAKE_LAST_DAY, dt.time(h))) for h in range(24)]
    if name == "state/facet_moments":
        return [sql.date_values(LAKE_LAST_DAY) | sql.slice_values(LAKE_LAST_DAY, h) for h in state.SLICE_HOURS]
    return [sql.values_for(name, LAKE_LAST_DAY)]


#: State tables whose rows are bounded by the vocabularies (industries, traits, scores to a tenth,
#: facets), not by the users: their rows are scaled by how much they grow from the sample lake's
#: volume to the sizing day's (measured on both), and no further.
BOUNDED_STATES = ("score_digest", "facet_moments")


def _rows_per_partition(settings: Settings, name: str, day: dt.date) -> float:
    """The rows of the registered partitions of state ``name`` for ``day``, on average."""
    from ioc_analytics.backends import get_backend

    backend = get_backend(settings)
    table = backend.catalog.table(name)
    counts = [sum(backend.lake.footer(f).num_rows for f in backend.lake.files_in(location))
              for key, location in backend.registry.partitions(table).items() if key[0] == day.strftime("%Y/%m/%d")]
    return sum(counts) / max(len(counts), 1)


def _derive_states(settings: Settings, day: dt.date) -> None:
    """Every state partition that a build of ``day`` reads, as the builds make them current."""
    from ioc_analytics.analytics import state
    from ioc_analytics.lake.tables import STATE_READS

    for reader in STATE_READS:
        state.ensure(settings, reader, day)


def estimate_files(root: Path = SQL_DIR, events_per_day: int = PLANNED_EVENTS_PER_DAY,
                   lake_days: int = LAKE_DAYS) -> list[Estimate]:
    """Each query file's estimated scan on a lake of ``lake_days`` days (90) of ``events_per_day``
    (see the module)."""
    import pyarrow.parquet as pq

    from ioc_analytics.backends import get_backend
    from ioc_analytics.devtools.generate import generate_lake
    from ioc_analytics.lake.tables import STATES
    from ioc_analytics.settings import get_settings

    with tempfile.TemporaryDirectory(prefix="ioc-costguard-") as work:
        sizing, lake = Path(work) / "sizing", Path(work) / "lake"
        generate_lake(sizing, LAKE_LAST_DAY, 1, SIZING_EVENTS, seed=7)
        sizing_settings = get_settings(backend="local", lake_root=str(sizing),
                                       state_dir=str(Path(work) / "sizing-state"))
        _derive_states(sizing_settings, LAKE_LAST_DAY)
        generate_lake(lake, LAKE_LAST_DAY - dt.timedelta(days=lake_days - 1), lake_days, SAMPLE_EVENTS, seed=7)
        catalog = load_catalog(str(sizing))
        per_row: dict[str, dict[str, float]] = {}
        for name in (*RAW_TABLES, *STATES):
            sizes: Counter[str] = Counter()
            rows = 0
            for file in Path(catalog.table(name).location).rglob("*.parquet"):
                meta = pq.read_metadata(file)
                rows += meta.num_rows
                for group in range(meta.num_row_groups):
                    for column in range(meta.num_columns):
                        chunk = meta.row_group(group).column(column)
                        sizes[chunk.path_in_schema.split(".")[0].lower()] += chunk.total_compressed_size
            per_row[name] = {column: size / max(rows, 1) for column, size in sizes.items()}
        settings: Settings = get_settings(backend="local", lake_root=str(lake), state_dir=str(Path(work) / "state"))
        _derive_states(settings, LAKE_LAST_DAY)
        scale = {name: events_per_day / SAMPLE_EVENTS for name in (*RAW_TABLES, *STATES)}
        for name in BOUNDED_STATES:
            scale[name] = (_rows_per_partition(sizing_settings, name, LAKE_LAST_DAY)
                           / max(_rows_per_partition(settings, name, LAKE_LAST_DAY), 1))
        engine = get_backend(settings).engine
        estimates = []
        for path in _query_files(root):
            name = path.relative_to(root).with_suffix("").as_posix()
            runs = _runs(name)
            sized: list[Counter[str]] = []
            try:
                for rendered in [_render(path, root, lake)] if not runs else [_render(path, root, lake, v)
                                                                              for v in runs]:
                    per_table: Counter[str] = Counter()
                    for scan in engine.scanned(rendered.sql, rendered.parameters):
                        width = sum(per_row.get(scan.table, {}).get(c.lower(), 0.0) for c in scan.columns)
                        per_table[scan.table] += round(scan.rows * scale.get(scan.table, 0) * width * MARGIN)
                    sized.append(per_table)
            except NoDataError as err:
                read = {t.name.lower() for t in sqlglot.parse_one(rendered.sql, read="athena").find_all(exp.Table)}
                note = ("reads aggregate tables only (not sized)" if not read & {*RAW_TABLES, *STATES}
                        else f"not estimated: on the generated lake, {err}")
                estimates.append(Estimate(_shown(path), 0, (), note))
                continue
            heaviest = max(sized, key=lambda t: sum(t.values()))
            estimates.append(Estimate(_shown(path), sum(heaviest.values()), tuple(sorted(heaviest.items())),
                                      day_bytes=sum(sum(t.values()) for t in sized) if runs else 0))
        return estimates


def _render(path: Path, root: Path, lake: Path, values: dict[str, object] | None = None):
    """The statement and values of one file, for the generated lake's last day (``values``: one
    scheduled run's)."""
    from ioc_analytics.lake import sql
    from ioc_analytics.publishing import api

    name = path.relative_to(root).with_suffix("").as_posix()
    flags = sql.STATE_VARIANTS[0] if name.startswith("state/") else None
    query = api.library().get(name.removeprefix("queries/")) if name.startswith("queries/") else None
    if query is None:
        return sql.render_text(path.read_text(), values or sql.values_for(name, LAKE_LAST_DAY), flags)
    given = {p.name: _common_value(lake, p.name) for p in query.parameters if p.default is None}
    if query.span:  # its widest: as many days as it allows, to the lake's last day
        first, last, days = query.span
        given |= {first: (LAKE_LAST_DAY - dt.timedelta(days=days - 1)).isoformat(), last: LAKE_LAST_DAY.isoformat()}
    _, values, _ = api.prepare({"query": query.name, "parameters": given}, today=LAKE_LAST_DAY)
    return sql.render_text(path.read_text(), values)


def _common_value(lake: Path, column: str) -> object:
    """The most common value of a raw table's column of that name in the generated lake."""
    import pyarrow.compute as pc
    import pyarrow.dataset as ds

    for name in RAW_TABLES:
        table = load_catalog(str(lake)).table(name)
        if column in table.arrow_schema.names:
            values = ds.dataset(table.location, format="parquet").to_table(columns=[column]).column(column)
            counts = pc.value_counts(values).to_pylist()
            return max(counts, key=lambda c: c["counts"])["values"]
    raise ValueError(f"parameter {column!r} has no default and no column of that name to take a value from")


def day_total(estimates: list[Estimate]) -> int:
    """What a day's schedule reads: the daily files once, the hourly ones for each hour, the
    sliced ones for each slice."""
    return sum(e.day_bytes for e in estimates)


def check_estimates(estimates: list[Estimate], cutoff: int, events_per_day: int) -> list[Finding]:
    """The files whose estimate passes ``cutoff``, at the line of their first lake table."""
    findings = []
    for estimate in estimates:
        if estimate.note and estimate.note.startswith("not estimated"):
            findings.append(Finding(estimate.path, 1, estimate.note))
        if estimate.bytes > cutoff:
            parts = ", ".join(f"{table} {size / 2**30:,.2f} GiB" for table, size in estimate.tables)
            findings.append(Finding(estimate.path, 1, (
                f"would scan about {estimate.bytes / 2**30:,.2f} GiB on a {LAKE_DAYS}-day lake of "
                f"{events_per_day:,} events a day ({parts}), past the per-query cutoff of "
                f"{cutoff / 2**30:,.2f} GiB: the workgroup would cancel it; read fewer partitions or columns, "
                "or read an aggregate table instead")))
    return findings
