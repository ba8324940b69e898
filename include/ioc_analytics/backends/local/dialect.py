"""Where DuckDB and Athena disagree, and the local engine makes DuckDB answer as Athena would; and
DuckDB's errors in Athena's terms."""

from __future__ import annotations

import duckdb
from sqlglot import exp

from ioc_analytics.backends.local.planner import Plan, first_lines
from ioc_analytics.errors import (
    QueryError,
    SqlSyntaxError,
    UnknownColumnError,
)

#: Values sampled per group for approx_percentile (see fix_dialect_gaps).
RESERVOIR_SIZE = 16384


def fix_dialect_gaps(tree: exp.Expression) -> None:
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
        if is_map(node.this):
            node.replace(exp.Anonymous(this="cardinality", expressions=[node.this.copy()]))
    for node in list(tree.find_all(exp.ApproxQuantile)):
        if not node.args.get("weight") and not node.args.get("accuracy"):
            node.replace(exp.Anonymous(this="reservoir_quantile", expressions=[
                node.this.copy(), node.args["quantile"].copy(), exp.Literal.number(RESERVOIR_SIZE)]))
    for node in list(tree.find_all(exp.Unnest)):
        alias = node.args.get("alias")
        if len(node.expressions) != 1 or not is_map(node.expressions[0]) or not alias or len(alias.columns) != 2:
            continue
        source = node.expressions[0]
        key, value = alias.columns
        entries = exp.select(
            exp.alias_(exp.Unnest(expressions=[exp.func("map_keys", source.copy())]), key.copy()),
            exp.alias_(exp.Unnest(expressions=[exp.func("map_values", source.copy())]), value.copy()),
        )
        node.replace(exp.Lateral(this=exp.Subquery(this=entries), alias=exp.TableAlias(this=alias.this)))


def is_map(node: exp.Expression) -> bool:
    return node.type is not None and node.type.this == exp.DataType.Type.MAP


def translate_duckdb_error(err: duckdb.Error, plan: Plan) -> QueryError:
    message = first_lines(err)
    if isinstance(err, duckdb.BinderException) and "column" in message.lower():
        tables = ", ".join(sorted({s.table.name for s in plan.scans}))
        message = " ".join(message.removeprefix("Binder Error: ").split())  # DuckDB puts the candidates on a new line
        return UnknownColumnError(f"{message} (tables read: {tables})")
    if isinstance(err, duckdb.ParserException):
        return SqlSyntaxError(f"DuckDB cannot run the translated query: {message}")
    return QueryError(message)
