"""The DuckDB view over a table's Parquet files: the columns a file lacks read as NULL, as Athena
reads them (the local engine's scans and the quality runner's slices both read through it)."""

from __future__ import annotations

from collections.abc import Mapping

from sqlglot import exp

from ioc_analytics.lake.catalog import Table
from ioc_analytics.lake.store import Partition


def view_body(table: Table, selected: list[Partition], present: list[set[str]],
              columns: set[str] | None = None, file_columns: Mapping[str, set[str]] | None = None) -> str:
    """The SELECT of a view with the table's columns (``columns`` of them only, if given: the
    partition keys always) over only the files of ``selected`` (``present``: per partition, the
    columns its files hold; see :meth:`LocalEngine._read_footers`).

    One ``read_parquet`` per partition, its partition values as constants, all UNION ALL'ed; with
    ``file_columns`` (each file's own columns, from its footer), one per file instead (up to
    ``FILES_PER_BRANCH`` files a partition). A file a branch of its own: DuckDB 2.0.1 drops a filter
    that a row group's statistics decide only in a scan of one file, so a day's query over a
    month partition of ``ocean_scores`` would otherwise read the day's ``timestamp`` column to
    filter rows that the statistics already prove in range (1.43 times what it needs, for
    ``dark_side_summary``). (Deriving the values from DuckDB's ``filename`` column would be one
    scan, but DuckDB 2.0.1's profiler then reports nothing at all whenever a filter on
    ``filename`` is pushed down, and the bytes scanned are what this engine exists to measure.)
    """
    if not selected:
        typed_nulls = [exp.alias_(exp.cast(exp.null(), c.type), c.name, quoted=True) for c in table.all_columns]
        body = exp.select(*typed_nulls).where(exp.false()).sql("duckdb")
    else:
        branches = []
        for partition, held in zip(selected, present, strict=True):
            if file_columns is not None and len(partition.files) <= FILES_PER_BRANCH:
                branches += [_branch(table, partition, file_columns[f.path], [f], columns) for f in partition.files]
            else:
                branches.append(_branch(table, partition, held, partition.files, columns))
        body = " UNION ALL ".join(branches)
    return body


#: Past this many files, a partition's files are read in one branch (one ``read_parquet``).
FILES_PER_BRANCH = 64


def _branch(table: Table, partition: Partition, held: set[str], group: list, columns: set[str] | None) -> str:
    """One branch of the view: the files ``group`` of ``partition``."""
    files = exp.Array(expressions=[exp.Literal.string(f.path) for f in group])
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
    return exp.select(*projected, *keys).from_(source).sql("duckdb")
