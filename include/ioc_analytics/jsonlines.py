"""Append-only JSON-lines files: the local query log and the local alert log.

The query log (one line per query, failed ones too) is the local counterpart of Athena's query
history: the cost monitor reads it the way it reads ``ListQueryExecutions`` on ``aws``. The alert
log is where ``local`` alerts go. Parallel tasks append to the same file, so each append takes an
exclusive lock and writes one whole line. The lock is a sidecar file (``<name>.lock``), so that
:meth:`JsonLines.keep` can replace the file without an append landing in the replaced one.
"""

from __future__ import annotations

import fcntl
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from ioc_analytics.errors import ConfigError
from ioc_analytics.files import write_atomic


class JsonLines:
    def __init__(self, path: Path) -> None:
        self.path = path

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(f"{self.path}.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def append(self, record: dict[str, object]) -> None:
        line = json.dumps(record, default=str, sort_keys=True) + "\n"
        with self._locked(), self.path.open("a", encoding="utf-8") as fh:
            fh.write(line)
            fh.flush()

    def keep(self, wanted: Callable[[dict[str, object]], bool]) -> int:
        """Rewrite the file with only the records ``wanted`` accepts; returns how many went."""
        with self._locked():
            if not self.path.exists():
                return 0
            kept, dropped = [], 0
            with self.path.open(encoding="utf-8") as fh:
                for line in fh:
                    if line.strip():
                        if wanted(json.loads(line)):
                            kept.append(line if line.endswith("\n") else line + "\n")
                        else:
                            dropped += 1
            write_atomic(self.path, "".join(kept).encode("utf-8"))
            return dropped

    def __iter__(self) -> Iterator[dict[str, object]]:
        """The records; a line that is not a JSON object fails with its file and line number."""
        if not self.path.exists():
            return
        with self.path.open(encoding="utf-8") as fh:
            for number, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as err:
                    record, problem = None, str(err)
                else:
                    problem = "not a JSON object"
                if not isinstance(record, dict):
                    raise ConfigError(f"{self.path}:{number}: {problem}: fix or delete that line (each line is one "
                                      "JSON record, written by the engine or the alerts)")
                yield record
