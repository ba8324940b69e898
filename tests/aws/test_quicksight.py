"""QuickSight's data source, datasets and dashboard, against moto.

moto keeps a data source whole (describe works), so its creation and the idempotent second run
are checked. Of a dataset moto keeps only the id, name and tags (no describe, no list): the test
checks that every dataset was created under its id; what its SQL returns is checked on the local
engine (tests/unit/test_publish.py). Of a dashboard moto implements create, describe (without
the definition) and list: the test checks that it is created once, listed, carries its
definition's hash, and that a second run leaves it alone; botocore checks the definition against
QuickSight's API model before sending it (a misspelt or misplaced field fails the call).

What is not checked here, for want of moto: that QuickSight accepts the definition beyond its
shape (the datasets' columns, the calculated field's expression), the update of a changed
definition (``update_dashboard``, ``update_dashboard_published_version``) and the analysis
(``IOC_QUICKSIGHT_ANALYSIS``: moto has no analysis API), and the owners' permissions.
"""

from __future__ import annotations

import re

import pytest

from ioc_analytics.backends.aws import quicksight
from ioc_analytics.lake.catalog import load_catalog
from ioc_analytics.lake.tables import AGGREGATES
from tests.aws.conftest import REGION, WORKGROUP

pytestmark = pytest.mark.integration


def test_ensure_creates_the_source_and_datasets_and_is_idempotent(aws_settings, moto):
    first = quicksight.ensure(aws_settings)
    assert {k: state for k, (state, _) in first.items()} == {
        quicksight.DATA_SOURCE_ID: "created", **{f"ioc-analytics-{name}": "created" for name in AGGREGATES},
        "ioc-analytics-query_costs": "created", quicksight.DASHBOARD_ID: "created"}
    client = moto.client("quicksight")
    account = moto.client("sts").get_caller_identity()["Account"]
    source = client.describe_data_source(AwsAccountId=account, DataSourceId=quicksight.DATA_SOURCE_ID)["DataSource"]
    assert source["Type"] == "ATHENA" and source["DataSourceParameters"] == {
        "AthenaParameters": {"WorkGroup": WORKGROUP}}
    for name in AGGREGATES:
        arn = first[f"ioc-analytics-{name}"][1]
        assert arn.endswith(f"/ioc-analytics-{name}") and f":{REGION}:{account}:" in arn
        assert client.list_tags_for_resource(ResourceArn=arn)["Tags"] == [{"Key": "project", "Value": "ioc-analytics"}]

    second = quicksight.ensure(aws_settings)
    assert second[quicksight.DATA_SOURCE_ID] == ("unchanged", first[quicksight.DATA_SOURCE_ID][1])

    [listed] = client.list_dashboards(AwsAccountId=account)["DashboardSummaryList"]
    assert listed["DashboardId"] == quicksight.DASHBOARD_ID and listed["Arn"] == first[quicksight.DASHBOARD_ID][1]
    dashboard = client.describe_dashboard(AwsAccountId=account, DashboardId=quicksight.DASHBOARD_ID)["Dashboard"]
    assert re.fullmatch(r"definition sha256 [0-9a-f]{64}", dashboard["Version"]["Description"])
    assert second[quicksight.DASHBOARD_ID] == ("unchanged", first[quicksight.DASHBOARD_ID][1])


def test_the_dashboard_has_the_local_dashboards_views_over_the_datasets():
    """The definition itself: each view over its dataset and columns, on its axis, for its days."""
    arns = {name: f"arn:aws:quicksight:{REGION}:123456789012:dataset/ioc-analytics-{name}"
            for name in quicksight.DATASETS}
    body = quicksight.definition(arns)
    [sheet] = body["Sheets"]
    visuals = {next(iter(v.values()))["VisualId"]: next(iter(v.values())) for v in sheet["Visuals"]}
    assert set(visuals) == {"dau", "completion", "percentiles", "cost"}
    used = {d["Identifier"] for d in body["DataSetIdentifierDeclarations"]}
    catalog = load_catalog("s3://bucket/lake", "ioc_analytics")

    def columns(visual):  # every column a visual reads, by dataset
        found = re.findall(r"'DataSetIdentifier': '(\w+)', 'ColumnName': '(\w+)'", str(visual))
        return {(d, c) for d, c in found}

    calculated = {(f["DataSetIdentifier"], f["Name"]) for f in body["CalculatedFields"]}
    for visual in visuals.values():
        for dataset, column in columns(visual):
            assert dataset in used
            assert (dataset, column) in calculated or column in {
                c.name for c in [*catalog.table(dataset).columns, *catalog.table(dataset).partition_keys]}, column
    axis = visuals["percentiles"]["ChartConfiguration"]["ValueAxis"]["DataOptions"]["NumericAxisOptions"]
    assert axis["Range"]["MinMax"] == {"Minimum": 0, "Maximum": 100}
    windows = {g["ScopeConfiguration"]["SelectedSheets"]["SheetVisualScopingConfigurations"][0]["VisualIds"][0]:
               (g["Filters"][0]["RelativeDatesFilter"]["RelativeDateType"],
                g["Filters"][0]["RelativeDatesFilter"]["RelativeDateValue"]) for g in body["FilterGroups"]}
    assert windows == {"dau": ("LAST", 30), "completion": ("PREVIOUS", 1), "percentiles": ("PREVIOUS", 1),
                       "cost": ("PREVIOUS", 1)}
