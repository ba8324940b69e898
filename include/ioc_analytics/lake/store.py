"""The lake's objects: which partitions of a table hold which data files.

A partition's place comes from the table's location template (catalog.py); this module lists
what is actually there. Like Athena and Hive, it ignores objects whose name starts with ``_`` or
``.`` (that is how writers hide files that are still being written), and it reports objects that
match no partition of the layout instead of dropping them silently.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import pyarrow.parquet as pq

from ioc_analytics.errors import BadDataFileError
from ioc_analytics.lake.catalog import Table


@dataclass(frozen=True)
class DataFile:
    path: str  # a local path, or an s3:// URI
    size: int
    #: When it was last written (POSIX seconds), where the listing says.
    modified: float | None = field(default=None, compare=False)


@dataclass
class Partition:
    values: dict[str, str]
    files: list[DataFile] = field(default_factory=list)

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)

    def label(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.values.items())


@dataclass
class Listing:
    table: str
    partitions: list[Partition]
    #: Data objects under the table's location that match no partition of its layout.
    strays: list[str] = field(default_factory=list)


def fingerprint(files: Iterable[DataFile], *extra: object) -> str:
    """A digest of ``files`` as listed (path, size, modification time), in any order, and of
    ``extra``: it changes when a file is added, removed or written again. What a state partition
    records of its sources, and what keys a kept query result."""
    import hashlib
    import json

    listed = sorted([f.path, f.size, f.modified] for f in files)
    return hashlib.sha256(json.dumps([listed, *extra], default=str).encode()).hexdigest()


def is_hidden(name: str) -> bool:
    return name.startswith(("_", "."))


class Lake(Protocol):
    root: str

    def check(self) -> None:
        """Raise :class:`LakeNotFoundError` with a fix if the lake is not there."""

    def list_table(self, table: Table) -> Listing: ...

    def partition_files(self, table: Table, values: dict[str, str]) -> list[DataFile]: ...

    def footer(self, file: DataFile) -> pq.FileMetaData:
        """A Parquet file's footer: rows, row groups and their column statistics."""

    def list_all(self, prefix: str) -> list[DataFile]:
        """Every object under a folder or prefix, hidden ones (markers) included."""

    def files_in(self, location: str) -> list[DataFile]:
        """The data files directly in one folder (not hidden, not in sub-folders)."""

    def write_marker(self, path: str) -> None: ...

    def delete_object(self, path: str) -> None: ...

    def put_bytes(self, path: str, data: bytes) -> None:
        """Write a small object (a report, a manifest) whole: readers see the old one or the new one."""

    def get_bytes(self, path: str) -> bytes | None:
        """A small object's content, or None if there is none."""

    def move(self, source: str, target: str) -> None:
        """Move one object (quarantine moves data files aside, and back)."""

    def fetch(self, file: DataFile, scratch: Path) -> DataFile:
        """A local copy of ``file`` (the file itself when it is local), streamed to ``scratch``."""

    def delete_prefix(self, location: str) -> list[str]:
        """Delete everything under a folder strictly inside the lake; return what was deleted."""


def not_parquet(where: str, detail: str) -> BadDataFileError:
    return BadDataFileError(f"{where} is not a readable Parquet file ({detail}): remove it, or replace it with "
                            "the Parquet file it should be, then re-run")


def group_into_partitions(table: Table, files: list[DataFile]) -> Listing:
    """Group a table's data files by the partition their folder names (shared by all lakes)."""
    base = table.location.rstrip("/") + "/"
    partitions: dict[tuple[str, ...], Partition] = {}
    strays: list[str] = []
    for f in files:
        folder = f.path[len(base) :].rpartition("/")[0]
        match = table.partition_regex.fullmatch(folder)
        if not match:
            strays.append(f.path)
            continue
        values = {k: match.group(k) for k in table.partition_names}
        key = tuple(values.values())
        partitions.setdefault(key, Partition(values)).files.append(f)
    ordered = [partitions[k] for k in sorted(partitions)]
    return Listing(table.name, ordered, strays)
