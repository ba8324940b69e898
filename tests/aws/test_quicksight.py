"""QuickSight's data source and datasets, against moto.

moto keeps a data source whole (describe works), so its creation and the idempotent second run
are checked. Of a dataset moto keeps only the id, name and tags (no describe, no list): the test
checks that every dataset was created under its id; what its SQL returns is checked on the local
engine (tests/unit/test_publish.py).
"""

from __future__ import annotations

import pytest

from ioc_analytics.backends.aws import quicksight
from ioc_analytics.lake.tables import AGGREGATES
from tests.aws.conftest import REGION, WORKGROUP

pytestmark = pytest.mark.integration


def test_ensure_creates_the_source_and_datasets_and_is_idempotent(aws_settings, moto):
    first = quicksight.ensure(aws_settings)
    assert {k: state for k, (state, _) in first.items()} == {
        quicksight.DATA_SOURCE_ID: "created", **{f"ioc-analytics-{name}": "created" for name in AGGREGATES}}
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
