"""Errors a user can cause. Each carries one message that says what is wrong and what to do.

The CLI prints ``str(error)`` and exits 2 for any :class:`IocError`. Tasks fail with the same
message; ``retryable`` says whether trying again unchanged can help (see ``ioc_analytics.runtime``).
"""

from __future__ import annotations


class IocError(Exception):
    """Base class: a failure the user can fix, with a message that says how."""

    #: Whether an Airflow retry of the same task, unchanged, can succeed. Bad SQL, bad settings,
    #: missing or bad data cannot: retrying them only delays the alert.
    retryable = False


class ConfigError(IocError):
    """A setting is missing or invalid."""


class LakeNotFoundError(IocError):
    """The lake root does not exist or holds no table folders."""


class CatalogError(IocError):
    """A DDL file cannot be read as a table definition."""


class QueryError(IocError):
    """A query could not run: bad SQL, unknown table or column, or an engine failure.

    ``retryable`` is given by the engine when it knows better (Athena flags its transient errors).
    """

    def __init__(self, message: str, *, query_id: str | None = None, retryable: bool | None = None) -> None:
        super().__init__(message)
        self.query_id = query_id
        if retryable is not None:
            self.retryable = retryable


class SqlSyntaxError(QueryError):
    pass


class UnknownTableError(QueryError):
    pass


class UnknownColumnError(QueryError):
    pass


class NoDataError(QueryError):
    """The partitions a query selects hold no data: an empty result would be a wrong answer."""


class QueryTimeoutError(QueryError):
    """The query ran out of time; a later try, on a quieter engine, may not."""

    retryable = True

    @classmethod
    def stopped(cls, query_id: str, timeout_s: int) -> QueryTimeoutError:
        """An Athena query stopped at its timeout (by the engine, or by its trigger)."""
        return cls(f"Athena query {query_id} did not finish within {timeout_s} s and was stopped: "
                   "make it scan less (filter on partition keys) or raise IOC_QUERY_TIMEOUT_S", query_id=query_id)


class BytesScannedCutoffError(QueryError):
    """The query would scan more than the workgroup's per-query cutoff."""

    #: What it had scanned when stopped (Athena bills it), where the engine knows.
    bytes_scanned = 0


class BadDataFileError(IocError):
    """A file in a table's folder is not a Parquet file that fits the table."""


class DataQualityError(IocError):
    """A data-quality gate failed: the date's outputs must not be published."""
