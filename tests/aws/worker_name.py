"""``[core] hostname_callable`` for the production-shape test: each Celery worker runs on this one
machine, so the machine's name cannot tell them apart; each is given its own in
``IOC_TEST_WORKER``, and Airflow records it as the task instance's ``hostname``."""

from __future__ import annotations

import os
import socket


def hostname() -> str:
    return os.environ.get("IOC_TEST_WORKER") or socket.getfqdn()
