"""``ioc setup`` on ``aws``: the Glue catalog, the results bucket and its lifecycle rule, the
workgroup, the on-call topic and CloudWatch alarms, and QuickSight. Each step compares only the
fields it manages with what is there, and reports what it created or changed."""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Iterable, Mapping
from typing import Any

from ioc_analytics.backends.aws.alerts import topic_arn as find_topic
from ioc_analytics.backends.aws.usage import ATHENA_NAMESPACE, METRIC_NAMESPACE, MTD_METRIC, athena_dimensions
from ioc_analytics.engine.base import MB, PRICE_PER_TB_USD
from ioc_analytics.errors import ConfigError
from ioc_analytics.guardrails import (
    README_SECTION,
    alarm_names,
    budget_threshold_usd,
    query_cost_threshold_bytes,
    threshold_texts,
    unreachable_alarm_note,
)
from ioc_analytics.lake.catalog import load_catalog
from ioc_analytics.operations.setup_report import CHANGED, CREATED, UNCHANGED, Report, compare, describe, short
from ioc_analytics.settings import Settings

log = logging.getLogger(__name__)

LIFECYCLE_RULE_ID = "delete-old-query-results"

RESULTS_EXPIRE_DAYS = 30

#: The guide also moves results to Standard-IA after 7 days and to Glacier IR after 14. S3 refuses
#: the first (a transition to Standard-IA needs at least 30 days), and neither would save money:
#: results expire at 30 days, Glacier IR bills 90 days minimum and Standard-IA 30 days and 128 KB
#: minimum per object. So results stay in Standard until they expire. Should the guide's storage
#: classes ever be wanted, list them here.
RESULTS_TRANSITIONS: tuple[dict[str, Any], ...] = ()

_TOPIC = re.compile(r"[A-Za-z0-9_-]{1,256}")


def results_location(settings: Settings) -> tuple[str, str]:
    """The bucket and key prefix of ``settings.athena_output``."""
    match = re.fullmatch(r"s3://([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(/.*)?", settings.athena_output)
    if not match:
        raise ConfigError(f"IOC_ATHENA_OUTPUT={settings.athena_output!r} is not an S3 location: use "
                          "s3://<bucket>/ or s3://<bucket>/<prefix>/, for example s3://ioc-athena-query-results/")
    return match.group(1), (match.group(2) or "/").lstrip("/")


def _aws_client(settings: Settings, kind: str) -> Any:
    """A boto3 client through the Amazon provider's hook for the service."""
    if kind == "athena":
        from airflow.providers.amazon.aws.hooks.athena import AthenaHook

        return AthenaHook(aws_conn_id=settings.aws_conn_id, region_name=settings.region).get_conn()
    if kind == "glue":
        from airflow.providers.amazon.aws.hooks.glue_catalog import GlueCatalogHook

        return GlueCatalogHook(aws_conn_id=settings.aws_conn_id, region_name=settings.region).get_conn()
    from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook

    return AwsBaseHook(aws_conn_id=settings.aws_conn_id, client_type=kind, region_name=settings.region).get_conn()


def _error_code(err: Exception) -> str:
    return str(getattr(err, "response", {}).get("Error", {}).get("Code", ""))


def _aws_catalog(settings: Settings, report: Report) -> None:
    from botocore.exceptions import ClientError

    from ioc_analytics.backends.aws import glue

    client = _aws_client(settings, "glue")
    catalog = load_catalog(settings.lake_uri, settings.database)
    current: dict[str, dict[str, Any]] = {}
    try:
        client.get_database(Name=settings.database)
        had_database = True
        for page in client.get_paginator("get_tables").paginate(DatabaseName=settings.database):
            current.update({t["Name"]: t for t in page["TableList"]})
    except ClientError as err:
        if _error_code(err) != "EntityNotFoundException":
            raise
        had_database = False
    outcome = glue.ensure_tables(settings, catalog)
    report.add("catalog", "glue database", settings.database, UNCHANGED if had_database else CREATED)
    for name, what in outcome.items():
        table = catalog.tables[name]
        if what == "updated":
            differences = _glue_differences(current.get(name, {}), glue.table_input(table))
            report.add("catalog", "glue table", name, CHANGED, "; ".join(differences) or "brought in line with the DDL")
        else:
            report.add("catalog", "glue table", name, CREATED if what == "created" else UNCHANGED, describe(table))


def _glue_differences(current: Mapping[str, Any], wanted: Mapping[str, Any]) -> list[str]:
    """What of a Glue table differs from its DDL, in the fields ``glue.ensure_tables`` compares."""
    def columns(items: Iterable[Mapping[str, str]] | None) -> dict[str, str]:
        return {c["Name"]: c["Type"] for c in items or []}

    out = []
    storage = current.get("StorageDescriptor") or {}
    pairs = (("columns", storage.get("Columns"), wanted["StorageDescriptor"]["Columns"]),
             ("partition keys", current.get("PartitionKeys"), wanted["PartitionKeys"]))
    for label, was, now in ((label, columns(was), columns(now)) for label, was, now in pairs):
        changes = ([f"+{k} {t}" for k, t in now.items() if k not in was] + [f"-{k}" for k in was if k not in now]
                   + [f"{k} {was[k]} -> {t}" for k, t in now.items() if k in was and was[k] != t])
        if changes or list(was) != list(now):
            out.append(f"{label}: {', '.join(changes) or 'reordered'}")
    out += compare({"location": storage.get("Location")}, {"location": wanted["StorageDescriptor"]["Location"]})
    out += compare(current.get("Parameters") or {}, wanted["Parameters"], "property ")
    out += [f"property {k}: {short(v)} -> (none)" for k, v in (current.get("Parameters") or {}).items()
            if k not in wanted["Parameters"]]
    return out


def workgroup_configuration(settings: Settings) -> dict[str, Any]:
    """The workgroup's configuration, as the guide's "Workgroup Configuration" has it."""
    return {
        "BytesScannedCutoffPerQuery": settings.bytes_scanned_cutoff,
        "EnforceWorkGroupConfiguration": True,
        "PublishCloudWatchMetricsEnabled": True,
        "ResultConfiguration": {"OutputLocation": settings.athena_output,
                                "EncryptionConfiguration": {"EncryptionOption": "SSE_S3"}},
    }


def _workgroup_view(workgroup: Mapping[str, Any]) -> dict[str, Any]:
    """The fields setup manages, flat, as ``GetWorkGroup`` reports them."""
    config = workgroup.get("Configuration") or {}
    results = config.get("ResultConfiguration") or {}
    return {
        "State": workgroup.get("State"),
        "BytesScannedCutoffPerQuery": config.get("BytesScannedCutoffPerQuery"),
        "EnforceWorkGroupConfiguration": config.get("EnforceWorkGroupConfiguration"),
        "PublishCloudWatchMetricsEnabled": config.get("PublishCloudWatchMetricsEnabled"),
        "OutputLocation": results.get("OutputLocation"),
        "EncryptionOption": (results.get("EncryptionConfiguration") or {}).get("EncryptionOption"),
    }


def _workgroup_exists(client: Any, name: str) -> bool:
    """Whether the workgroup exists (listed: a missing one's GetWorkGroup error differs by endpoint)."""
    request: dict[str, Any] = {}
    while True:
        page = client.list_work_groups(**request)
        if any(w["Name"] == name for w in page.get("WorkGroups", [])):
            return True
        if not page.get("NextToken"):
            return False
        request["NextToken"] = page["NextToken"]


def _aws_workgroup(settings: Settings, report: Report) -> None:
    client = _aws_client(settings, "athena")
    wanted = workgroup_configuration(settings)
    cutoff = f"{settings.bytes_scanned_cutoff / MB:,.0f} MB per query"
    if not _workgroup_exists(client, settings.workgroup):
        client.create_work_group(
            Name=settings.workgroup, Configuration=wanted,
            Description="IOC analytics: per-query scan cutoff, results in the results bucket (ioc setup)",
            Tags=[{"Key": "project", "Value": "ioc-analytics"}],
        )
        report.add("workgroup", "athena workgroup", settings.workgroup, CREATED, f"cutoff {cutoff}")
        return
    current = client.get_work_group(WorkGroup=settings.workgroup)["WorkGroup"]
    differences = compare(_workgroup_view(current), _workgroup_view({"State": "ENABLED", "Configuration": wanted}))
    if not differences:
        report.add("workgroup", "athena workgroup", settings.workgroup, UNCHANGED, f"cutoff {cutoff}")
        return
    client.update_work_group(
        WorkGroup=settings.workgroup, State="ENABLED",
        ConfigurationUpdates={
            "BytesScannedCutoffPerQuery": wanted["BytesScannedCutoffPerQuery"],
            "EnforceWorkGroupConfiguration": wanted["EnforceWorkGroupConfiguration"],
            "PublishCloudWatchMetricsEnabled": wanted["PublishCloudWatchMetricsEnabled"],
            "ResultConfigurationUpdates": wanted["ResultConfiguration"],
        },
    )
    report.add("workgroup", "athena workgroup", settings.workgroup, CHANGED, "; ".join(differences))


def lifecycle_rule(prefix: str) -> dict[str, Any]:
    """The results bucket's rule: results older than 30 days are deleted (see RESULTS_TRANSITIONS)."""
    rule: dict[str, Any] = {"ID": LIFECYCLE_RULE_ID, "Status": "Enabled", "Filter": {"Prefix": prefix},
                            "Expiration": {"Days": RESULTS_EXPIRE_DAYS}}
    if RESULTS_TRANSITIONS:
        rule["Transitions"] = [dict(t) for t in RESULTS_TRANSITIONS]
    return rule


def _rule_view(rule: Mapping[str, Any]) -> dict[str, Any]:
    """A lifecycle rule's fields, the filter's prefix wherever S3 keeps it (v1 rule, v2 filter, And)."""
    conditions = dict(rule.get("Filter") or {})
    prefix = conditions.pop("Prefix", None)
    if "And" in conditions and set(conditions["And"]) == {"Prefix"}:
        prefix = conditions.pop("And")["Prefix"]
    managed = {"ID", "Status", "Filter", "Prefix", "Expiration", "Transitions"}
    return {
        "Status": rule.get("Status"),
        "Prefix": prefix if prefix is not None else rule.get("Prefix", ""),
        "Filter conditions": sorted(conditions),
        "Expiration": rule.get("Expiration"),
        "Transitions": sorted(((t.get("Days"), t.get("StorageClass")) for t in rule.get("Transitions") or []),
                              key=str),
        "other actions": sorted(k for k in rule if k not in managed),
    }


def _aws_results_bucket(settings: Settings, report: Report) -> None:
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook
    from botocore.exceptions import ClientError

    hook = S3Hook(aws_conn_id=settings.aws_conn_id, region_name=settings.region)
    client = hook.get_conn()
    bucket, prefix = results_location(settings)
    try:
        client.head_bucket(Bucket=bucket)
        existed = True
    except ClientError as err:
        if _error_code(err) in ("403", "AccessDenied"):
            raise ConfigError(
                f"the results bucket {bucket} (IOC_ATHENA_OUTPUT) exists but this connection may not use it: "
                "bucket names are global, so another account may own it; choose another bucket, or grant the "
                f"{settings.aws_conn_id} connection s3:ListBucket, s3:PutObject and s3:PutLifecycleConfiguration"
            ) from None
        if _error_code(err) not in ("404", "NoSuchBucket", "NotFound"):
            raise
        existed = False
    if not existed:
        hook.create_bucket(bucket_name=bucket, region_name=settings.region)  # no LocationConstraint in us-east-1
    report.add("results_bucket", "s3 bucket", bucket, UNCHANGED if existed else CREATED,
               f"Athena results, {settings.region}")

    try:
        rules = client.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    except ClientError as err:
        if _error_code(err) != "NoSuchLifecycleConfiguration":
            raise
        rules = []
    wanted = lifecycle_rule(prefix)
    ours = [r for r in rules if r.get("ID") == LIFECYCLE_RULE_ID]
    others = [r for r in rules if r.get("ID") != LIFECYCLE_RULE_ID]
    what = f"{'s3://' + bucket + '/' + prefix if prefix else 'whole bucket'}: expire after {RESULTS_EXPIRE_DAYS} days"
    differences = compare(_rule_view(ours[0]), _rule_view(wanted)) if len(ours) == 1 else []
    if len(ours) == 1 and not differences:
        report.add("results_bucket", "lifecycle rule", LIFECYCLE_RULE_ID, UNCHANGED, what)
        return
    # The whole configuration is replaced at once: the bucket's other rules go back as they were.
    client.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": [*others, wanted]})
    report.add("results_bucket", "lifecycle rule", LIFECYCLE_RULE_ID, CHANGED if ours else CREATED,
               "; ".join(differences) if ours else what)


def alarm_specs(settings: Settings, topic_arn: str) -> dict[str, dict[str, Any]]:
    """The three CloudWatch alarms, as ``PutMetricAlarm`` arguments, by alarm name."""
    names = alarm_names(settings)
    workgroup = settings.workgroup
    common = {"ActionsEnabled": True, "AlarmActions": [topic_arn], "EvaluationPeriods": 1,
              "TreatMissingData": "notBreaching"}
    budget = budget_threshold_usd(settings)
    scanned = query_cost_threshold_bytes(settings)
    failed = {state: {"Id": state.lower(), "ReturnData": False, "MetricStat": {
        "Metric": {"Namespace": ATHENA_NAMESPACE, "MetricName": "TotalExecutionTime",
                   "Dimensions": athena_dimensions(workgroup, state)},
        "Period": 3600, "Stat": "SampleCount"}} for state in ("FAILED", "SUCCEEDED", "CANCELED")}
    return {
        names["month-to-date-budget"]: {
            **common,
            "AlarmDescription": (
                f"IOC analytics: Athena spend this month in workgroup {workgroup} has reached "
                f"{settings.budget_alert_pct}% of the ${settings.monthly_budget_usd:,.2f} monthly budget "
                f"(${budget:,.2f}). The cost monitor DAG (ioc_cost_monitor) publishes {METRIC_NAMESPACE} "
                f"{MTD_METRIC} once a day. What to do: find the month's most expensive queries, by DAG and task, "
                "in the lake's query_costs table (ioc query \"SELECT run_by, sum(cost_usd) FROM query_costs WHERE "
                "date >= '<yyyy/mm>/01' GROUP BY run_by\"), fix or pause them; raise IOC_MONTHLY_BUDGET_USD only "
                f"if the spend is expected. {README_SECTION}."),
            "Namespace": METRIC_NAMESPACE, "MetricName": MTD_METRIC,
            "Dimensions": [{"Name": "WorkGroup", "Value": workgroup}],
            "Statistic": "Maximum", "Period": 86400,
            "Threshold": budget, "ComparisonOperator": "GreaterThanOrEqualToThreshold",
        },
        names["single-query-cost"]: {
            **common,
            "AlarmDescription": (
                f"IOC analytics: a query in workgroup {workgroup} scanned more than {scanned / 2**30:,.1f} GiB, "
                f"which costs more than ${settings.query_cost_alert_usd:,.2f} at ${PRICE_PER_TB_USD:g}/TB "
                "(IOC_QUERY_COST_ALERT_USD). What to do: find it in the Athena query history (its ioc-tags "
                "comment names the DAG and task), add a partition filter or read fewer columns; `ioc costguard` "
                f"finds the usual mistakes in include/ioc_analytics/sql/. {README_SECTION}."),
            "Namespace": ATHENA_NAMESPACE, "MetricName": "ProcessedBytes",
            "Dimensions": athena_dimensions(workgroup, "SUCCEEDED"),
            "Statistic": "Maximum", "Period": 300,
            "Threshold": scanned, "ComparisonOperator": "GreaterThanThreshold",
        },
        names["query-failure-rate"]: {
            **common,
            "AlarmDescription": (
                f"IOC analytics: more than {settings.failure_rate_alert_pct}% of the queries in workgroup "
                f"{workgroup} failed within an hour (IOC_FAILURE_RATE_ALERT_PCT). What to do: read the failed "
                "tasks' logs in Airflow (each names the query id and Athena's reason); bad SQL or a missing "
                "table fails every retry, throttling and timeouts pass. "
                f"{README_SECTION}."),
            "Metrics": [
                *failed.values(),
                {"Id": "queries", "Label": "queries", "ReturnData": False,
                 "Expression": "FILL(failed, 0) + FILL(succeeded, 0) + FILL(canceled, 0)"},
                {"Id": "failure_rate", "Label": "failed queries (%)", "ReturnData": True,
                 "Expression": "IF(queries > 0, 100 * FILL(failed, 0) / queries, 0)"},
            ],
            "Threshold": float(settings.failure_rate_alert_pct), "ComparisonOperator": "GreaterThanThreshold",
        },
    }


def _alarm_view(alarm: Mapping[str, Any]) -> dict[str, Any]:
    """The fields setup manages, as ``DescribeAlarms`` reports them (absent and empty alike)."""
    def dimensions(items: Iterable[Mapping[str, str]] | None) -> list[str]:
        return sorted(f"{d['Name']}={d['Value']}" for d in items or [])

    def metric(query: Mapping[str, Any]) -> dict[str, Any]:
        stat = query.get("MetricStat") or {}
        inner = stat.get("Metric") or {}
        return {"Id": query.get("Id"), "Expression": query.get("Expression"), "Label": query.get("Label"),
                "ReturnData": query.get("ReturnData", True),
                "Metric": f"{inner.get('Namespace')}/{inner.get('MetricName')}" if inner else None,
                "Dimensions": dimensions(inner.get("Dimensions")),
                "Period": stat.get("Period"), "Stat": stat.get("Stat")}

    threshold = alarm.get("Threshold")
    return {  # the description last: a changed threshold changes it too, and the threshold says more
        "Threshold": None if threshold is None else round(float(threshold), 3),
        "ComparisonOperator": alarm.get("ComparisonOperator"),
        "Namespace": alarm.get("Namespace"),
        "MetricName": alarm.get("MetricName"),
        "Dimensions": dimensions(alarm.get("Dimensions")),
        "Statistic": alarm.get("Statistic"),
        "Period": alarm.get("Period"),
        "Metrics": {m.get("Id"): metric(m) for m in alarm.get("Metrics") or []},
        "EvaluationPeriods": alarm.get("EvaluationPeriods"),
        "TreatMissingData": alarm.get("TreatMissingData"),
        "ActionsEnabled": alarm.get("ActionsEnabled"),
        "AlarmActions": sorted(alarm.get("AlarmActions") or []),
        "AlarmDescription": alarm.get("AlarmDescription"),
    }


def _aws_alerts(settings: Settings, report: Report) -> None:
    sns = _aws_client(settings, "sns")
    try:
        topic_arn = find_topic(sns, settings.alert_topic)
    except ConfigError:  # not there yet
        topic_arn = None
    if topic_arn is None:
        topic_arn = sns.create_topic(Name=settings.alert_topic,
                                     Tags=[{"Key": "project", "Value": "ioc-analytics"}])["TopicArn"]
        report.add("alerts", "sns topic", settings.alert_topic, CREATED, topic_arn)
    else:
        report.add("alerts", "sns topic", settings.alert_topic, UNCHANGED, topic_arn)
    if not sns.list_subscriptions_by_topic(TopicArn=topic_arn).get("Subscriptions"):
        report.notes.append(
            f"nobody is subscribed to {topic_arn}, so the alarms reach no one: subscribe the on-call, e.g. "
            f"aws sns subscribe --topic-arn {topic_arn} --protocol email --notification-endpoint <address>")

    cloudwatch = _aws_client(settings, "cloudwatch")
    wanted = alarm_specs(settings, topic_arn)
    current = {a["AlarmName"]: a for a in cloudwatch.describe_alarms(
        AlarmNames=list(wanted), AlarmTypes=["MetricAlarm"]).get("MetricAlarms", [])}
    texts = threshold_texts(settings)
    for name, spec in wanted.items():
        what = texts[name]
        if name in current:
            differences = compare(_alarm_view(current[name]), _alarm_view(spec))
            if not differences:
                report.add("alerts", "cloudwatch alarm", name, UNCHANGED, what)
                continue
        # PutMetricAlarm creates the alarm or replaces it whole.
        cloudwatch.put_metric_alarm(AlarmName=name, Tags=[{"Key": "project", "Value": "ioc-analytics"}], **spec)
        if name in current:
            report.add("alerts", "cloudwatch alarm", name, CHANGED, "; ".join(differences))
        else:
            report.add("alerts", "cloudwatch alarm", name, CREATED, what)
    if note := unreachable_alarm_note(settings):
        report.notes.append(note)


def _aws_quicksight(settings: Settings, report: Report) -> None:
    from ioc_analytics.backends.aws import quicksight

    kinds = {quicksight.DATA_SOURCE_ID: ("data source", "brought in line with the settings"),
             quicksight.DASHBOARD_ID: ("dashboard", "a new version of its definition published"),
             f"analysis {quicksight.ANALYSIS_ID}": ("analysis", "its definition updated")}
    for resource, (what, arn) in quicksight.ensure(settings).items():
        # quicksight.ensure re-applies an existing dataset's definition rather than comparing it.
        kind, change = kinds.get(resource, ("dataset", "definition re-applied"))
        if what == "updated":
            report.add("quicksight", f"quicksight {kind}", resource, CHANGED, change)
        else:
            report.add("quicksight", f"quicksight {kind}", resource, what, arn)


def check_settings(settings: Settings) -> None:
    """What setup needs of the aws settings beyond what :class:`Settings` checks."""
    results_location(settings)
    if not _TOPIC.fullmatch(settings.alert_topic):
        raise ConfigError(f"IOC_ALERT_TOPIC={settings.alert_topic!r} is not an SNS topic name: use 1-256 "
                          "letters, digits, '_' or '-'")


#: ``ioc setup``'s steps on aws, by name.
STEPS = {"catalog": _aws_catalog, "results_bucket": _aws_results_bucket, "workgroup": _aws_workgroup,
         "alerts": _aws_alerts, "quicksight": _aws_quicksight}


#: S3 applies lifecycle rules within about a day or two of the objects' due date.
LIFECYCLE_SLACK_DAYS = 2


def check_results_lifecycle(settings: Settings, today: dt.date) -> dict[str, Any]:
    """The results bucket's lifecycle rule is there and expiring results (weekly maintenance)."""
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook
    from botocore.exceptions import ClientError

    from ioc_analytics.backends.aws.lake import split_s3_uri

    bucket, prefix = split_s3_uri(settings.athena_output)
    client = S3Hook(aws_conn_id=settings.aws_conn_id, region_name=settings.region).get_conn()
    try:
        rules = client.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    except ClientError:
        rules = []
    rule = next((r for r in rules if r.get("ID") == LIFECYCLE_RULE_ID and r.get("Status") == "Enabled"), None)
    if rule is None or rule.get("Expiration", {}).get("Days") != RESULTS_EXPIRE_DAYS:
        raise ConfigError(f"the results bucket {bucket} has no enabled lifecycle rule {LIFECYCLE_RULE_ID!r} expiring "
                          f"results after {RESULTS_EXPIRE_DAYS} days: run `ioc setup` to put it back")
    due = dt.datetime.combine(today - dt.timedelta(days=RESULTS_EXPIRE_DAYS + LIFECYCLE_SLACK_DAYS), dt.time(),
                              dt.UTC)
    overdue = 0
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        overdue += sum(1 for o in page.get("Contents", []) if o["LastModified"] < due)
    if overdue:
        log.warning("%d result objects in s3://%s/%s are older than the rule's %d days (and S3's %d days of slack): "
                    "check the rule's filter in the S3 console", overdue, bucket, prefix, RESULTS_EXPIRE_DAYS,
                    LIFECYCLE_SLACK_DAYS)
    return {"rule": LIFECYCLE_RULE_ID, "expire_days": RESULTS_EXPIRE_DAYS, "overdue_objects": overdue}
