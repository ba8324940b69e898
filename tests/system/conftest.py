"""Fixtures of the system tests: a real browser."""

from __future__ import annotations

import fcntl
import shutil
import subprocess

import pytest

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-quic",
         "--no-first-run", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="session")
def chromium(tmp_path_factory) -> str:
    # Two test workers may both need it: one installs while the other waits on the lock.
    lock = tmp_path_factory.getbasetemp().parent / "chromium-install.lock"
    with open(lock, "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        found = shutil.which("chromium")
        if found is None:
            install = subprocess.run(["apt-get", "install", "-y", "-q", "chromium"], capture_output=True, text=True,
                                     env={"DEBIAN_FRONTEND": "noninteractive", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
                                     timeout=900)
            found = shutil.which("chromium")
            assert found, f"could not install Debian's chromium: {install.stderr[-2000:]}"
    return found


