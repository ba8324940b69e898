"""The local query history: the engine's query log (``<state_dir>/query_log.jsonl``), one line per query."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

from ioc_analytics.engine.base import QueryRecord, read_tags
from ioc_analytics.errors import ConfigError
from ioc_analytics.jsonlines import JsonLines
from ioc_analytics.settings import Settings


def query_log(settings: Settings) -> Iterator[QueryRecord]:
    for entry in JsonLines(settings.query_log_path):
        try:
            submitted = dt.datetime.fromisoformat(str(entry["submitted_at"]))
            if submitted.tzinfo is None:
                raise ValueError(f"submitted_at {entry['submitted_at']} has no time zone")
            record = QueryRecord(
                query_id=str(entry["query_id"]),
                workgroup=str(entry.get("workgroup") or settings.workgroup),
                submitted_at=submitted.astimezone(dt.UTC),
                state=str(entry["state"]),
                bytes_scanned=int(entry.get("bytes_scanned") or 0),
                engine_ms=round(float(entry.get("elapsed_s") or 0) * 1000),
                cost_usd=float(entry.get("cost_usd") or 0.0),
                query=str(entry.get("query") or ""),
                error=entry.get("error"),  # type: ignore[arg-type]
                tags=dict(entry.get("tags") or read_tags(str(entry.get("query") or ""))),  # type: ignore[arg-type]
            )
        except (KeyError, ValueError, TypeError) as err:
            raise ConfigError(f"{settings.query_log_path}: query {entry.get('query_id', '?')} is not a whole query "
                              f"record ({type(err).__name__}: {err}): fix or delete its line") from None
        yield record
