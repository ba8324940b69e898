"""Setup (the guide's ``npm run setup:athena``): what the pipelines need before their first run.

:func:`ensure` creates what is missing and brings what has drifted back to what the settings say,
so it is safe to run twice, or after someone changed a setting or a resource in the console. It
reports, for every resource, ``created``, ``changed`` (with what differed) or ``unchanged``, then
how far IOC is from the guide's activation criteria. ``ioc setup`` prints the report; the
``ioc_setup`` DAG runs one step per task.

===============  ==============================================  ==============================================
step             ``aws``                                         ``local``
===============  ==============================================  ==============================================
catalog          the Glue database and tables, from the DDL      the lake, state and exports folders; every DDL
                 (``glue.ensure_tables``)                        table parsed
results_bucket   the Athena results bucket and its lifecycle     (aws only: the local engine keeps no results)
                 rule
workgroup        the workgroup: per-query bytes-scanned cutoff,  the same cutoff, which the local engine enforces
                 enforced configuration, CloudWatch metrics,
                 SSE-S3 results
alerts           the on-call SNS topic and three CloudWatch      the same three thresholds, which the cost
                 alarms (month-to-date budget, single query      monitor DAG evaluates
                 cost, failure rate)
quicksight       data source and datasets (``quicksight.py``)    (aws only: local has the static dashboard)
readiness        the activation criteria, from Athena            the same, from the local lake and query log
===============  ==============================================  ==============================================

Only the fields setup manages are compared: a tag or a console setting it does not own is left
alone. On ``local`` there is nothing remote to compare with, so what setup decided is recorded in
``<state_dir>/setup.json`` and each run compares with the previous record.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import logging
import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ioc_analytics.cost.usage import ATHENA_NAMESPACE, METRIC_NAMESPACE, MTD_METRIC, athena_dimensions
from ioc_analytics.engine.base import MB, PRICE_PER_TB_USD, TB
from ioc_analytics.errors import ConfigError, NoDataError
from ioc_analytics.lake.catalog import Table, load_catalog
from ioc_analytics.operations import alerts
from ioc_analytics.settings import Settings

log = logging.getLogger(__name__)

#: The steps, in the order they run: the bucket before the workgroup that writes to it, the
#: workgroup before QuickSight and the readiness query that use it.
STEPS = ("catalog", "results_bucket", "workgroup", "alerts", "quicksight", "readiness")
#: Steps with nothing to do on ``local``, and why.
AWS_ONLY = {
    "results_bucket": "the local engine keeps no query results",
    "quicksight": "local has the static dashboard, which the daily DAG writes",
}
CREATED, CHANGED, UNCHANGED = "created", "changed", "unchanged"

#: The tags of the readiness query when the caller gives none (the CLI).
DEFAULT_TAGS = {"dag_id": "ioc_setup", "task_id": "readiness"}
README_SECTION = 'README, "Cost governance"'

# -- the guide's activation criteria ("Activation Criteria"); measured over READINESS_DAYS ----------
READINESS_DAYS = 30
MRR_TARGET_USD = 5_000
ASSESSMENTS_TARGET = 10_000
QUERIES_TARGET = 100

# -- the results bucket's lifecycle rule ---------------------------------------------------------
LIFECYCLE_RULE_ID = "delete-old-query-results"
RESULTS_EXPIRE_DAYS = 30
#: The guide also moves results to Standard-IA after 7 days and to Glacier IR after 14. S3 refuses
#: the first (a transition to Standard-IA needs at least 30 days), and neither would save money:
#: results expire at 30 days, Glacier IR bills 90 days minimum and Standard-IA 30 days and 128 KB
#: minimum per object. So results stay in Standard until they expire. Should the guide's storage
#: classes ever be wanted, list them here.
RESULTS_TRANSITIONS: tuple[dict[str, Any], ...] = ()

_NAME = re.compile(r"[A-Za-z0-9._-]{1,128}")
_TOPIC = re.compile(r"[A-Za-z0-9_-]{1,256}")


# -- the report ----------------------------------------------------------------------------------

@dataclass
class Resource:
    """One resource setup manages, and what this run did to it."""

    step: str
    kind: str
    name: str
    status: str  # created | changed | unchanged
    #: For ``changed``, what differed (``field: was -> now``); otherwise what the resource is.
    detail: str = ""


@dataclass
class Criterion:
    """One of the guide's activation criteria."""

    name: str
    target: str
    measured: int | None
    status: str  # met | not met | not measured
    detail: str = ""


@dataclass
class Report:
    backend: str
    resources: list[Resource] = field(default_factory=list)
    readiness: list[Criterion] = field(default_factory=list)
    #: The days the readiness figures cover, first and last.
    window: tuple[dt.date, dt.date] | None = None
    notes: list[str] = field(default_factory=list)

    def add(self, step: str, kind: str, name: str, status: str, detail: str = "") -> None:
        log.info("%s: %s %s %s%s", step, kind, name, status, f" ({detail})" if detail else "")
        self.resources.append(Resource(step, kind, name, status, detail))

    def status(self, kind: str, name: str) -> str:
        """What happened to one resource (KeyError if setup did not touch it)."""
        for resource in self.resources:
            if (resource.kind, resource.name) == (kind, name):
                return resource.status
        raise KeyError(f"{kind} {name}")

    def counts(self) -> dict[str, int]:
        return {s: sum(r.status == s for r in self.resources) for s in (CREATED, CHANGED, UNCHANGED)}

    def render(self) -> str:
        """A plain-text table, for the terminal and the Airflow task log."""
        lines = [f"ioc setup ({self.backend} backend)", ""]
        if self.resources:
            rows = [(r.step, f"{r.kind} {r.name}", r.status, r.detail) for r in self.resources]
            lines += _table(("STEP", "RESOURCE", "STATUS", "DETAIL"), rows)
            counts = self.counts()
            lines += ["", f"{len(self.resources)} resources: " + ", ".join(f"{n} {s}" for s, n in counts.items())]
        if self.readiness:
            first, last = self.window or (None, None)
            lines += ["", f"Readiness: the guide's activation criteria, {first} to {last} ({READINESS_DAYS} days)"]
            rows = [(c.name, "-" if c.measured is None else f"{c.measured:,}", c.target, c.status, c.detail)
                    for c in self.readiness]
            lines += _table(("CRITERION", "MEASURED", "TARGET", "STATUS", "DETAIL"), rows)
        if self.notes:
            lines += ["", "Notes:", *(f"- {note}" for note in self.notes)]
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (the DAG's tasks return it as their XCom)."""
        return {
            "backend": self.backend,
            "resources": [asdict(r) for r in self.resources],
            "counts": self.counts(),
            "readiness": {
                "window": [d.isoformat() for d in self.window] if self.window else None,
                "criteria": [asdict(c) for c in self.readiness],
            },
            "notes": list(self.notes),
        }


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header) - 1)]
    return ["  ".join([*(str(v).ljust(w) for v, w in zip(row[:-1], widths, strict=True)), str(row[-1])]).rstrip()
            for row in [header, *rows]]


# -- entry point ---------------------------------------------------------------------------------

def ensure(
    settings: Settings,
    steps: Iterable[str] | None = None,
    *,
    tags: Mapping[str, str] | None = None,
    today: dt.date | None = None,
) -> Report:
    """Run the setup ``steps`` (all of them by default, in :data:`STEPS` order) and report.

    Idempotent: a second run with the same settings changes nothing and reports every resource
    ``unchanged``. ``tags`` label the readiness query (default :data:`DEFAULT_TAGS`); ``today``
    is the day the readiness window ends before (default: today, UTC).
    """
    chosen = set(STEPS if steps is None else steps)
    unknown = chosen - set(STEPS)
    if unknown:
        raise ConfigError(f"unknown setup step {', '.join(sorted(unknown))}: the steps are {', '.join(STEPS)}")
    check_settings(settings)
    report = Report(settings.backend)
    runners: dict[str, Callable[[Settings, Report], None]]
    if settings.backend == "aws":
        runners = {"catalog": _aws_catalog, "results_bucket": _aws_results_bucket, "workgroup": _aws_workgroup,
                   "alerts": _aws_alerts, "quicksight": _aws_quicksight}
    else:
        runners = {"catalog": _local_catalog, "workgroup": _local_workgroup, "alerts": _local_alerts}
    for step in STEPS:
        if step not in chosen:
            continue
        if step == "readiness":
            _readiness(settings, report, dict(tags or DEFAULT_TAGS), today or dt.datetime.now(dt.UTC).date())
        elif step in runners:
            runners[step](settings, report)
        else:
            report.notes.append(f"{step}: nothing to do on {settings.backend} ({AWS_ONLY[step]})")
    return report


def check_settings(settings: Settings) -> None:
    """What :class:`Settings` does not check itself and setup needs (ConfigError, with the fix)."""
    if not _NAME.fullmatch(settings.workgroup):
        raise ConfigError(f"IOC_WORKGROUP={settings.workgroup!r} is not a workgroup name: use 1-128 letters, "
                          "digits, '.', '_' or '-'")
    if settings.backend == "aws":
        results_location(settings)
        if not _TOPIC.fullmatch(settings.alert_topic):
            raise ConfigError(f"IOC_ALERT_TOPIC={settings.alert_topic!r} is not an SNS topic name: use 1-256 "
                              "letters, digits, '_' or '-'")


def results_location(settings: Settings) -> tuple[str, str]:
    """The bucket and key prefix of ``settings.athena_output``."""
    match = re.fullmatch(r"s3://([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(/.*)?", settings.athena_output)
    if not match:
        raise ConfigError(f"IOC_ATHENA_OUTPUT={settings.athena_output!r} is not an S3 location: use "
                          "s3://<bucket>/ or s3://<bucket>/<prefix>/, for example s3://ioc-athena-query-results/")
    return match.group(1), (match.group(2) or "/").lstrip("/")


# -- thresholds, shared by the aws alarms and the local record -----------------------------------

def budget_threshold_usd(settings: Settings) -> float:
    return settings.monthly_budget_usd * settings.budget_alert_pct / 100


def query_cost_threshold_bytes(settings: Settings) -> float:
    """The bytes one query scans to cost ``query_cost_alert_usd`` at Athena's price."""
    return settings.query_cost_alert_usd / PRICE_PER_TB_USD * TB


def alarm_names(settings: Settings) -> dict[str, str]:
    """The three alarms (on ``aws``) and thresholds (on ``local``), by what they watch."""
    return {kind: f"{settings.workgroup}-{kind}"
            for kind in ("month-to-date-budget", "single-query-cost", "query-failure-rate")}


def threshold_texts(settings: Settings) -> dict[str, str]:
    """What each alarm or threshold fires on, in words, by alarm name."""
    names = alarm_names(settings)
    return {
        names["month-to-date-budget"]: f"month to date >= ${budget_threshold_usd(settings):,.2f} "
                                       f"({settings.budget_alert_pct}% of ${settings.monthly_budget_usd:,.2f})",
        names["single-query-cost"]: f"a query > ${settings.query_cost_alert_usd:,.2f} "
                                    f"({query_cost_threshold_bytes(settings) / 2**30:,.1f} GiB scanned)",
        names["query-failure-rate"]: f"failed queries > {settings.failure_rate_alert_pct}%",
    }


# -- differences ---------------------------------------------------------------------------------

def _differences(current: Mapping[str, Any], wanted: Mapping[str, Any], prefix: str = "") -> list[str]:
    """``key: was -> now`` for each key of ``wanted`` whose value ``current`` does not have."""
    out = []
    for key, value in wanted.items():
        name, was = f"{prefix}{key}", current.get(key)
        if isinstance(value, Mapping) and isinstance(was, Mapping):
            out += _differences(was, value, f"{name}.")
        elif was != value:
            out.append(f"{name}: {_short(was)} -> {_short(value)}")
    return out


def _short(value: Any, limit: int = 80) -> str:
    text = json.dumps(value, default=str, sort_keys=True) if not isinstance(value, str) else value
    return text if len(text) <= limit else text[: limit - 3] + "..."


# -- aws -----------------------------------------------------------------------------------------

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
            report.add("catalog", "glue table", name, CREATED if what == "created" else UNCHANGED, _describe(table))


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
    out += _differences({"location": storage.get("Location")}, {"location": wanted["StorageDescriptor"]["Location"]})
    out += _differences(current.get("Parameters") or {}, wanted["Parameters"], "property ")
    out += [f"property {k}: {_short(v)} -> (none)" for k, v in (current.get("Parameters") or {}).items()
            if k not in wanted["Parameters"]]
    return out


def _describe(table: Table) -> str:
    keys = f", partitioned by {', '.join(table.partition_names)}" if table.partition_names else ""
    projection = " (partition projection)" if table.projection_enabled else ""
    return f"{len(table.columns)} columns{keys}{projection}"


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
    differences = _differences(_workgroup_view(current), _workgroup_view({"State": "ENABLED", "Configuration": wanted}))
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
    differences = _differences(_rule_view(ours[0]), _rule_view(wanted)) if len(ours) == 1 else []
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


def _note_unreachable_alarm(settings: Settings, report: Report) -> None:
    if settings.bytes_scanned_cutoff < query_cost_threshold_bytes(settings):
        report.notes.append(
            f"{alarm_names(settings)['single-query-cost']} cannot fire while the per-query cutoff "
            f"({settings.bytes_scanned_cutoff / 2**30:,.1f} GiB) stops every query before it reaches its threshold: it "
            "guards against a raised IOC_BYTES_SCANNED_CUTOFF")


def _aws_alerts(settings: Settings, report: Report) -> None:
    sns = _aws_client(settings, "sns")
    try:
        topic_arn = alerts.topic_arn(sns, settings.alert_topic)
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
            differences = _differences(_alarm_view(current[name]), _alarm_view(spec))
            if not differences:
                report.add("alerts", "cloudwatch alarm", name, UNCHANGED, what)
                continue
        # PutMetricAlarm creates the alarm or replaces it whole.
        cloudwatch.put_metric_alarm(AlarmName=name, Tags=[{"Key": "project", "Value": "ioc-analytics"}], **spec)
        if name in current:
            report.add("alerts", "cloudwatch alarm", name, CHANGED, "; ".join(differences))
        else:
            report.add("alerts", "cloudwatch alarm", name, CREATED, what)
    _note_unreachable_alarm(settings, report)


def _aws_quicksight(settings: Settings, report: Report) -> None:
    from ioc_analytics.backends.aws import quicksight

    for resource, (what, arn) in quicksight.ensure(settings).items():
        kind = "quicksight data source" if resource == quicksight.DATA_SOURCE_ID else "quicksight dataset"
        if what == "updated":
            # quicksight.ensure re-applies an existing dataset's definition rather than comparing it.
            report.add("quicksight", kind, resource, CHANGED,
                       "definition re-applied" if kind.endswith("dataset") else "brought in line with the settings")
        else:
            report.add("quicksight", kind, resource, what, arn)


# -- readiness -------------------------------------------------------------------------------

def _readiness(settings: Settings, report: Report, tags: dict[str, str], today: dt.date) -> None:
    """The guide's activation criteria over the 30 complete days before ``today``."""
    from ioc_analytics.analytics import sql
    from ioc_analytics.cost import usage
    from ioc_analytics.engine import get_engine

    first, last = today - dt.timedelta(days=READINESS_DAYS), today - dt.timedelta(days=1)
    report.window = (first, last)
    rendered = sql.render("readiness/assessment_volume", today)
    try:
        result = get_engine(settings).query(rendered.sql, rendered.parameters, tags)
        values = result.table.column(0).to_pylist() if result.table.num_rows else [0]
        assessments = int(values[0] or 0)
    except NoDataError:  # the local engine refuses a query over no partitions: here it means none
        assessments = 0
    # Setup's own queries are not analytics; the pipelines' are, but the count says how many.
    history = [r for r in usage.query_history(settings, first, last) if r.tags.get("dag_id") != "ioc_setup"]
    queries, from_dags = len(history), sum(bool(r.tags.get("dag_id")) for r in history)
    source = "the Athena query history" if settings.backend == "aws" else "the local query log"

    def met(value: int, target: int) -> str:
        return "met" if value >= target else "not met"

    report.readiness = [
        Criterion("MRR", f"${MRR_TARGET_USD:,}+ a month", None, "not measured",
                  "revenue is in neither the lake nor AWS usage: confirm with finance"),
        Criterion("Data volume", f"{ASSESSMENTS_TARGET:,}+ assessments a month", assessments,
                  met(assessments, ASSESSMENTS_TARGET), "rows of assessment_events in the window"),
        Criterion("Query frequency", f"{QUERIES_TARGET:,}+ analytics queries a month", queries,
                  met(queries, QUERIES_TARGET), f"queries in workgroup {settings.workgroup} ({from_dags} run by "
                  f"DAGs, setup's own excluded), from {source}"),
        Criterion("Team size", "an analytics team or a dedicated BI resource", None, "not measured",
                  "a staffing question, not measurable from here"),
    ]
    for criterion in report.readiness:
        log.info("readiness: %s %s (%s)", criterion.name, criterion.status, criterion.measured)


# -- local -----------------------------------------------------------------------------------

def state_path(settings: Settings) -> Path:
    return Path(settings.state_dir).expanduser().resolve() / "setup.json"


def _local_catalog(settings: Settings, report: Report) -> None:
    folders = (("lake", "IOC_LAKE_ROOT", settings.lake_root), ("state", "IOC_STATE_DIR", settings.state_dir),
               ("exports", "IOC_EXPORTS_ROOT", settings.exports_root))
    for label, variable, location in folders:
        if location.startswith("s3://"):
            report.notes.append(f"{label}: {location} is in S3, not a local folder: nothing to create")
            continue
        folder = Path(location).expanduser().resolve()
        if folder.exists() and not folder.is_dir():
            raise ConfigError(f"{variable}={location!r} is a file, not a folder: point it at a folder")
        existed = folder.is_dir()
        folder.mkdir(parents=True, exist_ok=True)
        report.add("catalog", "folder", label, UNCHANGED if existed else CREATED, str(folder))
    catalog = load_catalog(settings.lake_uri, settings.database)
    records = {name: {"columns": [f"{c.name} {c.athena_type}" for c in table.columns],
                      "partition keys": [f"{c.name} {c.athena_type}" for c in table.partition_keys],
                      "location": table.location, "properties": dict(table.properties)}
               for name, table in catalog.tables.items()}
    _record(settings, report, "catalog", "table", records,
            {name: f"ready: {_describe(table)}" for name, table in catalog.tables.items()})


def _local_workgroup(settings: Settings, report: Report) -> None:
    cutoff = settings.bytes_scanned_cutoff
    _record(settings, report, "workgroup", "guard rail", {"bytes-scanned-cutoff": {"bytes_scanned_cutoff": cutoff}},
            {"bytes-scanned-cutoff": f"the local engine refuses a query that scans more than {cutoff / MB:,.0f} MB, "
                                     "as the Athena workgroup cancels it"})


def _local_alerts(settings: Settings, report: Report) -> None:
    names = alarm_names(settings)
    records = {
        names["month-to-date-budget"]: {"monthly_budget_usd": settings.monthly_budget_usd,
                                        "budget_alert_pct": settings.budget_alert_pct,
                                        "threshold_usd": budget_threshold_usd(settings)},
        names["single-query-cost"]: {"threshold_usd": settings.query_cost_alert_usd,
                                     "threshold_bytes": round(query_cost_threshold_bytes(settings))},
        names["query-failure-rate"]: {"threshold_pct": settings.failure_rate_alert_pct},
    }
    _record(settings, report, "alerts", "threshold", records, threshold_texts(settings))
    _note_unreachable_alarm(settings, report)
    report.notes.append(
        "the CloudWatch alarms are aws only: on local the cost monitor DAG (ioc_cost_monitor) evaluates the "
        f"same thresholds each day and appends its alerts to {settings.alert_log_path}")


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock beside ``path`` (``ioc setup`` and the DAG may run at once)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with (path.parent / f".{path.name}.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _record(settings: Settings, report: Report, step: str, kind: str, records: dict[str, dict[str, Any]],
            described: Mapping[str, str]) -> None:
    """Compare ``records`` with the step's section of ``setup.json``, report, and save them."""
    path = state_path(settings)
    records = json.loads(json.dumps(records))  # as they read back: lists, not tuples
    with _locked(path):
        try:
            state = json.loads(path.read_text()) if path.exists() else {}
        except json.JSONDecodeError:
            raise ConfigError(f"{path} is not valid JSON: delete it (it only records the last setup) and run "
                              "ioc setup again") from None
        previous = state.get("steps", {}).get(step, {})
        for name, record in records.items():
            if name not in previous:
                report.add(step, kind, name, CREATED, described[name])
            elif differences := _differences(previous[name], record):
                report.add(step, kind, name, CHANGED, "; ".join(differences))
            else:
                report.add(step, kind, name, UNCHANGED, described[name])
        if previous != records:
            state.setdefault("steps", {})[step] = records
            state["updated_at"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
            temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            temporary.write_text(json.dumps(state, indent=1, sort_keys=True) + "\n")
            os.replace(temporary, path)
