"""The Glue Data Catalog's database and tables, made from the DDL under ``include/ioc_analytics/sql/ddl/``.

Created through the Glue API rather than by running the DDL in Athena: the API is idempotent
(create, else update), needs no query results location, and works against moto in the tests.
The table input is what Athena's ``CREATE EXTERNAL TABLE ... STORED AS PARQUET`` would store:
Hive Parquet SerDe, the columns and partition keys in Athena's type syntax, the location and
the TBLPROPERTIES (partition projection included) as table parameters. Each column's comment is
its data contract (``contract.py``), so that the console and ``DESCRIBE`` say what a valid value is.
"""

from __future__ import annotations

import logging
from typing import Any

from ioc_analytics.lake.catalog import Catalog, Table
from ioc_analytics.lake.contract import CONTRACTS
from ioc_analytics.settings import Settings

log = logging.getLogger(__name__)

PARQUET_STORAGE = {
    "InputFormat": "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat",
    "OutputFormat": "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat",
    "SerdeInfo": {"SerializationLibrary": "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe",
                  "Parameters": {"serialization.format": "1"}},
}


#: Glue's longest column comment.
COMMENT_CHARS = 255


def _columns(table: Table, columns: tuple) -> list[dict[str, str]]:
    """Glue columns in Athena's type syntax, each commented with its data contract (what Athena's
    console and ``DESCRIBE`` show)."""
    declared = CONTRACTS[table.name]
    out = []
    for c in columns:
        comment = declared.column(c.name).describe()
        if len(comment) > COMMENT_CHARS:
            comment = comment[: COMMENT_CHARS - 1] + "…"
        out.append({"Name": c.name, "Type": c.athena_type, "Comment": comment})
    return out


def table_input(table: Table) -> dict[str, Any]:
    """The Glue ``TableInput`` of one catalog table."""
    return {
        "Name": table.name,
        "TableType": "EXTERNAL_TABLE",
        "Parameters": {"EXTERNAL": "TRUE", "classification": "parquet", **table.properties},
        "PartitionKeys": _columns(table, table.partition_keys),
        "StorageDescriptor": {
            **PARQUET_STORAGE,
            "Columns": _columns(table, table.columns),
            "Location": table.location,
        },
    }


def ensure_tables(settings: Settings, catalog: Catalog) -> dict[str, str]:
    """Create the database and every table, or bring them in line with the DDL; returns what it
    did to each table: ``created``, ``updated`` or ``unchanged``."""
    from airflow.providers.amazon.aws.hooks.glue_catalog import GlueCatalogHook
    from botocore.exceptions import ClientError

    glue = GlueCatalogHook(aws_conn_id=settings.aws_conn_id, region_name=settings.region).get_conn()
    try:
        glue.create_database(DatabaseInput={"Name": settings.database})
        log.info("created Glue database %s", settings.database)
    except ClientError as err:
        if err.response.get("Error", {}).get("Code") != "AlreadyExistsException":
            raise
    outcome = {}
    for table in catalog.tables.values():
        wanted = table_input(table)
        try:
            current = glue.get_table(DatabaseName=settings.database, Name=table.name)["Table"]
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") != "EntityNotFoundException":
                raise
            glue.create_table(DatabaseName=settings.database, TableInput=wanted)
            outcome[table.name] = "created"
            continue
        same = (current.get("Parameters") == wanted["Parameters"]
                and current.get("PartitionKeys") == wanted["PartitionKeys"]
                and current["StorageDescriptor"].get("Columns") == wanted["StorageDescriptor"]["Columns"]
                and current["StorageDescriptor"].get("Location") == wanted["StorageDescriptor"]["Location"])
        if same:
            outcome[table.name] = "unchanged"
        else:
            glue.update_table(DatabaseName=settings.database, TableInput=wanted)
            outcome[table.name] = "updated"
    for name, what in outcome.items():
        log.info("Glue table %s.%s: %s", settings.database, name, what)
    return outcome
