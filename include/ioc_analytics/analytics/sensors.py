"""A sensor that waits for a day of a source table to land in the lake, on either backend.

Why not the provider's ``S3KeySensor`` or ``GlueCatalogPartitionSensor``: the raw tables use
partition projection, so Glue has no partitions of theirs to wait for, and a key's existence
is not the question. The question is whether any of the day's partitions holds *rows* (a
Parquet file with a schema and no rows is an export that failed), where "any" matters because
a quiet assessment type is normal. So the poke reads the Parquet footers through the lake
(``S3Hook`` on ``aws``, the folder on ``local``), and runs in reschedule mode: between pokes the
task holds no worker slot.

Late data fails with a message that names the partitions and says since when the day has been
due. The deadline comes from the day itself (its end plus ``grace``), not from when the sensor
started, so a backfill of a day whose data never came fails at once instead of waiting.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from airflow.sdk import BaseSensorOperator, PokeReturnValue
from airflow.sdk.exceptions import AirflowSensorTimeout

from ioc_analytics.text import plural

#: How long after a day ends its data may still arrive before the run fails.
DEFAULT_GRACE = dt.timedelta(hours=6)


class LakeFreshnessSensor(BaseSensorOperator):
    """Waits until ``table`` has rows for the run's day; XCom: which partitions have them."""

    ui_color = "#e8f4f8"

    def __init__(self, *, table: str, grace: dt.timedelta = DEFAULT_GRACE, **kwargs: Any) -> None:
        kwargs.setdefault("mode", "reschedule")
        kwargs.setdefault("poke_interval", dt.timedelta(minutes=5))
        # Airflow's own timeout is a backstop only; the deadline above says more.
        kwargs.setdefault("timeout", grace + dt.timedelta(days=1))
        super().__init__(**kwargs)
        self.table = table
        self.grace = grace

    def poke(self, context: Any) -> PokeReturnValue | bool:
        from ioc_analytics import runtime
        from ioc_analytics.analytics import pipeline

        with runtime.step() as (settings, day, _):
            report = pipeline.freshness(settings, day, self.table)
        for values in report.missing:
            self.log.info("%s: no rows yet for %s", self.table, values)
        verdict = late_verdict(report, dt.datetime.now(dt.UTC), self.grace)
        if report.fresh:
            self.log.info("%s for %s: %s rows, %s empty or missing", self.table, day,
                          plural(len(report.present), "partition holds", "partitions hold"),
                          plural(len(report.missing), "is", "are"))
            return PokeReturnValue(is_done=True, xcom_value=report.as_dict())
        if verdict:
            raise AirflowSensorTimeout(verdict)
        return False


def late_verdict(report: Any, now: dt.datetime, grace: dt.timedelta) -> str | None:
    """The failure message once a day's data is past its deadline (``None`` before it)."""
    from ioc_analytics.analytics.pipeline import late_message

    due = dt.datetime.combine(report.day + dt.timedelta(days=1), dt.time(), dt.UTC)
    if report.fresh or now < due + grace:
        return None
    late = now - due
    hours = late.total_seconds() / 3600
    when = f"{hours:.1f} h" if hours < 48 else f"{late.days} days"
    return (f"{late_message(report)}: due at {due:%Y-%m-%d %H:%M} UTC when the day ended, late by {when} "
            f"(past the {grace.total_seconds() / 3600:g} h grace). The upstream export is late or failed: "
            "once the day's files have landed, clear this task to re-run the day")
