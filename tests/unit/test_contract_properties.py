"""The contract tested the way an attacker and a careless producer would: every column of the raw
tables, every class of bad value that applies to it, damaged into a generated day, must come back
from the gate named by its column and class (or, for a warning, be built and exported safely).

A sweep damages every (column, class) at once, each in its own row, so that each is seen; then
hypothesis draws values, rows and combinations. Great Expectations runs for real on DuckDB, on a
day of 200 events, so one validation takes well under a second.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import math
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from ioc_analytics import quality, safety
from ioc_analytics.analytics import pipeline
from ioc_analytics.devtools.generate import generate_lake
from ioc_analytics.errors import DataQualityError
from ioc_analytics.lake import contract
from ioc_analytics.lake.contract import (
    ERROR,
    NAN,
    NULL,
    OUT_OF_RANGE,
    PATTERN,
    UNKNOWN_LABEL,
    UNSAFE_TEXT,
    WARNING,
    InPartition,
    Labels,
    MapOf,
    Pattern,
    Range,
)
from ioc_analytics.lake.tables import AGGREGATES
from ioc_analytics.publishing import exports
from ioc_analytics.settings import get_settings

DAY = dt.date(2024, 3, 12)
START = dt.datetime(2024, 3, 12)
EVENTS = 200
SLICE = {"assessment_events": f"date={DAY:%Y/%m/%d}, assessment_type=personality",
         "ocean_scores": f"year={DAY:%Y}, month={DAY:%m} (rows of {DAY})"}
#: Breaches that come with another on the same value: an unsafe label is also unknown, an unsafe
#: id does not match the id pattern either.
ALSO = {UNSAFE_TEXT: {UNKNOWN_LABEL, PATTERN}}


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Path:
    lake = tmp_path_factory.mktemp("pristine")
    generate_lake(lake, DAY, 1, EVENTS, seed=23)
    return lake


def _file(lake: Path, table: str) -> Path:
    if table == "assessment_events":
        return lake / "assessments" / f"{DAY:%Y/%m/%d}" / "personality" / "part-00000.parquet"
    return lake / "ocean_scores" / f"{DAY:%Y/%m}" / f"part-{DAY:%Y%m%d}.parquet"


# -- what can be wrong with each column --------------------------------------------------------


@dataclass(frozen=True)
class Damage:
    """One bad value: which column, which class of breach (``part``: a map's values), the value."""

    column: str
    breach: str
    value: Any
    part: str = ""

    @property
    def rule(self) -> str:
        return f"{self.column}{' ' + self.part if self.part else ''}: {self.breach}"


_ID_ALPHABET = st.characters(codec="utf-8", categories=["L", "N"])
_FORMULA = st.tuples(st.text(" \u00a0\u3000", max_size=2), st.sampled_from(safety.FORMULA_STARTS),
                     st.text(max_size=20)).map("".join)
_CONTROL = st.tuples(st.text(_ID_ALPHABET, min_size=1, max_size=8),
                     st.sampled_from(["\x00", "\x01", "\x07", "\x1b", "\x7f", "\x85", "\u200b", "\u202e", "\u2066"]),
                     st.text(_ID_ALPHABET, max_size=8)).map("".join)
UNSAFE = st.one_of(_FORMULA, _CONTROL, st.sampled_from(['=HYPERLINK("http://evil.example","open")', "@SUM(1+1)*cmd",
                                                        "+1-2", "-2+3", "\t=1", "\r=1"]))


def _safe_text(exclude: tuple[str, ...] = ()) -> st.SearchStrategy[str]:
    return st.text(st.characters(codec="utf-8", categories=["L", "N", "Zs", "P"]), min_size=1, max_size=30).filter(
        lambda t: t not in exclude and not safety.is_unsafe(t))


def _outside(domain: Range, integer: bool) -> st.SearchStrategy[Any]:
    picks = []
    if domain.low is not None:
        picks.append(st.integers(-10**6, int(domain.low) - 1) if integer else
                     st.floats(max_value=domain.low, exclude_max=True, allow_nan=False, allow_infinity=False))
    if domain.high is not None:
        picks.append(st.integers(int(domain.high) + 1, 2**31 - 1) if integer else
                     st.floats(min_value=domain.high, exclude_min=True, allow_nan=False, allow_infinity=False))
    if not integer:
        picks.append(st.sampled_from([math.inf, -math.inf]))
    return st.one_of(picks)


def bad_values(table: str) -> dict[tuple[str, str, str], st.SearchStrategy[Any]]:
    """Every (column, class, part) that applies to ``table``'s contract, and its bad values."""
    found: dict[tuple[str, str, str], st.SearchStrategy[Any]] = {}
    for column in contract.contract(table).columns:
        def key(breach: str, part: str = "", name: str = column.name) -> tuple[str, str, str]:
            return name, breach, part

        domain = column.domain
        if not column.nullable:
            found[key(NULL)] = st.just(None)
        if column.type == "double":
            found[key(NAN)] = st.just(math.nan)
            found[key(OUT_OF_RANGE)] = _outside(domain, integer=False)
        elif column.type == "int":
            found[key(OUT_OF_RANGE)] = _outside(domain, integer=True)
        elif isinstance(domain, InPartition):
            # Outside the partition: the day of an events partition, the month of a scores one (a
            # score set of another day of the month is that day's).
            first, after = ((START, START + dt.timedelta(days=1)) if table == "assessment_events"
                            else (START.replace(day=1), START.replace(month=START.month + 1, day=1)))
            found[key(OUT_OF_RANGE)] = st.one_of(
                st.integers(1, 400 * 86400).map(lambda s, first=first: first - dt.timedelta(seconds=s)),
                st.integers(0, 400 * 86400).map(lambda s, after=after: after + dt.timedelta(seconds=s)))
        elif column.type == "string":
            found[key(UNSAFE_TEXT)] = UNSAFE
            if isinstance(domain, Labels):
                found[key(UNKNOWN_LABEL)] = _safe_text(domain.values)
            if isinstance(domain, Pattern):
                found[key(PATTERN)] = st.tuples(st.text(_ID_ALPHABET, min_size=1, max_size=5),
                                                st.sampled_from(" /#!?,;*()[]"), st.text(_ID_ALPHABET, max_size=5)
                                                ).map("".join)
        elif isinstance(domain, MapOf):
            keys = domain.keys
            found[key(contract.MISSING_MAP_KEY)] = st.lists(st.sampled_from(keys), min_size=1, max_size=3, unique=True)
            found[key(contract.UNKNOWN_MAP_KEY)] = _safe_text(keys).map(lambda k: [k])
            fields = [None] if isinstance(domain.values, Range) else list(domain.values)
            doubles = [f for f in fields if f is None or f"{f}:double" in column.type]
            for breach, which in ((NULL, fields), (NAN, doubles), (OUT_OF_RANGE, fields)):
                found[key(breach, "values")] = st.tuples(st.sampled_from(keys), st.sampled_from(which), st.just(breach))
    return found


def _entry_value(domain: MapOf, field: str | None, breach: str, data: st.DataObject | None) -> Any:
    if breach == NULL:
        return None
    if breach == NAN:
        return math.nan
    bounds = domain.values if field is None else domain.values[field]
    integer = field == "responses"
    return data.draw(_outside(bounds, integer)) if data else (bounds.high or 0) + 1e6


def _apply(rows: list[dict[str, Any]], row: int, damage: Damage, domain: Any, data: st.DataObject | None) -> None:
    record = rows[row]
    if damage.breach in (contract.MISSING_MAP_KEY, contract.UNKNOWN_MAP_KEY):
        entries = record[damage.column]
        if damage.breach == contract.MISSING_MAP_KEY:
            record[damage.column] = [(k, v) for k, v in entries if k not in damage.value]
        else:
            record[damage.column] = [*entries, (damage.value[0], entries[0][1])]
    elif damage.part == "values":
        key, field, breach = damage.value
        value = _entry_value(domain, field, breach, data)
        entries = []
        for k, v in record[damage.column]:
            if k == key:
                v = value if field is None else {**v, field: value}
            entries.append((k, v))
        record[damage.column] = entries
    else:
        record[damage.column] = damage.value


def damage(lake: Path, table: str, damages: list[Damage], rows: list[int], data: st.DataObject | None = None) -> None:
    """Write ``damages`` into the day's file of ``table``, one to each row of ``rows``."""
    path = _file(lake, table)
    original = pq.read_table(path)
    if table == "ocean_scores":
        on_day = [i for i, t in enumerate(original["timestamp"].to_pylist()) if t.date() == DAY]
        rows = [on_day[r % len(on_day)] for r in rows]
    records = original.to_pylist()
    declared = contract.contract(table)
    for row, d in zip(rows, damages, strict=True):
        _apply(records, row, d, declared.column(d.column).domain, data)
    pq.write_table(pa.Table.from_pylist(records, schema=original.schema), path)


def _copy(pristine: Path, where: Path) -> Path:
    lake = where / "lake"
    if lake.exists():
        shutil.rmtree(lake)
    shutil.copytree(pristine, lake)
    return lake


def _validate(lake: Path, state: Path, table: str) -> quality.QualityReport:
    return quality.validate_source(get_settings(backend="local", lake_root=str(lake), state_dir=str(state)), DAY, table)


def _severity(table: str, d: Damage) -> str:
    [rule] = [r for r in contract.rules(table) if r.name == d.rule]
    return rule.severity


def _assert_reported(report: quality.QualityReport, table: str, damages: list[Damage]) -> None:
    shown = quality.render([report.as_dict()])
    found = {(f.check, f.severity) for f in report.failures}
    for d in damages:
        assert (d.rule, _severity(table, d)) in found, f"{d} not reported:\n{shown}"
        [failure] = [f for f in report.failures if f.check == d.rule]
        assert failure.column == d.column and failure.breach == d.breach and failure.count >= 1, shown
        assert failure.partition == SLICE[table] and failure.table == table and failure.samples, shown
    allowed = {d.rule for d in damages} | {f"{d.column}: {also}" for d in damages for also in ALSO.get(d.breach, ())}
    assert {f.check for f in report.failures} <= allowed, f"reported more than was damaged:\n{shown}"
    errors = [d for d in damages if _severity(table, d) == ERROR]
    if errors:
        with pytest.raises(DataQualityError) as caught:
            quality.gate(report)
        for d in errors:
            assert d.rule in str(caught.value)
    else:
        quality.gate(report)


# -- the sweep: every (column, class) at once -------------------------------------------------

def _example(strategy: st.SearchStrategy[Any]) -> Any:
    """One value of a strategy, the same every run (its simplest)."""
    from hypothesis import find

    return find(strategy, lambda _: True)


@pytest.mark.parametrize("table", ["assessment_events", "ocean_scores"])
def test_every_column_and_class_of_bad_value_is_reported_by_its_column_and_class(pristine, tmp_path, table):
    lake = _copy(pristine, tmp_path)
    applicable = bad_values(table)
    damages = [Damage(column, breach, _example(values), part) for (column, breach, part), values in applicable.items()]
    damage(lake, table, damages, list(range(len(damages))))
    report = _validate(lake, tmp_path / "state", table)
    _assert_reported(report, table, damages)
    expected = {d.rule for d in damages}
    assert len(expected) == len(applicable) >= (30 if table == "assessment_events" else 40)


# -- hypothesis: values, rows and combinations -------------------------------------------------

CASES = {table: sorted(bad_values(table)) for table in ("assessment_events", "ocean_scores")}


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])
@given(data=st.data())
def test_random_bad_values_in_random_rows_are_each_reported(pristine, tmp_path, data):
    table = data.draw(st.sampled_from(sorted(CASES)))
    picked = data.draw(st.lists(st.sampled_from(CASES[table]), min_size=1, max_size=3, unique_by=lambda c: c[0]))
    strategies = bad_values(table)
    damages = [Damage(column, breach, data.draw(strategies[(column, breach, part)]), part)
               for column, breach, part in picked]
    rows = data.draw(st.lists(st.integers(0, 60), min_size=len(damages), max_size=len(damages), unique=True))
    lake = _copy(pristine, tmp_path)
    damage(lake, table, damages, rows, data)
    _assert_reported(_validate(lake, tmp_path / "state", table), table, damages)


# -- wrong types and duplicate keys ------------------------------------------------------------

def _other_type(column: contract.Column, values: list[Any]) -> pa.Array:
    if column.type == "string":
        return pa.array(range(len(values)), pa.int64())
    if column.type == "int":
        return pa.array([float(i) for i in range(len(values))], pa.float64())
    return pa.array([str(v) for v in values], pa.string())


@pytest.mark.parametrize("table", ["assessment_events", "ocean_scores"])
def test_every_column_of_the_wrong_type_is_reported_by_its_column(pristine, tmp_path, table):
    """Every column retyped at once in the day's file: each is named, with the type it holds."""
    lake = _copy(pristine, tmp_path)
    path = _file(lake, table)
    data = pq.read_table(path)
    declared = contract.contract(table)
    for column in declared.columns:
        index = data.schema.get_field_index(column.name)
        data = data.set_column(index, column.name, _other_type(column, data[column.name].to_pylist()))
    pq.write_table(data, path)
    report = _validate(lake, tmp_path / "state", table)
    retyped = {f.column: f for f in report.failures if f.partition == SLICE[table]}
    assert sorted(retyped) == sorted(c.name for c in declared.columns), quality.render([report.as_dict()])
    for column in declared.columns:
        failure = retyped[column.name]
        assert (failure.breach, failure.severity, failure.samples) == ("type", ERROR, [path.name])
        assert failure.detail.endswith(f"the contract says {column.type}") and failure.check == f"{column.name}: type"
    with pytest.raises(DataQualityError, match=f"{declared.columns[0].name}: type"):
        quality.gate(report)


@pytest.mark.parametrize("table", ["assessment_events", "ocean_scores"])
def test_a_key_duplicated_across_two_files_of_the_partition_is_reported(pristine, tmp_path, table):
    lake = _copy(pristine, tmp_path)
    path = _file(lake, table)
    data = pq.read_table(path)
    if table == "ocean_scores":
        data = data.filter(pa.compute.equal(pa.compute.cast(data["timestamp"], pa.date32()), pa.scalar(DAY)))
    pq.write_table(data.slice(5, 1), path.with_name("part-99998.parquet"))
    report = _validate(lake, tmp_path / "state", table)
    duplicated = {f.column for f in report.failures if f.breach == "duplicate key"}
    assert duplicated == {", ".join(k) for k in contract.contract(table).unique}, quality.render([report.as_dict()])
    assert all(f.count == 1 and f.partition == SLICE[table] for f in report.failures)


# -- warnings: built, exported, safe ----------------------------------------------------------

WARNINGS = [(t, c.name) for t in ("assessment_events", "ocean_scores") for c in contract.contract(t).columns
            if isinstance(c.domain, Labels) and c.domain.unknown == WARNING]


def _assert_safe_to_open(folder: Path) -> None:
    from openpyxl import load_workbook

    for path in folder.rglob("*.csv"):
        for record in csv.reader(io.StringIO(path.read_text())):
            assert not any(safety.is_formula_like(cell) for cell in record), (path, record)
    for path in folder.rglob("*.xlsx"):
        for sheet in load_workbook(path).worksheets:
            for row in sheet.iter_rows():
                for cell in row:
                    assert cell.data_type != "f" and not (isinstance(cell.value, str)
                                                          and safety.is_formula_like(cell.value)), (path, cell)


# Each example builds and exports the aggregates (seconds): no shrinking, to bound the time.
@settings(max_examples=4, deadline=None, phases=[Phase.explicit, Phase.reuse, Phase.generate],
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_a_warning_is_built_and_exported_as_text(pristine, tmp_path, data):
    table, column = data.draw(st.sampled_from(WARNINGS))
    label = data.draw(_safe_text(contract.contract(table).column(column).domain.values))
    lake = _copy(pristine, tmp_path)
    damage(lake, table, [Damage(column, UNKNOWN_LABEL, label)] * 12, list(range(12)))
    folder = tmp_path / "exports"
    shutil.rmtree(folder, ignore_errors=True)
    settings_ = get_settings(backend="local", lake_root=str(lake), state_dir=str(tmp_path / "state"),
                             exports_root=str(folder), min_group_users=1)
    report = quality.validate_source(settings_, DAY, table)
    assert [(f.column, f.breach, f.severity) for f in report.failures] == [(column, UNKNOWN_LABEL, WARNING)]
    quality.gate(report)
    tags = {"dag_id": "test", "task_id": "t", "ds": DAY.isoformat()}
    exported = []
    for name, sources in AGGREGATES.items():
        if table in sources:
            pipeline.build_aggregate(settings_, DAY, name, tags)
            pipeline.quality_gate(settings_, DAY, name, tags)
            exported.append(exports.export_aggregate(settings_, DAY, name, tags))
    held = [f for m in exported for f in m["files"] if f["format"] == "json"]
    shown = "".join(Path(f["path"]).read_text() for f in held)
    # Aggregated by it (user_breakdowns, ocean_trait_percentiles): the new label has its own row.
    if (table, column) in {("assessment_events", "role"), ("assessment_events", "region"),
                           ("ocean_scores", "industry")}:
        assert label in [v for f in held for r in json.loads(Path(f["path"]).read_text()) for v in r.values()]
    assert shown and all(m["rows"] for m in exported)
    _assert_safe_to_open(folder)
