"""The report ``ioc setup`` prints: what each step did to each resource (``created``, ``changed``
with what differed, ``unchanged``), and the readiness criteria. The backends' setup steps fill it."""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from ioc_analytics.lake.catalog import Table

log = logging.getLogger("ioc_analytics.operations.setup")

CREATED, CHANGED, UNCHANGED = "created", "changed", "unchanged"


@dataclass
class Resource:
    """One resource setup manages, and what this run did to it."""

    step: str
    kind: str
    name: str
    status: str  # created | changed | unchanged
    #: For ``changed``, what differed (``field: was -> now``); otherwise what the resource is.
    detail: str = ""


@dataclass
class Criterion:
    """One of the guide's activation criteria."""

    name: str
    target: str
    measured: int | None
    status: str  # met | not met | not measured
    detail: str = ""


@dataclass
class Report:
    backend: str
    resources: list[Resource] = field(default_factory=list)
    readiness: list[Criterion] = field(default_factory=list)
    #: The days the readiness figures cover, first and last.
    window: tuple[dt.date, dt.date] | None = None
    notes: list[str] = field(default_factory=list)

    def add(self, step: str, kind: str, name: str, status: str, detail: str = "") -> None:
        log.info("%s: %s %s %s%s", step, kind, name, status, f" ({detail})" if detail else "")
        self.resources.append(Resource(step, kind, name, status, detail))

    def status(self, kind: str, name: str) -> str:
        """What happened to one resource (KeyError if setup did not touch it)."""
        for resource in self.resources:
            if (resource.kind, resource.name) == (kind, name):
                return resource.status
        raise KeyError(f"{kind} {name}")

    def counts(self) -> dict[str, int]:
        return {s: sum(r.status == s for r in self.resources) for s in (CREATED, CHANGED, UNCHANGED)}

    def render(self) -> str:
        """A plain-text table, for the terminal and the Airflow task log."""
        lines = [f"ioc setup ({self.backend} backend)", ""]
        if self.resources:
            rows = [(r.step, f"{r.kind} {r.name}", r.status, r.detail) for r in self.resources]
            lines += table_lines(("STEP", "RESOURCE", "STATUS", "DETAIL"), rows)
            counts = self.counts()
            lines += ["", f"{len(self.resources)} resources: " + ", ".join(f"{n} {s}" for s, n in counts.items())]
        if self.readiness:
            first, last = self.window or (dt.date.min, dt.date.min)
            days = (last - first).days + 1
            lines += ["", f"Readiness: the guide's activation criteria, {first} to {last} ({days} days)"]
            rows = [(c.name, "-" if c.measured is None else f"{c.measured:,}", c.target, c.status, c.detail)
                    for c in self.readiness]
            lines += table_lines(("CRITERION", "MEASURED", "TARGET", "STATUS", "DETAIL"), rows)
        if self.notes:
            lines += ["", "Notes:", *(f"- {note}" for note in self.notes)]
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (the DAG's tasks return it as their XCom)."""
        return {
            "backend": self.backend,
            "resources": [asdict(r) for r in self.resources],
            "counts": self.counts(),
            "readiness": {
                "window": [d.isoformat() for d in self.window] if self.window else None,
                "criteria": [asdict(c) for c in self.readiness],
            },
            "notes": list(self.notes),
        }


def table_lines(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header) - 1)]
    return ["  ".join([*(str(v).ljust(w) for v, w in zip(row[:-1], widths, strict=True)), str(row[-1])]).rstrip()
            for row in [header, *rows]]


def describe(table: Table) -> str:
    keys = f", partitioned by {', '.join(table.partition_names)}" if table.partition_names else ""
    projection = " (partition projection)" if table.projection_enabled else ""
    return f"{len(table.columns)} columns{keys}{projection}"


def compare(current: Mapping[str, Any], wanted: Mapping[str, Any], prefix: str = "") -> list[str]:
    """``key: was -> now`` for each key of ``wanted`` whose value ``current`` does not have."""
    out = []
    for key, value in wanted.items():
        name, was = f"{prefix}{key}", current.get(key)
        if isinstance(value, Mapping) and isinstance(was, Mapping):
            out += compare(was, value, f"{name}.")
        elif was != value:
            out.append(f"{name}: {short(was)} -> {short(value)}")
    return out


def short(value: Any, limit: int = 80) -> str:
    text = json.dumps(value, default=str, sort_keys=True) if not isinstance(value, str) else value
    return text if len(text) <= limit else text[: limit - 3] + "..."
