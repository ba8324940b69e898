"""The project's one settings module.

Every setting comes, in this order, from an ``IOC_*`` environment variable, from the Airflow
Variable of the same name in lower case (``ioc_lake_root``), or from the default below. DAGs, the
CLI and the tests all read settings through :func:`get_settings`, so the backend and every
location are chosen by configuration, never by editing a DAG.

Airflow Variables are only consulted inside an Airflow process (where ``airflow.sdk`` is already
imported): the CLI stays fast and never needs a metadata database. ``AIRFLOW_VAR_IOC_*``
environment variables work in both places, because the SDK reads them first.
"""

from __future__ import annotations

import math
import os
import sys
import time
from dataclasses import dataclass, fields
from pathlib import Path

from ioc_analytics.errors import ConfigError

#: The SQL, DDL and templates ship inside the package (package data), so an installed wheel has them.
PACKAGE_DIR = Path(__file__).resolve().parent
SQL_DIR = PACKAGE_DIR / "sql"
DDL_DIR = SQL_DIR / "ddl"


def _home() -> Path:
    """Where the default ``data/`` folders live: the checkout, when the package runs from one (an
    editable install, as ``make`` makes); else the working directory (an installed wheel)."""
    checkout = PACKAGE_DIR.parents[1]
    return checkout if (checkout / "pyproject.toml").is_file() and (checkout / "dags").is_dir() else Path.cwd()


PROJECT_ROOT = _home()

BACKENDS = ("local", "aws")


@dataclass(frozen=True)
class Settings:
    """Resolved configuration. Field names map to ``IOC_<NAME>`` environment variables."""

    backend: str = "local"
    #: The lake: a folder for ``local``, an ``s3://bucket/prefix`` URI for ``aws``.
    lake_root: str = str(PROJECT_ROOT / "data" / "lake")
    #: Local state: the query log, the partition registry, the alert log and setup's record.
    state_dir: str = str(PROJECT_ROOT / "data" / "state")
    #: Where exports are published: a folder for ``local``, an ``s3://`` URI for ``aws``.
    exports_root: str = str(PROJECT_ROOT / "data" / "exports")
    database: str = "ioc_analytics"
    workgroup: str = "ioc-analytics"
    #: Athena's result location (``aws`` only).
    athena_output: str = "s3://ioc-athena-query-results/"
    aws_conn_id: str = "aws_default"
    region: str = "us-east-1"
    #: Per-query bytes-scanned cutoff (1 GiB): the workgroup's on ``aws``; the local engine
    #: enforces the same number.
    bytes_scanned_cutoff: int = 1_073_741_824
    #: How long a query may run before the engine stops it.
    query_timeout_s: int = 600
    #: A build's Athena query still running after this many seconds is handed to Airflow's
    #: triggerer, which waits for it without holding a worker slot (``aws``; 0 hands it over at
    #: once). The query's timeout still counts from its start, and still stops it.
    athena_defer_after_s: int = 20
    #: Assessment types whose partition must hold rows before a day is processed (comma-separated);
    #: the others are optional: a quiet day for them is normal.
    required_assessment_types: str = "personality"
    #: What a source partition that fails an error-level data-quality check does to the day: with
    #: ``false`` the day stops; with ``true`` a partition the day can do without (an optional
    #: assessment type) is moved aside to ``quarantine/`` and the day goes on without it.
    quarantine: bool = False
    #: Breakdown rows with fewer distinct users than this are suppressed in exports and API answers.
    min_group_users: int = 10
    #: The most rows of one page of a query API answer, and a page's default size.
    api_max_rows: int = 10_000
    #: A query API answer asked again within this many minutes (the next page, a dashboard's
    #: refresh) is read from the earlier result, at no scan: Athena's query result reuse on
    #: ``aws``, the local engine's result cache on ``local``. 0 turns it off.
    result_reuse_minutes: int = 60
    #: The monthly Athena budget (the guide's $50): the cost monitor projects the month against it
    #: and the month-to-date alarm fires at ``budget_alert_pct`` of it.
    monthly_budget_usd: float = 50.0
    budget_alert_pct: int = 80
    #: A single query costing more than this is flagged (the guide's $0.50 alarm).
    query_cost_alert_usd: float = 0.50
    #: A day (or, on aws, the alarm's hour) whose share of failed queries passes this is flagged.
    failure_rate_alert_pct: int = 10
    #: The on-call SNS topic (``aws``), created by ``ioc setup``; alerts on ``local`` are appended to
    #: ``<state_dir>/alerts.jsonl``.
    alert_topic: str = "ioc-analytics-oncall"
    #: ``local`` only: POST each alert as JSON to this URL instead of the alert log.
    alert_webhook: str = ""
    #: QuickSight principals (user or group ARNs, comma-separated) given the owner's rights on the
    #: dashboard (and the analysis): without one, only the API sees them.
    quicksight_owners: str = ""
    #: Also keep an analysis of the dashboard's definition, to edit in QuickSight's editor.
    quicksight_analysis: bool = False
    #: Airflow's API server, for ``ioc recover`` (it creates backfills through the REST API).
    airflow_url: str = "http://localhost:8080"

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ConfigError(
                f"IOC_BACKEND={self.backend!r} is not a backend; use one of {', '.join(BACKENDS)}"
            )
        if self.query_timeout_s <= 0:
            raise ConfigError(f"IOC_QUERY_TIMEOUT_S={self.query_timeout_s} must be a positive number of seconds")
        if self.athena_defer_after_s < 0:
            raise ConfigError(f"IOC_ATHENA_DEFER_AFTER_S={self.athena_defer_after_s} must be 0 (hand a build's query "
                              "to the triggerer at once) or a positive number of seconds")
        if self.api_max_rows < 1:
            raise ConfigError(f"IOC_API_MAX_ROWS={self.api_max_rows} must be at least 1")
        if not 0 <= self.result_reuse_minutes <= 7 * 24 * 60:
            raise ConfigError(f"IOC_RESULT_REUSE_MINUTES={self.result_reuse_minutes} must be from 0 (off) to 10080 "
                              "minutes (Athena reuses a result for at most 7 days)")
        if self.min_group_users < 1:
            raise ConfigError(f"IOC_MIN_GROUP_USERS={self.min_group_users} must be at least 1")
        for name in ("monthly_budget_usd", "query_cost_alert_usd"):
            value = getattr(self, name)
            if not math.isfinite(value) or value <= 0:
                raise ConfigError(f"IOC_{name.upper()}={value} must be a positive number of dollars")
        for name in ("budget_alert_pct", "failure_rate_alert_pct"):
            if not 0 < getattr(self, name) <= 100:
                raise ConfigError(f"IOC_{name.upper()}={getattr(self, name)} must be a percentage above 0 "
                                  "and at most 100")
        if self.bytes_scanned_cutoff < 10_000_000:
            raise ConfigError(f"IOC_BYTES_SCANNED_CUTOFF={self.bytes_scanned_cutoff} is below Athena's minimum "
                              "of 10 MB (10000000 bytes)")

    @property
    def lake_uri(self) -> str:
        """The lake root without a trailing slash, absolute for a local folder."""
        if self.lake_root.startswith("s3://"):
            return self.lake_root.rstrip("/")
        return str(Path(self.lake_root).expanduser().resolve())

    @property
    def query_log_path(self) -> Path:
        return Path(self.state_dir).expanduser().resolve() / "query_log.jsonl"

    @property
    def result_cache_dir(self) -> Path:
        """Where the local engine keeps results for reuse (``IOC_RESULT_REUSE_MINUTES``)."""
        return Path(self.state_dir).expanduser().resolve() / "results"

    @property
    def alert_log_path(self) -> Path:
        """Where ``local`` alerts go, one JSON line each."""
        return Path(self.state_dir).expanduser().resolve() / "alerts.jsonl"


#: Airflow Variable answers, kept by a process for a minute. Each lookup is a call to Airflow's
#: API and a step resolves every setting, most of them unset, while Airflow's own secrets cache
#: (``[secrets] use_cache``) keeps only variables that exist. A task's process is new for each
#: try, so a worker always reads fresh values; the minute bounds what a long-lived process (one
#: ``dag.test`` of many runs, as the demo's) may miss of a Variable changed meanwhile.
VARIABLE_TTL_S = 60.0
_variables: dict[str, tuple[float, str | None]] = {}


def _lookup(name: str) -> str | None:
    value = os.environ.get(f"IOC_{name.upper()}")
    if value not in (None, ""):
        return value
    if "airflow.sdk" not in sys.modules:
        return None
    key = f"ioc_{name}"
    kept = _variables.get(key)
    if kept is None or time.monotonic() - kept[0] > VARIABLE_TTL_S:
        from airflow.sdk import Variable

        kept = _variables[key] = (time.monotonic(), Variable.get(key, default=None))
    return kept[1]


def get_settings(**overrides: object) -> Settings:
    """Resolve settings now (never at import time, so DAG parsing does no lookups)."""
    values: dict[str, object] = {}
    for field in fields(Settings):
        raw = overrides.get(field.name)
        if raw is None:
            raw = _lookup(field.name)
        if raw is None:
            continue
        if field.type in ("int", "float"):
            try:
                raw = int(raw) if field.type == "int" else float(raw)
            except ValueError:
                kind = "a whole number" if field.type == "int" else "a number"
                raise ConfigError(f"IOC_{field.name.upper()}={raw!r} must be {kind}") from None
        elif field.type == "bool" and not isinstance(raw, bool):
            if str(raw).lower() not in _BOOLEANS:
                raise ConfigError(f"IOC_{field.name.upper()}={raw!r} must be true or false")
            raw = _BOOLEANS[str(raw).lower()]
        values[field.name] = raw
    return Settings(**values)


_BOOLEANS = {"true": True, "1": True, "yes": True, "on": True, "false": False, "0": False, "no": False, "off": False}
