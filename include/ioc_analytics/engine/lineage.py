"""What a task read, wrote and cost, for OpenLineage.

The Airflow OpenLineage provider emits a START and a COMPLETE (or FAIL) event for every task, and
asks an operator for its datasets through ``get_openlineage_facets_on_complete``. A step's
datasets are known only as it runs (which partitions its SQL selects, which version it published,
which export files it wrote), so a step runs under :func:`recording`, and the parts that touch the
lake report to the record in force:

- both engines, after each query: the catalog tables its SQL reads, each with the condition on its
  partition keys as the query bound it (``date >= '2024/02/05' AND date <= '2024/03/05'``), and
  the bytes it scanned and what that cost (:func:`queried`);
- :func:`ioc_analytics.lake.partitions.publish`: the partition it switched to a new version
  (:func:`published`);
- the exports: each file written (:func:`wrote_file`).

The step's operator turns the record into the provider's ``OperatorLineage``
(:func:`operator_lineage`): inputs and outputs with OpenLineage's subset facets (the partitions),
and a custom ``ioc_cost`` facet on the run and on every output (bytes scanned, dollars at
Athena's price, queries, reused results), so that a lineage graph shows what each dataset cost.

Written here rather than through Airflow's hook lineage collector: the collector carries assets
(a URI) but no dataset facets, so neither the partitions read nor the cost could travel with it.
Outside a recording (the CLI, the benchmarks) every report is a no-op.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import sqlglot
from sqlglot import exp

from ioc_analytics.lake.filters import lake_tables, number_placeholders, parameter_index, partition_conjuncts

if TYPE_CHECKING:
    from ioc_analytics.engine.base import QueryStats
    from ioc_analytics.lake.catalog import Catalog

log = logging.getLogger(__name__)

#: Where the ``ioc_cost`` facet's fields are described (docs/lineage.md).
COST_FACET_SCHEMA = "https://github.com/ioc/ioc-analytics/blob/main/docs/lineage.md#the-ioc_cost-facet"
#: The facet's key on the run and on each output dataset.
COST_FACET = "ioc_cost"


@dataclass
class Dataset:
    """A table (by its catalog name) or a file (by its location), and the parts of it used."""

    namespace: str
    name: str
    #: Conditions on the partition keys, one per read (inputs), or partitions written (outputs).
    conditions: list[str] = field(default_factory=list)
    partitions: list[tuple[dict[str, str], str]] = field(default_factory=list)


@dataclass
class Record:
    """One task's lineage: what it read and wrote, and its queries' scans and cost.

    ``name_of`` names a table as the engine's OpenLineage naming does (``Engine.lineage_name``):
    its namespace and name.
    """

    name_of: Callable[[str], tuple[str, str]]
    inputs: dict[tuple[str, str], Dataset] = field(default_factory=dict)
    outputs: dict[tuple[str, str], Dataset] = field(default_factory=dict)
    queries: int = 0
    failed_queries: int = 0
    reused_queries: int = 0
    bytes_scanned: int = 0
    cost_usd: float = 0.0

    def dataset(self, side: str, namespace: str, name: str) -> Dataset:
        found = getattr(self, side)
        return found.setdefault((namespace, name), Dataset(namespace, name))

    def table(self, side: str, table: str) -> Dataset:
        return self.dataset(side, *self.name_of(table))

    def cost(self) -> dict[str, Any]:
        return {"bytesScanned": self.bytes_scanned, "costUsd": round(self.cost_usd, 8), "queries": self.queries,
                "failedQueries": self.failed_queries, "reusedQueries": self.reused_queries}


_current: contextvars.ContextVar[Record | None] = contextvars.ContextVar("ioc_lineage", default=None)


@contextlib.contextmanager
def recording(name_of: Callable[[str], tuple[str, str]]) -> Iterator[Record]:
    """Report what runs inside to a new record (tables named by ``name_of``), and yield it."""
    record = Record(name_of)
    token = _current.set(record)
    try:
        yield record
    finally:
        _current.reset(token)


def queried(catalog: Catalog, sql: str, parameters: Sequence[object], stats: QueryStats) -> None:
    """An engine ran ``sql`` (Athena SQL, ``?`` bound to ``parameters``), and it ended with ``stats``."""
    record = _current.get()
    if record is None:
        return
    record.queries += 1
    record.failed_queries += stats.state != "SUCCEEDED"
    record.reused_queries += bool(stats.reused)
    record.bytes_scanned += stats.bytes_scanned
    record.cost_usd += stats.cost_usd
    for table, condition in reads(catalog, sql, parameters):
        read = record.table("inputs", table)
        if condition not in read.conditions:
            read.conditions.append(condition)


def published(table: str, values: Mapping[str, str], location: str) -> None:
    """A partition of ``table`` now points at the version at ``location``."""
    record = _current.get()
    if record is not None:
        record.table("outputs", table).partitions.append((dict(values), location))


def wrote_file(uri: str) -> None:
    """A file was written at ``uri`` (``s3://bucket/key`` or a local path)."""
    record = _current.get()
    if record is not None:
        namespace, name = file_dataset(uri)
        record.dataset("outputs", namespace, name)


def file_dataset(uri: str) -> tuple[str, str]:
    """OpenLineage's naming of a file: ``s3://bucket`` and its key; ``file`` and its absolute path."""
    if uri.startswith("s3://"):
        bucket, _, key = uri.removeprefix("s3://").partition("/")
        return f"s3://{bucket}", key
    return "file", uri


def reads(catalog: Catalog, sql: str, parameters: Sequence[object]) -> list[tuple[str, str]]:
    """The catalog tables ``sql`` reads, each with the condition its WHERE puts on the table's
    partition keys, values bound (``""``: none, every partition), in the order they appear."""
    try:
        tree = sqlglot.parse_one(number_placeholders(sql, len(parameters)), read="athena")
    except Exception:  # noqa: BLE001 (the engine ran it: lineage never fails a query it cannot read)
        log.debug("lineage: the query's tables were not read from its SQL", exc_info=True)
        return []
    ctes = {cte.alias_or_name.lower() for cte in tree.find_all(exp.CTE)}
    found: list[tuple[str, str]] = []
    for ref in lake_tables(tree, ctes):
        name = ref.name.lower()
        if name not in catalog.tables:
            continue
        table = catalog.table(name)
        conjuncts = [c.copy() for c in partition_conjuncts(ref, table)]
        for conjunct in conjuncts:
            for placeholder in list(conjunct.find_all(exp.Placeholder)):
                placeholder.replace(exp.convert(parameters[parameter_index(placeholder)]))
            for column in conjunct.find_all(exp.Column):
                column.set("table", None)
        condition = " AND ".join(c.sql("athena") for c in conjuncts)
        if (name, condition) not in found:
            found.append((name, condition))
    return found


# -- OpenLineage's shapes (imported only when the provider asks) ------------------------------

def operator_lineage(record: Record | None) -> Any:
    """The provider's ``OperatorLineage`` for ``record`` (empty when the step never ran)."""
    from airflow.providers.openlineage.extractors import OperatorLineage
    from openlineage.client.event_v2 import InputDataset, OutputDataset

    if record is None:
        return OperatorLineage()
    cost = _cost_facet(record)
    inputs = [InputDataset(d.namespace, d.name, inputFacets=_input_facets(d)) for d in record.inputs.values()]
    outputs = []
    for d in record.outputs.values():
        facets: dict[str, Any] = {COST_FACET: cost}
        if d.partitions:
            facets["subset"] = _partitions(d.partitions)
        outputs.append(OutputDataset(d.namespace, d.name, outputFacets=facets))
    return OperatorLineage(inputs=inputs, outputs=outputs, run_facets={COST_FACET: cost})


def _cost_facet(record: Record) -> Any:
    return _cost_facet_type()(**record.cost())


@functools.cache
def _cost_facet_type() -> type:
    """The facet's class, defined once the provider asks for it (OpenLineage is not imported before)."""
    import attr
    from openlineage.client.generated.base import RunFacet

    @attr.define
    class IocCostFacet(RunFacet):
        """bytes scanned and dollars at Athena's price, of the task's queries."""

        bytesScanned: int  # noqa: N815 (OpenLineage's field names)
        costUsd: float  # noqa: N815
        queries: int
        failedQueries: int  # noqa: N815
        reusedQueries: int  # noqa: N815

        @staticmethod
        def _get_schema() -> str:
            return COST_FACET_SCHEMA

    return IocCostFacet


def _input_facets(dataset: Dataset) -> dict[str, Any]:
    """The partitions the task's reads of a table selected: a list of partitions when every read
    names its partitions by equalities (``date = '2024/03/05'``, ``IN (...)``), else the reads'
    conditions, OR-ed. No facet when one read took every partition (so did the task)."""
    from openlineage.client.facet_v2 import base_subset_dataset as subset

    if not dataset.conditions or "" in dataset.conditions:
        return {}
    trees = [sqlglot.parse_one(c, read="athena") for c in dataset.conditions]
    listed = [_equalities(tree) for tree in trees]
    if all(found is not None for found in listed):
        partitions = [dict(p) for p in dict.fromkeys(tuple(sorted(p.items())) for found in listed for p in found)]
        condition = subset.PartitionSubsetCondition(partitions=[subset.Partition(dimensions=p) for p in partitions])
    else:
        condition = _either([_translate(tree) for tree in trees])
        if condition is None:
            return {}
    return {"subset": subset.InputSubsetInputDatasetFacet(inputCondition=condition)}


def _equalities(node: exp.Expression) -> list[dict[str, str]] | None:
    """The partitions a condition of equalities selects, each as its keys' values (None if it is
    not only equalities of a key with a value, ANDed and ORed)."""
    if isinstance(node, exp.Paren):
        return _equalities(node.this)
    if isinstance(node, exp.Or):
        left, right = _equalities(node.left), _equalities(node.right)
        return None if left is None or right is None else left + right
    if isinstance(node, exp.And):
        left, right = _equalities(node.left), _equalities(node.right)
        if left is None or right is None:
            return None
        return [{**a, **b} for a in left for b in right if all(a[k] == b[k] for k in a.keys() & b.keys())]
    values = ([node.expression] if isinstance(node, exp.EQ) else
              node.expressions if isinstance(node, exp.In) and not node.args.get("query") else None)
    column = node.this if isinstance(node, exp.EQ | exp.In) else None
    if values is None or not isinstance(column, exp.Column) or not all(isinstance(v, exp.Literal) for v in values):
        return None
    return [{column.name: v.this} for v in values]


def _either(conditions: list[Any]) -> Any:
    """The conditions OR-ed, as a balanced tree (None if one of them has no OpenLineage terms)."""
    from openlineage.client.facet_v2 import base_subset_dataset as subset

    if not conditions or None in conditions:
        return None
    if len(conditions) == 1:
        return conditions[0]
    half = len(conditions) // 2
    return subset.BinarySubsetCondition(left=_either(conditions[:half]), right=_either(conditions[half:]),
                                        operator="OR")


def _partitions(written: list[tuple[dict[str, str], str]]) -> Any:
    from openlineage.client.facet_v2 import base_subset_dataset as subset

    return subset.OutputSubsetOutputDatasetFacet(outputCondition=subset.PartitionSubsetCondition(
        partitions=[subset.Partition(dimensions=values, identifier=location) for values, location in written]))


_COMPARISONS = {exp.EQ: "EQUAL", exp.GT: "GREATER_THAN", exp.GTE: "GREATER_EQUAL_THAN", exp.LT: "LESS_THAN",
                exp.LTE: "LESS_EQUAL_THAN"}
_MIRRORED = {"GREATER_THAN": "LESS_THAN", "LESS_THAN": "GREATER_THAN", "GREATER_EQUAL_THAN": "LESS_EQUAL_THAN",
             "LESS_EQUAL_THAN": "GREATER_EQUAL_THAN", "EQUAL": "EQUAL"}


def _translate(node: exp.Expression) -> Any:
    from openlineage.client.facet_v2 import base_subset_dataset as subset

    def both(op: str, parts: list[Any]) -> Any:
        if None in parts:
            return None
        combined = parts[0]
        for part in parts[1:]:
            combined = subset.BinarySubsetCondition(left=combined, right=part, operator=op)
        return combined

    def side(value: exp.Expression) -> Any:
        if isinstance(value, exp.Column):
            return subset.FieldBaseCompareExpression(field=value.name)
        if isinstance(value, exp.Literal | exp.Boolean):
            return subset.LiteralCompareExpression(value=str(value.this if isinstance(value, exp.Literal)
                                                              else value.sql()))
        return None

    def compare(left: exp.Expression, right: exp.Expression, comparison: str) -> Any:
        lhs, rhs = side(left), side(right)
        if lhs is None or rhs is None:
            return None
        if isinstance(lhs, subset.LiteralCompareExpression):  # '2024/03/01' <= date: the field first
            lhs, rhs, comparison = rhs, lhs, _MIRRORED[comparison]
        return subset.CompareSubsetCondition(left=lhs, right=rhs, comparison=comparison)

    if isinstance(node, exp.Paren):
        return _translate(node.this)
    if isinstance(node, exp.And | exp.Or):
        return both("AND" if isinstance(node, exp.And) else "OR", [_translate(node.left), _translate(node.right)])
    if type(node) in _COMPARISONS:
        return compare(node.left, node.right, _COMPARISONS[type(node)])
    if isinstance(node, exp.Between):
        return both("AND", [compare(node.this, node.args["low"], "GREATER_EQUAL_THAN"),
                            compare(node.this, node.args["high"], "LESS_EQUAL_THAN")])
    if isinstance(node, exp.In) and node.expressions:
        return both("OR", [compare(node.this, value, "EQUAL") for value in node.expressions])
    return None
