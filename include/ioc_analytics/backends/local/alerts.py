"""Local alerts: one JSON line per alert in ``<state_dir>/alerts.jsonl``, or POSTed as JSON to
``IOC_ALERT_WEBHOOK`` (a chat bridge on localhost, say). The webhook is one ``urllib`` POST, so no
HTTP provider is needed for it."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from ioc_analytics.errors import ConfigError
from ioc_analytics.jsonlines import JsonLines
from ioc_analytics.settings import Settings


def send(settings: Settings, alert: Any) -> str:
    """Deliver ``alert`` (an :class:`ioc_analytics.operations.alerts.Alert`); returns where it went."""
    if settings.alert_webhook:
        try:
            return _post(settings.alert_webhook, asdict(alert))
        except ConfigError:
            JsonLines(settings.alert_log_path).append(asdict(alert))  # kept, not lost
            raise
    JsonLines(settings.alert_log_path).append(asdict(alert))
    return str(settings.alert_log_path)


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
