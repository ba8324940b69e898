"""The local partition registry: the counterpart of Glue's partitions, one SQLite file in the state folder."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

from ioc_analytics.lake.catalog import Table
from ioc_analytics.lake.partitions import Key, key_of


class LocalRegistry:
    """The local counterpart of Glue's partitions: one SQLite file in the state folder.

    SQLite (stdlib) rather than a JSON file because parallel tasks and backfill runs register
    partitions of the same table at the same time; its transactions serialise them.
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        con = sqlite3.connect(self.path, timeout=30)
        con.execute("CREATE TABLE IF NOT EXISTS partitions (table_name TEXT NOT NULL, key TEXT NOT NULL, "
                    "location TEXT NOT NULL, registered_at TEXT NOT NULL, PRIMARY KEY (table_name, key))")
        return con

    def partitions(self, table: Table) -> dict[Key, str]:
        if not self.path.exists():
            return {}
        with self._connect() as con:
            rows = con.execute("SELECT key, location FROM partitions WHERE table_name = ?", (table.name,))
            return {tuple(json.loads(key)): location for key, location in rows}

    def location(self, table: Table, values: Mapping[str, str]) -> str | None:
        if not self.path.exists():
            return None
        with self._connect() as con:
            row = con.execute("SELECT location FROM partitions WHERE table_name = ? AND key = ?",
                              (table.name, json.dumps(list(key_of(table, values))))).fetchone()
        return row[0] if row else None

    def register(self, table: Table, values: Mapping[str, str], location: str) -> None:
        key = json.dumps(list(key_of(table, values)))
        with self._connect() as con:
            con.execute("INSERT INTO partitions VALUES (?, ?, ?, ?) ON CONFLICT (table_name, key) "
                        "DO UPDATE SET location = excluded.location, registered_at = excluded.registered_at",
                        (table.name, key, location, datetime.now(UTC).isoformat()))

    def unregister(self, table: Table, values: Mapping[str, str]) -> None:
        with self._connect() as con:
            con.execute("DELETE FROM partitions WHERE table_name = ? AND key = ?",
                        (table.name, json.dumps(list(key_of(table, values)))))
