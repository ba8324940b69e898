"""On-call alerts: one message per problem, where on-call reads them.

- ``aws``: published to the SNS topic ``IOC_ALERT_TOPIC`` (created by ``ioc setup``), which
  on-call subscribes to (email, chat, pager).
- ``local``: one JSON line per alert appended to ``<state_dir>/alerts.jsonl``.

Written as a function rather than an Airflow notifier because the cost monitor raises alerts from
a task that succeeds (an anomaly is a finding, not a failure); the SNS side is the Amazon
provider's ``SnsHook``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from ioc_analytics.errors import ConfigError
from ioc_analytics.jsonlines import JsonLines
from ioc_analytics.settings import Settings


@dataclass
class Alert:
    source: str  # the DAG that raised it
    kind: str
    day: str
    title: str
    details: list[str] = field(default_factory=list)
    runbook: str = ""

    def text(self) -> str:
        lines = [self.title, "", *(f"- {line}" for line in self.details)]
        if self.runbook:
            lines += ["", f"What to do: {self.runbook}"]
        return "\n".join(lines)


def send(settings: Settings, alert: Alert) -> str:
    """Send one alert; returns where it went."""
    if settings.backend == "local":
        JsonLines(settings.alert_log_path).append(asdict(alert))
        return str(settings.alert_log_path)
    from airflow.providers.amazon.aws.hooks.sns import SnsHook

    hook = SnsHook(aws_conn_id=settings.aws_conn_id, region_name=settings.region)
    arn = topic_arn(hook.get_conn(), settings.alert_topic)
    hook.publish_to_target(target_arn=arn, message=alert.text(), subject=f"[IOC {alert.kind}] {alert.day}"[:100],
                           message_attributes={"source": alert.source, "kind": alert.kind})
    return arn


def topic_arn(client, name: str) -> str:
    for page in client.get_paginator("list_topics").paginate():
        for topic in page.get("Topics", []):
            if topic["TopicArn"].rsplit(":", 1)[-1] == name:
                return topic["TopicArn"]
    raise ConfigError(f"the on-call SNS topic {name!r} (IOC_ALERT_TOPIC) does not exist: run `ioc setup` "
                      "to create it, or set IOC_ALERT_TOPIC to the topic on-call subscribes to")

