"""Alerts on ``aws``: published to the SNS topic ``IOC_ALERT_TOPIC`` (created by ``ioc setup``),
which on-call subscribes to (email, chat, pager), through the Amazon provider's ``SnsHook``."""

from __future__ import annotations

from typing import Any

from ioc_analytics.errors import ConfigError
from ioc_analytics.settings import Settings


def send(settings: Settings, alert: Any) -> str:
    """Publish ``alert`` (an :class:`ioc_analytics.operations.alerts.Alert`); returns the topic's ARN."""
    from airflow.providers.amazon.aws.hooks.sns import SnsHook

    hook = SnsHook(aws_conn_id=settings.aws_conn_id, region_name=settings.region)
    arn = topic_arn(hook.get_conn(), settings.alert_topic)
    hook.publish_to_target(target_arn=arn, message=alert.text(), subject=f"[IOC {alert.kind}] {alert.day}"[:100],
                           message_attributes={"source": alert.source, "kind": alert.kind})
    return arn


def topic_arn(client, name: str) -> str:
    """The ARN of the SNS topic ``name`` (ConfigError if there is none)."""
    for page in client.get_paginator("list_topics").paginate():
        for topic in page.get("Topics", []):
            if topic["TopicArn"].rsplit(":", 1)[-1] == name:
                return topic["TopicArn"]
    raise ConfigError(f"the on-call SNS topic {name!r} (IOC_ALERT_TOPIC) does not exist: run `ioc setup` "
                      "to create it, or set IOC_ALERT_TOPIC to the topic on-call subscribes to")
