"""What a backend is: everything a step needs that differs between ``local`` and ``aws``.

A backend bundles, behind one interface, the query engine, the object store of the lake and of
the exports, the partition registry, the query history, the alert sink, the metrics sink and the
scratch space, and answers for the capabilities only one backend has (QuickSight, CloudWatch
alarms, an S3 lifecycle rule). The steps (``analytics``, ``quality``, ``publishing``, ``cost``,
``operations``) only ever talk to this interface; which backend it is, is decided once, in
:func:`ioc_analytics.backends.get_backend`. The shape follows Ibis's ``ibis/backends/<name>/``: one
class per backend on a shared base.

Each part is built on first use and kept for the life of the backend (one per process and
settings), so a step no longer rebuilds its collaborators, and the catalog's DDL is parsed once.
"""

from __future__ import annotations

import datetime as dt
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from ioc_analytics.errors import ConfigError
from ioc_analytics.lake.catalog import Catalog, load_catalog
from ioc_analytics.settings import Settings

if TYPE_CHECKING:
    from ioc_analytics.engine.base import DailyUsage, Engine, QueryRecord
    from ioc_analytics.lake.catalog import Table
    from ioc_analytics.lake.partitions import PartitionRegistry
    from ioc_analytics.lake.store import DataFile, Lake
    from ioc_analytics.operations.alerts import Alert
    from ioc_analytics.operations.setup_report import Report


class NotOnThisBackend(ConfigError):
    """A capability the configured backend does not have (QuickSight on ``local``, say)."""


class Backend:
    """The shared base; :class:`~ioc_analytics.backends.local.LocalBackend` and
    :class:`~ioc_analytics.backends.aws.AwsBackend` fill it in."""

    #: ``IOC_BACKEND``'s value for this backend.
    name: ClassVar[str]
    #: Where :meth:`query_history` reads from, in words (for reports).
    history_source: ClassVar[str]
    #: The setup steps this backend has nothing to do for, and why.
    not_here: ClassVar[Mapping[str, str]] = {}

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def __repr__(self) -> str:
        return f"<{type(self).__name__} lake={self.settings.lake_uri}>"

    # -- the parts every step uses ----------------------------------------------------------

    @cached_property
    def catalog(self) -> Catalog:
        """The tables, from the DDL (parsed once per backend)."""
        return load_catalog(self.settings.lake_uri, self.settings.database)

    @cached_property
    def engine(self) -> Engine:
        raise NotImplementedError

    @cached_property
    def lake(self) -> Lake:
        """The lake (``IOC_LAKE_ROOT``): a folder or an S3 prefix, as :meth:`store` opens it."""
        return self.store(self.settings.lake_uri)

    @cached_property
    def registry(self) -> PartitionRegistry:
        raise NotImplementedError

    @cached_property
    def exports(self) -> Lake:
        """Where exports are published (``IOC_EXPORTS_ROOT``): a folder or an S3 prefix."""
        return self.store(self.settings.exports_root)

    def store(self, root: str) -> Lake:
        """An object store at ``root``: an ``s3://`` prefix or a local folder."""
        if root.startswith("s3://"):
            from ioc_analytics.backends.aws.lake import S3Lake

            return S3Lake(root, self.settings.aws_conn_id, self.settings.region)
        from ioc_analytics.backends.local.lake import LocalLake

        return LocalLake(root)

    @contextmanager
    def scratch(self) -> Iterator[Path]:
        """A private folder on the worker's disk, removed afterwards."""
        with tempfile.TemporaryDirectory(prefix="ioc-") as folder:
            yield Path(folder)

    # -- the query history, the alert sink, the metrics sink --------------------------------

    def query_history(self, since: dt.datetime) -> Iterator[QueryRecord]:
        """The workgroup's queries, at least those submitted since ``since`` (any order)."""
        raise NotImplementedError

    def fill_daily_usage(self, days: dict[dt.date, DailyUsage]) -> None:
        """Each day's query count, failures, bytes and cost, from the backend's own records."""
        raise NotImplementedError

    def send_alert(self, alert: Alert) -> str:
        """Deliver one on-call alert; returns where it went."""
        raise NotImplementedError

    def publish_month_to_date(self, spent_usd: float) -> None:
        """Give the month-to-date cost to whatever alarms on the budget (nothing, by default)."""

    # -- maintenance ------------------------------------------------------------------------

    def expire_results(self, today: dt.date) -> dict[str, Any]:
        """Drop (or check the expiry of) query results and history older than their keep."""
        raise NotImplementedError

    def can_compact(self, table: Table, values: Mapping[str, str], today: dt.date) -> bool:
        """Whether :meth:`compact` may rewrite this partition in place now."""
        return False

    def compact(self, table: Table, values: Mapping[str, str], files: list[DataFile]) -> int:
        """Rewrite a partition's small files as one; returns its rows."""
        raise NotOnThisBackend(f"compaction in place is not on the {self.name} backend")

    # -- setup and the capabilities only one backend has --------------------------------------

    def setup_steps(self) -> dict[str, Callable[[Settings, Report], None]]:
        """``ioc setup``'s steps on this backend, by name."""
        raise NotImplementedError

    def planner(self, lake: Lake | None = None) -> Any:
        """The local engine's planner over this backend's catalog, registry and ``lake`` (its own
        by default), for both backends: planning needs only the catalog and the lake's listings,
        which each backend has, and runs nothing (``plan(sql, parameters, with_bounds=True)``:
        per table reference, the partitions it selects and its comparisons with constants)."""
        from ioc_analytics.backends.local.engine import LocalEngine

        return LocalEngine(self.settings, self.catalog, lake or self.lake, self.registry)  # type: ignore[arg-type]

    def check_setup_settings(self) -> None:
        """What setup needs of the settings beyond what :class:`Settings` checks (ConfigError)."""

    def quicksight(self) -> dict[str, tuple[str, str]]:
        raise NotOnThisBackend(
            "QuickSight is the aws backend's; set IOC_BACKEND=aws (local has the static dashboard)")

    def dashboard(self) -> None:
        """Raise unless this backend renders the static dashboard."""
        raise NotOnThisBackend(f"the static dashboard is the local backend's; {self.name} has QuickSight")
