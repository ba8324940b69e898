"""Partition repair and freshness on the aws backend: Glue partitions and S3 objects in moto."""

from __future__ import annotations

import datetime as dt
import io

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ioc_analytics.analytics import pipeline
from ioc_analytics.backends import get_backend
from ioc_analytics.backends.aws.lake import split_s3_uri
from ioc_analytics.lake import partitions
from ioc_analytics.lake.catalog import load_catalog
from tests.aws.conftest import DATABASE
from tests.helpers import REPAIR_WINDOW, check_repair, repair_scenario

pytestmark = pytest.mark.integration


def test_repair_on_glue(aws_settings, moto, glue_tables):
    s3 = moto.client("s3")

    def put(location: str, name: str) -> None:
        bucket, key = split_s3_uri(location + name)
        s3.put_object(Bucket=bucket, Key=key, Body=b"x")

    table = load_catalog(aws_settings.lake_uri, DATABASE).table("daily_active_users")
    registry = get_backend(aws_settings).registry
    expected = repair_scenario(table, put, registry)

    report = partitions.repair(get_backend(aws_settings).lake, registry, table, REPAIR_WINDOW)

    check_repair(report, registry, table, expected)
    glue = moto.client("glue").get_partitions(DatabaseName=DATABASE, TableName="daily_active_users")["Partitions"]
    assert sorted(p["Values"][0] for p in glue) == sorted(expected)


def test_freshness_reads_rows_from_s3(aws_settings, moto):
    s3 = moto.client("s3")
    rows = io.BytesIO()
    pq.write_table(pa.table({"anonymous_user_id": ["u-1"]}), rows)
    empty = io.BytesIO()
    pq.write_table(pa.table({"anonymous_user_id": pa.array([], pa.string())}), empty)
    for kind in ("personality", "career"):
        s3.put_object(Bucket="ioc-analytics-data-lake", Key=f"assessments/2024/01/15/{kind}/part-0.parquet",
                      Body=rows.getvalue())
    s3.put_object(Bucket="ioc-analytics-data-lake", Key="assessments/2024/01/15/leadership/part-0.parquet",
                  Body=empty.getvalue())

    report = pipeline.freshness(aws_settings, dt.date(2024, 1, 15), "assessment_events")

    assert report.fresh and [v["assessment_type"] for v in report.present] == ["personality", "career"]
    assert {v["assessment_type"] for v in report.missing} == {"personality_quick", "leadership", "team_dynamics"}
    assert not pipeline.freshness(aws_settings, dt.date(2024, 1, 16), "assessment_events").fresh
