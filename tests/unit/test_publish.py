"""Exports: four formats read back equal to the aggregate, the manifest, small-group suppression,
atomic re-runs, Excel's sheet limit, and no export of unvalidated data."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ioc_analytics import pipeline, publish
from ioc_analytics.errors import DataQualityError
from ioc_analytics.settings import get_settings
from ioc_analytics.tables import AGGREGATES, BREAKDOWN_USERS
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
    manifest = publish.export_aggregate(checked, DAY, name, TAGS)
    folder = Path(checked.exports_root) / name / DAY.isoformat()
    assert json.loads((folder / "manifest.json").read_text()) == manifest
    want = read_aggregate(Path(checked.state_dir), name, DAY)
    assert sorted(f["format"] for f in manifest["files"]) == sorted(publish.FORMATS)
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
    manifest = publish.export_aggregate(settings, DAY, name, TAGS)
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
    manifest = publish.export_aggregate(settings, DAY, "daily_active_users", TAGS)
    assert manifest["suppression"]["rows"] == 0 and manifest["suppression"]["users_column"] is None


def test_a_rerun_replaces_the_set_and_keeps_only_the_version_before(checked):
    first = publish.export_aggregate(checked, DAY, "completion_rates", TAGS)
    second = publish.export_aggregate(checked, DAY, "completion_rates", TAGS)
    folder = Path(checked.exports_root) / "completion_rates" / DAY.isoformat()
    assert second["version"] > first["version"]
    assert {p.name for p in folder.iterdir() if p.is_dir()} >= {first["version"], second["version"]}
    third = publish.export_aggregate(checked, DAY, "completion_rates", TAGS)
    assert sorted(p.name for p in folder.iterdir()) == sorted([second["version"], third["version"], "manifest.json"])
    assert json.loads((folder / "manifest.json").read_text())["version"] == third["version"]


def test_an_unvalidated_day_is_not_exported(checked):
    report = Path(checked.lake_uri) / "quality" / "facet_summary" / f"{DAY}.json"
    kept = report.read_text()
    try:
        report.unlink()
        with pytest.raises(DataQualityError, match=f"facet_summary for {DAY} has not been checked .* only "
                                                   "validated data is exported"):
            publish.export_aggregate(checked, DAY, "facet_summary", TAGS)
        report.write_text(json.dumps({**json.loads(kept), "passed": False}))
        with pytest.raises(DataQualityError, match="failed its checks"):
            publish.export_aggregate(checked, DAY, "facet_summary", TAGS)
    finally:
        report.write_text(kept)


def test_excel_splits_a_table_past_the_sheet_limit_and_loses_no_row():
    table = pa.table({"n": list(range(7)), "label": [f"row {i}" for i in range(7)]})
    [xlsx] = [f for f in publish.render_files(table, "a_rather_long_table_name_for_excel", rows_per_sheet=3)
              if f.format == "xlsx"]
    sheets = pd.read_excel(io.BytesIO(xlsx.data), sheet_name=None)
    assert list(sheets) == ["a_rather_long_table_name_for_ex", "a_rather_long_table_name_fo (2)",
                            "a_rather_long_table_name_fo (3)"]  # Excel's 31-character limit
    assert [len(s) for s in sheets.values()] == [3, 3, 1]
    assert pd.concat(sheets.values(), ignore_index=True)["n"].tolist() == list(range(7))


def test_rows_without_their_users_count_are_not_published():
    table = pa.table({"device": ["mobile"], "sessions": [3]})
    with pytest.raises(DataQualityError, match="lack their 'users' column, so small groups cannot be suppressed"):
        publish.suppress_small_groups(table, "users", 10)


@pytest.mark.parametrize("name", sorted(BREAKDOWN_USERS))
def test_quicksight_datasets_suppress_as_the_exports_do(checked, name):
    """The dataset's SQL (Athena dialect), run by the local engine, equals the export's suppression."""
    from ioc_analytics.catalog import load_catalog
    from ioc_analytics.engine import get_engine
    from ioc_analytics.quicksight import dataset_sql

    table = load_catalog(checked.lake_uri).table(name)
    whole = read_aggregate(Path(checked.state_dir), name, DAY)
    k = int(whole[BREAKDOWN_USERS[name]].median()) + 1
    engine = get_engine(checked)
    got = engine.query(dataset_sql(table, k) + " WHERE date = ?", [f"{DAY:%Y/%m/%d}"]).table
    export = publish.export_sql(table, DAY)
    want, _ = publish.suppress_small_groups(engine.query(export.sql, export.parameters).table, BREAKDOWN_USERS[name], k)
    assert got.to_pylist() == want.to_pylist()
