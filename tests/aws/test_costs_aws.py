"""The cost monitor's ``aws`` path against the moto server: CloudWatch ``AWS/Athena`` metrics for the
daily totals, the Athena query history for each query, SNS for the alerts, S3 and Glue for the cost
tables, and the month-to-date metric back to CloudWatch.

What moto cannot do, and how the test stands in for it:

- Athena does not run queries, and every query's ``DataScannedInBytes`` is 0: the day's queries
  are real ``StartQueryExecution`` calls (with seeded results), so the history holds their text
  and tags, but their cost is Athena's 10 MB minimum each. CloudWatch is seeded with five weeks
  of a workgroup's metrics, per query state, as Athena would publish them, and with a day far
  larger than the history: the monitor then takes CloudWatch's figures for the day (the history
  missing queries), which is how the spike and the failures reach the detector here.
- ``BatchGetQueryExecution`` is missing: the monitor reads the history one ``GetQueryExecution``
  at a time, so nothing needs it.
"""

from __future__ import annotations

import datetime as dt
import io
import json

import pyarrow.parquet as pq
import pytest

from ioc_analytics.backends import get_backend
from ioc_analytics.backends.aws import usage as aws_usage
from ioc_analytics.cost import monitor, usage
from tests.aws.conftest import LAKE_BUCKET, WORKGROUP

pytestmark = pytest.mark.integration

GB = 2**30


def seed_day(cloudwatch, day: dt.date, queries: int, failed: int, gigabytes: float, largest_gb: float) -> None:
    """One day of a workgroup's AWS/Athena metrics, as per-state statistic sets at noon."""
    stamp = dt.datetime.combine(day, dt.time(12), dt.UTC)
    succeeded = queries - failed
    data = [{
        "MetricName": "ProcessedBytes", "Dimensions": aws_usage.athena_dimensions(WORKGROUP, "SUCCEEDED"),
        "Timestamp": stamp, "Unit": "Bytes",
        "StatisticValues": {"SampleCount": succeeded, "Sum": gigabytes * GB, "Minimum": 1.0,
                            "Maximum": largest_gb * GB},
    }]
    for state, count in (("SUCCEEDED", succeeded), ("FAILED", failed)):
        if count:
            data.append({"MetricName": "TotalExecutionTime",
                         "Dimensions": aws_usage.athena_dimensions(WORKGROUP, state),
                         "Timestamp": stamp, "Unit": "Milliseconds",
                         "StatisticValues": {"SampleCount": count, "Sum": 900.0 * count, "Minimum": 100.0,
                                             "Maximum": 2000.0}})
    cloudwatch.put_metric_data(Namespace="AWS/Athena", MetricData=data)


@pytest.fixture
def seeded(moto, aws_settings, glue_tables):
    """Five weeks of usual usage (weekdays 200 GB, weekends 60 GB), then today: a spike to 900 GB
    with a burst of failures; and the day's queries in the Athena history."""

    today = dt.datetime.now(dt.UTC).date()
    cloudwatch = moto.client("cloudwatch")
    for n in range(1, 36):
        day = today - dt.timedelta(days=n)
        weekend = day.weekday() >= 5
        seed_day(cloudwatch, day, queries=300, failed=3, gigabytes=(60 if weekend else 200) * (1 + 0.02 * (n % 5)),
                 largest_gb=0.9)
    seed_day(cloudwatch, today, queries=300, failed=60, gigabytes=900, largest_gb=0.95)

    header = {"rows": [{"Data": [{"VarCharValue": "n"}]}, {"Data": [{"VarCharValue": "1"}]}],
              "column_info": [{"Name": "n", "Type": "bigint", "Precision": 19, "Scale": 0, "Nullable": "UNKNOWN"}]}
    moto.seed_athena_results(header, header, header)
    engine = get_backend(aws_settings).engine
    engine.query("SELECT count(*) AS n FROM assessment_events WHERE date = ?", ["2024/01/15"],
                 tags={"dag_id": "ioc_daily_analytics", "task_id": "daily_active_users.build"})
    engine.query("SELECT * FROM assessment_events")  # an analyst's full scan, untagged
    engine.query("SELECT count(*) AS n FROM ocean_scores WHERE year = ? AND month = ?", ["2024", "01"],
                 tags={"dag_id": "ioc_daily_analytics", "task_id": "facet_summary.build"})

    sns, sqs = moto.client("sns"), moto.client("sqs")
    topic = sns.create_topic(Name=aws_settings.alert_topic)["TopicArn"]
    queue = sqs.create_queue(QueueName="oncall")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn, Attributes={"RawMessageDelivery": "true"})
    return today, queue


def test_daily_totals_come_from_cloudwatch_per_state(aws_settings, seeded):
    today, _ = seeded
    days = usage.daily_usage(aws_settings, today - dt.timedelta(days=3), today)
    assert days[today].queries == 300 and days[today].failed == 60
    assert days[today].bytes_scanned == 900 * GB
    assert days[today].cost_usd == pytest.approx(900 / 1024 * 5)
    assert days[today].max_query_cost_usd == pytest.approx(0.95 * 1024 / 2**20 * 5, rel=1e-3)


def test_the_monitor_flags_explains_alerts_once_each_and_writes_the_cost_tables(moto, aws_settings, seeded):
    today, queue = seeded
    recorded = monitor.record_costs(aws_settings, today)
    assert recorded["queries"] == 3 and recorded["by_task"].keys() == {
        "ioc_daily_analytics.daily_active_users.build", "ioc_daily_analytics.facet_summary.build",
        "untagged (ad hoc: console or another client)"}

    flagged = monitor.flag_anomalies(aws_settings, today)
    found = {a["kind"]: a for a in flagged["anomalies"]}
    assert set(found) == {"cost_spike", "failure_burst"}
    assert found["cost_spike"]["baseline"] == pytest.approx(200 * 1.04 / 1024 * 5, rel=0.05)
    explained = "\n".join(found["cost_spike"]["explanation"])
    assert "SELECT * on the raw table assessment_events" in explained
    assert "without a filter on its partition keys" in explained

    # One message per anomaly on the on-call topic, each with its explanation.
    messages = []
    sqs = moto.client("sqs")
    while batch := sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages"):
        messages += [m["Body"] for m in batch]
        for m in batch:
            sqs.delete_message(QueueUrl=queue, ReceiptHandle=m["ReceiptHandle"])
    assert len(messages) == 2
    assert any(m.startswith(found["failure_burst"]["summary"]) for m in messages)
    assert any("SELECT * on the raw table" in m and "docs/operations.md#cost-governance" in m for m in messages)

    # The cost tables: a registered Glue partition per table, Parquet in the lake bucket.
    s3, glue = moto.client("s3"), moto.client("glue")
    for table, rows in (("query_costs", 3), ("daily_costs", 1), ("cost_anomalies", 2)):
        partition = glue.get_partition(DatabaseName=aws_settings.database, TableName=table,
                                       PartitionValues=[today.strftime("%Y/%m/%d")])["Partition"]
        location = partition["StorageDescriptor"]["Location"]
        prefix = location.removeprefix(f"s3://{LAKE_BUCKET}/")
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket=LAKE_BUCKET, Prefix=prefix)["Contents"]
                if o["Key"].endswith(".parquet")]
        data = pq.read_table(io.BytesIO(s3.get_object(Bucket=LAKE_BUCKET, Key=keys[0])["Body"].read()))
        assert data.num_rows == rows, table

    # The month to date, for the budget alarm.
    metric = moto.client("cloudwatch").get_metric_statistics(
        Namespace=aws_usage.METRIC_NAMESPACE, MetricName=aws_usage.MTD_METRIC,
        Dimensions=[{"Name": "WorkGroup", "Value": WORKGROUP}], Statistics=["Maximum"], Period=3600,
        StartTime=dt.datetime.now(dt.UTC) - dt.timedelta(hours=1),
        EndTime=dt.datetime.now(dt.UTC) + dt.timedelta(hours=1))
    assert metric["Datapoints"][0]["Maximum"] == pytest.approx(monitor.month_to_date(
        usage.daily_usage(aws_settings, today.replace(day=1), today), today), rel=1e-6)
    json.dumps(flagged)  # what XCom carries is JSON


def test_alerts_without_the_topic_say_to_run_setup(aws_settings):
    from ioc_analytics.errors import ConfigError
    from ioc_analytics.operations import alerts

    with pytest.raises(ConfigError, match="run `ioc setup`"):
        alerts.send(aws_settings, alerts.Alert("ioc_cost_monitor", "cost_spike", "2024-01-15", "x"))
