"""QuickSight on ``aws``: the Athena data source and one dataset per aggregate, as code.

:func:`ensure` creates what is missing and updates what differs, so it is safe to run twice; it
reports what it did per resource. Datasets query Athena directly (``DIRECT_QUERY``) through
custom SQL that blanks the numeric cells of breakdown rows with fewer than
``IOC_MIN_GROUP_USERS`` users, as the exports and the API do: a dashboard must not show what an
export would suppress. The threshold is written into that SQL as a number (a dataset's SQL takes
no parameters; it is an integer setting, checked when settings load).
"""

from __future__ import annotations

from typing import Any

from sqlglot import exp

from ioc_analytics.lake.catalog import Table, load_catalog
from ioc_analytics.lake.tables import AGGREGATES, BREAKDOWN_USERS
from ioc_analytics.settings import Settings

DATA_SOURCE_ID = "ioc-analytics-athena"
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
    for name in AGGREGATES:
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
    return outcome
