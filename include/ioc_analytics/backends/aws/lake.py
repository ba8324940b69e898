"""The lake in S3 (``aws`` backend): the same layout and rules as :class:`ioc_analytics.backends.local.lake.LocalLake`.

Objects are listed through the Amazon provider's ``S3Hook`` (the ``list_objects_v2`` paginator),
so credentials and the endpoint come from the Airflow connection ``aws_conn_id``. As in the local
lake, names starting with ``_`` or ``.`` are ignored (at any depth below the table location), S3
"folder" markers are skipped, and objects that match no partition of the layout are reported as
strays instead of being dropped.

The provider is imported when a lake is first used, never at import time.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq

from ioc_analytics.errors import ConfigError, LakeNotFoundError
from ioc_analytics.lake.catalog import Table
from ioc_analytics.lake.store import DataFile, Listing, group_into_partitions, is_hidden, not_parquet

if TYPE_CHECKING:
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    from ioc_analytics.settings import Settings


def split_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/some/key`` -> ``("bucket", "some/key")``."""
    if not uri.startswith("s3://"):
        raise ConfigError(f"{uri!r} is not an s3:// URI")
    bucket, _, key = uri[len("s3://") :].partition("/")
    if not bucket:
        raise ConfigError(f"{uri!r} names no bucket")
    return bucket, key


class S3Lake:
    """A lake under an ``s3://bucket[/prefix]`` root, read through an Airflow AWS connection."""

    def __init__(self, root: str, aws_conn_id: str = "aws_default", region_name: str | None = None) -> None:
        self.root = root.rstrip("/")
        self.bucket, self.prefix = split_s3_uri(self.root)
        self.aws_conn_id = aws_conn_id
        self.region_name = region_name
        self._hook: S3Hook | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> S3Lake:
        return cls(settings.lake_uri, settings.aws_conn_id, settings.region)

    @property
    def hook(self) -> S3Hook:
        if self._hook is None:
            from airflow.providers.amazon.aws.hooks.s3 import S3Hook

            self._hook = S3Hook(aws_conn_id=self.aws_conn_id, region_name=self.region_name)
        return self._hook

    # -- the Lake interface -------------------------------------------------------------------

    def check(self) -> None:
        """Raise :class:`LakeNotFoundError` if the bucket is missing or the connection cannot reach it."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.hook.get_conn().head_bucket(Bucket=self.bucket)
        except ClientError as err:
            code = err.response.get("Error", {}).get("Code", "")
            if code in ("404", "NoSuchBucket"):
                problem = "does not exist"
            elif code in ("403", "AccessDenied"):
                problem = "is not readable with these credentials (403 Forbidden)"
            else:
                problem = f"cannot be reached ({err})"
            raise self._not_found(problem) from None
        except BotoCoreError as err:
            raise self._not_found(f"cannot be reached ({err})") from None

    def list_table(self, table: Table) -> Listing:
        self.check()
        base = self._table_prefix(table)
        files = [
            DataFile(self._uri(obj["Key"]), int(obj["Size"]), obj["LastModified"].timestamp())
            for obj in self._objects(base)
            if _visible(obj["Key"][len(base) :])
        ]
        return group_into_partitions(table, files)

    def partition_files(self, table: Table, values: dict[str, str]) -> list[DataFile]:
        """The data files directly in one partition's folder (not in sub-folders, not hidden)."""
        self.check()
        return self.files_in(table.partition_location(values))

    def files_in(self, location: str) -> list[DataFile]:
        _, prefix = split_s3_uri(location.rstrip("/") + "/")
        return [
            DataFile(self._uri(obj["Key"]), int(obj["Size"]), obj["LastModified"].timestamp())
            for obj in self._objects(prefix)
            if "/" not in obj["Key"][len(prefix) :] and _visible(obj["Key"][len(prefix) :])
        ]

    def list_all(self, prefix: str) -> list[DataFile]:
        _, key_prefix = split_s3_uri(prefix)
        return [DataFile(self._uri(obj["Key"]), int(obj["Size"]), obj["LastModified"].timestamp())
                for obj in self._objects(key_prefix) if not obj["Key"].endswith("/")]

    def write_marker(self, path: str) -> None:
        bucket, key = split_s3_uri(path)
        self.hook.get_conn().put_object(Bucket=bucket, Key=key, Body=b"")

    def delete_object(self, path: str) -> None:
        bucket, key = split_s3_uri(path)
        self.hook.get_conn().delete_object(Bucket=bucket, Key=key)

    def put_bytes(self, path: str, data: bytes) -> None:
        bucket, key = split_s3_uri(path)
        self.hook.get_conn().put_object(Bucket=bucket, Key=key, Body=data)

    def get_bytes(self, path: str) -> bytes | None:
        from botocore.exceptions import ClientError

        bucket, key = split_s3_uri(path)
        try:
            return self.hook.get_conn().get_object(Bucket=bucket, Key=key)["Body"].read()
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return None
            raise

    def move(self, source: str, target: str) -> None:
        """Copy, then delete: S3 has no rename (a copy of up to 5 GB is one request)."""
        (bucket, key), (target_bucket, target_key) = split_s3_uri(source), split_s3_uri(target)
        client = self.hook.get_conn()
        client.copy_object(Bucket=target_bucket, Key=target_key, CopySource={"Bucket": bucket, "Key": key})
        client.delete_object(Bucket=bucket, Key=key)

    def fetch(self, file: DataFile, scratch: Path) -> DataFile:
        bucket, key = split_s3_uri(file.path)
        self.hook.get_conn().download_file(bucket, key, str(scratch))
        return DataFile(str(scratch), file.size)

    def footer(self, file: DataFile) -> pq.FileMetaData:
        """A Parquet object's footer: one ranged GET, two for a large footer."""
        bucket, key = split_s3_uri(file.path)
        client = self.hook.get_conn()
        tail = client.get_object(Bucket=bucket, Key=key, Range=f"bytes=-{_FOOTER_GUESS}")["Body"].read()
        length = int.from_bytes(tail[-8:-4], "little") if len(tail) >= 8 else 0
        if tail[-4:] == b"PAR1" and length + 8 > len(tail) and length + 8 <= file.size:
            tail = client.get_object(Bucket=bucket, Key=key, Range=f"bytes=-{length + 8}")["Body"].read()
        if len(tail) < 12 or tail[-4:] != b"PAR1":
            raise not_parquet(file.path, "it lacks the PAR1 footer")
        try:
            return pq.read_metadata(pa.BufferReader(b"PAR1" + tail[-(length + 8):]))
        except (OSError, pa.ArrowException) as err:
            raise not_parquet(file.path, f"damaged footer: {err}") from None

    # -- writing ------------------------------------------------------------------------------

    def delete_prefix(self, uri: str) -> list[str]:
        """Delete every object under ``uri`` (a folder: it must end with ``/``), hidden ones too.

        Returns the URIs deleted. Refuses anything that is not strictly inside the lake root,
        so a bad template can never empty the bucket.
        """
        bucket, prefix = split_s3_uri(uri)
        root_prefix = self.prefix + "/" if self.prefix else ""
        inside = bucket == self.bucket and prefix.startswith(root_prefix) and prefix != root_prefix
        if not inside or not uri.endswith("/"):
            raise ConfigError(f"refusing to delete {uri}: not a folder strictly inside the lake root {self.root}/")
        keys = [obj["Key"] for obj in self._objects(prefix)]
        if keys:
            self.hook.delete_objects(bucket=self.bucket, keys=keys)
        return [self._uri(k) for k in keys]

    # -- helpers ------------------------------------------------------------------------------

    def _objects(self, prefix: str) -> Iterator[dict[str, Any]]:
        from botocore.exceptions import ClientError

        try:
            yield from self.hook.iter_file_metadata(prefix=prefix, bucket_name=self.bucket)
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") == "NoSuchBucket":
                raise self._not_found("does not exist") from None
            raise

    def _table_prefix(self, table: Table) -> str:
        bucket, prefix = split_s3_uri(table.location.rstrip("/") + "/")
        if bucket != self.bucket:
            raise ConfigError(f"table {table.name} lives at {table.location}, outside the lake {self.root}")
        return prefix

    def _uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    def _not_found(self, problem: str) -> LakeNotFoundError:
        return LakeNotFoundError(
            f"the lake bucket {self.bucket!r} (IOC_LAKE_ROOT={self.root}) {problem} through the Airflow "
            f"connection {self.aws_conn_id!r}: create the bucket, or point "
            "IOC_LAKE_ROOT and the connection (endpoint, region, credentials) at the right account"
        )


#: Bytes fetched from the end of an object to read its footer in one request (most footers fit).
_FOOTER_GUESS = 64 * 1024


def _visible(relative_key: str) -> bool:
    """False for folder markers and for anything inside or named like a hidden file or folder."""
    if not relative_key or relative_key.endswith("/"):
        return False
    return not any(is_hidden(part) for part in relative_key.split("/"))
