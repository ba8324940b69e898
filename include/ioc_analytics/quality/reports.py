"""What a validation found and where it is kept: failures in the contract's words, the day's
report (``<lake>/quality/<table>/<day>.json``), and the earlier and later days a failure reaches."""

from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from ioc_analytics.backends import get_backend
from ioc_analytics.errors import ConfigError
from ioc_analytics.lake import contract, sql
from ioc_analytics.lake.catalog import Table
from ioc_analytics.lake.contract import ERROR
from ioc_analytics.lake.store import Lake
from ioc_analytics.lake.tables import RAW_TABLES
from ioc_analytics.settings import Settings
from ioc_analytics.text import plural

log = logging.getLogger("ioc_analytics.quality")

#: How many failing values a report quotes.
SAMPLES = contract.SAMPLES

QUARANTINED = "quarantined"


def next_month(day: dt.date) -> dt.date:
    """The first day of the month after ``day``'s."""
    return (day.replace(day=28) + dt.timedelta(days=4)).replace(day=1)


@dataclass
class Failure:
    """A check that failed, in the contract's words."""

    check: str
    column: str | None
    severity: str
    count: int | None
    samples: list[Any] = field(default_factory=list)
    detail: str = ""
    #: The slice it was found in (the day's partition prefix when no single slice holds it).
    partition: str = ""
    #: The class of breach (``contract.BREACHES``).
    breach: str = ""
    table: str = ""

    def describe(self) -> str:
        # A column's failure is named by its rule (``facets values: NaN``), a table's by its class.
        what = (self.check if self.column else f"{self.breach}: {self.check}"
                if self.breach == contract.INVARIANT else self.breach or self.check)
        unit = {contract.DUPLICATE_KEY: "key", contract.EARLIER_DAY: "day"}.get(self.breach, "row")
        count = f", {plural(self.count, unit)}" if self.count is not None else ""
        samples = f", for example {self.samples}" if self.samples else ""
        detail = f" ({self.detail})" if self.detail else ""
        return f"[{self.partition}] {what}{count}{samples}{detail}"

    @classmethod
    def from_dict(cls, kept: dict[str, Any]) -> Failure:
        """A failure as kept in a report (reports kept before the contract used GX's words)."""
        kept = dict(kept)
        if "expectation" in kept:
            kept["check"] = kept.pop("expectation")
            kept["count"] = kept.pop("unexpected_count", None)
            if kept["check"].startswith("earlier days"):
                kept["breach"] = contract.EARLIER_DAY
        if kept.get("severity") == "critical":
            kept["severity"] = ERROR
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in kept.items() if k in names})


@dataclass
class QualityReport:
    table: str
    day: str
    rows: int | None  # None for an aggregate's checks
    evaluated: int
    slices: list[dict[str, Any]] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    #: Quarantine entries made by this validation, and those it cleared.
    quarantined: list[str] = field(default_factory=list)
    released: list[str] = field(default_factory=list)
    validated_at: str = field(default_factory=lambda: dt.datetime.now(dt.UTC).isoformat(timespec="seconds"))
    #: Where the report is kept (set by :func:`keep`).
    kept_at: str = ""

    @property
    def errors(self) -> list[Failure]:
        return [f for f in self.failures if f.severity == ERROR]

    @property
    def warnings(self) -> list[Failure]:
        return [f for f in self.failures if f.severity != ERROR]

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "errors": len(self.errors), "warnings": len(self.warnings),
                "passed": not self.errors}


def earlier_days(table: Table, day: dt.date) -> list[dt.date]:
    """The days before ``day`` that its aggregates also read: the look-back of returning users
    (``sql.LOOKBACK_DAYS``) for events, the month to date for scores."""
    if "date" in table.partition_names:
        return [day - dt.timedelta(days=n) for n in range(1, sql.LOOKBACK_DAYS + 1)]
    return [day.replace(day=d) for d in range(1, day.day)]


def later_days(table_name: str, day: dt.date) -> list[dt.date]:
    """The days after ``day`` whose aggregates read it: the inverse of :func:`earlier_days`."""
    if "date" in (k.name for k in contract.contract(table_name).partition_keys):
        return [day + dt.timedelta(days=n) for n in range(1, sql.LOOKBACK_DAYS + 1)]
    return [day + dt.timedelta(days=n) for n in range(1, (next_month(day) - day).days)]


def own_failures(report: dict[str, Any]) -> list[Failure]:
    """A kept report's error-level failures of its own day (not those of an earlier day it read)."""
    found = [Failure.from_dict(f) for f in report.get("failures", [])]
    return [f for f in found if f.severity == ERROR and f.breach != contract.EARLIER_DAY]


def blocking_failures(report: dict[str, Any]) -> list[Failure]:
    """A kept report's failures that stop the later days reading its day: bad rows they would read.
    Not a day's volume, a partition without rows, files no engine reads, nor its own look-back
    (``contract.DAY_LEVEL``): a later day reads no bad row from those."""
    return [f for f in own_failures(report) if f.breach not in contract.DAY_LEVEL]


def read_report(lake: Lake, path: str) -> dict[str, Any] | None:
    """A kept report, or None if there is none; a damaged one is named."""
    kept = lake.get_bytes(path)
    if kept is None:
        return None
    try:
        report = json.loads(kept)
    except ValueError as err:
        raise ConfigError(f"the quality report {path} is not JSON ({err}): delete it and validate the day "
                          "again (`ioc quality <date> --validate`)") from None
    if not isinstance(report, dict) or "table" not in report:
        raise ConfigError(f"the quality report {path} is not a report: delete it and validate the day again "
                          "(`ioc quality <date> --validate`)")
    return report


def keep(settings: Settings, report: QualityReport) -> str:
    """Store the report in the lake, per table and date, beside (not inside) the tables."""
    path = report.kept_at = f"{settings.lake_uri}/quality/{report.table}/{report.day}.json"
    get_backend(settings).lake.put_bytes(path, json.dumps(report.as_dict(), indent=2, default=str).encode())
    return path


def keep_checks(settings: Settings, day: dt.date, name: str, checks: dict[str, bool],
                breaches: list[contract.Breach], partition: str) -> QualityReport:
    """Keep the result of an aggregate's ``check`` task as its report: the invariants of
    ``include/ioc_analytics/sql/checks/<name>.sql`` and the rules of its contract."""
    failures = [Failure(check, None, ERROR, None, partition=partition, breach=contract.INVARIANT, table=name)
                for check, passed in checks.items() if not passed]
    failures += [breach_failure(b, partition) for b in breaches]
    report = QualityReport(name, day.isoformat(), rows=None, evaluated=len(checks) + len(contract.rules(name)),
                           failures=failures)
    keep(settings, report)
    return report


def breach_failure(breach: contract.Breach, partition: str) -> Failure:
    """A contract breach found by :func:`contract.check_rows`, as a report's failure."""
    rule = breach.rule
    return Failure(rule.name, rule.column, rule.severity, breach.count, breach.samples, rule.expects, partition,
                   rule.breach, rule.table)


def load_reports(settings: Settings, day: dt.date) -> list[dict[str, Any]]:
    """Every report kept for ``day``, raw tables first."""
    lake = get_backend(settings).lake
    reports = []
    for file in lake.list_all(f"{settings.lake_uri}/quality/"):
        if file.path.endswith(f"/{day.isoformat()}.json") and (report := read_report(lake, file.path)):
            reports.append(report)
    return sorted(reports, key=lambda r: (r["table"] not in RAW_TABLES, r["table"]))


def render(reports: list[dict[str, Any]]) -> str:
    """A plain-text report of a day, for a person on call."""
    if not reports:
        return "no data-quality reports for this date: the daily DAG has not validated it yet"
    lines = []
    for r in reports:
        state = "PASSED" if r["passed"] else "FAILED"
        rows = "" if r["rows"] is None else f", {plural(r['rows'], 'row')}"
        lines.append(f"{r['table']:<26} {state}  {plural(r['evaluated'], 'check')}{rows}, "
                     f"{plural(r['errors'], 'error')}, {plural(r['warnings'], 'warning')}  "
                     f"(validated {r['validated_at']})")
        for f in sorted((Failure.from_dict(f) for f in r["failures"]), key=lambda f: f.severity != ERROR):
            lines.append(f"    {f.severity:<11} {f.describe()}")
        lines += [f"    quarantined  {q}" for q in r.get("quarantined", [])]
        lines += [f"    released     {q}" for q in r.get("released", [])]
    return "\n".join(lines)
