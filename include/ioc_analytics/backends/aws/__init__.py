"""The ``aws`` backend: Athena over the S3 lake, partitions in Glue, Athena's query history and
CloudWatch's metrics, SNS alerts, CloudWatch alarms and QuickSight, all through the Amazon
provider's hooks and the Airflow connection ``IOC_AWS_CONN_ID``."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from functools import cached_property
from typing import Any

from ioc_analytics.backends.base import Backend
from ioc_analytics.engine.base import DailyUsage, Engine, QueryRecord
from ioc_analytics.errors import ConfigError
from ioc_analytics.lake.partitions import PartitionRegistry
from ioc_analytics.settings import Settings


class AwsBackend(Backend):
    name = "aws"
    history_source = "the Athena query history"

    def __init__(self, settings: Settings) -> None:
        if not settings.lake_root.startswith("s3://"):
            raise ConfigError(f"IOC_LAKE_ROOT={settings.lake_root!r}: the aws backend needs an s3:// URI, "
                              "for example s3://ioc-analytics-data-lake")
        super().__init__(settings)

    @cached_property
    def engine(self) -> Engine:
        from ioc_analytics.backends.aws.engine import AthenaEngine

        return AthenaEngine(self.settings, self.catalog, self.lake, self.registry)

    @cached_property
    def registry(self) -> PartitionRegistry:
        from ioc_analytics.backends.aws.registry import GlueRegistry

        return GlueRegistry(self.settings)

    def query_history(self, since: dt.datetime) -> Iterator[QueryRecord]:
        from ioc_analytics.backends.aws.usage import athena_history

        return athena_history(self.settings, since)

    def fill_daily_usage(self, days: dict[dt.date, DailyUsage]) -> None:
        # CloudWatch keeps 15 months of the workgroup's metrics; Athena's history only 45 days.
        from ioc_analytics.backends.aws.usage import cloudwatch_days

        cloudwatch_days(self.settings, days)

    def send_alert(self, alert: Any) -> str:
        from ioc_analytics.backends.aws import alerts

        return alerts.send(self.settings, alert)

    def publish_month_to_date(self, spent_usd: float) -> None:
        from ioc_analytics.backends.aws.usage import publish_month_to_date

        publish_month_to_date(self.settings, spent_usd)

    def expire_results(self, today: dt.date) -> dict[str, Any]:
        # Athena expires its own history; the results bucket's lifecycle rule expires the results.
        from ioc_analytics.backends.aws.setup import check_results_lifecycle

        return check_results_lifecycle(self.settings, today)

    def setup_steps(self) -> dict[str, Callable[..., None]]:
        from ioc_analytics.backends.aws import setup

        return dict(setup.STEPS)

    def check_setup_settings(self) -> None:
        from ioc_analytics.backends.aws import setup

        setup.check_settings(self.settings)

    def quicksight(self) -> dict[str, tuple[str, str]]:
        from ioc_analytics.backends.aws import quicksight

        return quicksight.ensure(self.settings)
