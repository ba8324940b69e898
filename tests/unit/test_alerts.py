"""Alerts on the local backend: the alert log, and a webhook served on localhost."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from ioc_analytics.errors import ConfigError
from ioc_analytics.operations import alerts
from ioc_analytics.settings import get_settings

ALERT = alerts.Alert("ioc_daily_analytics", "task_failed", "2024-01-15", "x failed", task="x", try_number=3,
                     error="boom", log_url="http://localhost:8080/dags/ioc_daily_analytics/runs/r/tasks/x")


def test_local_alerts_are_json_lines_in_the_state_folder(tmp_path):
    settings = get_settings(backend="local", lake_root=str(tmp_path), state_dir=str(tmp_path / "state"))
    assert alerts.send(settings, ALERT) == str(settings.alert_log_path)
    alerts.send(settings, ALERT)
    lines = [json.loads(line) for line in settings.alert_log_path.read_text().splitlines()]
    assert len(lines) == 2 and lines[0]["task"] == "x" and lines[0]["try_number"] == 3 and lines[0]["error"] == "boom"


def test_a_webhook_on_localhost_receives_each_alert_and_a_dead_one_is_a_clear_error(tmp_path):
    received = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 (http.server's name)
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_port}/alerts"
    try:
        settings = get_settings(backend="local", lake_root=str(tmp_path), state_dir=str(tmp_path / "state"),
                                alert_webhook=url)
        assert alerts.send(settings, ALERT) == url
    finally:
        server.shutdown()
        server.server_close()
    assert received == [{**ALERT.__dict__}]
    assert not settings.alert_log_path.exists()
    with pytest.raises(ConfigError, match=r"IOC_ALERT_WEBHOOK=.* did not take the alert"):
        alerts.send(settings, ALERT)  # the server is gone
    assert json.loads(settings.alert_log_path.read_text())["error"] == "boom", "kept in the alert log"
