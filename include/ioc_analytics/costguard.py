"""The static cost guard (issue 7, first part): every SQL file under ``include/sql/`` is read as
Athena would read it, and two things that make a query expensive fail the build, with the file
and line:

- a partitioned table read without a filter on its partition keys (Athena then scans every
  partition of the table: the guide's costliest mistake);
- ``SELECT *`` on a raw table (it reads every column, maps included, of a wide table).

The partition filter is recognised as the local engine's pruning recognises it
(``engine.local._partition_conjuncts``): conjuncts of the table's own WHERE that read only its
partition keys, not on the null-supplying side of an outer join.

Not yet: the scan estimate on a 90-day lake against the cutoff (the rest of issue 7's guard).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import sqlglot
from sqlglot import exp

from ioc_analytics.catalog import load_catalog
from ioc_analytics.engine.local import _partition_conjuncts
from ioc_analytics.settings import SQL_DIR
from ioc_analytics.tables import RAW_TABLES


@dataclass(frozen=True)
class Finding:
    path: str
    line: int
    problem: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.problem}"


def check_sql(text: str, path: str) -> list[Finding]:
    """The findings in one statement (Jinja placeholders may stand for bound values)."""
    catalog = load_catalog("/lake")
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
        if table.partition_names and not _partition_conjuncts(ref, table):
            findings.append(Finding(path, line, f"reads {name} without a filter on its partition keys "
                                                f"({', '.join(table.partition_names)}): Athena would scan "
                                                "every partition"))
        select = ref.find_ancestor(exp.Select)
        if name in RAW_TABLES and select is not None and any(isinstance(e, exp.Star) for e in select.expressions):
            findings.append(Finding(path, line, f"SELECT * on the raw table {name}: name the columns it needs"))
    return findings


def check_files(root: Path = SQL_DIR) -> list[Finding]:
    """Every query file under ``root`` (the DDL aside)."""
    findings = []
    for path in sorted(root.rglob("*.sql")):
        if path.relative_to(root).parts[0] != "ddl":
            findings += check_sql(path.read_text(), str(path.relative_to(root.parent.parent)))
    return findings
