"""Weekly maintenance on aws, against the moto server: the results bucket's lifecycle rule checked,
schema drift read from S3 footers, small files reported (not compacted), empty Glue partitions
unregistered, reports kept in S3."""

from __future__ import annotations

import datetime as dt
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ioc_analytics.backends import get_backend
from ioc_analytics.errors import ConfigError, DataQualityError
from ioc_analytics.lake.catalog import load_catalog
from ioc_analytics.operations import maintenance, setup
from tests.aws.conftest import LAKE_BUCKET, RESULTS_BUCKET
from tests.helpers import ONE_DAY

pytestmark = pytest.mark.integration

FOLDER = ONE_DAY.strftime("%Y/%m/%d")


def test_the_results_lifecycle_rule_is_checked(aws_settings, moto):
    with pytest.raises(ConfigError, match="has no enabled lifecycle rule 'delete-old-query-results'.*ioc setup"):
        maintenance.expired_results(aws_settings, ONE_DAY)
    setup.ensure(aws_settings, ["results_bucket"])
    moto.client("s3").put_object(Bucket=RESULTS_BUCKET, Key="q1.csv", Body=b"x")
    found = maintenance.expired_results(aws_settings, dt.datetime.now(dt.UTC).date())
    assert found == {"rule": "delete-old-query-results", "expire_days": 30, "overdue_objects": 0}
    # Forty days on, the result should be gone: it is counted as overdue.
    later = maintenance.expired_results(aws_settings, dt.datetime.now(dt.UTC).date() + dt.timedelta(days=40))
    assert later["overdue_objects"] == 1


def test_drift_small_files_and_empty_partitions_on_s3(aws_settings, moto, one_day_lake, glue_tables):
    s3 = moto.client("s3")
    for path in one_day_lake.glob(f"assessments/{FOLDER}/*/*.parquet"):
        s3.upload_file(str(path), LAKE_BUCKET, path.relative_to(one_day_lake).as_posix())
    # The career partition arrives as 10 small files, one of them with an extra column.
    career = pq.read_table(next(one_day_lake.glob(f"assessments/{FOLDER}/career/*.parquet")))
    s3.delete_object(Bucket=LAKE_BUCKET, Key=f"assessments/{FOLDER}/career/part-00000.parquet")
    for n in range(10):
        piece = career.slice(n * 10, 10)
        if n == 9:
            piece = piece.append_column("browser", pa.array(["x"] * len(piece)))
        sink = pa.BufferOutputStream()
        pq.write_table(piece, sink)
        s3.put_object(Bucket=LAKE_BUCKET, Key=f"assessments/{FOLDER}/career/part-{n:02d}.parquet",
                      Body=sink.getvalue().to_pybytes())

    with pytest.raises(DataQualityError, match=r"1 of \d+ files of .* differ from the contract"):
        maintenance.schema_drift(aws_settings, ONE_DAY, ONE_DAY)
    report = json.loads(s3.get_object(Bucket=LAKE_BUCKET,
                                      Key=f"maintenance/weekly/{ONE_DAY}/schema_drift.json")["Body"].read())
    assert report["drift"][0]["unexpected"] == ["browser"] and "career/part-09" in report["drift"][0]["file"]

    found = maintenance.small_files(aws_settings, ONE_DAY, ONE_DAY, today=ONE_DAY + dt.timedelta(days=7))
    assert [(p["partition"]["assessment_type"], p["files"]) for p in found["partitions"]] == [("career", 10)]
    assert "compacted_into" not in found["partitions"][0], "reported on aws, never compacted in place"
    assert len(s3.list_objects_v2(Bucket=LAKE_BUCKET, Prefix=f"assessments/{FOLDER}/career/")["Contents"]) == 10

    table = load_catalog(aws_settings.lake_uri, aws_settings.database).table("daily_active_users")
    registry = get_backend(aws_settings).registry
    registry.register(table, {"date": FOLDER}, f"s3://{LAKE_BUCKET}/aggregates/daily_active_users/{FOLDER}/v1/")
    removed = maintenance.empty_partitions(aws_settings)["unregistered"]
    assert [(r["table"], r["partition"]) for r in removed] == [("daily_active_users", {"date": FOLDER})]
    assert registry.location(table, {"date": FOLDER}) is None
