"""On-call alerts: one message per problem, where on-call reads them.

- ``aws``: published to the SNS topic ``IOC_ALERT_TOPIC`` (created by ``ioc setup``), which
  on-call subscribes to (email, chat, pager).
- ``local``: one JSON line per alert appended to ``<state_dir>/alerts.jsonl``, or, with
  ``IOC_ALERT_WEBHOOK`` set, POSTed as JSON to that URL (a chat bridge on localhost, say).

Two kinds of sender use it: the cost monitor, whose alerts are findings of a task that succeeds,
and :class:`ioc_analytics.operations.notify.OnCallNotifier`, the Airflow notifier every DAG's tasks call when
they fail. The SNS side is the Amazon provider's ``SnsHook``; the webhook is one ``urllib`` POST,
so no HTTP provider is needed for it.
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
    #: For a failed task: which, which try, the error's first line and its log.
    task: str | None = None
    try_number: int | None = None
    error: str | None = None
    log_url: str | None = None

    def text(self) -> str:
        lines = [self.title, "", *(f"- {line}" for line in self.details)]
        if self.log_url:
            lines += [f"- log: {self.log_url}"]
        if self.runbook:
            lines += ["", f"What to do: {self.runbook}"]
        return "\n".join(lines)


def send(settings: Settings, alert: Alert) -> str:
    """Send one alert; returns where it went."""
    if settings.backend == "local":
        if settings.alert_webhook:
            try:
                return _post(settings.alert_webhook, asdict(alert))
            except ConfigError:
                JsonLines(settings.alert_log_path).append(asdict(alert))  # kept, not lost
                raise
        JsonLines(settings.alert_log_path).append(asdict(alert))
        return str(settings.alert_log_path)
    from airflow.providers.amazon.aws.hooks.sns import SnsHook

    hook = SnsHook(aws_conn_id=settings.aws_conn_id, region_name=settings.region)
    arn = topic_arn(hook.get_conn(), settings.alert_topic)
    hook.publish_to_target(target_arn=arn, message=alert.text(), subject=f"[IOC {alert.kind}] {alert.day}"[:100],
                           message_attributes={"source": alert.source, "kind": alert.kind})
    return arn


def _post(url: str, payload: dict) -> str:
    import json
    import urllib.error
    import urllib.request

    request = urllib.request.Request(url, data=json.dumps(payload).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()
    except (urllib.error.URLError, OSError) as err:
        raise ConfigError(f"the alert webhook IOC_ALERT_WEBHOOK={url} did not take the alert ({err}); it is kept "
                          "in the alert log (alerts.jsonl in IOC_STATE_DIR): check that the webhook is "
                          "running") from err
    return url


def topic_arn(client, name: str) -> str:
    """The ARN of the SNS topic ``name`` (ConfigError if there is none)."""
    for page in client.get_paginator("list_topics").paginate():
        for topic in page.get("Topics", []):
            if topic["TopicArn"].rsplit(":", 1)[-1] == name:
                return topic["TopicArn"]
    raise ConfigError(f"the on-call SNS topic {name!r} (IOC_ALERT_TOPIC) does not exist: run `ioc setup` "
                      "to create it, or set IOC_ALERT_TOPIC to the topic on-call subscribes to")

