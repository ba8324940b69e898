"""Partitions in the Glue Data Catalog (``aws`` backend)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ioc_analytics.errors import UnknownTableError
from ioc_analytics.lake.catalog import Table
from ioc_analytics.lake.partitions import Key, key_of
from ioc_analytics.settings import Settings


class GlueRegistry:
    """Partitions in the Glue Data Catalog, through the provider's ``GlueCatalogHook``."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._client = None
        self._descriptors: dict[str, dict[str, Any]] = {}

    @property
    def glue(self) -> Any:
        if self._client is None:
            from airflow.providers.amazon.aws.hooks.glue_catalog import GlueCatalogHook

            hook = GlueCatalogHook(aws_conn_id=self.settings.aws_conn_id, region_name=self.settings.region)
            self._client = hook.get_conn()
        return self._client

    def storage_descriptor(self, table: Table) -> dict[str, Any]:
        """The Glue table's storage descriptor (a partition's, but for its location); asked once
        per table, since a repair registers many partitions of one table."""
        from botocore.exceptions import ClientError

        if table.name in self._descriptors:
            return self._descriptors[table.name]
        try:
            found = self.glue.get_table(DatabaseName=self.settings.database, Name=table.name)["Table"]
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") == "EntityNotFoundException":
                raise UnknownTableError(
                    f"table {self.settings.database}.{table.name} is not in the Glue Data Catalog: create it "
                    f"by running include/ioc_analytics/sql/ddl/{table.name}.sql in Athena (with the lake root as its "
                    "location), or run `ioc setup`"
                ) from None
            raise
        self._descriptors[table.name] = found["StorageDescriptor"]
        return found["StorageDescriptor"]

    def partitions(self, table: Table) -> dict[Key, str]:
        pages = self.glue.get_paginator("get_partitions").paginate(
            DatabaseName=self.settings.database, TableName=table.name)
        return {tuple(p["Values"]): p["StorageDescriptor"]["Location"]
                for page in pages for p in page.get("Partitions", [])}

    def location(self, table: Table, values: Mapping[str, str]) -> str | None:
        from botocore.exceptions import ClientError

        try:
            found = self.glue.get_partition(DatabaseName=self.settings.database, TableName=table.name,
                                            PartitionValues=list(key_of(table, values)))
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") == "EntityNotFoundException":
                return None
            raise
        return found["Partition"]["StorageDescriptor"]["Location"]

    def register(self, table: Table, values: Mapping[str, str], location: str) -> None:
        """Create the partition, or point it at ``location`` (one ``UpdatePartition``: atomic)."""
        from botocore.exceptions import ClientError

        partition = {"Values": list(key_of(table, values)),
                     "StorageDescriptor": {**self.storage_descriptor(table), "Location": location}}
        common = {"DatabaseName": self.settings.database, "TableName": table.name}
        try:
            self.glue.create_partition(**common, PartitionInput=partition)
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") != "AlreadyExistsException":
                raise
            self.glue.update_partition(**common, PartitionValueList=partition["Values"], PartitionInput=partition)

    def unregister(self, table: Table, values: Mapping[str, str]) -> None:
        self.glue.delete_partition(DatabaseName=self.settings.database, TableName=table.name,
                                   PartitionValues=list(key_of(table, values)))
