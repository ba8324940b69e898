"""The data-quality gate on the aws backend: footers and objects in S3 (moto), reports kept in
the S3 lake, quarantine moving objects aside and back. The suite itself runs on DuckDB over the
day's objects copied to the worker (ioc_analytics.quality says why), exactly as on local."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from ioc_analytics import quality
from ioc_analytics.devtools.faults import inject_fault
from ioc_analytics.devtools.generate import generate_lake
from ioc_analytics.errors import DataQualityError
from ioc_analytics.lake.tables import RAW_TABLES
from tests.aws.conftest import LAKE_BUCKET
from tests.helpers import ONE_DAY

pytestmark = pytest.mark.integration

FOLDER = ONE_DAY.strftime("%Y/%m/%d")


def _upload(moto, lake: Path) -> None:
    s3 = moto.client("s3")
    for path in [*lake.glob(f"assessments/{FOLDER}/*/*"), *lake.glob("ocean_scores/2024/01/*.parquet")]:
        s3.upload_file(str(path), LAKE_BUCKET, path.relative_to(lake).as_posix())


def _keys(moto, prefix: str) -> list[str]:
    listed = moto.client("s3").list_objects_v2(Bucket=LAKE_BUCKET, Prefix=prefix)
    return sorted(o["Key"] for o in listed.get("Contents", []))


def test_a_good_day_passes_and_its_report_is_kept_in_s3(aws_settings, moto, one_day_lake):
    _upload(moto, one_day_lake)
    for table in RAW_TABLES:
        report = quality.validate_source(aws_settings, ONE_DAY, table)
        assert report.errors == [] and report.rows > 1000, quality.render([report.as_dict()])
        kept = moto.client("s3").get_object(Bucket=LAKE_BUCKET, Key=f"quality/{table}/{ONE_DAY}.json")
        assert json.loads(kept["Body"].read())["passed"]
    assert "PASSED" in quality.render(quality.load_reports(aws_settings, ONE_DAY))


def test_a_bad_partition_in_s3_is_caught_and_quarantined_then_released(aws_settings, moto, one_day_lake):
    settings = dataclasses.replace(aws_settings, quarantine=True)
    inject_fault(one_day_lake, ONE_DAY, "not-parquet", "personality")  # required: stops the day
    inject_fault(one_day_lake, ONE_DAY, "null-id", "career")  # optional: set aside
    _upload(moto, one_day_lake)

    report = quality.validate_source(settings, ONE_DAY, "assessment_events")
    with pytest.raises(DataQualityError, match=rf"\[date={FOLDER}, assessment_type=personality\] not Parquet"
                                               r".*s3://ioc-analytics-data-lake/assessments/.*part-99999.parquet"):
        quality.gate(report)
    [entry] = report.quarantined
    assert entry.startswith(f"s3://{LAKE_BUCKET}/quarantine/assessment_events/{FOLDER}/career/")
    assert _keys(moto, f"assessments/{FOLDER}/career/") == []
    moved = _keys(moto, entry.split(f"{LAKE_BUCKET}/")[1])
    assert [k.rsplit("/", 1)[1] for k in moved] == ["_quarantine.json", "part-00000.parquet"]

    # Upstream delivers both partitions again, good this time: the day passes, the entry is released.
    s3 = moto.client("s3")
    s3.delete_object(Bucket=LAKE_BUCKET, Key=f"assessments/{FOLDER}/personality/part-99999.parquet")
    fresh = one_day_lake.parent / "fresh"
    generate_lake(fresh, ONE_DAY, 1, 1500, seed=11)
    for kind in ("personality", "career"):
        key = f"assessments/{FOLDER}/{kind}/part-00000.parquet"
        s3.upload_file(str(fresh / key), LAKE_BUCKET, key)
    report = quality.validate_source(settings, ONE_DAY, "assessment_events")
    quality.gate(report)
    assert report.released == [f"{entry} (the partition was delivered again and passed)"]
    assert f"{entry.split(f'{LAKE_BUCKET}/')[1]}_released.json" in _keys(moto, "quarantine/")
