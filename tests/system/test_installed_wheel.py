"""The package works installed: a wheel built from the repository's files, installed into a fresh
environment, runs ``ioc generate`` and ``ioc query`` from a directory that is not the checkout.

The fresh environment gets the locked dependencies by a ``.pth`` line naming the development
environment's site-packages (a ``.pth`` found that way adds the folder but runs none of its own
``.pth`` files, so the editable install of the checkout is not seen); the project itself comes only
from the wheel.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pyarrow.dataset as ds
import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    work = tmp_path_factory.mktemp("wheel")
    source = work / "source"
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    for name in filter(None, tracked.decode().split("\0")):
        if (ROOT / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet",
                    "--disable-pip-version-check", "-w", str(work / "dist"), str(source)], check=True)
    (wheel,) = (work / "dist").glob("ioc_analytics-*.whl")
    env_dir = work / "env"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env_dir)], check=True)
    site = Path(subprocess.run([str(env_dir / "bin" / "python"), "-c",
                                "import sysconfig; print(sysconfig.get_path('purelib'))"],
                               capture_output=True, text=True, check=True).stdout.strip())
    (site / "locked_dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(env_dir / "bin" / "python"), "install",
                    "--no-deps", "--no-index", "--quiet", "--disable-pip-version-check", str(wheel)], check=True)
    elsewhere = work / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("IOC_", "PYTHON", "AIRFLOW"))}
    env["PATH"] = f"{env_dir / 'bin'}:{env['PATH']}"
    return {"bin": env_dir / "bin", "cwd": elsewhere, "env": env, "site": site}


def _run(installed, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(installed["bin"] / "ioc"), *args], cwd=installed["cwd"], capture_output=True,
                          text=True, env={**installed["env"], **env}, timeout=300)


def test_the_installed_package_is_the_wheel_with_its_sql(installed):
    found = subprocess.run([str(installed["bin"] / "python"), "-c",
                            "import ioc_analytics, ioc_analytics.settings as s; print(ioc_analytics.__file__);"
                            "print(len(list(s.DDL_DIR.glob('*.sql'))))"],
                           cwd=installed["cwd"], capture_output=True, text=True, env=installed["env"], check=True)
    where, ddl = found.stdout.split()
    assert Path(where).is_relative_to(installed["site"]), where
    assert int(ddl) == len(list((ROOT / "include" / "ioc_analytics" / "sql" / "ddl").glob("*.sql")))
    # The wheel declares its runtime dependencies, and the locked environment satisfies them.
    requires = subprocess.run([str(installed["bin"] / "python"), "-c",
                               "import importlib.metadata as m; print('\\n'.join(m.requires('ioc-analytics')))"],
                              cwd=installed["cwd"], capture_output=True, text=True, env=installed["env"], check=True)
    declared = {line.split("==")[0].split("[")[0].strip() for line in requires.stdout.splitlines()}
    assert {"apache-airflow", "duckdb", "pyarrow", "sqlglot", "great-expectations"} <= declared, declared
    checked = subprocess.run([sys.executable, "-m", "pip", "--python", str(installed["bin"] / "python"), "check"],
                             capture_output=True, text=True, env=installed["env"])
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_generate_and_query_run_from_another_directory(installed):
    lake = installed["cwd"] / "lake"
    made = _run(installed, "generate", "--lake", "lake", "--start", "2024-03-01", "--days", "2",
                "--events-per-day", "300", "--seed", "3", "--workers", "1")
    assert made.returncode == 0, made.stderr
    rows_on_day = ds.dataset(lake / "assessments" / "2024" / "03" / "02", format="parquet",
                             partitioning=None).count_rows()
    assert rows_on_day > 0
    answered = _run(installed, "query", "--format", "csv",
                    "SELECT count(*) AS n FROM assessment_events WHERE date = '2024/03/02'",
                    IOC_LAKE_ROOT=str(lake), IOC_STATE_DIR=str(installed["cwd"] / "state"))
    assert answered.returncode == 0, answered.stderr
    assert answered.stdout.splitlines() == ['"n"', str(rows_on_day)], answered.stdout
    # Unset, the state defaults under the working directory (the installed package is no checkout).
    default = _run(installed, "query",
                   "SELECT count(*) AS n FROM ocean_scores WHERE year = '2024' AND month = '03'",
                   IOC_LAKE_ROOT=str(lake))
    assert default.returncode == 0, default.stderr
    assert (installed["cwd"] / "data" / "state" / "query_log.jsonl").is_file()
