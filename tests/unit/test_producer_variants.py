"""Valid files from other producers pass the gates and give identical aggregates: other
compressions, small row groups, dictionary-encoded strings, no Arrow schema in the footer (as
Spark and Hive write), writer marker files, timestamps in other units (INT96 included) or marked
as UTC. Each variant rewrites one day of a copy of the sample lake, both raw tables, then the day
is validated and every aggregate built and compared with the untouched day's."""

from __future__ import annotations

import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ioc_analytics import quality
from ioc_analytics.analytics import pipeline
from ioc_analytics.lake.tables import AGGREGATES, RAW_TABLES
from ioc_analytics.settings import get_settings
from tests.helpers import ONE_DAY, assert_same_aggregate, read_aggregate, sorted_aggregate

TAGS = {"dag_id": "test", "task_id": "variant", "ds": ONE_DAY.isoformat()}


def _strings_as_dictionaries(table: pa.Table) -> pa.Table:
    for i, field in enumerate(table.schema):
        if pa.types.is_string(field.type):
            table = table.set_column(i, field.name, table.column(i).dictionary_encode())
    return table


def _timestamps(unit: str, tz: str | None = None):
    def change(table: pa.Table) -> pa.Table:
        i = table.schema.get_field_index("timestamp")
        return table.set_column(i, "timestamp", table.column(i).cast(pa.timestamp(unit, tz=tz)))
    return change


#: name -> (a change to the table, pyarrow.parquet.write_table options, marker files to add).
VARIANTS = {
    "zstd, 50-row groups, _SUCCESS and .crc markers": (None, {"compression": "zstd", "row_group_size": 50}, True),
    "gzip, dictionary strings, no Arrow schema": (_strings_as_dictionaries, {"compression": "gzip",
                                                                           "store_schema": False}, False),
    "microsecond timestamps": (_timestamps("us"), {}, False),
    "INT96 timestamps (Spark, Hive)": (_timestamps("ns"), {"use_deprecated_int96_timestamps": True}, False),
    "millisecond timestamps adjusted to UTC": (_timestamps("ms", "UTC"), {}, False),
}


def _day_files(lake: Path) -> list[Path]:
    return [*sorted((lake / "assessments" / f"{ONE_DAY:%Y/%m/%d}").glob("*/*.parquet")),
            lake / "ocean_scores" / f"{ONE_DAY:%Y/%m}" / f"part-{ONE_DAY:%Y%m%d}.parquet"]


def _build(lake: Path, state: Path) -> dict:
    settings = get_settings(backend="local", lake_root=str(lake), state_dir=str(state))
    for table in RAW_TABLES:
        report = quality.validate_source(settings, ONE_DAY, table)
        assert report.failures == [], quality.render([report.as_dict()])
    for name in AGGREGATES:
        pipeline.build_aggregate(settings, ONE_DAY, name, TAGS)
        pipeline.quality_gate(settings, ONE_DAY, name, TAGS)
    return {name: sorted_aggregate(read_aggregate(state, name, ONE_DAY), name) for name in AGGREGATES}


@pytest.fixture(scope="module")
def clean(sample_lake, tmp_path_factory):
    """The day as generated, and its aggregates."""
    root = tmp_path_factory.mktemp("variants")
    lake = root / "lake"
    shutil.copytree(sample_lake / "assessments" / f"{ONE_DAY:%Y/%m/%d}", lake / "assessments" / f"{ONE_DAY:%Y/%m/%d}")
    shutil.copytree(sample_lake / "ocean_scores" / f"{ONE_DAY:%Y/%m}", lake / "ocean_scores" / f"{ONE_DAY:%Y/%m}")
    return lake, _build(lake, root / "state")


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_a_valid_producer_variant_passes_with_identical_aggregates(clean, tmp_path, variant):
    pristine, expected = clean
    lake = tmp_path / "lake"
    shutil.copytree(pristine, lake, ignore=shutil.ignore_patterns("aggregates", "quality"))
    change, options, markers = VARIANTS[variant]
    for path in _day_files(lake):
        table = pq.read_table(path)
        pq.write_table(change(table) if change else table, path, **options)
        if markers:
            (path.parent / "_SUCCESS").write_bytes(b"")
            (path.parent / f".{path.name}.crc").write_bytes(b"\x00crc")
    written = pq.read_metadata(_day_files(lake)[0])
    if "compression" in options:
        assert written.row_group(0).column(0).compression.lower() == options["compression"]
    built = _build(lake, tmp_path / "state")
    for name in AGGREGATES:
        assert_same_aggregate(built[name], expected[name], f"{name} ({variant})")
