"""A deterministic synthetic lake: assessment events and OCEAN scores, laid out as the lake is
(docs/architecture.md, "The lake and its contract").

Every later check and aggregate runs on this data, so it is shaped like the real thing:

- **Vocabularies** come from the data contract (``contract.py``): what it allows, and nothing else.
- **One event row = one assessment session.** ``assessment_type`` is one of ASSESSMENT_TYPES
  (personality most common); ``device`` one of DEVICES, with a ``platform`` that fits it
  (desktop -> web; mobile and tablet -> ios, android or the mobile web); ``version`` of the
  assessment app from VERSIONS.
- **Incomplete sessions**: 10-30 % of sessions are abandoned, more on mobile and on the long
  assessments; their ``completion_time`` is 0 or NULL (both occur). Completed sessions take a
  realistic time per type (the quick assessment about 5 minutes, the full one about 20).
- **Users return**: a fixed pool of ``max(1000, 3 x events_per_day)`` users with skewed
  activity, so that many users come back on later days and some take several assessments in a
  day. Each user has a fixed industry, role, experience, region, age range and preferred device.
- **OCEAN scores** (one row per completed session): the five traits on 0-100, from a stable
  per-user profile whose mean depends on industry and role (e.g. Technology scores higher on
  openness, Finance on conscientiousness, executives higher on extraversion and lower on
  neuroticism), plus per-assessment noise. ``consistency`` and ``completeness`` are in [0, 1].
- **facets**: the 30 NEO facets, six per trait, keyed ``<trait>.<facet>`` (FACETS), each a struct
  ``score`` (0-100, around its trait), ``responses`` (items answered; fewer on the quick
  assessment), ``std_dev`` (> 0).
- **dark_side_indicators**: the eleven Hogan derailers (DARK_SIDE_INDICATORS) as risk scores on
  0-100, correlated with the traits (excitable with neuroticism, bold with extraversion,
  diligent with conscientiousness, ...).

Determinism: a day's rows depend only on (seed, day, events_per_day); generating a day alone or
inside a longer run gives the same files. Re-generating a day replaces exactly that day's files.
Writes are atomic (hidden temporary name, then rename). Everything is vectorised with numpy and
pyarrow; a day is drawn an hour at a time (quiet hours together, up to a row group's worth), each
from its own seed, and its files written as the hours come, so memory holds the user pool and an
hour, not the day.
"""

from __future__ import annotations

import datetime as dt
import multiprocessing
import os
import time
import uuid
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ioc_analytics.errors import ConfigError
from ioc_analytics.lake.catalog import Table, load_catalog
from ioc_analytics.lake.contract import (
    AGE_RANGES,
    ASSESSMENT_TYPES,
    DARK_SIDE_INDICATORS,
    DEVICES,
    EXPERIENCE_LEVELS,
    FACET_KEYS,
    INDUSTRIES,
    PLATFORMS,
    REGIONS,
    ROLES,
    TRAITS,
    VERSIONS,
)

# The vocabularies are the data contract's: the generator writes only what the contract allows.
_TYPE_WEIGHTS = np.array([0.40, 0.25, 0.15, 0.10, 0.10])
_TYPE_MEDIAN_S = np.array([1200, 300, 1500, 900, 1000])  # median completion time, seconds
_TYPE_ABANDON = np.array([0.20, 0.10, 0.24, 0.18, 0.18])
_TYPE_ITEMS_PER_FACET = np.array([8, 2, 6, 4, 4])
_DEVICE_WEIGHTS = np.array([0.50, 0.40, 0.10])
_DEVICE_ABANDON_FACTOR = np.array([0.8, 1.35, 1.0])
_PLATFORM_GIVEN_DEVICE = np.array([[1.0, 0.0, 0.0], [0.10, 0.45, 0.45], [0.15, 0.60, 0.25]])
_VERSION_WEIGHTS = np.array([0.2, 0.5, 0.3])

# Trait means, as offsets from 50, by industry and by role (columns in TRAITS order).
_INDUSTRY_OFFSETS = np.array([
    [8, 0, -2, -2, 0],    # Technology
    [-4, 8, 2, -3, 0],    # Finance
    [0, 4, 0, 7, 2],      # Healthcare
    [5, 2, 2, 5, 0],      # Education
    [-2, -1, 6, 2, 2],    # Retail
    [-5, 5, -3, 0, 0],    # Manufacturing
    [-4, 5, -4, 2, 1],    # Government
    [4, 3, 6, -1, -2],    # Consulting
])
_ROLE_OFFSETS = np.array([
    [0, -2, -3, 1, 3],    # Individual Contributor
    [1, 1, 2, 1, 1],      # Team Lead
    [1, 3, 4, 0, -1],     # Manager
    [2, 4, 6, -1, -3],    # Director
    [3, 5, 9, -3, -6],    # Executive
])
# How each derailer loads on the traits' deviations from 50 (rows in DARK_SIDE_INDICATORS order).
_DARK_SIDE_LOADINGS = np.array([
    [0, 0, 0, -0.2, 0.7],     # excitable
    [0, 0, 0, -0.6, 0.3],     # skeptical
    [-0.2, 0, -0.4, 0, 0.5],  # cautious
    [0, 0, -0.6, -0.3, 0],    # reserved
    [0, -0.2, 0, -0.5, 0],    # leisurely
    [0, 0, 0.6, -0.3, -0.2],  # bold
    [0.3, -0.3, 0.4, -0.2, 0],  # mischievous
    [0, 0, 0.7, 0, 0],        # colorful
    [0.7, 0, 0.1, 0, 0],      # imaginative
    [0, 0.7, 0, 0, 0.1],      # diligent
    [0, 0.2, -0.2, 0.5, 0],   # dutiful
])
# When sessions start (UTC hour weights): a daytime peak across the regions.
_HOUR_WEIGHTS = np.array([2, 1, 1, 1, 1, 2, 3, 4, 6, 7, 7, 7, 7, 8, 8, 8, 7, 7, 6, 5, 4, 4, 3, 3], dtype=float)

EVENTS_FILE_MAX_ROWS = 2_000_000
#: Rows of an events row group; score sets are drawn and written this many at a time (their
#: facet maps make a row about 1.4 kB in memory).
EVENTS_GROUP_ROWS = 250_000
SCORES_CHUNK_ROWS = 100_000
_DAY_MS = 86_400_000


@dataclass
class GenerateReport:
    days: int = 0
    events: int = 0
    scores: int = 0
    files: int = 0
    bytes: int = 0
    elapsed_s: float = 0.0
    events_by_day: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class _Users:
    """The user pool: three times a day's events. Held as small numbers (a label's index, the
    profile in half precision) and the draw's cumulative weights; a user's id is made from their
    number when they are drawn. At 10,000,000 events a day the pool is 30,000,000 users: about
    0.7 GB so (its ids alone would be 420 MB, the profile in double precision 1.2 GB)."""

    cdf: np.ndarray  # cumulative draw weights, ending at 1: a user is drawn as ``rng.choice(p=...)`` draws
    industry: np.ndarray
    role: np.ndarray
    experience: np.ndarray
    region: np.ndarray
    age: np.ndarray
    device: np.ndarray
    #: (users, 5) stable profile, float16: a profile needs no finer step than 0.06 points, as each
    #: score adds noise (sd 4 or more) and is rounded to a tenth.
    traits: np.ndarray


@lru_cache(maxsize=4)
def _user_pool(seed: int, events_per_day: int) -> _Users:
    size = max(1000, 3 * events_per_day)
    rng = np.random.default_rng(np.random.SeedSequence([seed, size, 0x10C]))
    small = np.int8  # every vocabulary has fewer than 128 labels
    role = rng.choice(len(ROLES), size, p=[0.50, 0.20, 0.17, 0.09, 0.04]).astype(small)
    # Seniority goes with experience: shift the experience bucket up with the role.
    experience = rng.choice(len(EXPERIENCE_LEVELS), size, p=[0.25, 0.3, 0.25, 0.15, 0.05]).astype(small)
    experience += role // 2
    np.minimum(experience, len(EXPERIENCE_LEVELS) - 1, out=experience)
    industry = rng.choice(len(INDUSTRIES), size, p=[0.22, 0.14, 0.13, 0.11, 0.12, 0.10, 0.08, 0.10]).astype(small)
    # One trait at a time, so that no (users, 5) array of doubles is ever made.
    means = (50 + _INDUSTRY_OFFSETS[:, None, :] + _ROLE_OFFSETS[None, :, :]).astype(np.float32)
    traits = np.empty((size, 5), np.float16)
    for t in range(5):
        traits[:, t] = means[industry, role, t] + 11 * rng.standard_normal(size, dtype=np.float32)
    cdf = rng.pareto(1.5, size)  # the activity weights, made cumulative in place
    cdf += 0.05
    np.cumsum(cdf, out=cdf)
    cdf /= cdf[-1]
    return _Users(
        cdf=cdf,
        industry=industry,
        role=role,
        experience=experience,
        region=rng.choice(len(REGIONS), size, p=[0.35, 0.28, 0.22, 0.09, 0.06]).astype(small),
        age=rng.choice(len(AGE_RANGES), size, p=[0.10, 0.32, 0.27, 0.18, 0.10, 0.03]).astype(small),
        device=rng.choice(len(DEVICES), size, p=_DEVICE_WEIGHTS).astype(small),
        traits=traits,
    )


def _labels(vocabulary: tuple[str, ...], index: np.ndarray) -> pa.Array:
    return pa.array(vocabulary, pa.string()).take(pa.array(index))


def _ids(prefix: str, numbers: np.ndarray) -> pa.Array:
    return pc.binary_join_element_wise(prefix, pc.utf8_lpad(pc.cast(pa.array(numbers), pa.string()), 8, "0"), "")


class _Sink:
    """The Parquet files of one partition, written as the hours come: rows are buffered until a
    row group's worth (``group_rows``) and written; a file holds at most ``max_rows`` rows,
    then the next part begins. Each file is written under a hidden temporary name and renamed into
    place when the day is done (:meth:`close`), so a reader never sees half a day."""

    def __init__(self, folder: Path, names: Iterable[str], schema: pa.Schema, max_rows: int, group_rows: int) -> None:
        self.folder, self.names, self.schema, self.max_rows = folder, iter(names), schema, max_rows
        self.group_rows = group_rows
        self.pending: list[pa.Table] = []
        self.pending_rows = 0
        self.writer: pq.ParquetWriter | None = None
        self.in_file = 0
        self.files: list[tuple[Path, Path]] = []  # (temporary, final)

    def add(self, table: pa.Table) -> None:
        if table.num_rows:
            self.pending.append(table)
            self.pending_rows += table.num_rows
            if self.pending_rows >= self.group_rows:
                self._flush()

    def _flush(self) -> None:
        rows = pa.concat_tables(self.pending) if self.pending else None  # chunks side by side, not copied
        self.pending, self.pending_rows = [], 0
        offset = 0
        while rows is not None and offset < rows.num_rows:
            if self.writer is None:
                final = self.folder / next(self.names)
                temporary = self.folder / f".{final.name}.{uuid.uuid4().hex}.tmp"
                self.folder.mkdir(parents=True, exist_ok=True)
                self.writer = pq.ParquetWriter(temporary, self.schema, compression="snappy")
                self.files.append((temporary, final))
                self.in_file = 0
            part = rows.slice(offset, self.max_rows - self.in_file)
            self.writer.write_table(part, row_group_size=self.group_rows)
            offset += part.num_rows
            self.in_file += part.num_rows
            if self.in_file >= self.max_rows:
                self.writer.close()
                self.writer = None

    def close(self) -> list[Path]:
        """Write what is left, rename every file into place; returns the files."""
        self._flush()
        if self.writer is not None:
            self.writer.close()
        for temporary, final in self.files:
            os.replace(temporary, final)
        return [final for _, final in self.files]

    def abort(self) -> None:
        if self.writer is not None:
            self.writer.close()
        for temporary, _ in self.files:
            temporary.unlink(missing_ok=True)


def _remove_stale(folder: Path, keep: set[str], pattern: str) -> None:
    if folder.is_dir():
        for old in folder.glob(pattern):
            if old.name not in keep:
                old.unlink()


def _generate_day(day: dt.date, events_per_day: int, seed: int, users: _Users, events: Table,
                  scores: Table, report: GenerateReport) -> None:
    """Draw the day an hour (or, at low volume, a run of hours) at a time, each from its own seed,
    and write each partition's files as the hours come: memory holds the user pool and an hour,
    whatever the day's volume."""
    per_hour = np.random.default_rng(np.random.SeedSequence([seed, day.toordinal()])).multinomial(
        events_per_day, _HOUR_WEIGHTS / _HOUR_WEIGHTS.sum())
    day_ms = (day - dt.date(1970, 1, 1)).days * _DAY_MS  # UTC midnight, whatever the machine's time zone
    stamp = day.strftime("%Y%m%d")
    lake_date = day.strftime("%Y/%m/%d")
    by_type = [_Sink(Path(events.partition_location({"date": lake_date, "assessment_type": kind})),
                     (f"part-{n:05d}.parquet" for n in range(10**5)), events.arrow_schema, EVENTS_FILE_MAX_ROWS,
                     EVENTS_GROUP_ROWS)
               for kind in ASSESSMENT_TYPES]
    month_folder = Path(scores.partition_location({"year": day.strftime("%Y"), "month": day.strftime("%m")}))
    score_file = month_folder / f"part-{stamp}.parquet"
    score_sink = _Sink(month_folder, [score_file.name], scores.arrow_schema, max_rows=2**62,
                       group_rows=SCORES_CHUNK_ROWS)
    sinks = [*by_type, score_sink]
    scored = 0
    try:
        first = 0
        for hours in _blocks(per_hour):
            rng = np.random.default_rng(np.random.SeedSequence([seed, day.toordinal(), hours[0]]))
            counts = per_hour[hours]
            scored += _generate_hours(rng, hours, counts, first, day_ms, stamp, users, events, scores, by_type,
                                      score_sink)
            first += int(counts.sum())
        written = [sink.close() for sink in sinks]
    except BaseException:
        for sink in sinks:
            sink.abort()
        raise
    for sink, files in zip(by_type, written[:-1], strict=True):
        _remove_stale(sink.folder, {f.name for f in files}, "part-*.parquet")
    if not written[-1] and score_file.exists():
        score_file.unlink()
    for files in written:
        report.files += len(files)
        report.bytes += sum(f.stat().st_size for f in files)
    report.events += events_per_day
    report.scores += scored
    report.events_by_day[day.isoformat()] = events_per_day


def _blocks(per_hour: np.ndarray) -> list[list[int]]:
    """The day's hours in runs of consecutive hours holding at least ``EVENTS_GROUP_ROWS`` sessions
    (the last run whatever is left): an hour each at ten million a day, the whole day at once at a
    few thousand, where drawing hour by hour would cost more than it saves."""
    blocks, current, rows = [], [], 0
    for hour, n in enumerate(per_hour.tolist()):
        current.append(hour)
        rows += n
        if rows >= EVENTS_GROUP_ROWS:
            blocks.append(current)
            current, rows = [], 0
    return [*blocks, current] if current else blocks


def _generate_hours(rng: np.random.Generator, hours: list[int], counts: np.ndarray, first: int, day_ms: int,
                    stamp: str, users: _Users, events: Table, scores: Table, by_type: list[_Sink],
                    score_sink: _Sink) -> int:
    """The sessions of ``hours`` (``counts`` each, numbered from ``first`` in the day) into the
    sinks; returns how many were scored."""
    n = int(counts.sum())
    user = np.searchsorted(users.cdf, rng.random(n), side="right")  # as rng.choice(p=weights) draws
    kind = rng.choice(len(ASSESSMENT_TYPES), n, p=_TYPE_WEIGHTS)
    device = np.where(rng.random(n) < 0.8, users.device[user], rng.choice(len(DEVICES), n, p=_DEVICE_WEIGHTS))
    platform = (rng.random(n)[:, None] > _PLATFORM_GIVEN_DEVICE.cumsum(1)[device]).sum(1)
    start_ms = np.repeat(np.asarray(hours, np.int64), counts) * 3_600_000 + rng.integers(0, 3_600_000, n)
    abandoned = rng.random(n) < _TYPE_ABANDON[kind] * _DEVICE_ABANDON_FACTOR[device]
    duration = np.maximum(30, rng.lognormal(np.log(_TYPE_MEDIAN_S[kind]), 0.35)).astype(np.int32)
    null_time = abandoned & (rng.random(n) < 0.5)
    version = rng.choice(len(VERSIONS), n, p=_VERSION_WEIGHTS)

    order = np.argsort(start_ms, kind="stable")
    user, kind, device, platform, start_ms, abandoned, duration, null_time, version = (
        a[order] for a in (user, kind, device, platform, start_ms, abandoned, duration, null_time, version))
    numbers = np.arange(first, first + n)
    completion = pa.array(np.where(abandoned, 0, duration).astype(np.int32), mask=null_time)
    event_columns = {
        "anonymous_user_id": _ids("u-", user),
        "session_id": _ids(f"s-{stamp}-", numbers),
        "assessment_id": _ids(f"a-{stamp}-", numbers),
        "timestamp": pa.array(day_ms + start_ms, pa.int64()).cast(pa.timestamp("ms")),
        "version": _labels(VERSIONS, version),
        "completion_time": completion,
        "device": _labels(DEVICES, device),
        "platform": _labels(PLATFORMS, platform),
        "age_range": _labels(AGE_RANGES, users.age[user]),
        "industry": _labels(INDUSTRIES, users.industry[user]),
        "role": _labels(ROLES, users.role[user]),
        "experience": _labels(EXPERIENCE_LEVELS, users.experience[user]),
        "region": _labels(REGIONS, users.region[user]),
    }
    hour_table = pa.table(event_columns, schema=events.arrow_schema)
    for k, sink in enumerate(by_type):
        sink.add(hour_table.filter(pa.array(kind == k)))
    done = np.flatnonzero(~abandoned)
    for i in range(0, len(done), SCORES_CHUNK_ROWS):
        score_sink.add(_score_chunk(rng, done[i:i + SCORES_CHUNK_ROWS], user, kind, start_ms, duration, day_ms,
                                    users, event_columns, scores))
    return len(done)


def _score_chunk(rng: np.random.Generator, rows: np.ndarray, user: np.ndarray, kind: np.ndarray,
                 start_ms: np.ndarray, duration: np.ndarray, day_ms: int, users: _Users,
                 event_columns: dict[str, pa.Array], scores: Table) -> pa.Table:
    m = len(rows)
    who = user[rows]
    quick = kind[rows] == ASSESSMENT_TYPES.index("personality_quick")
    noise = np.where(quick[:, None], 7.0, 4.0)
    traits = np.clip(users.traits[who] + rng.normal(0, 1, (m, 5)) * noise, 0, 100).round(1)

    # facets: six per trait around the trait score; responses depend on the assessment's length
    facet_scores = np.clip(np.repeat(traits, 6, axis=1) + rng.normal(0, 6, (m, 30)), 0, 100).round(1)
    items = _TYPE_ITEMS_PER_FACET[kind[rows]][:, None]
    responses = np.maximum(1, items - (rng.random((m, 30)) < 0.05)).astype(np.int32)
    std_dev = (0.4 + rng.gamma(4.0, 0.15, (m, 30))).round(3)
    facet_values = pa.StructArray.from_arrays(
        [pa.array(facet_scores.ravel()), pa.array(responses.ravel()), pa.array(std_dev.ravel())],
        names=["score", "responses", "std_dev"],
    )
    facets = pa.MapArray.from_arrays(
        pa.array(np.arange(0, 30 * (m + 1), 30, dtype=np.int32)),
        pa.array(FACET_KEYS).take(pa.array(np.tile(np.arange(30), m))),
        facet_values,
    )
    dark = np.clip(50 + (traits - 50) @ _DARK_SIDE_LOADINGS.T + rng.normal(0, 8, (m, 11)), 0, 100).round(1)
    dark_side = pa.MapArray.from_arrays(
        pa.array(np.arange(0, 11 * (m + 1), 11, dtype=np.int32)),
        pa.array(DARK_SIDE_INDICATORS).take(pa.array(np.tile(np.arange(11), m))),
        pa.array(dark.ravel()),
    )
    consistency = np.where(quick, rng.beta(6, 3, m), rng.beta(9, 2, m)).round(4)
    completeness = (1 - rng.beta(1, 40, m)).round(4)
    finished_ms = np.minimum(start_ms[rows] + duration[rows].astype(np.int64) * 1000, _DAY_MS - 1)
    take = pa.array(rows)
    columns = {
        "anonymous_user_id": event_columns["anonymous_user_id"].take(take),
        "assessment_id": event_columns["assessment_id"].take(take),
        "timestamp": pa.array(day_ms + finished_ms, pa.int64()).cast(pa.timestamp("ms")),
        **{trait: pa.array(traits[:, i]) for i, trait in enumerate(TRAITS)},
        "consistency": pa.array(consistency),
        "completeness": pa.array(completeness),
        "facets": facets,
        "dark_side_indicators": dark_side,
        "industry": event_columns["industry"].take(take),
        "role": event_columns["role"].take(take),
        "experience": event_columns["experience"].take(take),
    }
    return pa.table(columns, schema=scores.arrow_schema)


def generate_lake(lake_root: str | Path, start: dt.date, days: int, events_per_day: int,
                  seed: int = 42, workers: int = 1) -> GenerateReport:
    """Write ``days`` days of events and scores from ``start`` into the lake folder.

    Each day is drawn from its own seed, so ``workers`` processes (one day at a time each) write
    the same lake as one; each holds the user pool and an hour in memory (peak 0.65 GiB at a
    million events a day, 1.5 GiB at ten million).
    """
    if days < 1 or events_per_day < 1 or workers < 1:
        raise ConfigError(f"--days ({days}), --events-per-day ({events_per_day}) and --workers ({workers}) "
                          "must be at least 1")
    root = Path(lake_root).expanduser().resolve()
    if root.exists() and not root.is_dir():
        raise ConfigError(f"the lake {root} is a file, not a folder: choose another --lake")
    started = time.perf_counter()
    catalog = load_catalog(str(root))
    events, scores = catalog.table("assessment_events"), catalog.table("ocean_scores")
    if set(events.enum_values("assessment_type")) != set(ASSESSMENT_TYPES):
        raise ConfigError("the DDL's assessment_type projection enum and the contract's ASSESSMENT_TYPES differ")
    dates = [start + dt.timedelta(days=offset) for offset in range(days)]
    report = GenerateReport(days=days)
    if workers == 1:
        for day in dates:
            _generate_day(day, events_per_day, seed, _user_pool(seed, events_per_day), events, scores, report)
    else:
        # spawned, not forked: a fork of a threaded caller (an Airflow task) can deadlock
        with ProcessPoolExecutor(min(workers, days), mp_context=multiprocessing.get_context("spawn")) as pool:
            for part in pool.map(_generate_one, [(root, day, events_per_day, seed) for day in dates]):
                _merge(report, part)
    report.elapsed_s = time.perf_counter() - started
    return report


def _generate_one(job: tuple[Path, dt.date, int, int]) -> GenerateReport:
    """One day in a worker process."""
    root, day, events_per_day, seed = job
    catalog = load_catalog(str(root))
    report = GenerateReport()
    _generate_day(day, events_per_day, seed, _user_pool(seed, events_per_day), catalog.table("assessment_events"),
                  catalog.table("ocean_scores"), report)
    return report


def _merge(report: GenerateReport, part: GenerateReport) -> None:
    report.events += part.events
    report.scores += part.scores
    report.files += part.files
    report.bytes += part.bytes
    report.events_by_day.update(part.events_by_day)
