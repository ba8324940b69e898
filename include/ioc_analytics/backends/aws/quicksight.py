"""QuickSight on ``aws``: the Athena data source, a dataset per aggregate and for the query
costs, and a dashboard of the local dashboard's views, all as code.

:func:`ensure` creates what is missing and updates what differs, so it is safe to run twice; it
reports what it did per resource. The dashboard (:func:`definition`) has the views of the local
one: daily active users over the last 30 days, the day's completion rates by assessment type and
device, the month-to-date OCEAN percentiles by industry on a 0-100 axis, and what the day's
queries cost by task (the day is yesterday, UTC; QuickSight's relative-date filters on a date
parsed from the partition key). The day's data-quality status is not there: the reports are JSON
documents in the lake, not a table QuickSight can read; the DAG's check tasks and the alerts
carry it. The definition's SHA-256 is kept in the dashboard's version description, so an
unchanged definition changes nothing and a changed one is published as a new version; with
``IOC_QUICKSIGHT_ANALYSIS`` an analysis of the same definition is kept too (its hash in a tag),
and ``IOC_QUICKSIGHT_OWNERS`` are given the owner's rights on both.

Datasets query Athena directly (``DIRECT_QUERY``) through custom SQL that blanks the numeric
cells of breakdown rows with fewer than ``IOC_MIN_GROUP_USERS`` users, as the exports and the API
do: a dashboard must not show what an export would suppress. The threshold is written into that
SQL as a number (a dataset's SQL takes no parameters; it is an integer setting, checked when
settings load).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from sqlglot import exp

from ioc_analytics.lake.catalog import Table, load_catalog
from ioc_analytics.lake.tables import AGGREGATES, BREAKDOWN_USERS
from ioc_analytics.settings import Settings

DATA_SOURCE_ID = "ioc-analytics-athena"
DASHBOARD_ID = ANALYSIS_ID = "ioc-analytics"
#: The tables with a dataset: the aggregates, and the query costs for the cost view.
DATASETS = (*AGGREGATES, "query_costs")
TRAITS = ("openness", "conscientiousness", "extraversion", "agreeableness", "neuroticism")
_TYPES = {"string": "STRING", "bigint": "INTEGER", "int": "INTEGER", "double": "DECIMAL", "timestamp": "DATETIME"}


def dataset_sql(table: Table, min_users: int) -> str:
    """Every column of the aggregate, breakdown rows with too few users blanked."""
    users = BREAKDOWN_USERS.get(table.name)
    columns = []
    for column in [*table.columns, *table.partition_keys]:
        quoted = exp.to_identifier(column.name, quoted=True).sql("athena")
        numeric = column.type.is_type(*exp.DataType.NUMERIC_TYPES)
        if users and numeric:
            columns.append(f"CASE WHEN {exp.to_identifier(users).sql('athena')} >= {int(min_users)} "
                           f"THEN {quoted} END AS {quoted}")
        else:
            columns.append(quoted)
    return f"SELECT {', '.join(columns)} FROM {exp.to_identifier(table.name).sql('athena')}"


def _columns(table: Table) -> list[dict[str, str]]:
    return [{"Name": c.name, "Type": _TYPES.get(c.athena_type, "STRING")}
            for c in [*table.columns, *table.partition_keys]]


def ensure(settings: Settings) -> dict[str, tuple[str, str]]:
    """Create or update the data source and the datasets; returns, per resource id, what
    happened to it (created, updated, unchanged) and its ARN."""
    from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook

    def client(kind: str) -> Any:
        return AwsBaseHook(aws_conn_id=settings.aws_conn_id, client_type=kind, region_name=settings.region).get_conn()

    quicksight = client("quicksight")
    account = client("sts").get_caller_identity()["Account"]
    outcome: dict[str, tuple[str, str]] = {}
    wanted = {"Name": "IOC analytics (Athena)", "Type": "ATHENA",
              "DataSourceParameters": {"AthenaParameters": {"WorkGroup": settings.workgroup}}}
    try:
        current = quicksight.describe_data_source(AwsAccountId=account, DataSourceId=DATA_SOURCE_ID)["DataSource"]
    except quicksight.exceptions.ResourceNotFoundException:
        source = quicksight.create_data_source(AwsAccountId=account, DataSourceId=DATA_SOURCE_ID, **wanted)
        arn = source["Arn"]
        outcome[DATA_SOURCE_ID] = ("created", arn)
    else:
        arn = current["Arn"]
        if (current.get("Name"), current.get("DataSourceParameters")) != (wanted["Name"],
                                                                        wanted["DataSourceParameters"]):
            quicksight.update_data_source(AwsAccountId=account, DataSourceId=DATA_SOURCE_ID, Name=wanted["Name"],
                                          DataSourceParameters=wanted["DataSourceParameters"])
            outcome[DATA_SOURCE_ID] = ("updated", arn)
        else:
            outcome[DATA_SOURCE_ID] = ("unchanged", arn)

    catalog = load_catalog(settings.lake_uri, settings.database)
    datasets = {}
    for name in DATASETS:
        table = catalog.table(name)
        spec = {"AwsAccountId": account, "DataSetId": f"ioc-analytics-{name}", "Name": f"IOC {name}",
                "ImportMode": "DIRECT_QUERY",
                "PhysicalTableMap": {name: {"CustomSql": {"DataSourceArn": arn, "Name": name,
                                                          "SqlQuery": dataset_sql(table, settings.min_group_users),
                                                          "Columns": _columns(table)}}}}
        try:
            made = quicksight.create_data_set(**spec, Tags=[{"Key": "project", "Value": "ioc-analytics"}])
            outcome[spec["DataSetId"]] = ("created", made["Arn"])
        except quicksight.exceptions.ResourceExistsException:
            made = quicksight.update_data_set(**spec)
            outcome[spec["DataSetId"]] = ("updated", made["Arn"])
        datasets[name] = made["Arn"]

    body = definition(datasets)
    digest = f"definition sha256 {hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()}"
    owners = [o.strip() for o in settings.quicksight_owners.split(",") if o.strip()]
    outcome[DASHBOARD_ID] = _ensure_dashboard(quicksight, account, body, digest, owners)
    if settings.quicksight_analysis:
        outcome[f"analysis {ANALYSIS_ID}"] = _ensure_analysis(quicksight, account, body, digest, owners)
    return outcome


def _ensure_dashboard(quicksight: Any, account: str, body: dict[str, Any], digest: str,
                      owners: list[str]) -> tuple[str, str]:
    spec = {"AwsAccountId": account, "DashboardId": DASHBOARD_ID, "Name": "IOC analytics", "Definition": body,
            "VersionDescription": digest,
            "DashboardPublishOptions": {"AdHocFilteringOption": {"AvailabilityStatus": "ENABLED"},
                                        "ExportToCSVOption": {"AvailabilityStatus": "ENABLED"},
                                        "SheetControlsOption": {"VisibilityState": "EXPANDED"}}}
    try:
        current = quicksight.describe_dashboard(AwsAccountId=account, DashboardId=DASHBOARD_ID)["Dashboard"]
    except quicksight.exceptions.ResourceNotFoundException:
        made = quicksight.create_dashboard(**spec, **_permissions(owners, DASHBOARD_ACTIONS),
                                           Tags=[{"Key": "project", "Value": "ioc-analytics"}])
        return "created", made["Arn"]
    if current.get("Version", {}).get("Description") == digest:
        return "unchanged", current["Arn"]
    updated = quicksight.update_dashboard(**spec)
    quicksight.update_dashboard_published_version(AwsAccountId=account, DashboardId=DASHBOARD_ID,
                                                  VersionNumber=int(updated["VersionArn"].rsplit("/", 1)[-1]))
    return "updated", current["Arn"]


def _ensure_analysis(quicksight: Any, account: str, body: dict[str, Any], digest: str,
                     owners: list[str]) -> tuple[str, str]:
    spec = {"AwsAccountId": account, "AnalysisId": ANALYSIS_ID, "Name": "IOC analytics", "Definition": body}
    try:
        current = quicksight.describe_analysis(AwsAccountId=account, AnalysisId=ANALYSIS_ID)["Analysis"]
    except quicksight.exceptions.ResourceNotFoundException:
        made = quicksight.create_analysis(**spec, **_permissions(owners, ANALYSIS_ACTIONS),
                                          Tags=[{"Key": "project", "Value": "ioc-analytics"},
                                                {"Key": "ioc-definition", "Value": digest.rsplit(" ", 1)[-1]}])
        return "created", made["Arn"]
    tags = quicksight.list_tags_for_resource(ResourceArn=current["Arn"]).get("Tags", [])
    if {"Key": "ioc-definition", "Value": digest.rsplit(" ", 1)[-1]} in tags:
        return "unchanged", current["Arn"]
    quicksight.update_analysis(**spec)
    quicksight.tag_resource(ResourceArn=current["Arn"], Tags=[{"Key": "ioc-definition",
                                                               "Value": digest.rsplit(" ", 1)[-1]}])
    return "updated", current["Arn"]


DASHBOARD_ACTIONS = ["quicksight:DescribeDashboard", "quicksight:ListDashboardVersions",
                     "quicksight:UpdateDashboardPermissions", "quicksight:QueryDashboard",
                     "quicksight:UpdateDashboard", "quicksight:DeleteDashboard",
                     "quicksight:DescribeDashboardPermissions", "quicksight:UpdateDashboardPublishedVersion"]
ANALYSIS_ACTIONS = ["quicksight:RestoreAnalysis", "quicksight:UpdateAnalysisPermissions",
                    "quicksight:DeleteAnalysis", "quicksight:DescribeAnalysisPermissions",
                    "quicksight:QueryAnalysis", "quicksight:DescribeAnalysis", "quicksight:UpdateAnalysis"]


def _permissions(owners: list[str], actions: list[str]) -> dict[str, Any]:
    """The ``Permissions`` argument: the owners' rights (QuickSight takes no empty list)."""
    return {"Permissions": [{"Principal": owner, "Actions": actions} for owner in owners]} if owners else {}


# -- the dashboard's definition --------------------------------------------------------------

def _column(dataset: str, name: str) -> dict[str, str]:
    return {"DataSetIdentifier": dataset, "ColumnName": name}


def _dimension(dataset: str, name: str) -> dict[str, Any]:
    return {"CategoricalDimensionField": {"FieldId": f"{dataset}.{name}", "Column": _column(dataset, name)}}


def _date_dimension(dataset: str) -> dict[str, Any]:
    return {"DateDimensionField": {"FieldId": f"{dataset}.day", "Column": _column(dataset, "day"),
                                   "DateGranularity": "DAY"}}


def _measure(dataset: str, name: str, aggregation: str = "SUM", field_id: str | None = None) -> dict[str, Any]:
    return {"NumericalMeasureField": {"FieldId": field_id or f"{dataset}.{name}", "Column": _column(dataset, name),
                                      "AggregationFunction": {"SimpleNumericalAggregation": aggregation}}}


def _title(text: str, subtitle: str) -> dict[str, Any]:
    return {"Title": {"Visibility": "VISIBLE", "FormatText": {"PlainText": text}},
            "Subtitle": {"Visibility": "VISIBLE", "FormatText": {"PlainText": subtitle}}}


def _axis(title: str, low: float | None = None, high: float | None = None) -> dict[str, Any]:
    axis: dict[str, Any] = {}
    if low is not None:
        axis["AxisOptions"] = {"DataOptions": {"NumericAxisOptions": {"Range": {"MinMax": {"Minimum": low,
                                                                                          "Maximum": high}}}}}
    return {**axis, "Label": {"Visibility": "VISIBLE", "AxisLabelOptions": [{"CustomLabel": title}]}}


def _relative_days(filter_id: str, dataset: str, visual: str, kind: str, days: int) -> dict[str, Any]:
    """Keep ``visual``'s rows of the last ``days`` days (``LAST``) or of yesterday (``PREVIOUS``, 1)."""
    return {"FilterGroupId": filter_id, "CrossDataset": "SINGLE_DATASET", "Status": "ENABLED",
            "Filters": [{"RelativeDatesFilter": {
                "FilterId": f"{filter_id}.filter", "Column": _column(dataset, "day"),
                "AnchorDateConfiguration": {"AnchorOption": "NOW"}, "TimeGranularity": "DAY",
                "RelativeDateType": kind, "RelativeDateValue": days, "NullOption": "NON_NULLS_ONLY"}}],
            "ScopeConfiguration": {"SelectedSheets": {"SheetVisualScopingConfigurations": [
                {"SheetId": SHEET_ID, "Scope": "SELECTED_VISUALS", "VisualIds": [visual]}]}}}


SHEET_ID = "ioc-the-day"


def definition(datasets: dict[str, str]) -> dict[str, Any]:
    """The dashboard's views, as QuickSight's analysis/dashboard ``Definition``."""
    used = ("daily_active_users", "completion_rates", "ocean_trait_percentiles", "query_costs")
    day = [{"DataSetIdentifier": name, "Name": "day", "Expression": "parseDate({date}, 'yyyy/MM/dd')"}
           for name in used]
    dau = {"LineChartVisual": {"VisualId": "dau", **_title(
        "Daily active users, the last 30 days", "Distinct users with a session each day, and the returning ones"),
        "ChartConfiguration": {"FieldWells": {"LineChartAggregatedFieldWells": {
            "Category": [_date_dimension("daily_active_users")],
            "Values": [_measure("daily_active_users", "unique_users"),
                       _measure("daily_active_users", "returning_users")]}},
            "XAxisLabelOptions": _axis("day (UTC)")["Label"], "PrimaryYAxisLabelOptions": _axis("users")["Label"],
            "Legend": {"Visibility": "VISIBLE"}, "Tooltip": {"TooltipVisibility": "VISIBLE"}}}}
    completion = {"BarChartVisual": {"VisualId": "completion", **_title(
        "Completion rate by assessment type and device, yesterday", "Completed sessions out of all started"),
        "ChartConfiguration": {"Orientation": "VERTICAL", "BarsArrangement": "CLUSTERED",
            "FieldWells": {"BarChartAggregatedFieldWells": {
                "Category": [_dimension("completion_rates", "assessment_type")],
                "Colors": [_dimension("completion_rates", "device")],
                "Values": [_measure("completion_rates", "completion_rate", "AVERAGE")]}},
            "ValueAxis": _axis("completion rate", 0, 1).get("AxisOptions", {}),
            "ValueLabelOptions": _axis("completion rate")["Label"], "Legend": {"Visibility": "VISIBLE"},
            "Tooltip": {"TooltipVisibility": "VISIBLE"}}}}
    percentiles = {"BarChartVisual": {"VisualId": "percentiles", **_title(
        "OCEAN medians by industry, month to date", "Each trait's 50th percentile, on a 0 to 100 axis"),
        "ChartConfiguration": {"Orientation": "HORIZONTAL", "BarsArrangement": "CLUSTERED",
            "FieldWells": {"BarChartAggregatedFieldWells": {
                "Category": [_dimension("ocean_trait_percentiles", "industry")],
                "Values": [_measure("ocean_trait_percentiles", f"{t}_p50", "MAX") for t in TRAITS]}},
            "ValueAxis": _axis("score", 0, 100).get("AxisOptions", {}),
            "Legend": {"Visibility": "VISIBLE"}, "Tooltip": {"TooltipVisibility": "VISIBLE"}}}}
    cost = {"BarChartVisual": {"VisualId": "cost", **_title(
        "What yesterday's queries cost, by task", "At Athena's price for the bytes each query scanned"),
        "ChartConfiguration": {"Orientation": "HORIZONTAL",
            "FieldWells": {"BarChartAggregatedFieldWells": {
                "Category": [_dimension("query_costs", "task_id")],
                "Values": [_measure("query_costs", "cost_usd")]}},
            "Legend": {"Visibility": "HIDDEN"}, "Tooltip": {"TooltipVisibility": "VISIBLE"}}}}
    return {"DataSetIdentifierDeclarations": [{"Identifier": name, "DataSetArn": datasets[name]} for name in used],
            "CalculatedFields": day,
            "Sheets": [{"SheetId": SHEET_ID, "Name": "The day", "Visuals": [dau, completion, percentiles, cost]}],
            "FilterGroups": [_relative_days("last-30-days", "daily_active_users", "dau", "LAST", 30),
                             _relative_days("yesterday-completion", "completion_rates", "completion", "PREVIOUS", 1),
                             _relative_days("yesterday-percentiles", "ocean_trait_percentiles", "percentiles",
                                            "PREVIOUS", 1),
                             _relative_days("yesterday-cost", "query_costs", "cost", "PREVIOUS", 1)]}
