"""The static cost guard: every SQL file under ``include/ioc_analytics/sql/`` is read as Athena would
read it, and two things that make a query expensive fail the build, with the file and line:

- a partitioned table read without a filter on its partition keys (Athena then scans every
  partition of the table: the guide's costliest mistake);
- ``SELECT *`` on a raw table (it reads every column, maps included, of a wide table).

The partition filter is recognised as the local engine's pruning recognises it
(:func:`ioc_analytics.lake.filters.partition_conjuncts`): conjuncts of the table's own WHERE that
read only its partition keys, not on the null-supplying side of an outer join. The cost monitor
uses :func:`check_sql` to say why a query it flags was expensive.

The estimate of each query's scan on a 90-day lake is :mod:`ioc_analytics.devtools.costguard`'s.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path

import sqlglot
from sqlglot import exp

from ioc_analytics.lake.catalog import Catalog, load_catalog
from ioc_analytics.lake.filters import partition_conjuncts
from ioc_analytics.lake.tables import RAW_TABLES
from ioc_analytics.settings import PROJECT_ROOT, SQL_DIR


@dataclass(frozen=True)
class Finding:
    path: str
    line: int
    problem: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.problem}"


#: Partition keys that spread a table over time: a filter must narrow one of them, or the read
#: spans the whole history (a filter on ``assessment_type`` alone still reads every day).
TIME_KEYS = ("date", "year")


def check_sql(text: str, path: str) -> list[Finding]:
    """The findings in one statement (Jinja placeholders may stand for bound values); raises
    sqlglot's ``ParseError`` for text that is not Athena SQL."""
    catalog = _catalog()
    bound = re.sub(r"\{\{.*?\}\}", "?", text)  # a bound value, as the engines see it
    tree = sqlglot.parse_one(bound, read="athena")
    ctes = {cte.alias_or_name.lower() for cte in tree.find_all(exp.CTE)}
    findings = []
    for ref in tree.find_all(exp.Table):
        name = ref.name.lower()
        if name in ctes or name not in catalog.tables:
            continue
        table = catalog.table(name)
        line = ref.this.meta.get("line", 0) if isinstance(ref.this, exp.Identifier) else 0
        conjuncts = partition_conjuncts(ref, table)
        filtered = {c.name.lower() for conjunct in conjuncts for c in conjunct.find_all(exp.Column)}
        over_time = [k for k in TIME_KEYS if k in table.partition_names]
        if table.partition_names and not filtered:
            findings.append(Finding(path, line, f"reads {name} without a filter on its partition keys "
                                                f"({', '.join(table.partition_names)}): Athena would scan "
                                                "every partition"))
        elif over_time and not filtered & set(over_time):
            findings.append(Finding(path, line, f"reads {name} with a filter on {', '.join(sorted(filtered))} but "
                                                f"not on {over_time[0]}: Athena would scan every {over_time[0]}"))
        select = ref.find_ancestor(exp.Select)
        alias = (ref.alias or ref.name).lower()
        if name in RAW_TABLES and select is not None and any(
                isinstance(e, exp.Star) or (isinstance(e, exp.Column) and isinstance(e.this, exp.Star)
                                            and e.table.lower() in ("", alias)) for e in select.expressions):
            findings.append(Finding(path, line, f"SELECT * on the raw table {name}: name the columns it needs"))
    return findings


@functools.cache
def _catalog() -> Catalog:
    return load_catalog("/lake")


def _query_files(root: Path) -> list[Path]:
    return [p for p in sorted(root.rglob("*.sql")) if p.relative_to(root).parts[0] != "ddl"]


def _shown(path: Path) -> str:
    """The file as the checkout names it (``include/ioc_analytics/sql/...``), else its whole path."""
    return str(path.relative_to(PROJECT_ROOT)) if path.is_relative_to(PROJECT_ROOT) else str(path)


def check_files(root: Path = SQL_DIR) -> list[Finding]:
    """The static findings in every query file under ``root`` (the DDL aside)."""
    from sqlglot.errors import ParseError

    from ioc_analytics.lake import sql

    findings = []
    for path in _query_files(root):
        try:
            for text in sql.variants(path.stem, path.read_text()):
                findings += [f for f in check_sql(text, _shown(path)) if f not in findings]
        except ParseError as err:
            where = err.errors[0] if err.errors else {}
            findings.append(Finding(_shown(path), where.get("line", 1),
                                    f"does not parse as Athena SQL: {where.get('description', err)}"))
    return findings
