"""``ioc setup`` on ``local``: the lake, state and exports folders, and the guard rails the local
engine and the cost monitor enforce. There is nothing remote to compare with, so what setup decided
is recorded in ``<state_dir>/setup.json`` and each run compares with the previous record."""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ioc_analytics.engine.base import MB
from ioc_analytics.errors import ConfigError
from ioc_analytics.guardrails import (
    alarm_names,
    budget_threshold_usd,
    query_cost_threshold_bytes,
    threshold_texts,
    unreachable_alarm_note,
)
from ioc_analytics.lake.catalog import load_catalog
from ioc_analytics.operations.setup_report import CHANGED, CREATED, UNCHANGED, Report, compare, describe
from ioc_analytics.settings import Settings


def state_path(settings: Settings) -> Path:
    return Path(settings.state_dir).expanduser().resolve() / "setup.json"


def _local_catalog(settings: Settings, report: Report) -> None:
    folders = (("lake", "IOC_LAKE_ROOT", settings.lake_root), ("state", "IOC_STATE_DIR", settings.state_dir),
               ("exports", "IOC_EXPORTS_ROOT", settings.exports_root))
    for label, variable, location in folders:
        if location.startswith("s3://"):
            report.notes.append(f"{label}: {location} is in S3, not a local folder: nothing to create")
            continue
        folder = Path(location).expanduser().resolve()
        if folder.exists() and not folder.is_dir():
            raise ConfigError(f"{variable}={location!r} is a file, not a folder: point it at a folder")
        existed = folder.is_dir()
        folder.mkdir(parents=True, exist_ok=True)
        report.add("catalog", "folder", label, UNCHANGED if existed else CREATED, str(folder))
    catalog = load_catalog(settings.lake_uri, settings.database)
    records = {name: {"columns": [f"{c.name} {c.athena_type}" for c in table.columns],
                      "partition keys": [f"{c.name} {c.athena_type}" for c in table.partition_keys],
                      "location": table.location, "properties": dict(table.properties)}
               for name, table in catalog.tables.items()}
    _record(settings, report, "catalog", "table", records,
            {name: f"ready: {describe(table)}" for name, table in catalog.tables.items()})


def _local_workgroup(settings: Settings, report: Report) -> None:
    cutoff = settings.bytes_scanned_cutoff
    _record(settings, report, "workgroup", "guard rail", {"bytes-scanned-cutoff": {"bytes_scanned_cutoff": cutoff}},
            {"bytes-scanned-cutoff": f"the local engine refuses a query that scans more than {cutoff / MB:,.0f} MB, "
                                     "as the Athena workgroup cancels it"})


def _local_alerts(settings: Settings, report: Report) -> None:
    names = alarm_names(settings)
    records = {
        names["month-to-date-budget"]: {"monthly_budget_usd": settings.monthly_budget_usd,
                                        "budget_alert_pct": settings.budget_alert_pct,
                                        "threshold_usd": budget_threshold_usd(settings)},
        names["single-query-cost"]: {"threshold_usd": settings.query_cost_alert_usd,
                                     "threshold_bytes": round(query_cost_threshold_bytes(settings))},
        names["query-failure-rate"]: {"threshold_pct": settings.failure_rate_alert_pct},
    }
    _record(settings, report, "alerts", "threshold", records, threshold_texts(settings))
    if note := unreachable_alarm_note(settings):
        report.notes.append(note)
    report.notes.append(
        "the CloudWatch alarms are aws only: on local the cost monitor DAG (ioc_cost_monitor) evaluates the "
        f"same thresholds each day and appends its alerts to {settings.alert_log_path}")


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock beside ``path`` (``ioc setup`` and the DAG may run at once)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with (path.parent / f".{path.name}.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _record(settings: Settings, report: Report, step: str, kind: str, records: dict[str, dict[str, Any]],
            described: Mapping[str, str]) -> None:
    """Compare ``records`` with the step's section of ``setup.json``, report, and save them."""
    path = state_path(settings)
    records = json.loads(json.dumps(records))  # as they read back: lists, not tuples
    with _locked(path):
        try:
            state = json.loads(path.read_text()) if path.exists() else {}
        except json.JSONDecodeError:
            raise ConfigError(f"{path} is not valid JSON: delete it (it only records the last setup) and run "
                              "ioc setup again") from None
        previous = state.get("steps", {}).get(step, {})
        for name, record in records.items():
            if name not in previous:
                report.add(step, kind, name, CREATED, described[name])
            elif differences := compare(previous[name], record):
                report.add(step, kind, name, CHANGED, "; ".join(differences))
            else:
                report.add(step, kind, name, UNCHANGED, described[name])
        if previous != records:
            state.setdefault("steps", {})[step] = records
            state["updated_at"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
            temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            temporary.write_text(json.dumps(state, indent=1, sort_keys=True) + "\n")
            os.replace(temporary, path)


#: ``ioc setup``'s steps on local, by name.
STEPS = {"catalog": _local_catalog, "workgroup": _local_workgroup, "alerts": _local_alerts}
#: The steps with nothing to do on local, and why.
NOT_HERE = {
    "results_bucket": "the local engine keeps no query results",
    "quicksight": "local has the static dashboard, which the daily DAG writes",
}
