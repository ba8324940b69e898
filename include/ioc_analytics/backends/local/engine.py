"""Athena SQL on embedded DuckDB over the local Parquet lake.

How a query runs:

1. sqlglot parses it as Athena (Trino) SQL; every table it names is looked up in the catalog that
   the DDL under ``include/ioc_analytics/sql/ddl/`` defines.
2. Partition pruning, as Athena does it: for each table reference, the conjuncts of its WHERE
   clause that read only the table's partition keys are evaluated, by DuckDB itself, over the
   partitions that the lake holds (so ``date >= date_format(current_date - interval '7' day,
   '%Y/%m/%d')`` prunes exactly as it would on Athena). Only the selected partitions' files are
   handed to DuckDB.
3. Each reference becomes a view over ``read_parquet`` of those files, with the partition keys
   recovered from the object paths; the query is transpiled to DuckDB and run with DuckDB's
   profiler on, which reports the bytes it read (``total_bytes_scanned``).
4. The query, failed ones too, is appended to the local query log with its statistics and cost
   at Athena's price.

A new in-memory DuckDB connection serves each query: no database file to lock, so parallel tasks
never clash.
"""

from __future__ import annotations

import difflib
import json
import re
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import duckdb
import pyarrow as pa
import sqlglot
from sqlglot import exp
from sqlglot.optimizer.annotate_types import annotate_types
from sqlglot.optimizer.qualify import qualify

from ioc_analytics.backends.local.lake import LocalLake
from ioc_analytics.engine.base import MB, QueryResult, QueryStats, athena_cost, with_tags
from ioc_analytics.errors import (
    BytesScannedCutoffError,
    IocError,
    NoDataError,
    QueryError,
    QueryTimeoutError,
    SqlSyntaxError,
    UnknownColumnError,
    UnknownTableError,
)
from ioc_analytics.jsonlines import JsonLines
from ioc_analytics.lake import partitions
from ioc_analytics.lake.catalog import Catalog, Table
from ioc_analytics.lake.partitions import PartitionRegistry
from ioc_analytics.lake.store import Partition
from ioc_analytics.lake.tables import RAW_TABLES
from ioc_analytics.settings import Settings

_VIEW_PREFIX = "__ioc_"
#: Values sampled per group for approx_percentile (see _fix_dialect_gaps).
RESERVOIR_SIZE = 16384


@dataclass
class _Scan:
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
class _Plan:
    duckdb_sql: str
    scans: list[_Scan] = field(default_factory=list)


class LocalEngine:
    backend = "local"

    def __init__(self, settings: Settings, catalog: Catalog | None = None, lake: LocalLake | None = None,
                 registry: PartitionRegistry | None = None) -> None:
        """The backend hands the engine its catalog, lake and registry; built alone (a test, a
        benchmark), the engine takes the backend's."""
        if catalog is None or lake is None or registry is None:
            from ioc_analytics.backends import get_backend

            backend = get_backend(settings)
            catalog, lake, registry = backend.catalog, backend.lake, backend.registry
        self.settings = settings
        self.catalog: Catalog = catalog
        self.lake = lake
        self.registry = registry
        self.log = JsonLines(settings.query_log_path)

    # -- the Engine interface -------------------------------------------------------------

    def query(
        self,
        sql: str,
        parameters: Sequence[object] = (),
        tags: Mapping[str, str] | None = None,
    ) -> QueryResult:
        query_id = str(uuid.uuid4())
        record: dict[str, object] = {
            "query_id": query_id,
            "submitted_at": datetime.now(UTC).isoformat(),
            "engine": "duckdb",
            "database": self.settings.database,
            "workgroup": self.settings.workgroup,
            "query": with_tags(sql, tags),
            "parameters": list(parameters),
        }
        started = time.perf_counter()
        try:
            plan = self._plan(sql, list(parameters))
            self._read_footers(plan)
            table, bytes_scanned = self._run(plan, list(parameters))
        except Exception as err:  # every failure is logged, as Athena's history keeps failed queries
            if isinstance(err, QueryError):
                err.query_id = query_id
            error = str(err) if isinstance(err, IocError) else f"{type(err).__name__}: {err}"
            # Athena cancels a query at the cutoff and bills what it scanned; the others are free.
            scanned = err.bytes_scanned if isinstance(err, BytesScannedCutoffError) else 0
            stats = QueryStats(query_id, "CANCELLED" if scanned else "FAILED", bytes_scanned=scanned,
                               elapsed_s=time.perf_counter() - started,
                               cost_usd=athena_cost(scanned) if scanned else 0.0, tags=dict(tags or {}), error=error)
            self.log.append({**record, **stats.as_dict()})
            raise
        stats = QueryStats(
            query_id,
            "SUCCEEDED",
            bytes_scanned=bytes_scanned,
            elapsed_s=time.perf_counter() - started,
            cost_usd=athena_cost(bytes_scanned),
            rows=table.num_rows,
            partitions_scanned=sum(len(s.partitions) for s in plan.scans),
            files_scanned=sum(len(s.files) for s in plan.scans),
            tags=dict(tags or {}),
        )
        self.log.append({**record, **stats.as_dict()})
        return QueryResult(table, stats)

    def replace_partition(
        self,
        table: str,
        partition: Mapping[str, str],
        select_sql: str,
        parameters: Sequence[object] = (),
        tags: Mapping[str, str] | None = None,
    ) -> QueryStats:
        """Run ``select_sql`` and publish its rows as the partition's new version (see partitions.py)."""
        target = self.catalog.table(table)
        values = dict(partition)
        target.check_partition_values(values)
        partitions.check_versioned(target)
        result = self.query(select_sql, parameters, tags)
        expected = [c.name for c in target.columns]
        if result.table.column_names != expected:
            raise QueryError(
                f"the query for {target.name} returns columns ({', '.join(result.table.column_names)}) "
                f"but the table declares ({', '.join(expected)}): make the SELECT list match the DDL",
                query_id=result.stats.query_id,
            )
        partitions.write_partition(self.lake, self.registry, target, values, result.table)
        return result.stats

    def scanned(self, sql: str, parameters: Sequence[object] = ()) -> list[ScanProfile]:
        """Run the query and say what each of DuckDB's table scans read: the table, its columns,
        and the rows of the row groups it read, after partition pruning and after the row groups
        that the Parquet statistics rule out (for the cost guard's estimate)."""
        plan = self._plan(sql, list(parameters))
        self._read_footers(plan)
        scans: list[ScanProfile] = []
        self._run(plan, list(parameters), profile=scans)
        return scans

    def scan_plan(self, sql: str, parameters: Sequence[object] = ()) -> list[ScanPlan]:
        """What the query would read, without running it: per table reference, the files of the
        partitions it selects, the columns it reads, and the comparisons that the row groups'
        statistics can decide (for benchmarks)."""
        plan = self._plan(sql, list(parameters), with_bounds=True)
        return [ScanPlan(s.table.name, s.files, s.columns_read, s.bounds, s.filter_only) for s in plan.scans]

    # -- planning ---------------------------------------------------------------------------

    def _plan(self, sql: str, parameters: list[object], with_bounds: bool = False) -> _Plan:
        tree = _parse_one(sql, len(parameters))
        ctes = {cte.alias_or_name.lower() for cte in tree.find_all(exp.CTE)}
        refs = _lake_tables(tree, ctes)
        for ref in refs:
            if ref.db and ref.db.lower() != self.settings.database.lower():
                raise UnknownTableError(
                    f"database {ref.db!r} does not exist here; the tables live in {self.settings.database}"
                )
        # Unknown tables and columns fail here, with suggestions, before anything is read.
        _check_columns(tree, [self.catalog.table(ref.name) for ref in refs])
        tree = self._typed(tree)
        plan = _Plan(duckdb_sql="")
        for ref in _lake_tables(tree, ctes):
            table = self.catalog.table(ref.name)
            scan = self._scan(ref, table, len(plan.scans), parameters)
            alias = (ref.alias or table.name).lower()
            scope = ref.find_ancestor(exp.Select) or tree
            scan.columns_read = {c.name.lower() for c in scope.find_all(exp.Column) if c.table.lower() == alias}
            if any(not isinstance(star.parent, exp.AggFunc) for star in scope.find_all(exp.Star)):
                scan.columns_read = {c.name.lower() for c in table.all_columns}  # a star qualify left alone
            if with_bounds:  # only scan_plan's callers (benchmarks) need them
                comparisons = _column_bounds(ref, table, parameters)
                scan.bounds = [bound for bound, _ in comparisons]
                inside = {id(c) for _, node in comparisons for c in node.find_all(exp.Column)}
                scan.filter_only = scan.columns_read - {c.name.lower() for c in scope.find_all(exp.Column)
                                                        if c.table.lower() == alias and id(c) not in inside}
            plan.scans.append(scan)
            alias = ref.alias or table.name
            ref.replace(exp.to_table(scan.view).as_(alias))
        if plan.scans and all(s.empty_reason for s in plan.scans):
            raise NoDataError("; ".join(s.empty_reason for s in plan.scans))
        _fix_dialect_gaps(tree)
        for placeholder in list(tree.find_all(exp.Placeholder)):  # DuckDB binds $n by position
            placeholder.replace(exp.Placeholder(this=str(_parameter_index(placeholder) + 1)))
        plan.duckdb_sql = tree.sql(dialect="duckdb")
        return plan

    def _typed(self, tree: exp.Query) -> exp.Query:
        """Qualify every column with its table and annotate every expression's type.

        Athena divides integers as integers (``7 / 2`` is 3) and DuckDB does not; sqlglot writes
        DuckDB's integer division only where it knows both sides are integers, which takes the
        catalog's column types and columns resolved to their tables.
        """
        schema = {self.settings.database: {
            t.name: {c.name: c.type.sql("trino") for c in t.all_columns} for t in self.catalog.tables.values()
        }}
        try:
            tree = qualify(tree, dialect="athena", db=self.settings.database, schema=schema,
                           validate_qualify_columns=False, quote_identifiers=False, identify=False)
        except sqlglot.errors.OptimizeError as err:  # an ambiguous column, a bad reference
            raise QueryError(f"cannot resolve the query's columns: {err}") from None
        tree = annotate_types(tree, schema=schema, dialect="athena")
        # Athena names an unnamed output column _col0, _col1, ...; sqlglot writes _col_0.
        for alias in tree.selects if isinstance(tree, exp.Select) else []:
            if isinstance(alias, exp.Alias) and re.fullmatch(r"_col_\d+", alias.alias):
                alias.set("alias", exp.to_identifier(alias.alias.replace("_col_", "_col")))
        return tree

    def _scan(self, ref: exp.Table, table: Table, index: int, parameters: list[object]) -> _Scan:
        # As on Athena: a table with projection has the partitions its layout finds in the lake;
        # one without has the partitions registered in the catalog.
        listing = (self.lake.list_table(table) if table.projection_enabled
                   else partitions.registered_listing(self.lake, self.registry, table))
        view = f"{_VIEW_PREFIX}{table.name}_{index}"
        if not listing.partitions:
            fix = ("generate a sample lake with `ioc generate`, or check IOC_LAKE_ROOT" if table.name in RAW_TABLES
                   else "the daily DAG writes it: run the DAG for the dates you need")
            return _Scan(table, view, [], None, empty_reason=(
                f"{table.name} has no data: no Parquet files under {table.location} in its layout "
                f"({table.location_template}): {fix}"
            ))
        conjuncts = _partition_conjuncts(ref, table)
        if not conjuncts:
            return _Scan(table, view, listing.partitions, None)
        selected = _select_partitions(table, listing.partitions, conjuncts, parameters)
        filter_sql = " AND ".join(_as_written(c) for c in conjuncts)
        scan = _Scan(table, view, selected, filter_sql)
        if not selected:
            first, last = listing.partitions[0], listing.partitions[-1]
            bound = f" with parameters {parameters}" if parameters else ""
            scan.empty_reason = (
                f"{table.name} has no partitions matching {filter_sql}{bound} "
                f"(the lake holds {len(listing.partitions)} partitions, "
                f"from {first.label()} to {last.label()})"
            )
        return scan

    # -- execution -------------------------------------------------------------------------

    def _run(self, plan: _Plan, parameters: list[object], profile: list[ScanProfile] | None = None
             ) -> tuple[pa.Table, int]:
        """Run the plan; stop it after ``query_timeout_s``, and refuse its result past the
        bytes-scanned cutoff, as the Athena workgroup would (it cancels such a query). With
        ``profile``, append what each table scan read to it."""
        timeout = self.settings.query_timeout_s
        con = duckdb.connect()
        timer = threading.Timer(timeout, con.interrupt)
        try:
            con.execute("SET TimeZone = 'UTC'")
            try:
                for scan in plan.scans:
                    con.execute(_view_sql(scan))
                con.execute("PRAGMA enable_profiling = 'no_output'")
                con.execute("SET profiling_mode = 'detailed'")
                timer.start()
                table = con.sql(plan.duckdb_sql, params=parameters or None).to_arrow_table()
            except duckdb.InterruptException:
                raise QueryTimeoutError(
                    f"the query ran longer than IOC_QUERY_TIMEOUT_S={timeout} s and was stopped: "
                    "narrow its partition filter, or raise the timeout") from None
            except duckdb.Error as err:
                raise _translate_duckdb_error(err, plan) from None
            finally:
                timer.cancel()
            bytes_scanned = _bytes_scanned(con)
            if profile is not None:
                tables = {f: s.table.name for s in plan.scans for f in s.files}
                profile += _table_scans(json.loads(con.get_profiling_information(format="json")), tables)
        finally:
            con.close()
        cutoff = self.settings.bytes_scanned_cutoff
        if bytes_scanned > cutoff:
            error = BytesScannedCutoffError(
                f"the query scanned {bytes_scanned / MB:,.1f} MB, past the per-query cutoff of "
                f"{cutoff / MB:,.1f} MB (IOC_BYTES_SCANNED_CUTOFF, the workgroup's limit on Athena): "
                "filter on the partition keys and read fewer columns")
            error.bytes_scanned = bytes_scanned
            raise error
        return table, bytes_scanned

    def _read_footers(self, plan: _Plan) -> None:
        """Read the footers of every file the query selects: rows, and the columns each holds.

        Partitions whose files hold no rows are missing data: even a ``COUNT(*)`` of 0 from them
        would be a wrong answer, so the query fails (except for tables whose DDL allows empty
        partitions: a quiet hour, a day without anomalies). A file that is not Parquet is named here,
        before DuckDB would fail on it less clearly.
        """
        for scan in plan.scans:
            for partition in scan.partitions:
                footers = [self.lake.footer(f) for f in partition.files]
                scan.rows += sum(m.num_rows for m in footers)
                scan.present.append({n.lower() for m in footers for n in m.schema.to_arrow_schema().names})
            if scan.partitions and scan.rows == 0 and not scan.table.allows_empty:
                where = f" matching {scan.filter_sql}" if scan.filter_sql else ""
                labels = ", ".join(p.label() for p in scan.partitions[:5])
                raise NoDataError(
                    f"the partitions of {scan.table.name}{where} hold no rows ({labels}"
                    f"{' ...' if len(scan.partitions) > 5 else ''}): the source data for them is empty"
                )


# -- helpers, kept free of engine state so they read as the steps above ----------------------


_PARAMETER = "__ioc_p"


def _number_placeholders(sql: str, count: int) -> str:
    """Name each ``?`` after its place in the text (``:__ioc_p0``, ...), and check the count.

    Parameters bind to ``?`` in the order of the SQL text (as Athena's ExecutionParameters do),
    but sqlglot's tree keeps clauses in its own order (a SELECT's LIMIT before its WHERE, its
    WITH last), so the placeholders are numbered from the tokens, before parsing.
    """
    try:
        tokens = sqlglot.Dialect.get_or_raise("athena").tokenize(sql)
    except sqlglot.errors.TokenError as err:
        raise SqlSyntaxError(f"syntax error: {err} (an unterminated string or quoted name?)") from None
    marks = [t for t in tokens if t.token_type == sqlglot.tokens.TokenType.PLACEHOLDER and t.text == "?"]
    if len(marks) != count:
        raise QueryError(f"the query has {len(marks)} ? placeholders but {count} parameters were given")
    for i, token in reversed(list(enumerate(marks))):
        sql = f"{sql[:token.start]}:{_PARAMETER}{i}{sql[token.end + 1:]}"
    return sql


def _parameter_index(node: exp.Placeholder) -> int:
    return int(str(node.name).removeprefix(_PARAMETER))


def _as_written(node: exp.Expression) -> str:
    """Athena SQL of ``node`` with its placeholders shown as the ``?`` the user wrote."""
    copy = node.copy()
    for placeholder in list(copy.find_all(exp.Placeholder)):
        placeholder.replace(exp.Placeholder())
    return copy.sql("athena")


def _parse_one(sql: str, parameter_count: int) -> exp.Query:
    try:
        statements = [s for s in sqlglot.parse(_number_placeholders(sql, parameter_count), read="athena")
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


def _lake_tables(tree: exp.Expression, ctes: set[str]) -> list[exp.Table]:
    """The query's references to tables of the lake (not to its own CTEs)."""
    return [ref for ref in tree.find_all(exp.Table) if ref.name and not (ref.name.lower() in ctes and not ref.db)]


def _check_columns(tree: exp.Expression, tables: list[Table]) -> None:
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


def _conjuncts(node: exp.Expression) -> list[exp.Expression]:
    if isinstance(node, exp.And):
        return _conjuncts(node.left) + _conjuncts(node.right)
    if isinstance(node, exp.Paren):
        return _conjuncts(node.this)
    return [node]


def _where_conjuncts(ref: exp.Table) -> list[exp.Expression]:
    """The conjuncts of the WHERE around ``ref``.

    None for a table on the null-supplying side of an outer join: there the WHERE clause sees
    NULLs for rows the table does not have (``LEFT JOIN d ... WHERE d.date IS NULL``), so its
    conditions do not say which of the table's partitions or rows are needed.
    """
    select = ref.find_ancestor(exp.Select)
    where = select.args.get("where") if select else None
    if where is None or _null_supplying(ref, select):
        return []
    return _conjuncts(where.this)


def _partition_conjuncts(ref: exp.Table, table: Table) -> list[exp.Expression]:
    """The WHERE conjuncts around ``ref`` that read only its partition keys."""
    names = {ref.alias_or_name.lower(), table.name}
    keep = []
    for conjunct in _where_conjuncts(ref):
        columns = list(conjunct.find_all(exp.Column))
        if not columns or conjunct.find(exp.Query) or conjunct.find(exp.AggFunc):
            continue
        if all(c.name in table.partition_names and (not c.table or c.table.lower() in names) for c in columns):
            keep.append(conjunct)
    return keep


_COMPARISONS = {exp.EQ: "=", exp.GT: ">", exp.GTE: ">=", exp.LT: "<", exp.LTE: "<="}
_FLIPPED = {"=": "=", ">": "<", ">=": "<=", "<": ">", "<=": ">="}
_INSTANTS = (exp.DataType.Type.TIMESTAMP, exp.DataType.Type.TIMESTAMPTZ, exp.DataType.Type.TIMESTAMPLTZ,
             exp.DataType.Type.TIMESTAMPNTZ, exp.DataType.Type.DATETIME)


def _column_bounds(ref: exp.Table, table: Table, parameters: list[object]
                   ) -> list[tuple[tuple[str, str, object], exp.Expression]]:
    """The WHERE conjuncts around ``ref`` that compare one of its data columns with a constant
    (a literal or a bound parameter), as ``(column, operator, value)`` and the conjunct."""
    names = {ref.alias_or_name.lower(), table.name}
    found = []
    for conjunct in _where_conjuncts(ref):
        operator = _COMPARISONS.get(type(conjunct))
        column, other = conjunct.this, conjunct.expression
        if isinstance(other, exp.Column) and not isinstance(column, exp.Column):
            column, other, operator = other, column, _FLIPPED.get(operator)
        # TIMESTAMP '...', CAST(? AS timestamp): the same instant; any other cast (to a date: it
        # truncates) changes the value, so it is no bound
        while isinstance(other, exp.Cast) and other.to.is_type(*_INSTANTS):
            other = other.this
        if (operator is None or not isinstance(column, exp.Column) or column.table.lower() not in names
                or column.name in table.partition_names):
            continue
        if isinstance(other, exp.Placeholder):
            found.append(((column.name.lower(), operator, parameters[_parameter_index(other)]), conjunct))
        elif isinstance(other, exp.Literal):
            found.append(((column.name.lower(), operator, other.to_py()), conjunct))
    return found


def _null_supplying(ref: exp.Table, select: exp.Select) -> bool:
    joins = select.args.get("joins") or []
    if isinstance(ref.parent, exp.Join):
        return ref.parent.side in ("LEFT", "FULL")
    return any(join.side in ("RIGHT", "FULL") for join in joins)


def _select_partitions(
    table: Table, partitions: list[Partition], conjuncts: list[exp.Expression], parameters: list[object]
) -> list[Partition]:
    """Evaluate the partition conjuncts in DuckDB over the partitions' key values."""
    bound: list[object] = []
    predicates = []
    for conjunct in conjuncts:
        copy = conjunct.copy()
        for placeholder in list(copy.find_all(exp.Placeholder)):
            bound.append(parameters[_parameter_index(placeholder)])
            placeholder.replace(exp.Placeholder(this=str(len(bound))))
        for column in copy.find_all(exp.Column):
            column.set("table", None)
        predicates.append(copy)
    keys = table.partition_names
    values = pa.table({"__index": list(range(len(partitions))),
                       **{k: [p.values[k] for p in partitions] for k in keys}})
    query = exp.select("__index").from_("__partitions").where(exp.and_(*predicates)).sql("duckdb")
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        con.register("__partitions", values)
        rows = con.execute(query, bound or None).fetchall()
    except duckdb.Error as err:
        raise QueryError(f"cannot evaluate the partition filter on {table.name}: {_first_lines(err)}") from None
    finally:
        con.close()
    return [partitions[i] for (i,) in sorted(rows)]


def view_body(table: Table, selected: list[Partition], present: list[set[str]],
              columns: set[str] | None = None) -> str:
    """The SELECT of a view with the table's columns (``columns`` of them only, if given: the
    partition keys always) over only the files of ``selected`` (``present``: per partition, the
    columns its files hold; see :meth:`LocalEngine._read_footers`).

    One ``read_parquet`` per partition, its partition values as constants, all UNION ALL'ed.
    (Deriving the values from DuckDB's ``filename`` column would be one scan, but DuckDB 2.0.1's
    profiler then reports nothing at all whenever a filter on ``filename`` is pushed down, and the
    bytes scanned are what this engine exists to measure.)
    """
    if not selected:
        typed_nulls = [exp.alias_(exp.cast(exp.null(), c.type), c.name, quoted=True) for c in table.all_columns]
        body = exp.select(*typed_nulls).where(exp.false()).sql("duckdb")
    else:
        branches = []
        for partition, held in zip(selected, present, strict=True):
            files = exp.Array(expressions=[exp.Literal.string(f.path) for f in partition.files])
            # can_have_nan: Parquet writers leave NaN out of a column's min/max (pyarrow does), and
            # DuckDB 2.0.1 skips row groups by those statistics, so without it ``isnan(x)`` and
            # ``x > 100`` miss a NaN in a file whose other values are in range.
            source = exp.func("read_parquet", files, exp.EQ(this=exp.var("union_by_name"), expression=exp.true()),
                              exp.EQ(this=exp.var("can_have_nan"), expression=exp.true()))
            # A column the DDL declares but no file of the partition holds reads as NULL, as on Athena.
            wanted = [c for c in table.columns if columns is None or c.name.lower() in columns]
            if not wanted and not table.partition_names:
                wanted = table.columns[:1]  # a SELECT needs one column
            projected = [exp.column(c.name, quoted=True) if c.name.lower() in held
                         else exp.alias_(exp.cast(exp.null(), c.type), c.name, quoted=True) for c in wanted]
            keys = [exp.alias_(exp.Literal.string(partition.values[k]), k, quoted=True) for k in table.partition_names]
            branches.append(exp.select(*projected, *keys).from_(source).sql("duckdb"))
        body = " UNION ALL ".join(branches)
    return body


def _view_sql(scan: _Scan) -> str:
    body = view_body(scan.table, scan.partitions, scan.present, scan.columns_read)
    return f"CREATE TEMP VIEW {exp.to_identifier(scan.view).sql('duckdb')} AS {body}"


_DATA_READ = re.compile(r"Data Read:\s*([\d.]+)\s*(B|kB|MB|GB|TB)\b")
_UNITS = {"B": 1, "kB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12}


def _bytes_scanned(con: duckdb.DuckDBPyConnection) -> int:
    """The bytes the last query read, from DuckDB's profiler.

    When DuckDB answers a query from Parquet statistics alone (``COUNT(*)``, ``MAX`` of one file:
    the plan is a constant "Column Data Scan"), its JSON profile says only ``"result": "error"``
    (DuckDB 2.0.1); the text summary still reports the footer bytes it read, so use that.
    """
    profile = json.loads(con.get_profiling_information(format="json"))
    if "query" in profile:
        return int(profile["query"]["total_bytes_scanned"])
    match = _DATA_READ.search(con.get_profiling_information(format="text"))
    if match is None:
        raise QueryError("DuckDB's profiler reported no bytes scanned for this query")
    return round(float(match.group(1)) * _UNITS[match.group(2)])


@dataclass
class ScanPlan:
    """What one table reference of a query would read (:meth:`LocalEngine.scan_plan`)."""

    table: str
    files: list[str]
    columns: set[str]
    #: ``(column, operator, value)``: the WHERE's comparisons of a data column with a constant.
    bounds: list[tuple[str, str, object]]
    #: The columns read only by those comparisons.
    filter_only: set[str]


@dataclass
class ScanProfile:
    """One table scan of a query run: the table, the columns read, the rows of the row groups read."""

    table: str
    columns: list[str]
    rows: int


def _table_scans(profile: dict, tables: Mapping[str, str]) -> list[ScanProfile]:
    """The ``TABLE_SCAN`` operators of a JSON profile whose files belong to ``tables`` (path to
    table name)."""
    found = []
    pending = list(profile.get("children", [])) + list(profile.get("operator", []))
    while pending:
        node = pending.pop()
        pending += node.get("children", [])
        info = node.get("extra_info", {})
        if node.get("type") != "TABLE_SCAN" or "Filename(s)" not in info:
            continue
        first = str(info["Filename(s)"]).split(",")[0].strip()
        projections = info.get("Projections", [])
        columns = projections if isinstance(projections, list) else str(projections).replace(",", "\n").split("\n")
        if first in tables:
            found.append(ScanProfile(tables[first], [c.strip() for c in columns if c.strip()],
                                     int(node.get("rows_scanned", 0))))
    return found


def _fix_dialect_gaps(tree: exp.Expression) -> None:
    """Patch what sqlglot's Trino-to-DuckDB transpilation gets wrong (types come from ``_typed``'s
    annotation, so this holds for columns, aliases and expressions alike).

    - ``count_if(c)`` is NULL in DuckDB 2.0.1 when every ``c`` of the group is NULL (a group of
      abandoned sessions without a completion time); Athena counts 0: ``count_if(coalesce(c, false))``.
    - ``cardinality(m)`` comes out as ``ARRAY_LENGTH(m)``, which DuckDB refuses for maps;
      DuckDB's ``cardinality`` counts map entries as Athena's does.
    - ``approx_percentile`` becomes DuckDB's ``reservoir_quantile`` over a uniform sample of
      RESERVOIR_SIZE values per group: exact below that, a rank error of about 0.4 % (one
      standard deviation) above it, within Athena's own (its default accuracy is 1 %). DuckDB's
      ``approx_quantile`` (a t-digest) is three times slower here, and sqlglot casts its list
      form (``approx_percentile(x, ARRAY[...])``: several percentiles, one pass) to DOUBLE.
    - ``CROSS JOIN UNNEST(m) AS t(k, v)`` gives one row per map entry on Athena; DuckDB's UNNEST
      takes lists only, so it becomes a lateral subquery that unnests the keys and the values
      side by side.
    """
    for node in list(tree.find_all(exp.CountIf)):
        node.set("this", exp.func("coalesce", node.this.copy(), exp.false()))
    for node in list(tree.find_all(exp.ArraySize)):
        if _is_map(node.this):
            node.replace(exp.Anonymous(this="cardinality", expressions=[node.this.copy()]))
    for node in list(tree.find_all(exp.ApproxQuantile)):
        if not node.args.get("weight") and not node.args.get("accuracy"):
            node.replace(exp.Anonymous(this="reservoir_quantile", expressions=[
                node.this.copy(), node.args["quantile"].copy(), exp.Literal.number(RESERVOIR_SIZE)]))
    for node in list(tree.find_all(exp.Unnest)):
        alias = node.args.get("alias")
        if len(node.expressions) != 1 or not _is_map(node.expressions[0]) or not alias or len(alias.columns) != 2:
            continue
        source = node.expressions[0]
        key, value = alias.columns
        entries = exp.select(
            exp.alias_(exp.Unnest(expressions=[exp.func("map_keys", source.copy())]), key.copy()),
            exp.alias_(exp.Unnest(expressions=[exp.func("map_values", source.copy())]), value.copy()),
        )
        node.replace(exp.Lateral(this=exp.Subquery(this=entries), alias=exp.TableAlias(this=alias.this)))


def _is_map(node: exp.Expression) -> bool:
    return node.type is not None and node.type.this == exp.DataType.Type.MAP


def _first_lines(err: Exception) -> str:
    text = str(err).split("\n\nLINE")[0].strip()
    return re.sub(rf"{_VIEW_PREFIX}(\w+?)_\d+", r"\1", text)


def _translate_duckdb_error(err: duckdb.Error, plan: _Plan) -> QueryError:
    message = _first_lines(err)
    if isinstance(err, duckdb.BinderException) and "column" in message.lower():
        tables = ", ".join(sorted({s.table.name for s in plan.scans}))
        message = " ".join(message.removeprefix("Binder Error: ").split())  # DuckDB puts the candidates on a new line
        return UnknownColumnError(f"{message} (tables read: {tables})")
    if isinstance(err, duckdb.ParserException):
        return SqlSyntaxError(f"DuckDB cannot run the translated query: {message}")
    return QueryError(message)
