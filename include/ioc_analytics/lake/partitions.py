"""Partitions of tables without partition projection: the registry, versioned writes, repair.

Tables with projection (the raw tables) need none of this: Athena computes their partitions from
the location template, and the local engine lists the lake folders the same way. The aggregate
tables have projection off, so a partition is visible exactly when it is registered, and its
registered location can change in one metadata update. That is how a partition is replaced
atomically on both backends:

1. the new rows are written to a fresh *version* folder under the partition's folder
   (``.../2024/01/15/v20240116T000512000000-1a2b3c/``), which no reader looks at;
2. a ``_ioc_committed`` marker is written there once the data is complete (readers ignore
   names starting with ``_``);
3. the partition's registered location is switched to the new version: a Glue
   ``UpdatePartition`` on ``aws``, a row of the local registry (SQLite) on ``local``. A reader
   sees the old version or the new one, never a mix;
4. older versions are deleted, except the one the partition pointed at before (queries that
   started before the switch read it).

**The newest committed version wins**, in publish and in repair alike. Two runs of the same
day at once (a cleared task whose first attempt still runs, a manual run beside a backfill)
write equivalent data; whichever version is newer stays registered, a publish never replaces
a newer version with its older one, and it deletes only versions older than both its own and
the one registered when it looks, so it never deletes what the partition points at.

Partition repair compares the version folders in the lake with the registry: a committed
version newer than the registered one (a writer that stopped between steps 2 and 3) is
registered, a registered location that holds nothing is reported, a partition with no
registration at all gets its newest committed version, and unfinished versions older than a
day (their writer failed) are deleted.
"""

from __future__ import annotations

import io
import logging
import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Protocol

import pyarrow as pa
import pyarrow.parquet as pq

from ioc_analytics.engine import lineage
from ioc_analytics.errors import ConfigError
from ioc_analytics.lake.catalog import Table

if TYPE_CHECKING:
    from ioc_analytics.lake.store import DataFile, Lake, Listing

log = logging.getLogger(__name__)

COMMIT_MARKER = "_ioc_committed"
#: Written in place of the commit marker when a version fails its checks and is rolled back.
REJECTED_MARKER = "_ioc_rejected"
#: An unfinished version older than this is abandoned (its writer failed), not still being written.
UNFINISHED_AFTER = timedelta(days=1)
_VERSION = re.compile(r"v\d{8}T\d{12}-[0-9a-f]{6}")

Key = tuple[str, ...]


def new_version() -> str:
    """A version folder name that sorts by creation time."""
    return f"{_version_at(datetime.now(UTC))}-{uuid.uuid4().hex[:6]}"


def _version_at(moment: datetime) -> str:
    """The prefix of the names of versions created at ``moment``: names compare as times."""
    return f"v{moment:%Y%m%dT%H%M%S%f}"


def _abandoned_before() -> str:
    """Unfinished versions whose names sort below this were started over a day ago."""
    return _version_at(datetime.now(UTC) - UNFINISHED_AFTER)


def version_location(table: Table, values: Mapping[str, str], version: str) -> str:
    return f"{table.partition_location(dict(values))}{version}/"


def key_of(table: Table, values: Mapping[str, str]) -> Key:
    return tuple(values[k] for k in table.partition_names)


@dataclass
class Version:
    name: str
    location: str
    files: list[DataFile] = field(default_factory=list)
    committed: bool = False


def group_versions(table: Table, files: Iterable[DataFile]) -> dict[Key, dict[str, Version]]:
    """The version folders under a table's location, by partition (marker files included)."""
    base = table.location.rstrip("/") + "/"
    found: dict[Key, dict[str, Version]] = {}
    for f in files:
        folder, _, name = f.path[len(base):].rpartition("/")
        partition, _, version = folder.rpartition("/")
        match = table.partition_regex.fullmatch(partition)
        if not match or not _VERSION.fullmatch(version):
            continue
        values = {k: match.group(k) for k in table.partition_names}
        entry = found.setdefault(key_of(table, values), {}).setdefault(
            version, Version(version, version_location(table, values, version)))
        if name == COMMIT_MARKER:
            entry.committed = True
        elif not name.startswith(("_", ".")):
            entry.files.append(f)
    return found


class PartitionRegistry(Protocol):
    """The partitions of a table without projection, and where each one's data is."""

    def partitions(self, table: Table) -> dict[Key, str]: ...

    def location(self, table: Table, values: Mapping[str, str]) -> str | None:
        """Where one partition is registered, or None."""

    def register(self, table: Table, values: Mapping[str, str], location: str) -> None: ...

    def unregister(self, table: Table, values: Mapping[str, str]) -> None: ...


def check_versioned(table: Table) -> None:
    """Only tables without projection can switch a partition's location atomically."""
    if table.projection_enabled:
        raise ConfigError(
            f"{table.name} uses partition projection, so its partitions cannot be replaced atomically: "
            f"set 'projection.enabled' = 'false' in include/ioc_analytics/sql/ddl/{table.name}.sql (aggregates are "
            "written "
            "as versions and registered, see ioc_analytics.lake.partitions)")


def publish(lake: Lake, registry: PartitionRegistry, table: Table, values: Mapping[str, str], location: str) -> None:
    """Steps 2-4 of a replace: mark ``location`` committed, register it, delete old versions."""
    lake.write_marker(location + COMMIT_MARKER)
    ours = _version_name(location)
    previous = registry.location(table, values)
    if previous is not None and _is_version(previous) and _version_name(previous) > ours:
        log.warning("%s %s: a newer version %s is registered already (another run of the same day); "
                    "leaving it, the data is the same", table.name, dict(values), previous)
        lineage.published(table.name, values, previous)
        return
    registry.register(table, values, location)
    lineage.published(table.name, values, location)
    # Looked up again: a concurrent run may have registered its version in the meantime.
    now = registry.location(table, values) or location
    floor = min(ours, _version_name(now)) if _is_version(now) else ours
    keep = {_version_name(previous or ""), _version_name(now)}
    abandoned = _abandoned_before()
    listed = lake.list_all(table.partition_location(dict(values)))
    removed = 0
    for name, version in sorted(group_versions(table, listed).get(key_of(table, values), {}).items()):
        if name < floor and name not in keep and (version.committed or name < abandoned):
            lake.delete_prefix(version.location)
            removed += 1
    log.info("%s %s now reads %s (%d older versions removed)", table.name, dict(values), now, removed)


def write_partition(lake: Lake, registry: PartitionRegistry, table: Table, values: Mapping[str, str],
                    data: pa.Table | Iterable[pa.RecordBatch], sidecars: Mapping[str, bytes] | None = None) -> str:
    """A whole replace: :func:`write_version`, then :func:`publish`. Returns the version's location."""
    location = write_version(lake, table, values, data, sidecars)
    publish(lake, registry, table, values, location)
    return location


def write_version(lake: Lake, table: Table, values: Mapping[str, str], data: pa.Table | Iterable[pa.RecordBatch],
                  sidecars: Mapping[str, bytes] | None = None) -> str:
    """Step 1 of a replace: ``data`` (the table's data columns, in any order; rows in memory, or
    batches, each written as it comes) as one SNAPPY Parquet file in a new version, with
    ``sidecars`` (hidden files: names starting with ``_``) beside it. Returns its location."""
    check_versioned(table)
    table.check_partition_values(dict(values))
    location = version_location(table, values, new_version())
    buffer = io.BytesIO()
    columns = [c.name for c in table.columns]
    with pq.ParquetWriter(buffer, table.arrow_schema, compression="snappy") as writer:
        for batch in ([data] if isinstance(data, pa.Table) else data):
            rows = pa.Table.from_batches([batch]) if isinstance(batch, pa.RecordBatch) else batch
            writer.write_table(rows.select(columns).cast(table.arrow_schema))
    lake.put_bytes(location + "part-00000.parquet", buffer.getvalue())
    write_sidecars(lake, location, sidecars)
    return location


def write_sidecars(lake: Lake, location: str, sidecars: Mapping[str, bytes] | None) -> None:
    """Hidden files beside a version's data, written before it is committed (what a state
    partition was derived from: ``ioc_analytics.analytics.state``)."""
    for name, data in (sidecars or {}).items():
        if not name.startswith("_"):
            raise ValueError(f"a sidecar's name starts with '_' so that readers skip it, not {name!r}")
        lake.put_bytes(location + name, data)


def roll_back(lake: Lake, registry: PartitionRegistry, table: Table, values: Mapping[str, str]) -> str | None:
    """Take back the registered version of a partition that failed its checks.

    The partition returns to the newest committed version older than the rejected one, or is
    unregistered if there is none (the day then has no data, rather than wrong data). The
    rejected version loses its commit marker, so repair never brings it back; it stays a day
    for inspection, then repair deletes it. Returns the location now registered, or None.
    """
    rejected = registry.location(table, values)
    if rejected is None:
        return None
    versions = group_versions(table, lake.list_all(table.partition_location(dict(values)))).get(
        key_of(table, values), {})
    lake.write_marker(rejected.rstrip("/") + "/" + REJECTED_MARKER)
    lake.delete_object(rejected.rstrip("/") + "/" + COMMIT_MARKER)
    older = sorted(n for n, v in versions.items() if v.committed and n < _version_name(rejected))
    if older:
        registry.register(table, values, versions[older[-1]].location)
        log.warning("%s %s rolled back from %s to %s", table.name, dict(values), rejected, versions[older[-1]].location)
        return versions[older[-1]].location
    registry.unregister(table, values)
    log.warning("%s %s unregistered: %s failed its checks and there is no earlier version", table.name,
                dict(values), rejected)
    return None


def read_location(lake: Lake, table: Table, location: str) -> pa.Table:
    """Every row of one version folder (a derived partition: tens of rows, thousands for the query
    costs), read from its data files in the lake (S3 on ``aws``), with no query to pay for."""
    pieces = [pq.read_table(io.BytesIO(lake.get_bytes(f.path))) for f in lake.files_in(location)]
    return pa.concat_tables(pieces, promote_options="permissive") if pieces else table.arrow_schema.empty_table()


def registered_listing(lake: Lake, registry: PartitionRegistry, table: Table) -> Listing:
    """What a query sees of a table without projection: its registered partitions, each with the
    data files at its registered location (none, if the location is stale)."""
    from ioc_analytics.lake.store import Listing, Partition

    partitions = [
        Partition(dict(zip(table.partition_names, key, strict=True)), lake.files_in(location))
        for key, location in sorted(registry.partitions(table).items())
    ]
    return Listing(table.name, [p for p in partitions if p.files])


@dataclass
class RepairReport:
    table: str
    added: list[dict[str, str]] = field(default_factory=list)
    repointed: list[dict[str, str]] = field(default_factory=list)
    #: Registered partitions whose location holds no data files.
    stale: list[dict[str, str]] = field(default_factory=list)
    #: Version folders without a commit marker: builds that did not finish, are still running,
    #: or were rolled back after failing their checks; those older than a day were deleted.
    incomplete: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (f"{self.table}: {len(self.added)} added, {len(self.repointed)} repointed, "
                f"{len(self.stale)} stale (registered, no data), {len(self.incomplete)} uncommitted versions")


def repair(lake: Lake, registry: PartitionRegistry, table: Table, window: Iterable[Mapping[str, str]]) -> RepairReport:
    """Make the registry agree with the lake for the partitions in ``window`` (newest committed
    version wins; a committed version may hold no data file: a day whose query returned no rows)."""
    report = RepairReport(table.name)
    wanted = {key_of(table, values): dict(values) for values in window}
    registered = registry.partitions(table)
    versions = group_versions(table, lake.list_all(table.location))
    abandoned = _abandoned_before()
    for key, values in sorted(wanted.items()):
        found = versions.get(key, {})
        committed = sorted(name for name, v in found.items() if v.committed)
        for name in sorted(found):
            if not found[name].committed:
                if name < abandoned:
                    lake.delete_prefix(found[name].location)
                report.incomplete.append(found[name].location)
        current = registered.get(key)
        if committed:
            newest = found[committed[-1]].location
            if current is None:
                registry.register(table, values, newest)
                report.added.append(values)
                continue
            if current.rstrip("/") != newest.rstrip("/") and (
                    not _is_version(current) or _version_name(current) < committed[-1]):
                registry.register(table, values, newest)
                report.repointed.append(values)
                continue
        if current is not None and not lake.list_all(current):
            report.stale.append(values)
    return report


def _is_version(location: str) -> bool:
    return bool(_VERSION.fullmatch(_version_name(location)))


def _version_name(location: str) -> str:
    return location.rstrip("/").rpartition("/")[2]
