"""Shared fixtures.

Airflow reads its configuration when it is first imported, so its home, DAGs folder and
settings are fixed in ``pytest_configure``, before any test module imports Airflow: a throwaway
home per test session, never the developer's own.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DAGS_FOLDER = ROOT / "dags"
_AIRFLOW_HOME = pytest.StashKey[Path]()


def pytest_configure(config: pytest.Config) -> None:
    home = Path(tempfile.mkdtemp(prefix="ioc-airflow-home-"))
    config.stash[_AIRFLOW_HOME] = home
    os.environ.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_FOLDER),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        }
    )


#: The slowest test files, longest first (the suite's --durations), run before the rest: each of
#: the two workers takes a whole file at a time in collection order (``--no-loadscope-reorder``,
#: the Makefile), so starting the long ones first lets the short ones fill in around them and
#: both workers finish together. The first two go to different workers: xdist gives a worker a
#: second file at once while its first has 2 tests or fewer pending.
SLOWEST_FIRST = (
    "tests/aws/test_production.py",
    "tests/system/test_airflow_e2e.py",
    "tests/system/test_bad_input_dag.py",
    "tests/unit/test_state.py",
    "tests/system/test_demo_runs.py",
    "tests/unit/test_costguard.py",
    "tests/system/test_maintenance_dags.py",
)


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    rank = {path: n for n, path in enumerate(SLOWEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::", 1)[0], len(rank)))  # stable: the rest as collected


def pytest_unconfigure(config: pytest.Config) -> None:
    home = config.stash.get(_AIRFLOW_HOME, None)
    if home is not None:
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """A migrated SQLite metadata database in the session's Airflow home (about 7 s, once)."""
    home = Path(os.environ["AIRFLOW_HOME"])
    subprocess.run(
        [str(Path(sys.executable).parent / "airflow"), "db", "migrate"],
        check=True, capture_output=True, env=os.environ.copy(),
    )
    return home


# -- sample lakes, generated once per session -------------------------------------------------

from tests.helpers import EVENTS_PER_DAY, ONE_DAY, RECENT_DAYS, TODAY  # noqa: E402


@pytest.fixture(scope="session")
def sample_lake(tmp_path_factory) -> Path:
    """January 2024 (the guide's OCEAN query reads it) and the 35 days up to today, in UTC."""
    import datetime as dt

    from ioc_analytics.devtools.generate import generate_lake

    lake = tmp_path_factory.mktemp("lake")
    generate_lake(lake, dt.date(2024, 1, 1), 31, EVENTS_PER_DAY, seed=11)
    generate_lake(lake, TODAY - dt.timedelta(days=RECENT_DAYS - 1), RECENT_DAYS, EVENTS_PER_DAY, seed=11)
    return lake


@pytest.fixture()
def local_settings(sample_lake, tmp_path):
    from ioc_analytics.settings import get_settings

    return get_settings(
        backend="local", lake_root=str(sample_lake), state_dir=str(tmp_path / "state"),
        exports_root=str(tmp_path / "exports"),
    )


@pytest.fixture()
def local_engine(local_settings):
    from ioc_analytics.backends import get_backend

    return get_backend(local_settings).engine


@pytest.fixture()
def one_day_lake(sample_lake, tmp_path) -> Path:
    """A copy of one day of events (every assessment type) and its month of scores, to damage."""
    lake = tmp_path / "lake"
    folder = ONE_DAY.strftime("%Y/%m/%d")
    shutil.copytree(sample_lake / "assessments" / folder, lake / "assessments" / folder)
    shutil.copytree(sample_lake / "ocean_scores" / "2024" / "01", lake / "ocean_scores" / "2024" / "01")
    return lake


@pytest.fixture()
def one_day_settings(one_day_lake, tmp_path):
    from ioc_analytics.settings import get_settings

    return get_settings(backend="local", lake_root=str(one_day_lake), state_dir=str(tmp_path / "state"))
