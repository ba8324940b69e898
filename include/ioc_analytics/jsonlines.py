"""Append-only JSON-lines files: the local query log and the local alert log.

The query log (one line per query, failed ones too) is the local counterpart of Athena's query
history: the cost monitor reads it the way it reads ``ListQueryExecutions`` on ``aws``. The alert
log is where ``local`` alerts go. Parallel tasks append to the same file, so each append takes an
exclusive lock and writes one whole line.
"""

from __future__ import annotations

import fcntl
import json
from collections.abc import Iterator
from pathlib import Path


class JsonLines:
    def __init__(self, path: Path) -> None:
        self.path = path

    def append(self, record: dict[str, object]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = json.dumps(record, default=str, sort_keys=True) + "\n"
        with self.path.open("a", encoding="utf-8") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                fh.write(line)
                fh.flush()
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def __iter__(self) -> Iterator[dict[str, object]]:
        if not self.path.exists():
            return
        with self.path.open(encoding="utf-8") as fh:
            for line in fh:
                if line.strip():
                    yield json.loads(line)
