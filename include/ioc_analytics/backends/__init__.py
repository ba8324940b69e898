"""The backends, and the one place that chooses between them.

``IOC_BACKEND`` names the backend; :func:`get_backend` builds it once per process and settings and
hands the same bundle (engine, lake, exports store, registry, history, alert and metrics sinks,
scratch) to every step. Nothing outside this package asks which backend it is on.
"""

from __future__ import annotations

import functools

from ioc_analytics.backends.base import Backend, NotOnThisBackend
from ioc_analytics.settings import Settings, get_settings

__all__ = ["Backend", "NotOnThisBackend", "get_backend"]


def get_backend(settings: Settings | None = None) -> Backend:
    """The configured backend (the same object for the same settings, within a process)."""
    return _build(settings or get_settings())


@functools.lru_cache(maxsize=32)  # a process has one configuration; tests build a few dozen
def _build(settings: Settings) -> Backend:
    # Each backend's module is imported only when chosen: a local run never imports boto3.
    if settings.backend == "aws":
        from ioc_analytics.backends.aws import AwsBackend

        return AwsBackend(settings)
    from ioc_analytics.backends.local import LocalBackend

    return LocalBackend(settings)
