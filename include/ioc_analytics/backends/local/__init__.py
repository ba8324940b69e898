"""The ``local`` backend: DuckDB over a Parquet lake in a folder, partitions in a SQLite file, the
engine's own query log as the history, alerts to a JSON-lines file (or a webhook), and the same
guard rails enforced by the local engine and the cost monitor. Needs no AWS account."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import uuid
from collections.abc import Callable, Iterator, Mapping
from functools import cached_property
from pathlib import Path
from typing import Any

from ioc_analytics.backends.base import Backend
from ioc_analytics.engine.base import DailyUsage, Engine, QueryRecord, add_query
from ioc_analytics.errors import ConfigError
from ioc_analytics.lake.catalog import Table
from ioc_analytics.lake.partitions import PartitionRegistry
from ioc_analytics.lake.store import DataFile
from ioc_analytics.settings import Settings

#: Athena keeps 45 days of query history; the local query log keeps as much.
HISTORY_DAYS = 45


class LocalBackend(Backend):
    name = "local"
    history_source = "the local query log"

    def __init__(self, settings: Settings) -> None:
        if settings.lake_root.startswith("s3://"):
            raise ConfigError(f"IOC_LAKE_ROOT={settings.lake_root!r}: the local backend needs a folder; "
                              "set IOC_BACKEND=aws to query S3")
        super().__init__(settings)

    @property
    def not_here(self) -> Mapping[str, str]:  # type: ignore[override]
        from ioc_analytics.backends.local.setup import NOT_HERE

        return NOT_HERE

    @cached_property
    def engine(self) -> Engine:
        from ioc_analytics.backends.local.engine import LocalEngine

        return LocalEngine(self.settings, self.catalog, self.lake, self.registry)

    @cached_property
    def registry(self) -> PartitionRegistry:
        from ioc_analytics.backends.local.registry import LocalRegistry

        return LocalRegistry(Path(self.settings.state_dir).expanduser().resolve() / "catalog.sqlite")

    def query_history(self, since: dt.datetime) -> Iterator[QueryRecord]:
        from ioc_analytics.backends.local.history import query_log

        return query_log(self.settings)

    def fill_daily_usage(self, days: dict[dt.date, DailyUsage]) -> None:
        from ioc_analytics.engine.base import in_window, utc_bounds

        first, last = utc_bounds(min(days), max(days))
        for record in in_window(self.query_history(first), self.settings.workgroup, first, last):
            add_query(days[record.submitted_at.date()], record)

    def send_alert(self, alert: Any) -> str:
        from ioc_analytics.backends.local import alerts

        return alerts.send(self.settings, alert)

    def expire_results(self, today: dt.date) -> dict[str, Any]:
        import logging

        from ioc_analytics.jsonlines import JsonLines

        cutoff = dt.datetime.combine(today - dt.timedelta(days=HISTORY_DAYS), dt.time(), dt.UTC)
        dropped = JsonLines(self.settings.query_log_path).keep(
            lambda r: dt.datetime.fromisoformat(str(r["submitted_at"])) >= cutoff)
        logging.getLogger("ioc_analytics.operations.maintenance").info(
            "query log: %d entries older than %s removed (%d days kept, as Athena's history)",
            dropped, cutoff.date(), HISTORY_DAYS)
        return {"removed": dropped, "kept_days": HISTORY_DAYS}

    def can_compact(self, table: Table, values: Mapping[str, str], today: dt.date) -> bool:
        # The current month's scores still grow: compacting them would be undone tomorrow.
        return not ("year" in values and (values["year"], values["month"]) == (f"{today:%Y}", f"{today:%m}"))

    def compact(self, table: Table, values: Mapping[str, str], files: list[DataFile]) -> int:
        """Write the partition's rows into one file in a hidden sibling folder, then swap the
        folders with two renames: a reader in between finds the partition missing and fails
        (``NoDataError``), never a mix of old and new files, which would count rows twice."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        data = pa.concat_tables([pq.read_table(f.path) for f in files], promote_options="default")
        folder = Path(table.partition_location(values).rstrip("/"))
        fresh = folder.with_name(f".{folder.name}.compacting-{uuid.uuid4().hex[:6]}")
        old = folder.with_name(f".{folder.name}.compacted-{uuid.uuid4().hex[:6]}")
        fresh.mkdir()
        pq.write_table(data, fresh / "part-compacted.parquet", compression="snappy")
        os.rename(folder, old)
        os.rename(fresh, folder)
        shutil.rmtree(old)
        return data.num_rows

    def setup_steps(self) -> dict[str, Callable[..., None]]:
        from ioc_analytics.backends.local import setup

        return dict(setup.STEPS)

    def dashboard(self) -> None:
        """The static dashboard is this backend's (aws has QuickSight)."""
