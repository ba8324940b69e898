"""docker-compose.yaml is the shape tests/aws/test_production.py runs for real.

There is no Docker engine on the development and CI machines, so the file cannot be started here
(nor checked by `docker compose config`: the client has no compose plugin). What can run: the file
parses, every service that needs one has a health check, every dependency names a service, every
`${VARIABLE}` has a default or is in `.env.example`, and the executor, broker, result backend and
metadata database are the ones the production-shape test starts Airflow with.
"""

from __future__ import annotations

import re
from types import SimpleNamespace

import yaml

from tests.aws.test_production import _environment
from tests.conftest import ROOT

COMPOSE = yaml.safe_load((ROOT / "docker-compose.yaml").read_text())
AIRFLOW_SERVICES = {"airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer",
                    "airflow-worker"}


def _env(service: str) -> dict[str, str]:
    return {k: str(v) for k, v in COMPOSE["services"][service]["environment"].items()}


def test_the_services_of_the_production_shape_are_there_each_with_its_health_check():
    services = COMPOSE["services"]
    assert set(services) == {"postgres", "redis", "airflow-init", *AIRFLOW_SERVICES}
    for name, service in services.items():
        if name != "airflow-init":
            assert service["healthcheck"]["test"], name
        for needed in service.get("depends_on", {}):
            assert needed in services, f"{name} depends on {needed}, which is not a service"
    assert services["airflow-worker"]["command"] == "celery worker"
    assert services["airflow-worker"]["deploy"]["replicas"] == 2
    assert "inspect ping" in services["airflow-worker"]["healthcheck"]["test"][1]
    for name in AIRFLOW_SERVICES:
        assert services[name]["image"] == "ioc-analytics-airflow:latest" and services[name]["build"] == "."


def test_compose_configures_what_the_production_test_runs():
    tested = _environment(ROOT, SimpleNamespace(lake_root="", exports_root="", athena_output="", workgroup="",
                                                      database=""), "airflow", 0, 8080)
    for name in AIRFLOW_SERVICES:
        env = _env(name)
        assert env["AIRFLOW__CORE__EXECUTOR"] == tested["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
        assert env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://")
        database = env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
        assert database.startswith("postgresql+psycopg2://")
        # Celery's results go to the metadata database, as in the test.
        assert env["AIRFLOW__CELERY__RESULT_BACKEND"] == "db+postgresql://" + database.split("://", 1)[1]
        assert tested["AIRFLOW__CELERY__RESULT_BACKEND"].startswith("db+postgresql://")
        for key in ("AIRFLOW__CORE__EXECUTION_API_SERVER_URL", "AIRFLOW__API_AUTH__JWT_SECRET",
                    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT", "AIRFLOW__CELERY__WORKER_CONCURRENCY",
                    "IOC_BACKEND", "IOC_LAKE_ROOT", "IOC_STATE_DIR", "IOC_EXPORTS_ROOT"):
            assert key in env and key in tested, (name, key)
        # The test gives each of its workers its own handover to the triggerer (one defers, one waits
        # in the worker and is killed); compose sets one for all.
        assert "IOC_ATHENA_DEFER_AFTER_S" in env, name


def test_every_variable_has_a_default_or_is_in_the_env_example():
    text = (ROOT / "docker-compose.yaml").read_text()
    example = {line.split("=", 1)[0].lstrip("#") for line in (ROOT / ".env.example").read_text().splitlines()
               if "=" in line and not line.startswith("# ")}
    for name, default in re.findall(r"(?<!\$)\$\{(\w+)(:-[^}]*|:\?[^}]*)?\}", text):  # $${X}: the container's
        assert default.startswith(":-") or name in example, f"${{{name}}} has no default and is not in .env.example"
    assert ".env" in (ROOT / ".gitignore").read_text().split()


def test_the_image_installs_the_lock_with_the_celery_and_postgres_providers():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "--require-hashes -r /opt/ioc/requirements.lock" in dockerfile
    lock = (ROOT / "requirements.lock").read_text()
    for package in ("apache-airflow-providers-celery==", "apache-airflow-providers-postgres==", "celery==",
                    "redis==", "psycopg2-binary=="):
        assert f"\n{package}" in lock, package
