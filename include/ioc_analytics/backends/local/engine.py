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

import json
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from functools import cached_property

import duckdb
import pyarrow as pa
import sqlglot
from sqlglot import exp
from sqlglot.optimizer.annotate_types import annotate_types
from sqlglot.optimizer.qualify import qualify
from sqlglot.schema import MappingSchema

from ioc_analytics import embedded
from ioc_analytics.backends.local.dialect import fix_dialect_gaps, translate_duckdb_error
from ioc_analytics.backends.local.lake import LocalLake
from ioc_analytics.backends.local.planner import (
    VIEW_PREFIX,
    Plan,
    Scan,
    as_written,
    check_columns,
    column_bounds,
    parse_one,
    select_partitions,
    view_sql,
)
from ioc_analytics.backends.local.profile import ScanProfile, scanned_bytes, table_scans
from ioc_analytics.engine import lineage
from ioc_analytics.engine.base import MB, QueryResult, QueryStats, athena_cost, with_tags
from ioc_analytics.errors import (
    BytesScannedCutoffError,
    IocError,
    NoDataError,
    QueryError,
    QueryTimeoutError,
    UnknownTableError,
)
from ioc_analytics.jsonlines import JsonLines
from ioc_analytics.lake import partitions
from ioc_analytics.lake.catalog import Catalog, Table
from ioc_analytics.lake.filters import lake_tables, parameter_index, partition_conjuncts
from ioc_analytics.lake.partitions import PartitionRegistry
from ioc_analytics.lake.tables import RAW_TABLES
from ioc_analytics.settings import Settings
from ioc_analytics.text import plural


class LocalEngine:
    backend = "local"

    def __init__(self, settings: Settings, catalog: Catalog, lake: LocalLake,
                 registry: PartitionRegistry) -> None:
        """Built by the backend (:func:`ioc_analytics.backends.get_backend`), which hands it its parts."""
        self.settings = settings
        self.catalog: Catalog = catalog
        self.lake = lake
        self.registry = registry
        self.log = JsonLines(settings.query_log_path)

    # -- the Engine interface -------------------------------------------------------------

    def lineage_name(self, table: str) -> tuple[str, str]:
        """A table's OpenLineage namespace (DuckDB over this lake) and name."""
        return f"duckdb://{self.settings.lake_uri}", f"{self.catalog.database}.{table}"

    def query(
        self,
        sql: str,
        parameters: Sequence[object] = (),
        tags: Mapping[str, str] | None = None,
        reuse_minutes: int = 0,
        sink: Callable[[pa.RecordBatchReader], int] | None = None,
    ) -> QueryResult:
        """Run one query (see the module). With ``sink``, its rows are handed to it as a stream of
        batches instead (it returns how many it took), so that a large result (a state table of
        millions of users) is never whole in memory. With ``reuse_minutes``, a query whose text, values and
        files (paths, sizes, modification times) are those of one run within that many minutes is
        answered from that run's result, kept under ``<state_dir>/results/`` (as Athena's query
        result reuse answers from the earlier result: nothing scanned, nothing billed)."""
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
            plan = self.plan(sql, list(parameters))
            kept = self._results.get(plan, list(parameters), reuse_minutes) if reuse_minutes else None
            if kept is not None:
                stats = QueryStats(query_id, "SUCCEEDED", elapsed_s=time.perf_counter() - started, rows=kept.num_rows,
                                   tags=dict(tags or {}), reused=True)
                self.log.append({**record, **stats.as_dict()})
                lineage.queried(self.catalog, sql, parameters, stats)
                return QueryResult(kept, stats)
            self._read_footers(plan)
            table, bytes_scanned, rows = self._run(plan, list(parameters), sink=sink)
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
            lineage.queried(self.catalog, sql, parameters, stats)
            raise
        stats = QueryStats(
            query_id,
            "SUCCEEDED",
            bytes_scanned=bytes_scanned,
            elapsed_s=time.perf_counter() - started,
            cost_usd=athena_cost(bytes_scanned),
            rows=rows,
            partitions_scanned=sum(len(s.partitions) for s in plan.scans),
            files_scanned=sum(len(s.files) for s in plan.scans),
            tags=dict(tags or {}),
        )
        self.log.append({**record, **stats.as_dict()})
        lineage.queried(self.catalog, sql, parameters, stats)
        if reuse_minutes and table is not None:
            try:
                self._results.put(plan, list(parameters), table)
            except OSError as err:  # a result not kept is only a scan more next time
                logging.getLogger(__name__).warning("could not keep the result for reuse: %s", err)
        return QueryResult(table if table is not None else pa.table({}), stats)

    def replace_partition(
        self,
        table: str,
        partition: Mapping[str, str],
        select_sql: str,
        parameters: Sequence[object] = (),
        tags: Mapping[str, str] | None = None,
        sidecars: Mapping[str, bytes] | None = None,
    ) -> QueryStats:
        """Run ``select_sql`` and publish its rows as the partition's new version (see partitions.py),
        with ``sidecars`` beside them. The rows stream from DuckDB into the version's file, batch
        by batch; the version is published once the query has finished within its cutoff."""
        target = self.catalog.table(table)
        values = dict(partition)
        target.check_partition_values(values)
        partitions.check_versioned(target)
        expected = [c.name for c in target.columns]
        written: list[str] = []

        def write(reader: pa.RecordBatchReader) -> int:
            if reader.schema.names != expected:
                raise QueryError(f"the query for {target.name} returns columns ({', '.join(reader.schema.names)}) "
                                 f"but the table declares ({', '.join(expected)}): make the SELECT list match the DDL")
            counted = _Counted(reader)
            written.append(partitions.write_version(self.lake, target, values, counted, sidecars))
            return counted.rows

        try:
            result = self.query(select_sql, parameters, tags, sink=write)
        except BaseException:
            for location in written:  # past the cutoff, or stopped: the version is never published
                self.lake.delete_prefix(location)
            raise
        partitions.publish(self.lake, self.registry, target, values, written[0])
        return result.stats

    def scanned(self, sql: str, parameters: Sequence[object] = ()) -> list[ScanProfile]:
        """Run the query and say what each of DuckDB's table scans read: the table, its columns,
        and the rows of the row groups it read, after partition pruning and after the row groups
        that the Parquet statistics rule out (for the cost guard's estimate)."""
        plan = self.plan(sql, list(parameters))
        self._read_footers(plan)
        scans: list[ScanProfile] = []
        self._run(plan, list(parameters), profile=scans)
        return scans

    @cached_property
    def _results(self) -> ResultCache:
        return ResultCache(self.settings.result_cache_dir)

    # -- planning ---------------------------------------------------------------------------

    def plan(self, sql: str, parameters: list[object], with_bounds: bool = False) -> Plan:
        tree = parse_one(sql, len(parameters))
        ctes = {cte.alias_or_name.lower() for cte in tree.find_all(exp.CTE)}
        refs = lake_tables(tree, ctes)
        for ref in refs:
            if ref.db and ref.db.lower() != self.settings.database.lower():
                raise UnknownTableError(
                    f"database {ref.db!r} does not exist here; the tables live in {self.settings.database}"
                )
        # Unknown tables and columns fail here, with suggestions, before anything is read.
        check_columns(tree, [self.catalog.table(ref.name) for ref in refs])
        tree = self._typed(tree)
        plan = Plan(duckdb_sql="")
        for ref in lake_tables(tree, ctes):
            table = self.catalog.table(ref.name)
            scan = self._scan(ref, table, len(plan.scans), parameters)
            alias = (ref.alias or table.name).lower()
            scope = ref.find_ancestor(exp.Select) or tree
            scan.columns_read = {c.name.lower() for c in scope.find_all(exp.Column) if c.table.lower() == alias}
            if any(not isinstance(star.parent, exp.AggFunc) for star in scope.find_all(exp.Star)):
                scan.columns_read = {c.name.lower() for c in table.all_columns}  # a star qualify left alone
            where = scope.args.get("where")
            filtered = {c.name.lower() for c in (where.find_all(exp.Column) if where else ())
                        if c.table.lower() == alias}
            # A scan that reads only what its WHERE names (a COUNT(*)) is answered from the footers
            # when the statistics decide the WHERE, in one read_parquet; the others read a file a
            # branch (see ioc_analytics.engine.views.view_body).
            scan.by_file = bool(scan.columns_read - filtered)
            if with_bounds:  # only scan_plan's callers (benchmarks) need them
                comparisons = column_bounds(ref, table, parameters)
                scan.bounds = [bound for bound, _ in comparisons]
                inside = {id(c) for _, node in comparisons for c in node.find_all(exp.Column)}
                scan.filter_only = scan.columns_read - {c.name.lower() for c in scope.find_all(exp.Column)
                                                        if c.table.lower() == alias and id(c) not in inside}
            plan.scans.append(scan)
            alias = ref.alias or table.name
            ref.replace(exp.to_table(scan.view).as_(alias))
        if plan.scans and all(s.empty_reason for s in plan.scans):
            raise NoDataError("; ".join(s.empty_reason for s in plan.scans))
        fix_dialect_gaps(tree)
        for placeholder in list(tree.find_all(exp.Placeholder)):  # DuckDB binds $n by position
            placeholder.replace(exp.Placeholder(this=str(parameter_index(placeholder) + 1)))
        plan.duckdb_sql = tree.sql(dialect="duckdb")
        return plan

    @cached_property
    def _schema(self) -> MappingSchema:
        """The catalog's column types, as sqlglot's optimizer reads them (built once: it is read
        by every query's plan)."""
        return MappingSchema({self.settings.database: {
            t.name: {c.name: c.type.sql("trino") for c in t.all_columns} for t in self.catalog.tables.values()
        }}, dialect="athena")

    def _typed(self, tree: exp.Query) -> exp.Query:
        """Qualify every column with its table and annotate every expression's type.

        Athena divides integers as integers (``7 / 2`` is 3) and DuckDB does not; sqlglot writes
        DuckDB's integer division only where it knows both sides are integers, which takes the
        catalog's column types and columns resolved to their tables.
        """
        schema = self._schema
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

    def _scan(self, ref: exp.Table, table: Table, index: int, parameters: list[object]) -> Scan:
        # As on Athena: a table with projection has the partitions its layout finds in the lake;
        # one without has the partitions registered in the catalog.
        listing = (self.lake.list_table(table) if table.projection_enabled
                   else partitions.registered_listing(self.lake, self.registry, table))
        view = f"{VIEW_PREFIX}{table.name}_{index}"
        if not listing.partitions:
            fix = ("generate a sample lake with `ioc generate`, or check IOC_LAKE_ROOT" if table.name in RAW_TABLES
                   else "the daily DAG writes it: run the DAG for the dates you need")
            return Scan(table, view, [], None, empty_reason=(
                f"{table.name} has no data: no Parquet files under {table.location} in its layout "
                f"({table.location_template}): {fix}"
            ))
        conjuncts = partition_conjuncts(ref, table)
        if not conjuncts:
            return Scan(table, view, listing.partitions, None)
        selected = select_partitions(table, listing.partitions, conjuncts, parameters)
        filter_sql = " AND ".join(as_written(c) for c in conjuncts)
        scan = Scan(table, view, selected, filter_sql)
        if not selected:
            first, last = listing.partitions[0], listing.partitions[-1]
            bound = f" with parameters {parameters}" if parameters else ""
            scan.empty_reason = (
                f"{table.name} has no partitions matching {filter_sql}{bound} "
                f"(the lake holds {plural(len(listing.partitions), 'partition')}, "
                f"from {first.label()} to {last.label()})"
            )
        return scan

    # -- execution -------------------------------------------------------------------------

    def _run(self, plan: Plan, parameters: list[object], profile: list[ScanProfile] | None = None,
             sink: Callable[[pa.RecordBatchReader], int] | None = None) -> tuple[pa.Table | None, int, int]:
        """Run the plan; stop it after ``query_timeout_s``, and refuse its result past the
        bytes-scanned cutoff, as the Athena workgroup would (it cancels such a query). With
        ``profile``, append what each table scan read to it; with ``sink``, stream the rows to it
        (the table returned is then None). Returns the table, the bytes scanned and the rows."""
        timeout = self.settings.query_timeout_s
        con = embedded.connect()
        timer = threading.Timer(timeout, con.interrupt)
        try:
            try:
                for scan in plan.scans:
                    con.execute(view_sql(scan))
                con.execute("PRAGMA enable_profiling = 'no_output'")
                con.execute("SET profiling_mode = 'detailed'")
                timer.start()
                relation = con.sql(plan.duckdb_sql, params=parameters or None)
                if sink is None:
                    table = relation.to_arrow_table()
                    rows = table.num_rows
                else:
                    table, rows = None, sink(relation.to_arrow_reader(STREAM_BATCH_ROWS))
            except duckdb.InterruptException:
                raise QueryTimeoutError(
                    f"the query ran longer than IOC_QUERY_TIMEOUT_S={timeout} s and was stopped: "
                    "narrow its partition filter, or raise the timeout") from None
            except duckdb.Error as err:
                raise translate_duckdb_error(err, plan) from None
            finally:
                timer.cancel()
            bytes_scanned = scanned_bytes(con)
            if profile is not None:
                tables = {f: s.table.name for s in plan.scans for f in s.files}
                profile += table_scans(json.loads(con.get_profiling_information(format="json")), tables)
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
        return table, bytes_scanned, rows

    def _read_footers(self, plan: Plan) -> None:
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
                for file, meta in zip(partition.files, footers, strict=True):
                    scan.file_columns[file.path] = {n.lower() for n in meta.schema.to_arrow_schema().names}
                scan.present.append({n for f in partition.files for n in scan.file_columns[f.path]})
            if scan.partitions and scan.rows == 0 and not scan.table.allows_empty:
                where = f" matching {scan.filter_sql}" if scan.filter_sql else ""
                labels = ", ".join(p.label() for p in scan.partitions[:5])
                raise NoDataError(
                    f"the partitions of {scan.table.name}{where} hold no rows ({labels}"
                    f"{' ...' if len(scan.partitions) > 5 else ''}): the source data for them is empty"
                )


# -- helpers, kept free of engine state so they read as the steps above ----------------------


#: Rows per batch when a result streams into a partition's file.
STREAM_BATCH_ROWS = 500_000


class _Counted:
    """A record batch reader that counts the rows it hands on."""

    def __init__(self, reader: pa.RecordBatchReader) -> None:
        self.reader, self.rows, self.schema = reader, 0, reader.schema

    def __iter__(self):
        for batch in self.reader:
            self.rows += batch.num_rows
            yield batch


class ResultCache:
    """Results kept for reuse, one Parquet file each under ``folder``, named by a digest of the
    query as DuckDB runs it, its values, and every file it reads (path, size, modification time):
    new data, a rebuilt partition or a deleted file is another key, so a kept result is never
    stale. Written whole under a temporary name and renamed, so a reader never sees half of one;
    files older than the longest reuse (7 days, as on Athena) are removed as new ones are kept.

    Written here because DuckDB keeps no results between connections and Airflow's caches hold
    no tables; this is the local engine's side of Athena's query result reuse.
    """

    MAX_AGE_S = 7 * 24 * 3600

    def __init__(self, folder) -> None:
        from pathlib import Path

        self.folder = Path(folder)

    def _path(self, plan: Plan, parameters: list[object]):
        from ioc_analytics.lake.store import fingerprint

        files = (f for s in plan.scans for p in s.partitions for f in p.files)
        return self.folder / f"{fingerprint(files, plan.duckdb_sql, parameters)}.parquet"

    def get(self, plan: Plan, parameters: list[object], minutes: int) -> pa.Table | None:
        import pyarrow.parquet as pq

        path = self._path(plan, parameters)
        try:
            if time.time() - path.stat().st_mtime <= minutes * 60:
                return pq.read_table(path)
        except (OSError, pa.ArrowException):
            return None  # none kept, or removed meanwhile: run the query
        return None

    def put(self, plan: Plan, parameters: list[object], table: pa.Table) -> None:
        import pyarrow.parquet as pq

        self.folder.mkdir(parents=True, exist_ok=True)
        path = self._path(plan, parameters)
        temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
        pq.write_table(table, temporary, compression="snappy")
        temporary.replace(path)
        for old in self.folder.glob("*.parquet"):
            try:
                if time.time() - old.stat().st_mtime > self.MAX_AGE_S:
                    old.unlink()
            except OSError:
                pass  # removed by another process


