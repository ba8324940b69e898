"""The table catalog, read from the Athena DDL under ``include/ioc_analytics/sql/ddl/``.

The DDL files are the single definition of every table: the local engine builds its catalog from
them (columns, map and struct types, partition keys, location template), the generator and the
tests derive the Parquet schema from them, and the ``aws`` setup creates the Glue tables from the
same text. ``{{ lake_root }}`` in a DDL file stands for the configured lake root.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from functools import cache, cached_property
from pathlib import Path

import pyarrow as pa
import sqlglot
from sqlglot import exp

from ioc_analytics.errors import CatalogError, UnknownTableError
from ioc_analytics.settings import DDL_DIR

LAKE_ROOT_PLACEHOLDER = "{{ lake_root }}"


@dataclass(frozen=True)
class Column:
    name: str
    type: exp.DataType

    @property
    def athena_type(self) -> str:
        """The type as Glue stores it for Athena (Hive syntax, no spaces: Hive's type parser refuses
        them): string, map<string,double>, map<string,struct<score:double,...>>."""
        return re.sub(r"\s+", "", self.type.sql("hive").lower())


@dataclass(frozen=True)
class Table:
    """One table of the catalog, as its DDL declares it."""

    name: str
    columns: tuple[Column, ...]
    partition_keys: tuple[Column, ...]
    location: str
    properties: dict[str, str] = field(default_factory=dict)
    ddl: str = ""

    @property
    def all_columns(self) -> tuple[Column, ...]:
        return self.columns + self.partition_keys

    @property
    def partition_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.partition_keys)

    @property
    def projection_enabled(self) -> bool:
        return self.properties.get("projection.enabled", "false").lower() == "true"

    @property
    def location_template(self) -> str:
        """Where a partition's objects live, with ``${key}`` for each partition key."""
        default = self.location.rstrip("/") + "/" + "/".join(f"${{{k}}}" for k in self.partition_names) + "/"
        return self.properties.get("storage.location.template", default)

    def partition_location(self, values: dict[str, str]) -> str:
        """The folder or S3 prefix of one partition (with a trailing slash)."""
        self.check_partition_values(values)
        location = self.location_template
        for key in self.partition_names:
            location = location.replace(f"${{{key}}}", values[key])
        return location

    def check_partition_values(self, values: dict[str, str]) -> None:
        missing = [k for k in self.partition_names if k not in values]
        extra = [k for k in values if k not in self.partition_names]
        if missing or extra:
            raise CatalogError(
                f"{self.name} is partitioned by {', '.join(self.partition_names)}; "
                f"got {', '.join(values) or 'no keys'}"
            )
        for key, value in values.items():
            if not re.fullmatch(self._key_pattern(key), value):
                raise CatalogError(
                    f"{value!r} is not a valid value of {self.name}.{key} "
                    f"(expected {self._key_description(key)})"
                )

    @cached_property
    def partition_regex(self) -> re.Pattern[str]:
        """Matches an object's folder, relative to the table location, and names its partition."""
        relative = self.location_template[len(self.location.rstrip("/")) + 1 :].rstrip("/")
        pattern = ""
        for piece in re.split(r"(\$\{\w+\})", relative):
            key = piece[2:-1] if piece.startswith("${") else None
            pattern += f"(?P<{key}>{self._key_pattern(key)})" if key else re.escape(piece)
        return re.compile(pattern)

    def _key_pattern(self, key: str) -> str:
        kind = self.properties.get(f"projection.{key}.type")
        if kind == "date":
            return _java_date_format_regex(self.properties[f"projection.{key}.format"])
        if kind == "integer":
            digits = self.properties.get(f"projection.{key}.digits")
            return rf"\d{{{digits}}}" if digits else r"\d+"
        if kind == "enum":
            return "|".join(re.escape(v) for v in self.enum_values(key))
        return r"[^/]+"

    def _key_description(self, key: str) -> str:
        kind = self.properties.get(f"projection.{key}.type")
        if kind == "date":
            return f"a date as {self.properties[f'projection.{key}.format']}"
        if kind == "enum":
            return "one of " + ", ".join(self.enum_values(key))
        if kind == "integer":
            return f"{self.properties.get(f'projection.{key}.digits', 'some')} digits"
        return "a folder name"

    @property
    def allows_empty(self) -> bool:
        """Whether a partition without rows is a valid answer (``'ioc.empty_partitions' = 'allowed'``:
        a quiet hour, a day without anomalies) rather than missing data."""
        return self.properties.get("ioc.empty_partitions") == "allowed"

    def enum_values(self, key: str) -> tuple[str, ...]:
        return tuple(v.strip() for v in self.properties.get(f"projection.{key}.values", "").split(","))

    @cached_property
    def arrow_schema(self) -> pa.Schema:
        """The Parquet schema of the table's data files (partition keys live in the path)."""
        return pa.schema([pa.field(c.name, arrow_type(c.type)) for c in self.columns])



_JAVA_DATE_TOKENS = {"yyyy": r"\d{4}", "MM": r"\d{2}", "dd": r"\d{2}", "HH": r"\d{2}"}


def _java_date_format_regex(fmt: str) -> str:
    return "".join(
        _JAVA_DATE_TOKENS.get(tok, re.escape(tok)) for tok in re.split(r"(yyyy|MM|dd|HH)", fmt) if tok
    )


_ARROW_SCALARS = {
    exp.DataType.Type.TEXT: pa.string(),
    exp.DataType.Type.VARCHAR: pa.string(),
    exp.DataType.Type.INT: pa.int32(),
    exp.DataType.Type.BIGINT: pa.int64(),
    exp.DataType.Type.SMALLINT: pa.int16(),
    exp.DataType.Type.DOUBLE: pa.float64(),
    exp.DataType.Type.FLOAT: pa.float32(),
    exp.DataType.Type.BOOLEAN: pa.bool_(),
    exp.DataType.Type.DATE: pa.date32(),
    # Athena reads Parquet INT64 timestamps in milliseconds or microseconds; we write millis.
    exp.DataType.Type.TIMESTAMP: pa.timestamp("ms"),
}


def arrow_type(dtype: exp.DataType) -> pa.DataType:
    if dtype.this == exp.DataType.Type.MAP:
        key, value = dtype.expressions
        return pa.map_(arrow_type(key), arrow_type(value))
    if dtype.this == exp.DataType.Type.STRUCT:
        return pa.struct([pa.field(f.name, arrow_type(f.args["kind"])) for f in dtype.expressions])
    if dtype.this == exp.DataType.Type.ARRAY:
        return pa.list_(arrow_type(dtype.expressions[0]))
    try:
        return _ARROW_SCALARS[dtype.this]
    except KeyError:
        raise CatalogError(f"type {dtype.sql('athena')} has no Parquet mapping yet") from None


def parse_ddl(text: str, lake_root: str, source: str = "<ddl>") -> Table:
    """Parse one ``CREATE EXTERNAL TABLE`` statement (Athena dialect) into a :class:`Table`."""
    rendered = text.replace(LAKE_ROOT_PLACEHOLDER, lake_root.rstrip("/"))
    try:
        create = sqlglot.parse_one(rendered, read="athena")
    except sqlglot.errors.ParseError as err:
        raise CatalogError(f"{source}: not valid Athena DDL: {err}") from None
    if not isinstance(create, exp.Create) or not isinstance(create.this, exp.Schema):
        raise CatalogError(f"{source}: expected one CREATE EXTERNAL TABLE statement")
    name = create.this.this.name
    columns = tuple(Column(c.name, c.args["kind"]) for c in create.this.expressions)
    partition_keys: tuple[Column, ...] = ()
    location = ""
    properties: dict[str, str] = {}
    for prop in create.args["properties"].expressions:
        if isinstance(prop, exp.PartitionedByProperty):
            partition_keys = tuple(Column(c.name, c.args["kind"]) for c in prop.this.expressions)
        elif isinstance(prop, exp.LocationProperty):
            location = prop.this.name
        elif type(prop) is exp.Property:
            properties[prop.name] = prop.args["value"].name
    repeated = {c.name for c in columns} & {c.name for c in partition_keys}
    if repeated:
        raise CatalogError(
            f"{source}: {', '.join(sorted(repeated))} is both a column and a partition key; "
            "Athena refuses that: keep it as a partition key only"
        )
    if not location:
        raise CatalogError(f"{source}: table {name} has no LOCATION")
    return Table(name, columns, partition_keys, location, properties, rendered)


@dataclass(frozen=True)
class Catalog:
    database: str
    tables: dict[str, Table]

    def table(self, name: str) -> Table:
        bare = name.split(".")[-1].lower()
        if bare in self.tables:
            return self.tables[bare]
        close = difflib.get_close_matches(bare, self.tables, n=1)
        hint = f"; did you mean {close[0]}?" if close else ""
        raise UnknownTableError(
            f"table {name!r} does not exist in {self.database} "
            f"(tables: {', '.join(sorted(self.tables))}){hint}"
        )


@cache  # the DDL is package data: it does not change while a process runs, so it is parsed once
def load_catalog(lake_root: str, database: str = "ioc_analytics", ddl_dir: Path = DDL_DIR) -> Catalog:
    """The tables of the DDL under ``ddl_dir``, located under ``lake_root``."""
    tables = {}
    for path in sorted(ddl_dir.glob("*.sql")):
        table = parse_ddl(path.read_text(), lake_root, source=str(path.name))
        tables[table.name] = table
    if not tables:
        raise CatalogError(f"no DDL files under {ddl_dir}")
    return Catalog(database, tables)
