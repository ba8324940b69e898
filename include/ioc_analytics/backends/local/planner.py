"""How the local engine plans a query, as Athena would: the table references, the partitions their
WHERE selects (partition pruning from the partition keys), the columns each reads, and the bounds
on data columns that the row groups' statistics can decide."""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field

import duckdb
import pyarrow as pa
import sqlglot
from sqlglot import exp

from ioc_analytics import embedded
from ioc_analytics.engine.views import view_body
from ioc_analytics.errors import (
    QueryError,
    SqlSyntaxError,
    UnknownColumnError,
)
from ioc_analytics.lake.catalog import Table
from ioc_analytics.lake.filters import number_placeholders, parameter_index, where_conjuncts
from ioc_analytics.lake.store import Partition

VIEW_PREFIX = "__ioc_"


@dataclass
class Scan:
    """One table reference of a query and the partitions it reads."""

    table: Table
    view: str
    partitions: list[Partition]
    filter_sql: str | None
    #: Why the scan selects no partition (the query then fails only if every scan is empty).
    empty_reason: str | None = None
    #: From the files' footers: the rows, and per partition the columns its files hold.
    rows: int = 0
    present: list[set[str]] = field(default_factory=list)
    #: Each file's own columns (lower case), from its footer.
    file_columns: dict[str, set[str]] = field(default_factory=dict)
    #: Whether its view reads a file a branch (it reads columns beyond those its WHERE names).
    by_file: bool = False
    #: The table's columns that the query reads through this reference; the view selects only
    #: these (and the partition keys), so a ``COUNT(*)`` reads the footers and no column data.
    columns_read: set[str] = field(default_factory=set)
    #: Its WHERE's comparisons of a data column with a constant (``"timestamp" >= ?``), bound:
    #: what the row groups' statistics can decide (filled for :meth:`LocalEngine.scan_plan`).
    bounds: list[tuple[str, str, object]] = field(default_factory=list)
    #: The columns read only by those comparisons.
    filter_only: set[str] = field(default_factory=set)

    @property
    def files(self) -> list[str]:
        return [f.path for p in self.partitions for f in p.files]


@dataclass
class Plan:
    duckdb_sql: str
    scans: list[Scan] = field(default_factory=list)


def as_written(node: exp.Expression) -> str:
    """Athena SQL of ``node`` with its placeholders shown as the ``?`` the user wrote."""
    copy = node.copy()
    for placeholder in list(copy.find_all(exp.Placeholder)):
        placeholder.replace(exp.Placeholder())
    return copy.sql("athena")


def parse_one(sql: str, parameter_count: int) -> exp.Query:
    try:
        statements = [s for s in sqlglot.parse(number_placeholders(sql, parameter_count), read="athena")
                      if s is not None]
    except sqlglot.errors.ParseError as err:
        first = err.errors[0] if err.errors else {}
        raise SqlSyntaxError(
            f"syntax error at line {first.get('line', '?')}, column {first.get('col', '?')} "
            f"near {first.get('highlight', '')!r}: {first.get('description', str(err))}"
        ) from None
    if len(statements) != 1:
        raise SqlSyntaxError(f"expected one SQL statement, got {len(statements)}")
    tree = statements[0]
    if not isinstance(tree, exp.Query):
        raise QueryError(
            f"the local engine runs read-only queries (SELECT, WITH); got {tree.key.upper()}. "
            "Tables are created from include/ioc_analytics/sql/ddl/ and written by the pipeline."
        )
    return tree


def check_columns(tree: exp.Expression, tables: list[Table]) -> None:
    """Fail on a column that no table of the query has and that names no alias, with the nearest names.

    (DuckDB would find it too, but after qualification its message speaks of the SELECT clause.)
    """
    known = {c.name.lower() for t in tables for c in t.all_columns}
    aliases = {a.alias.lower() for a in tree.find_all(exp.Alias)}
    aliases |= {c.name.lower() for t in tree.find_all(exp.TableAlias) for c in t.columns}
    for column in tree.find_all(exp.Column):
        name = column.name.lower()
        if column.table or not name or name in known or name in aliases:
            continue
        names = sorted({c.name for t in tables for c in t.all_columns})
        near = difflib.get_close_matches(name, names, n=3)
        hint = f"; did you mean {' or '.join(near)}?" if near else f"; its columns are {', '.join(names)}"
        raise UnknownColumnError(
            f'column "{column.name}" not found in {", ".join(sorted({t.name for t in tables}))}{hint}')


COMPARISONS = {exp.EQ: "=", exp.GT: ">", exp.GTE: ">=", exp.LT: "<", exp.LTE: "<="}


FLIPPED = {"=": "=", ">": "<", ">=": "<=", "<": ">", "<=": ">="}


INSTANTS = (exp.DataType.Type.TIMESTAMP, exp.DataType.Type.TIMESTAMPTZ, exp.DataType.Type.TIMESTAMPLTZ,
             exp.DataType.Type.TIMESTAMPNTZ, exp.DataType.Type.DATETIME)


def column_bounds(ref: exp.Table, table: Table, parameters: list[object]
                   ) -> list[tuple[tuple[str, str, object], exp.Expression]]:
    """The WHERE conjuncts around ``ref`` that compare one of its data columns with a constant
    (a literal or a bound parameter), as ``(column, operator, value)`` and the conjunct."""
    names = {ref.alias_or_name.lower(), table.name}
    found = []
    for conjunct in where_conjuncts(ref):
        operator = COMPARISONS.get(type(conjunct))
        column, other = conjunct.this, conjunct.expression
        if isinstance(other, exp.Column) and not isinstance(column, exp.Column):
            column, other, operator = other, column, FLIPPED.get(operator)
        # TIMESTAMP '...', CAST(? AS timestamp): the same instant; any other cast (to a date: it
        # truncates) changes the value, so it is no bound
        while isinstance(other, exp.Cast) and other.to.is_type(*INSTANTS):
            other = other.this
        if (operator is None or not isinstance(column, exp.Column) or column.table.lower() not in names
                or column.name in table.partition_names):
            continue
        if isinstance(other, exp.Placeholder):
            found.append(((column.name.lower(), operator, parameters[parameter_index(other)]), conjunct))
        elif isinstance(other, exp.Literal):
            found.append(((column.name.lower(), operator, other.to_py()), conjunct))
    return found


def select_partitions(
    table: Table, partitions: list[Partition], conjuncts: list[exp.Expression], parameters: list[object]
) -> list[Partition]:
    """Evaluate the partition conjuncts in DuckDB over the partitions' key values."""
    bound: list[object] = []
    predicates = []
    for conjunct in conjuncts:
        copy = conjunct.copy()
        for placeholder in list(copy.find_all(exp.Placeholder)):
            bound.append(parameters[parameter_index(placeholder)])
            placeholder.replace(exp.Placeholder(this=str(len(bound))))
        for column in copy.find_all(exp.Column):
            column.set("table", None)
        predicates.append(copy)
    keys = table.partition_names
    values = pa.table({"__index": list(range(len(partitions))),
                       **{k: [p.values[k] for p in partitions] for k in keys}})
    query = exp.select("__index").from_("__partitions").where(exp.and_(*predicates)).sql("duckdb")
    con = embedded.connect()
    try:
        con.register("__partitions", values)
        rows = con.execute(query, bound or None).fetchall()
    except duckdb.Error as err:
        raise QueryError(f"cannot evaluate the partition filter on {table.name}: {first_lines(err)}") from None
    finally:
        con.close()
    return [partitions[i] for (i,) in sorted(rows)]


def view_sql(scan: Scan) -> str:
    body = view_body(scan.table, scan.partitions, scan.present, scan.columns_read,
                     scan.file_columns if scan.by_file and scan.file_columns else None)
    return f"CREATE TEMP VIEW {exp.to_identifier(scan.view).sql('duckdb')} AS {body}"


def first_lines(err: Exception) -> str:
    text = str(err).split("\n\nLINE")[0].strip()
    return re.sub(rf"{VIEW_PREFIX}(\w+?)_\d+", r"\1", text)
