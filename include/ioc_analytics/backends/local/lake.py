"""The lake in a local folder (``local`` backend), laid out exactly as the S3 lake is."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from ioc_analytics.errors import ConfigError, LakeNotFoundError
from ioc_analytics.files import write_atomic
from ioc_analytics.lake.catalog import Table
from ioc_analytics.lake.store import DataFile, Listing, group_into_partitions, is_hidden, not_parquet


class LocalLake:
    """A lake in a local folder, laid out exactly as the S3 lake is."""

    def __init__(self, root: str) -> None:
        self.root = str(Path(root).expanduser().resolve())

    def check(self) -> None:
        if Path(self.root).is_file():
            raise LakeNotFoundError(f"the lake {self.root} is a file, not a folder: set IOC_LAKE_ROOT to the lake")
        if not Path(self.root).is_dir():
            raise LakeNotFoundError(
                f"the lake folder {self.root} does not exist: set IOC_LAKE_ROOT to your lake, "
                "or create a sample one with `ioc generate --lake DIR --start YYYY-MM-DD --days N`"
            )

    def _walk(self, folder: str, hidden: bool = False) -> list[DataFile]:
        found = []
        for dirpath, dirnames, filenames in os.walk(folder):
            dirnames[:] = sorted(d for d in dirnames if hidden or not is_hidden(d))
            for name in sorted(filenames):
                if hidden or not is_hidden(name):
                    path = os.path.join(dirpath, name)
                    stat = os.stat(path)
                    found.append(DataFile(path, stat.st_size, stat.st_mtime))
        return found

    def list_table(self, table: Table) -> Listing:
        self.check()
        return group_into_partitions(table, self._walk(table.location))

    def partition_files(self, table: Table, values: dict[str, str]) -> list[DataFile]:
        self.check()
        folder = table.partition_location(values)
        return [f for f in self._walk(folder) if os.path.dirname(f.path) == folder.rstrip("/")]

    def footer(self, file: DataFile) -> pq.FileMetaData:
        """The Parquet footer of a file: rows, row groups, schema."""
        try:
            return pq.read_metadata(file.path)
        except (OSError, pa.ArrowException) as err:
            raise not_parquet(file.path, str(err).splitlines()[0]) from None

    def list_all(self, prefix: str) -> list[DataFile]:
        return self._walk(prefix, hidden=True)

    def files_in(self, location: str) -> list[DataFile]:
        folder = location.rstrip("/")
        return [f for f in self._walk(folder) if os.path.dirname(f.path) == folder]

    def write_marker(self, path: str) -> None:
        Path(path).write_bytes(b"")

    def delete_object(self, path: str) -> None:
        Path(path).unlink(missing_ok=True)

    def put_bytes(self, path: str, data: bytes) -> None:
        write_atomic(path, data)

    def get_bytes(self, path: str) -> bytes | None:
        return Path(path).read_bytes() if Path(path).is_file() else None

    def move(self, source: str, target: str) -> None:
        Path(target).parent.mkdir(parents=True, exist_ok=True)
        os.replace(source, target)

    def fetch(self, file: DataFile, scratch: Path) -> DataFile:
        return file

    def delete_prefix(self, location: str) -> list[str]:
        folder = Path(location).resolve()
        if not folder.is_relative_to(self.root) or folder == Path(self.root):
            raise ConfigError(f"refusing to delete {location}: not a folder strictly inside the lake {self.root}")
        deleted = [f.path for f in self._walk(str(folder), hidden=True)]
        shutil.rmtree(folder, ignore_errors=True)
        return deleted
