"""Quarantine (``IOC_QUARANTINE=true``): a slice that fails an error-level check and that the day can
do without is moved to ``<lake>/quarantine/<table>/<partition>/<stamp>/`` with a
``_quarantine.json`` saying why; a later validation of the date releases or restores it."""

from __future__ import annotations

import datetime as dt
import json
import logging
import uuid
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

from ioc_analytics.lake.catalog import Table
from ioc_analytics.lake.contract import ERROR
from ioc_analytics.lake.store import Lake
from ioc_analytics.quality.reports import QUARANTINED, QualityReport
from ioc_analytics.settings import Settings

if TYPE_CHECKING:
    from ioc_analytics.quality.slices import Slice

log = logging.getLogger("ioc_analytics.quality")

_MANIFEST, _RELEASED = "_quarantine.json", "_released.json"


def quarantine_root(settings: Settings, table: Table) -> str:
    return f"{settings.lake_uri}/quarantine/{table.name}"


def pending_quarantine(lake: Lake, settings: Settings, table: Table, day: dt.date) -> dict[str, str]:
    """Quarantine entries of the day not yet released, by slice key: the newest entry's location."""
    root = quarantine_root(settings, table)
    entries: dict[str, set[str]] = {}
    for file in lake.list_all(f"{root}/"):
        folder, name = file.path.rsplit("/", 1)
        entries.setdefault(folder, set()).add(name)
    pending: dict[str, str] = {}
    for folder in sorted(entries):
        names = entries[folder]
        if _MANIFEST in names and _RELEASED not in names:
            manifest = json.loads(lake.get_bytes(f"{folder}/{_MANIFEST}") or b"{}")
            if manifest.get("day") == day.isoformat():
                pending[manifest["key"]] = folder + "/"
    return pending


def quarantine_or_release(settings: Settings, lake: Lake, table: Table, day: dt.date, slices: list[Slice],
                           report: QualityReport) -> None:
    pending = pending_quarantine(lake, settings, table, day)
    for piece in slices:
        failed = [f for f in piece.failures if f.severity == ERROR]
        entry = pending.get(piece.key)
        if not failed:
            if entry:
                how = "the partition was delivered again and passed"
                if piece.entry:  # the files validated were the quarantined ones: put them back
                    how = "the quarantined files passed and were moved back"
                    manifest = json.loads(lake.get_bytes(f"{entry}{_MANIFEST}") or b"{}")
                    for file in piece.files:
                        lake.move(file.path, manifest["files"][Path(file.path).name])
                lake.put_bytes(f"{entry}{_RELEASED}", json.dumps(
                    {"released_at": dt.datetime.now(dt.UTC).isoformat(), "how": how}).encode())
                report.released.append(f"{entry} ({how})")
            continue
        if piece.entry:  # still failing where it was set aside: it stays there, the day goes on
            for failure in failed:
                failure.severity = QUARANTINED
            continue
        if not settings.quarantine or piece.required:
            continue  # the day stops on it
        location = (f"{quarantine_root(settings, table)}/{piece.key}/"
                    f"{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}/")
        # The manifest first: whatever happens next, nothing sits in quarantine unexplained.
        originals = {Path(file.path).name: file.path for file in piece.files}
        lake.put_bytes(location + _MANIFEST, json.dumps({
            "table": table.name, "day": day.isoformat(), "key": piece.key, "partition": piece.values,
            "files": originals, "failures": [asdict(f) for f in failed],
            "quarantined_at": dt.datetime.now(dt.UTC).isoformat()}, indent=2, default=str).encode())
        for name, path in originals.items():
            lake.move(path, location + name)
        for failure in failed:  # reported, and the day goes on without the slice
            failure.severity = QUARANTINED
        report.quarantined.append(location)
