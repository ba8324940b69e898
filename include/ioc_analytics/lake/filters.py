"""What a query's WHERE says about a table reference: its conjuncts, and those on the table's
partition keys (the local engine prunes partitions with them; the cost guard and the cost
monitor's explanations flag a read of a partitioned table without them)."""

from __future__ import annotations

import sqlglot
from sqlglot import exp

from ioc_analytics.errors import QueryError, SqlSyntaxError
from ioc_analytics.lake.catalog import Table


def conjuncts(node: exp.Expression) -> list[exp.Expression]:
    if isinstance(node, exp.And):
        return conjuncts(node.left) + conjuncts(node.right)
    if isinstance(node, exp.Paren):
        return conjuncts(node.this)
    return [node]


def where_conjuncts(ref: exp.Table) -> list[exp.Expression]:
    """The conjuncts of the WHERE around ``ref``.

    None for a table on the null-supplying side of an outer join: there the WHERE clause sees
    NULLs for rows the table does not have (``LEFT JOIN d ... WHERE d.date IS NULL``), so its
    conditions do not say which of the table's partitions or rows are needed.
    """
    select = ref.find_ancestor(exp.Select)
    where = select.args.get("where") if select else None
    if where is None or null_supplying(ref, select):
        return []
    return conjuncts(where.this)


def partition_conjuncts(ref: exp.Table, table: Table) -> list[exp.Expression]:
    """The WHERE conjuncts around ``ref`` that read only its partition keys."""
    names = {ref.alias_or_name.lower(), table.name}
    keep = []
    for conjunct in where_conjuncts(ref):
        columns = list(conjunct.find_all(exp.Column))
        if not columns or conjunct.find(exp.Query) or conjunct.find(exp.AggFunc):
            continue
        if all(c.name in table.partition_names and (not c.table or c.table.lower() in names) for c in columns):
            keep.append(conjunct)
    return keep


def null_supplying(ref: exp.Table, select: exp.Select) -> bool:
    joins = select.args.get("joins") or []
    if isinstance(ref.parent, exp.Join):
        return ref.parent.side in ("LEFT", "FULL")
    return any(join.side in ("RIGHT", "FULL") for join in joins)


PARAMETER = "__ioc_p"


def number_placeholders(sql: str, count: int) -> str:
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
        sql = f"{sql[:token.start]}:{PARAMETER}{i}{sql[token.end + 1:]}"
    return sql


def parameter_index(node: exp.Placeholder) -> int:
    return int(str(node.name).removeprefix(PARAMETER))


def lake_tables(tree: exp.Expression, ctes: set[str]) -> list[exp.Table]:
    """The query's references to tables of the lake (not to its own CTEs)."""
    return [ref for ref in tree.find_all(exp.Table) if ref.name and not (ref.name.lower() in ctes and not ref.db)]
