"""``ioc setup`` on aws (``setup.ensure``), against the moto server, with the real boto3 calls.

A fresh account gets everything; a second run changes nothing; drift (a changed threshold setting,
a lifecycle rule edited by hand, a Glue column dropped) is reported as ``changed``, exactly that,
and repaired by the third run.

What moto 5.2.5 lacks, and so what these tests cannot cover:

- ``UpdateWorkGroup`` is not implemented: a workgroup is only ever created or found unchanged
  here; the comparison that decides an update is checked on its own
  (``test_a_drifted_workgroup_names_what_differs``).
- QuickSight keeps a dataset's id, name and tags only, and ``CreateDataSet`` on an existing id
  replaces it instead of failing with ``ResourceExistsException``: so ``quicksight.ensure``
  reports every dataset ``created`` again on a second run (on AWS it re-applies them as
  ``changed``). The data source is compared, as on AWS.
- Athena runs no query: the readiness COUNT is a seeded result, and every query is submitted
  "now", so the readiness window is moved to end today (``today=`` tomorrow) to count them.
- S3 does not validate lifecycle rules (AWS refuses a Standard-IA transition before 30 days:
  see ``setup.RESULTS_TRANSITIONS``), and CloudWatch does not evaluate metric math.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

import pytest

from ioc_analytics.backends import get_backend
from ioc_analytics.backends.aws import setup as aws_setup
from ioc_analytics.engine.base import TB
from ioc_analytics.lake.catalog import load_catalog
from ioc_analytics.operations import setup, setup_report
from tests.aws.conftest import DATABASE, RESULTS_BUCKET, WORKGROUP

pytestmark = pytest.mark.integration

TOPIC = "ioc-analytics-oncall"
BUDGET, QUERY_COST, FAILURE_RATE = (f"{WORKGROUP}-month-to-date-budget", f"{WORKGROUP}-single-query-cost",
                                    f"{WORKGROUP}-query-failure-rate")


def _result(name: str, athena_type: str, *values: str) -> dict:
    column = {"Name": name, "Label": name, "Type": athena_type, "Precision": 19, "Scale": 0,
              "Nullable": "NULLABLE", "CaseSensitive": False}
    return {"rows": [{"Data": [{"VarCharValue": v}]} for v in (name, *values)], "column_info": [column]}


def _count(n: int) -> dict:
    return _result("assessments", "bigint", str(n))


def _statuses(report: setup.Report) -> dict[tuple[str, str], str]:
    return {(r.kind, r.name): r.status for r in report.resources}


def _criteria(report: setup.Report) -> dict[str, tuple[int | None, str]]:
    return {c.name: (c.measured, c.status) for c in report.readiness}


@pytest.fixture
def fresh(aws_settings, moto):
    """An account without the workgroup and results bucket that the aws_settings fixture makes."""
    moto.client("athena").delete_work_group(WorkGroup=WORKGROUP)
    moto.client("s3").delete_bucket(Bucket=RESULTS_BUCKET)
    return aws_settings


def test_setup_creates_everything_then_changes_nothing_then_repairs_exactly_the_drift(fresh, moto):
    # The day after the wall clock's (as the setup DAG runs it), taken when the test starts: the queries
    # below are stamped with the wall clock, and a suite can run past midnight.
    tomorrow = dt.datetime.now(dt.UTC).date() + dt.timedelta(days=1)
    settings = fresh
    tables = set(load_catalog(settings.lake_uri, DATABASE).tables)

    # -- first run: a fresh account ------------------------------------------------------------
    moto.seed_athena_results(_count(9_000))
    first = setup.ensure(settings, today=tomorrow)

    statuses = _statuses(first)
    datasets = {k for k in statuses if k[0] == "quicksight dataset"}
    assert datasets and set(statuses.values()) == {"created"}, first.render()
    assert {name for kind, name in statuses if kind == "glue table"} == tables

    athena, s3, glue = moto.client("athena"), moto.client("s3"), moto.client("glue")
    config = athena.get_work_group(WorkGroup=WORKGROUP)["WorkGroup"]["Configuration"]
    assert config["BytesScannedCutoffPerQuery"] == 1_073_741_824
    assert config["EnforceWorkGroupConfiguration"] is True and config["PublishCloudWatchMetricsEnabled"] is True
    assert config["ResultConfiguration"] == {"OutputLocation": f"s3://{RESULTS_BUCKET}/",
                                             "EncryptionConfiguration": {"EncryptionOption": "SSE_S3"}}
    assert s3.get_bucket_lifecycle_configuration(Bucket=RESULTS_BUCKET)["Rules"] == [
        {"ID": "delete-old-query-results", "Status": "Enabled", "Filter": {"Prefix": ""}, "Expiration": {"Days": 30}}]
    assert {t["Name"] for t in glue.get_tables(DatabaseName=DATABASE)["TableList"]} == tables

    [topic] = [t["TopicArn"] for t in moto.client("sns").list_topics()["Topics"]]
    assert topic.endswith(f":{TOPIC}")
    alarms = {a["AlarmName"]: a for a in moto.client("cloudwatch").describe_alarms()["MetricAlarms"]}
    assert set(alarms) == {BUDGET, QUERY_COST, FAILURE_RATE}
    for alarm in alarms.values():
        assert alarm["AlarmActions"] == [topic] and alarm["ActionsEnabled"] is True
        assert alarm["TreatMissingData"] == "notBreaching" and alarm["EvaluationPeriods"] == 1
        assert 'docs/operations.md, "Cost governance"' in alarm["AlarmDescription"]
    budget = alarms[BUDGET]
    assert (budget["Namespace"], budget["MetricName"], budget["Statistic"], budget["Period"]) == (
        "IOC/Analytics", "MonthToDateCostUSD", "Maximum", 86400)
    assert budget["Dimensions"] == [{"Name": "WorkGroup", "Value": WORKGROUP}]
    assert budget["Threshold"] == 40.0 and budget["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    assert "ioc_cost_monitor" in budget["AlarmDescription"]
    cost = alarms[QUERY_COST]
    assert (cost["Namespace"], cost["MetricName"], cost["Statistic"], cost["Period"]) == (
        "AWS/Athena", "ProcessedBytes", "Maximum", 300)
    assert {d["Name"]: d["Value"] for d in cost["Dimensions"]} == {
        "WorkGroup": WORKGROUP, "QueryState": "SUCCEEDED", "QueryType": "DML"}
    assert cost["Threshold"] == pytest.approx(0.10 * TB) and cost["ComparisonOperator"] == "GreaterThanThreshold"
    rate = alarms[FAILURE_RATE]
    assert rate["Threshold"] == 10.0 and rate["ComparisonOperator"] == "GreaterThanThreshold"
    metrics = {m["Id"]: m for m in rate["Metrics"]}
    for state in ("FAILED", "SUCCEEDED", "CANCELED"):
        stat = metrics[state.lower()]["MetricStat"]
        assert (stat["Metric"]["Namespace"], stat["Metric"]["MetricName"], stat["Stat"], stat["Period"]) == (
            "AWS/Athena", "TotalExecutionTime", "SampleCount", 3600)
        assert {"Name": "QueryState", "Value": state} in stat["Metric"]["Dimensions"]
        assert metrics[state.lower()]["ReturnData"] is False
    [returned] = [m for m in rate["Metrics"] if m["ReturnData"]]
    assert "100 * FILL(failed, 0) / queries" in returned["Expression"] and "queries > 0" in returned["Expression"]

    assert first.window == (tomorrow - dt.timedelta(days=30), tomorrow - dt.timedelta(days=1))
    assert _criteria(first) == {"MRR": (None, "not measured"), "Data volume": (9_000, "not met"),
                                "Query frequency": (0, "not met"), "Team size": (None, "not measured")}
    readiness = [e for e in _executions(moto) if "assessment_events" in e["Query"]]
    assert len(readiness) == 1 and '"task_id": "readiness"' in readiness[0]["Query"]
    assert readiness[0]["ExecutionParameters"] == [
        f"'{(tomorrow - dt.timedelta(days=30)):%Y/%m/%d}'", f"'{tomorrow:%Y/%m/%d}'"]
    assert any(n.startswith(f"nobody is subscribed to {topic}") for n in first.notes)

    # -- three analytics queries, then the second run: nothing to do ---------------------------
    moto.seed_athena_results(*[_result("ok", "boolean", "true")] * 3)
    engine = get_backend(settings).engine
    for task in ("a", "b", "c"):
        engine.query("SELECT true AS ok", tags={"dag_id": "ioc_daily_analytics", "task_id": task})
    moto.seed_athena_results(_count(12_345))
    second = setup.ensure(settings, today=tomorrow)

    assert {k: s for k, s in _statuses(second).items() if k[0] != "quicksight dataset"} == {
        k: "unchanged" for k in statuses if k[0] != "quicksight dataset"}, second.render()
    assert {k for k, s in _statuses(second).items() if k[0] == "quicksight dataset"} == datasets  # see above
    assert _criteria(second)["Data volume"] == (12_345, "met")
    assert _criteria(second)["Query frequency"] == (3, "not met")  # setup's own queries are not counted

    # -- drift: a setting, the lifecycle rule, a Glue table ------------------------------------
    s3.put_bucket_lifecycle_configuration(Bucket=RESULTS_BUCKET, LifecycleConfiguration={"Rules": [
        {"ID": "delete-old-query-results", "Status": "Enabled", "Filter": {"Prefix": ""}, "Expiration": {"Days": 90}},
        {"ID": "keep-audit", "Status": "Enabled", "Filter": {"Prefix": "audit/"}, "Expiration": {"Days": 365}},
    ]})
    events = glue.get_table(DatabaseName=DATABASE, Name="assessment_events")["Table"]
    dropped = events["StorageDescriptor"]["Columns"].pop()
    glue.update_table(DatabaseName=DATABASE, TableInput={
        k: events[k] for k in ("Name", "TableType", "Parameters", "PartitionKeys", "StorageDescriptor")})
    moto.seed_athena_results(_count(12_345))
    third = setup.ensure(replace(settings, budget_alert_pct=90), today=tomorrow)

    changed = {r.name: r.detail for r in third.resources if r.status == "changed"}
    assert set(changed) == {BUDGET, "delete-old-query-results", "assessment_events"}, third.render()
    assert changed[BUDGET].startswith("Threshold: 40.0 -> 45.0; AlarmDescription: ")  # it names the 90%
    assert changed["delete-old-query-results"] == 'Expiration.Days: 90 -> 30'
    assert changed["assessment_events"] == f"columns: +{dropped['Name']} {dropped['Type']}"
    assert {r.status for r in third.resources if r.name not in changed and r.kind != "quicksight dataset"} == {
        "unchanged"}
    # ... and repaired: the threshold, our rule (the bucket's other rule kept), the column.
    [alarm] = moto.client("cloudwatch").describe_alarms(AlarmNames=[BUDGET])["MetricAlarms"]
    assert alarm["Threshold"] == 45.0
    assert sorted((r["ID"], r["Expiration"]["Days"]) for r in s3.get_bucket_lifecycle_configuration(
        Bucket=RESULTS_BUCKET)["Rules"]) == [("delete-old-query-results", 30), ("keep-audit", 365)]
    columns = glue.get_table(DatabaseName=DATABASE, Name="assessment_events")["Table"]["StorageDescriptor"]["Columns"]
    assert columns[-1] == dropped


def _executions(moto) -> list[dict]:
    athena = moto.client("athena")
    ids = athena.list_query_executions(WorkGroup=WORKGROUP)["QueryExecutionIds"]
    return [athena.get_query_execution(QueryExecutionId=i)["QueryExecution"] for i in ids]


def test_a_drifted_workgroup_names_what_differs(aws_settings):
    """moto has no UpdateWorkGroup: the comparison that decides an update, on GetWorkGroup's shape."""
    current = {"Name": WORKGROUP, "State": "DISABLED", "Configuration": {
        "BytesScannedCutoffPerQuery": 10_000_000_000, "EnforceWorkGroupConfiguration": True,
        "PublishCloudWatchMetricsEnabled": True, "RequesterPaysEnabled": False,
        "ResultConfiguration": {"OutputLocation": f"s3://{RESULTS_BUCKET}/"}}}
    wanted = {"State": "ENABLED", "Configuration": aws_setup.workgroup_configuration(aws_settings)}
    assert setup_report.compare(aws_setup._workgroup_view(current), aws_setup._workgroup_view(wanted)) == [
        "State: DISABLED -> ENABLED", "BytesScannedCutoffPerQuery: 10000000000 -> 1073741824",
        "EncryptionOption: null -> SSE_S3"]
    assert setup_report.compare(aws_setup._workgroup_view(wanted), aws_setup._workgroup_view(wanted)) == []


def test_a_results_location_that_is_not_s3_is_refused_before_anything_is_made(aws_settings, moto):
    with pytest.raises(setup.ConfigError, match="IOC_ATHENA_OUTPUT='results/' is not an S3 location"):
        setup.ensure(replace(aws_settings, athena_output="results/"))
    assert moto.client("sns").list_topics()["Topics"] == []
