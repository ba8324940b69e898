"""``ioc recover``: the way back after a bad day.

A day whose raw data fails its own checks stops every later day whose aggregates read it: the
30-day look-back of returning users (``assessment_events``), the month to date
(``ocean_scores``). Their ``validate_`` tasks fail, naming the bad day. Once the bad day is fixed
or delivered again, this re-runs it and the days it blocked, through Airflow's REST API:

1. the plan, from the quality reports kept in the lake: the named days' own failures, the later
   days whose reports say they were stopped by them, and the later days that read a named day
   and were built anyway (validated before it failed: days of one backfill run side by side, or
   the day was delivered again, bad, after they ran): their aggregates carry its bad rows;
2. each named day is validated again now (seconds), so that a fix that did not take stops here,
   with what still fails, before any run starts;
3. a backfill of each named day, one at a time in date order (a later bad day reads an earlier
   one), waited for;
4. a backfill of each stretch of consecutive later days, two runs at a time (they read the fixed
   days, not each other: a day stopped only by the look-back holds no bad data and blocks
   nothing), waited for.

Each backfill has ``reprocess_behavior: completed``: it re-runs the day's run whether it failed or
succeeded (a day can have passed, then been delivered again bad), and creates the runs that do
not exist. The Airflow API is ``IOC_AIRFLOW_URL``; the caller authenticates with
``IOC_AIRFLOW_TOKEN`` (a JWT), or ``IOC_AIRFLOW_USERNAME`` (``admin``) and
``IOC_AIRFLOW_PASSWORD``, or, for ``make airflow``, the password standalone generated in its home.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ioc_analytics import quality
from ioc_analytics.backends import get_backend
from ioc_analytics.errors import ConfigError, IocError
from ioc_analytics.lake import contract
from ioc_analytics.lake.tables import RAW_TABLES
from ioc_analytics.settings import PROJECT_ROOT, Settings

DAG_ID = "ioc_daily_analytics"
#: How long a backfill may take before ``ioc recover`` stops waiting (it goes on in Airflow).
WAIT_S = 3 * 3600
POLL_S = 5
#: The waits before each retry of an answer that says Airflow's database is busy, 30 s in all.
BUSY_RETRY_S = (1, 2, 4, 8, 15)


class RecoveryError(IocError):
    """The recovery cannot start or did not succeed."""


@dataclass
class Plan:
    #: The named days, and what failed in each (table -> the first own failure).
    bad: dict[dt.date, dict[str, str]] = field(default_factory=dict)
    #: Later days stopped by the look-back on a named day.
    blocked: list[dt.date] = field(default_factory=list)
    #: Later days that read a named day and were built anyway (validated before it failed).
    read: list[dt.date] = field(default_factory=list)

    @property
    def later(self) -> list[dt.date]:
        return sorted(set(self.blocked) | set(self.read))

    def describe(self) -> list[str]:
        lines = [f"{day} failed its own checks: " + "; ".join(f"{t}: {what}" for t, what in failed.items())
                 for day, failed in self.bad.items()]
        if self.blocked:
            lines.append(f"it blocked {_days(self.blocked)}: " + ", ".join(d.isoformat() for d in self.blocked))
        if self.read:
            built = "was" if len(self.read) == 1 else "were"
            lines.append(f"{_days(self.read)} read it and {built} built anyway (validated before it failed), re-run "
                         "too: " + ", ".join(d.isoformat() for d in self.read))
        if not self.later:
            lines.append("no later day read it")
        return lines


def _days(days: list[dt.date]) -> str:
    return f"{len(days)} later day{'s' if len(days) > 1 else ''}"


def _reports(settings: Settings) -> dict[tuple[str, dt.date], dict[str, Any]]:
    """Every kept report of the raw tables, by table and day."""
    lake = get_backend(settings).lake
    lake.check()
    found = {}
    for table in RAW_TABLES:
        for file in lake.list_all(f"{settings.lake_uri}/quality/{table}/"):
            name = file.path.rsplit("/", 1)[-1]
            try:
                day = dt.date.fromisoformat(name.removesuffix(".json"))
            except ValueError:
                continue
            if (report := quality.read_report(lake, file.path)) is not None:
                found[(table, day)] = report
    return found


def plan(settings: Settings, days: list[dt.date]) -> Plan:
    """What to re-run: each named day (which must have failed its own checks), the later days
    stopped by the look-back on it, and the later days that read it and were built anyway."""
    reports = _reports(settings)
    own = {key: quality.own_failures(report) for key, report in reports.items()}
    listed = ", ".join(d.isoformat() for d in sorted({day for (_, day), f in own.items() if f})[-10:]) or "none"
    if not days:
        raise ConfigError(f"name the days to recover (YYYY-MM-DD); days whose own checks failed: {listed}")
    result = Plan()
    for day in sorted(set(days)):
        failed = {table: own[(table, day)][0].describe() for table in RAW_TABLES if own.get((table, day))}
        if not failed:
            raise ConfigError(f"{day} did not fail its own checks (no failed quality report of its raw tables), so "
                              f"nothing waits for it; days whose own checks failed: {listed}")
        result.bad[day] = failed
    named = {d.isoformat() for d in result.bad}
    blocked = set()
    for (_, day), report in reports.items():
        for failure in (quality.Failure.from_dict(f) for f in report.get("failures", [])):
            if failure.breach == contract.EARLIER_DAY and named & set(map(str, failure.samples)):
                blocked.add(day)
    read = {later for day, failed in result.bad.items() for table in failed
            for later in quality.later_days(table, day) if (table, later) in reports}
    result.blocked = sorted(blocked - set(result.bad))
    result.read = sorted(read - blocked - set(result.bad))
    return result


def still_failing(settings: Settings, recovery: Plan) -> dict[dt.date, list[str]]:
    """Validate the named days' failed tables again now; what still fails, by day: their own
    failures, and an earlier bad day that the recovery does not name."""
    named = {d.isoformat() for d in recovery.bad}
    failing = {}
    for day, failed in recovery.bad.items():
        errors = []
        for table in failed:
            report = quality.validate_source(settings, day, table)
            for f in report.errors:
                if f.breach != contract.EARLIER_DAY:
                    errors.append(f"{table}: {f.describe()}")
                elif unnamed := sorted(set(map(str, f.samples)) - named):
                    errors.append(f"{table}: it reads {', '.join(unnamed)}, which failed too: name "
                                  f"{'it' if len(unnamed) == 1 else 'them'} as well")
        if errors:
            failing[day] = errors
    return failing


def _busy(response: Any) -> bool:
    """Whether Airflow's answer means its metadata database was busy (see ``AirflowApi._send``)."""
    return response.status_code == 503 or (response.status_code == 500 and "Database error" in response.text)


class AirflowApi:
    """The few calls of Airflow's REST API (``/api/v2``) that a recovery needs."""

    def __init__(self, base_url: str, client: Any = None) -> None:
        import httpx

        self.base = base_url.rstrip("/")
        self.http = client or httpx.Client(timeout=30)
        self.http.headers.update(self._auth())

    def _auth(self) -> dict[str, str]:
        token = os.environ.get("IOC_AIRFLOW_TOKEN")
        if token:
            return {"Authorization": f"Bearer {token}"}
        user = os.environ.get("IOC_AIRFLOW_USERNAME", "admin")
        password = os.environ.get("IOC_AIRFLOW_PASSWORD") or _standalone_password(user)
        if not password:
            return {}  # an API that needs no login (SIMPLE_AUTH_MANAGER_ALL_ADMINS)
        answer = self._send("POST", "/auth/token", json={"username": user, "password": password})
        if not isinstance(answer, dict) or "access_token" not in answer:
            raise RecoveryError(f"{self.base}/auth/token gave no access token: set IOC_AIRFLOW_TOKEN instead")
        return {"Authorization": f"Bearer {answer['access_token']}"}

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """One call of the API (``path`` under its base), asked again while Airflow's metadata
        database is busy; the answer as it came (an ``httpx.Response``)."""
        import httpx

        for wait in (*BUSY_RETRY_S, None):
            try:
                response = self.http.request(method, f"{self.base}{path}", **kwargs)
            except httpx.TransportError as err:
                raise RecoveryError(f"cannot reach Airflow's API at {self.base} ({err}): start Airflow "
                                    "(`make airflow`), or set IOC_AIRFLOW_URL to its API server") from None
            except httpx.InvalidURL as err:
                raise RecoveryError(f"IOC_AIRFLOW_URL={self.base!r} is not a URL ({err})") from None
            # On SQLite (`make airflow`) a write while the scheduler holds the database is refused:
            # 503 ("Database is locked": a backfill's creation) or 500 "Database error", rolled
            # back, so asking again is safe. Both pass once the scheduler lets go.
            if not _busy(response) or wait is None:
                return response
            time.sleep(wait)
        raise AssertionError("unreachable: the last wait returns")

    def _send(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.request(method, path, **kwargs)
        if response.status_code in (401, 403):
            raise RecoveryError(f"Airflow's API at {self.base} refused {method} {path} ({response.status_code}): set "
                                "IOC_AIRFLOW_TOKEN, or IOC_AIRFLOW_USERNAME and IOC_AIRFLOW_PASSWORD, to a user who "
                                "may create backfills")
        if _busy(response):
            raise RecoveryError(f"Airflow's API stayed busy for {sum(BUSY_RETRY_S):.0f} s on {method} {path} "
                                f"({response.text[:300]}): run `ioc recover` again in a minute; on SQLite, "
                                "a metadata database on PostgreSQL avoids it")
        if response.status_code >= 400:
            raise RecoveryError(f"Airflow's API answered {method} {path} with {response.status_code}: "
                                f"{response.text[:500]}")
        try:
            return response.json()
        except ValueError:
            raise RecoveryError(f"{self.base}{path} did not answer as Airflow's API does (not JSON: "
                                f"{response.text[:200]!r}): set IOC_AIRFLOW_URL to Airflow's API server") from None

    def is_paused(self, dag_id: str) -> bool:
        return bool(self._send("GET", f"/api/v2/dags/{dag_id}")["is_paused"])

    def backfill(self, dag_id: str, first: dt.date, last: dt.date, max_active_runs: int, reprocess: str) -> int:
        """A backfill that creates the missing runs and re-runs the ``reprocess`` ones (``failed``,
        ``completed``); its id."""
        body = {"dag_id": dag_id, "from_date": f"{first}T00:00:00Z", "to_date": f"{last}T00:00:00Z",
                "reprocess_behavior": reprocess, "max_active_runs": max_active_runs, "run_backwards": False,
                "dag_run_conf": {}}
        return int(self._send("POST", "/api/v2/backfills", json=body)["id"])

    def completed(self, backfill_id: int) -> bool:
        return self._send("GET", f"/api/v2/backfills/{backfill_id}").get("completed_at") is not None

    def running(self, dag_id: str) -> list[int]:
        """The DAG's backfills not completed yet (Airflow runs one at a time per DAG)."""
        listed = self._send("GET", "/api/v2/backfills", params={"dag_id": dag_id, "limit": 100,
                                                                "order_by": "-id"})["backfills"]
        return [int(b["id"]) for b in listed if b.get("completed_at") is None]

    def states(self, dag_id: str, first: dt.date, last: dt.date) -> dict[dt.date, str]:
        """The newest run's state of each day from ``first`` to ``last``."""
        runs = self._send("GET", f"/api/v2/dags/{dag_id}/dagRuns", params={
            "logical_date_gte": f"{first}T00:00:00Z", "logical_date_lte": f"{last}T00:00:00Z", "limit": 100,
            "order_by": "run_after"})["dag_runs"]
        return {dt.date.fromisoformat(r["logical_date"][:10]): r["state"] for r in runs if r.get("logical_date")}


def _stretches(days: list[dt.date]) -> list[tuple[dt.date, dt.date]]:
    """Sorted days as runs of consecutive ones, (first, last) each."""
    found: list[tuple[dt.date, dt.date]] = []
    for day in sorted(days):
        if found and day == found[-1][1] + dt.timedelta(days=1):
            found[-1] = (found[-1][0], day)
        else:
            found.append((day, day))
    return found


def _standalone_password(user: str) -> str | None:
    """The password ``airflow standalone`` generated for ``user`` (``make airflow``'s home)."""
    home = Path(os.environ.get("AIRFLOW_HOME") or PROJECT_ROOT / "airflow_home")
    generated = home / "simple_auth_manager_passwords.json.generated"
    try:
        return json.loads(generated.read_text()).get(user)
    except (OSError, ValueError, AttributeError):
        return None  # none, or not standalone's file: then no password from here


def recover(settings: Settings, days: list[dt.date], api: AirflowApi | None = None, dry_run: bool = False,
            wait_s: float = WAIT_S, echo: Callable[[str], None] = print) -> bool:
    """Re-run the named bad days, then the days they blocked (see the module); True if every
    re-run day succeeded. ``dry_run``: say what would be re-run, and change nothing."""
    recovery = plan(settings, days)
    for line in recovery.describe():
        echo(line)
    if dry_run:
        echo("dry run: nothing validated, nothing re-run")
        return True
    failing = still_failing(settings, recovery)
    if failing:
        raise RecoveryError("; ".join(f"{day} still fails: {' / '.join(errors)}" for day, errors in failing.items())
                            + ". Fix or re-deliver it, then run `ioc recover` again; nothing was re-run")
    echo("validated again: " + ", ".join(f"{d} passes" for d in recovery.bad))
    api = api or AirflowApi(settings.airflow_url)
    if api.is_paused(DAG_ID):
        raise RecoveryError(f"{DAG_ID} is paused, so its backfill runs would wait: unpause it (the toggle in the UI, "
                            f"or PATCH /api/v2/dags/{DAG_ID} {{\"is_paused\": false}}), then run `ioc recover` again")
    bad = sorted(recovery.bad)
    # The named days one at a time, in order (a later bad day reads an earlier one); then the later
    # days, each run of consecutive ones side by side: they read the named days, not each other.
    phases = [(day, day, 1, "a fixed day") for day in bad]
    later = [d for d in recovery.later if d not in recovery.bad]
    for first, last in _stretches(later):
        phases.append((first, last, 2, "later days that read it"))
    deadline = time.monotonic() + wait_s

    def wait_for(backfill: int) -> None:
        while not api.completed(backfill):
            if time.monotonic() > deadline:
                raise RecoveryError(f"the recovery has waited {wait_s / 60:.0f} minutes and backfill {backfill} of "
                                    f"{DAG_ID} is still running; it goes on in Airflow: follow it in the UI (Browse, "
                                    "Backfills), then run `ioc recover` again if it did not finish the recovery")
            time.sleep(POLL_S)

    for first, last, at_once, what in phases:
        # Airflow runs one backfill of a DAG at a time: one still running (another's, or the
        # scheduler not yet done marking one complete) goes first.
        for other in api.running(DAG_ID):
            echo(f"waiting for backfill {other} of {DAG_ID}, still running, to complete")
            wait_for(other)
        # completed: the failed runs and the successful ones (a day can have passed, then been
        # delivered again bad; a later day can have been built from a bad day)
        backfill = api.backfill(DAG_ID, first, last, at_once, "completed")
        echo(f"backfill {backfill} of {DAG_ID}, {first} to {last} ({what}): its runs re-run, missing ones created")
        wait_for(backfill)
        states = api.states(DAG_ID, first, last)
        for day in sorted(states):
            echo(f"  {day}  {states[day]}")
        failed = sorted(d for d, state in states.items() if state != "success")
        if failed:
            echo(f"{len(failed)} runs did not succeed ({', '.join(map(str, failed))}): open them in the UI; "
                 "their failed task's log says why")
            return False
    echo(f"recovered: {len(bad)} fixed day{'s' if len(bad) > 1 else ''} and {len(later)} later ones re-run")
    return True
