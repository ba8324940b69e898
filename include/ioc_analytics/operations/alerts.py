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

from dataclasses import dataclass, field

from ioc_analytics.backends import get_backend
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
    """Send one alert through the backend's alert sink; returns where it went."""
    return get_backend(settings).send_alert(alert)
