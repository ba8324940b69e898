"""The daily pipeline's steps on the local backend, outside Airflow."""

from __future__ import annotations

import datetime as dt
import shutil

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ioc_analytics.analytics import pipeline
from ioc_analytics.errors import ConfigError
from ioc_analytics.settings import get_settings
from tests.helpers import ONE_DAY

DAY = ONE_DAY
FOLDER = DAY.strftime("%Y/%m/%d")






def _empty(partition):
    """Replace a partition's files by one Parquet file with the schema and no rows."""
    schema = pq.read_schema(next(partition.glob("*.parquet")))
    for path in partition.glob("*.parquet"):
        path.unlink()
    pq.write_table(pa.Table.from_pylist([], schema=schema), partition / "part-00000.parquet")


def test_fresh_when_some_assessment_types_have_rows(one_day_lake, one_day_settings, tmp_path):
    shutil.rmtree(one_day_lake / "assessments" / FOLDER / "career")
    _empty(one_day_lake / "assessments" / FOLDER / "leadership")
    report = pipeline.freshness(one_day_settings, DAY, "assessment_events")
    assert report.fresh and len(report.present) == 3
    assert report.missing == [{"date": FOLDER, "assessment_type": t} for t in ("leadership", "career")]
    assert report.locations[0].endswith(f"/assessments/{FOLDER}/leadership/")
    scores = pipeline.freshness(one_day_settings, DAY, "ocean_scores")
    assert scores.fresh and scores.missing == []


def test_files_without_rows_are_no_data(one_day_lake, one_day_settings, tmp_path):
    for partition in (one_day_lake / "assessments" / FOLDER).iterdir():
        _empty(partition)
    report = pipeline.freshness(one_day_settings, DAY, "assessment_events")
    assert not report.fresh and len(report.missing) == 5
    assert pipeline.late_message(report).startswith(f"assessment_events has no data for {DAY} (looked in ")


def test_a_file_that_is_not_parquet_has_landed_and_is_left_to_the_gate(one_day_lake, one_day_settings, caplog):
    for partition in (one_day_lake / "assessments" / FOLDER).iterdir():
        _empty(partition)
    bad = one_day_lake / "assessments" / FOLDER / "personality" / "export.parquet"
    bad.write_bytes(b"\x00" * 100)
    report = pipeline.freshness(one_day_settings, DAY, "assessment_events")
    assert report.present == [{"date": FOLDER, "assessment_type": "personality"}] and report.fresh
    assert "export.parquet is not a readable Parquet file" in caplog.text and "the data-quality gate" in caplog.text


def test_a_required_assessment_type_must_have_rows(one_day_lake, one_day_settings, tmp_path):
    shutil.rmtree(one_day_lake / "assessments" / FOLDER / "personality")
    settings = one_day_settings
    report = pipeline.freshness(settings, DAY, "assessment_events")
    assert not report.fresh and len(report.present) == 4
    assert pipeline.late_message(report) == (
        f"assessment_events has no data in its required partitions for {DAY} "
        f"(looked in {one_day_lake.resolve()}/assessments/{FOLDER}/personality/)")
    relaxed = get_settings(backend="local", lake_root=str(one_day_lake), state_dir=str(tmp_path / "s"),
                           required_assessment_types="career")
    assert pipeline.freshness(relaxed, DAY, "assessment_events").fresh
    with pytest.raises(ConfigError, match="IOC_REQUIRED_ASSESSMENT_TYPES names quiz"):
        pipeline.freshness(get_settings(lake_root=str(one_day_lake), required_assessment_types="quiz"),
                           DAY, "assessment_events")


def test_monthly_scores_are_fresh_only_once_they_reach_the_day(one_day_lake, one_day_settings, tmp_path):
    month = one_day_lake / "ocean_scores" / "2024" / "01"
    for path in month.glob("*.parquet"):
        if path.name > "part-20240105.parquet":
            path.unlink()
    settings = one_day_settings
    assert pipeline.freshness(settings, dt.date(2024, 1, 3), "ocean_scores").fresh
    later = pipeline.freshness(settings, DAY, "ocean_scores")
    assert not later.fresh and later.missing == [{"year": "2024", "month": "01"}]
