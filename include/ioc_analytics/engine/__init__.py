"""Query engines: DuckDB over the local lake (``local``) and Athena (``aws``), one interface."""

from __future__ import annotations

from ioc_analytics.engine.base import Engine, QueryResult, QueryStats, athena_cost
from ioc_analytics.settings import Settings, get_settings

__all__ = ["Engine", "QueryResult", "QueryStats", "athena_cost", "get_engine"]


def get_engine(settings: Settings | None = None) -> Engine:
    """The engine of the configured backend; its module is imported only when chosen."""
    settings = settings or get_settings()
    if settings.backend == "aws":
        from ioc_analytics.backends.aws.engine import AthenaEngine

        return AthenaEngine(settings)
    from ioc_analytics.backends.local.engine import LocalEngine

    return LocalEngine(settings)
