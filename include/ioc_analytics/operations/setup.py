"""Setup (the guide's ``npm run setup:athena``): what the pipelines need before their first run.

:func:`ensure` creates what is missing and brings what has drifted back to what the settings say,
so it is safe to run twice, or after someone changed a setting or a resource in the console. It
reports, for every resource, ``created``, ``changed`` (with what differed) or ``unchanged``, then
how far IOC is from the guide's activation criteria. ``ioc setup`` prints the report; the
``ioc_setup`` DAG runs one step per task.

===============  ==============================================  ==============================================
step             ``aws``                                         ``local``
===============  ==============================================  ==============================================
catalog          the Glue database and tables, from the DDL      the lake, state and exports folders; every DDL
                 (``backends/aws/setup.py``)                        table parsed
results_bucket   the Athena results bucket and its lifecycle     (aws only: the local engine keeps no results)
                 rule
workgroup        the workgroup: per-query bytes-scanned cutoff,  the same cutoff, which the local engine enforces
                 enforced configuration, CloudWatch metrics,
                 SSE-S3 results
alerts           the on-call SNS topic and three CloudWatch      the same three thresholds, which the cost
                 alarms (month-to-date budget, single query      monitor DAG evaluates
                 cost, failure rate)
quicksight       data source, datasets and dashboard             (aws only: local has the static dashboard)
                 (``backends/aws/``)
readiness        the activation criteria, from Athena            the same, from the local lake and query log
===============  ==============================================  ==============================================

Only the fields setup manages are compared: a tag or a console setting it does not own is left
alone. On ``local`` there is nothing remote to compare with, so what setup decided is recorded in
``<state_dir>/setup.json`` and each run compares with the previous record.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping

from ioc_analytics.backends import get_backend
from ioc_analytics.errors import ConfigError
from ioc_analytics.operations import readiness
from ioc_analytics.operations.setup_report import CHANGED, CREATED, UNCHANGED, Report
from ioc_analytics.settings import Settings

__all__ = ["CHANGED", "CREATED", "DEFAULT_TAGS", "STEPS", "UNCHANGED", "Report", "check_settings", "ensure"]

#: The steps, in the order they run: the bucket before the workgroup that writes to it, the
#: workgroup before QuickSight and the readiness query that use it.
STEPS = ("catalog", "results_bucket", "workgroup", "alerts", "quicksight", "readiness")

#: The tags of the readiness query when the caller gives none (the CLI).
DEFAULT_TAGS = {"dag_id": "ioc_setup", "task_id": "readiness"}

_NAME = re.compile(r"[A-Za-z0-9._-]{1,128}")


# -- entry point ---------------------------------------------------------------------------------

def ensure(
    settings: Settings,
    steps: Iterable[str] | None = None,
    *,
    tags: Mapping[str, str] | None = None,
    today: dt.date | None = None,
) -> Report:
    """Run the setup ``steps`` (all of them by default, in :data:`STEPS` order) and report.

    Idempotent: a second run with the same settings changes nothing and reports every resource
    ``unchanged``. ``tags`` label the readiness query (default :data:`DEFAULT_TAGS`); ``today``
    is the day the readiness window ends before (default: today, UTC).
    """
    chosen = set(STEPS if steps is None else steps)
    unknown = chosen - set(STEPS)
    if unknown:
        raise ConfigError(f"unknown setup step {', '.join(sorted(unknown))}: the steps are {', '.join(STEPS)}")
    check_settings(settings)
    backend = get_backend(settings)
    report = Report(backend.name)
    runners = backend.setup_steps()
    for step in STEPS:
        if step not in chosen:
            continue
        if step == "readiness":
            readiness.measure(settings, report, dict(tags or DEFAULT_TAGS), today or dt.datetime.now(dt.UTC).date())
        elif step in runners:
            runners[step](settings, report)
        else:
            report.notes.append(f"{step}: nothing to do on {backend.name} ({backend.not_here[step]})")
    return report


def check_settings(settings: Settings) -> None:
    """What :class:`Settings` does not check itself and setup needs (ConfigError, with the fix)."""
    if not _NAME.fullmatch(settings.workgroup):
        raise ConfigError(f"IOC_WORKGROUP={settings.workgroup!r} is not a workgroup name: use 1-128 letters, "
                          "digits, '.', '_' or '-'")
    get_backend(settings).check_setup_settings()
