"""The query API through its HTTP interface: Airflow's own API server, started on localhost with
the project's plugins, its simple auth manager and a JWT from ``POST /auth/token``."""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pandas as pd
import pyarrow.parquet as pq
import pytest

from ioc_analytics.analytics import pipeline
from ioc_analytics.settings import get_settings
from tests.conftest import DAGS_FOLDER, ROOT
from tests.helpers import TODAY, read_aggregate, read_scores

pytestmark = pytest.mark.integration

DAY = TODAY - dt.timedelta(days=3)
USER, PASSWORD = "analyst", "an-analyst-password"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(sample_lake, airflow_db, tmp_path_factory):
    """The API server over a lake with DAY's completion_rates built; stopped at the end."""
    root = tmp_path_factory.mktemp("api")
    lake, state = root / "lake", root / "state"
    shutil.copytree(sample_lake, lake, ignore=shutil.ignore_patterns("aggregates", "quality"))
    settings = get_settings(backend="local", lake_root=str(lake), state_dir=str(state))
    pipeline.build_aggregate(settings, DAY, "completion_rates", {"dag_id": "test"})
    rates = read_aggregate(state, "completion_rates", DAY)
    k = int(rates["users"].median()) + 1  # about half the groups fall below
    (root / "passwords.json").write_text(json.dumps({USER: PASSWORD}))
    port = _free_port()
    env = {**os.environ, "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_FOLDER),
           "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
           "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{USER}:viewer",
           "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(root / "passwords.json"),
           "AIRFLOW__API_AUTH__JWT_SECRET": "a-test-only-secret",
           "IOC_BACKEND": "local", "IOC_LAKE_ROOT": str(lake), "IOC_STATE_DIR": str(state),
           "IOC_MIN_GROUP_USERS": str(k)}
    log = (root / "api-server.log").open("w")
    process = subprocess.Popen([str(Path(sys.executable).parent / "airflow"), "api-server", "--port", str(port)],
                               env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{base}/api/v2/version", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None and time.monotonic() < deadline, (root / "api-server.log").read_text()[-3000:]
            time.sleep(0.5)
        token = httpx.post(f"{base}/auth/token", json={"username": USER, "password": PASSWORD}).json()["access_token"]
        yield {"base": base, "headers": {"Authorization": f"Bearer {token}"}, "lake": lake, "state": state, "k": k}
    finally:
        os.killpg(process.pid, 15)
        process.wait(timeout=30)
        log.close()


def _ask(server, body, **kwargs):
    return httpx.post(f"{server['base']}/api/analytics/query", json=body, headers=server["headers"], timeout=60,
                      **kwargs)


def _log_lines(server) -> int:
    path = server["state"] / "query_log.jsonl"
    return len(path.read_text().splitlines()) if path.exists() else 0


def test_unauthenticated_calls_are_refused(server):
    body = {"query": "daily_active_users"}
    assert httpx.post(f"{server['base']}/api/analytics/query", json=body).status_code == 401
    assert httpx.get(f"{server['base']}/api/analytics/queries").status_code == 401
    forged = httpx.post(f"{server['base']}/api/analytics/query", json=body,
                        headers={"Authorization": "Bearer not-a-token"})
    assert forged.status_code == 403
    listed = httpx.get(f"{server['base']}/api/analytics/queries", headers=server["headers"])
    assert listed.status_code == 200 and "ocean_scores_by_industry" in {q["name"] for q in listed.json()}


def test_the_guides_example_answers_in_every_format(server):
    body = {"query": "ocean_scores_by_industry",
            "parameters": {"industry": "Technology", "start": "2024-01-27", "end": "2024/01/31"}}
    answer = _ask(server, body)
    assert answer.status_code == 200, answer.text
    payload = answer.json()
    scores = read_scores(server["lake"])
    expected = scores[(scores["timestamp"] >= "2024-01-27") & (scores["timestamp"] < "2024-02-01")
                      & (scores["industry"] == "Technology")]
    assert payload["row_count"] == len(payload["rows"]) == len(expected) > 0
    assert sorted(r["assessment_id"] for r in payload["rows"]) == sorted(expected["assessment_id"])
    assert payload["parameters"] == {"industry": "Technology", "start": "2024/01/27", "end": "2024/01/31"}
    assert payload["stats"]["bytes_scanned"] > 0
    readers = {"csv": lambda b: pd.read_csv(io.BytesIO(b)), "xlsx": lambda b: pd.read_excel(io.BytesIO(b)),
               "parquet": lambda b: pq.read_table(io.BytesIO(b)).to_pandas()}
    for fmt, read in readers.items():
        got = _ask(server, {**body, "format": fmt})
        assert got.status_code == 200 and f'filename="ocean_scores_by_industry.{fmt}"' in got.headers[
            "content-disposition"]
        frame = read(got.content)
        assert sorted(frame["assessment_id"]) == sorted(expected["assessment_id"]), fmt
        assert frame["openness"].sum() == pytest.approx(expected["openness"].sum()), fmt


def test_small_groups_are_suppressed_in_answers(server):
    answer = _ask(server, {"query": "completion_rates", "parameters": {"start": DAY.isoformat(),
                                                                       "end": DAY.isoformat()}})
    assert answer.status_code == 200, answer.text
    rates = read_aggregate(server["state"], "completion_rates", DAY)
    small = {(r.device, r.assessment_type) for r in rates.itertuples() if r.users < server["k"]}
    rows = answer.json()["rows"]
    assert 0 < len(small) < len(rows) == len(rates)
    for row in rows:
        hidden = (row["device"], row["assessment_type"]) in small
        assert (row["users"] is None and row["completion_rate"] is None) == hidden, row
    assert answer.json()["suppressed"]["rows"] == len(small)


@pytest.mark.parametrize(("body", "status", "words"), [
    ({"query": "no_such_query"}, 404, "no query named 'no_such_query'"),
    ({"query": "ocean_scores_by_industry"}, 400, "parameter 'industry' is required"),
    ({"query": "daily_active_users", "parameters": {"days": 7}}, 400, "takes no parameter 'days'"),
    ({"query": "daily_active_users", "parameters": {"start": 20240101}}, 400, "is not a date as YYYY-MM-DD"),
    ({"query": "ocean_scores_by_industry", "parameters": {"industry": "x'; DROP TABLE ocean_scores; --"}}, 400,
     "is not a string matching"),
    ({"query": "daily_active_users", "format": "docx"}, 400, "format 'docx' is not one of"),
], ids=["unknown-query", "missing", "extra", "wrong-type", "injection", "format"])
def test_bad_requests_get_a_4xx_with_one_message_and_run_nothing(server, body, status, words):
    before = _log_lines(server)
    answer = _ask(server, body)
    assert answer.status_code == status and words in answer.json()["detail"], answer.text
    assert _log_lines(server) == before, "nothing ran"


def test_a_body_that_is_not_json_is_a_400(server):
    answer = httpx.post(f"{server['base']}/api/analytics/query", content=b"{not json", headers=server["headers"])
    assert answer.status_code == 400 and answer.json()["detail"] == "the body is not JSON"
