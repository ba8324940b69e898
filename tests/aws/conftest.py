"""Fixtures for the ``aws`` backend: a real moto server on localhost, reached by the real boto3 calls.

One server per session (it starts in well under a second); its state is reset before every test,
so each test starts from empty buckets, an empty Athena history and no queued results. The AWS
connection and region are set per test with ``monkeypatch`` (never for the whole process), with
dummy credentials, so nothing can reach a real AWS account.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests

from ioc_analytics.settings import Settings

REGION = "us-east-1"
LAKE_BUCKET = "ioc-analytics-data-lake"
RESULTS_BUCKET = "ioc-athena-query-results"
WORKGROUP = "ioc-analytics"
DATABASE = "ioc_analytics"


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """The endpoint URL of a moto server running in a thread of this process, on a free port."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one access-log line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@dataclass
class MotoApi:
    """moto's own control API (``/moto-api/...``) and boto3 clients on the same server."""

    endpoint: str

    def post(self, path: str, body: dict[str, Any] | None = None) -> None:
        response = requests.post(f"{self.endpoint}{path}", json=body, timeout=10)
        response.raise_for_status()

    def reset(self) -> None:
        self.post("/moto-api/reset")

    def seed_athena_results(self, *results: dict[str, Any]) -> None:
        """Queue results (each ``{"rows": [...], "column_info": [...]}``) for the next queries."""
        self.post("/moto-api/static/athena/query-results", {"region": REGION, "results": list(results)})

    def set_transition(self, model_name: str, transition: dict[str, Any]) -> None:
        self.post("/moto-api/state-manager/set-transition", {"model_name": model_name, "transition": transition})

    def unset_transition(self, model_name: str) -> None:
        self.post("/moto-api/state-manager/unset-transition", {"model_name": model_name})

    def client(self, service: str):
        return boto3.client(
            service,
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )


@pytest.fixture
def moto(moto_server: str) -> MotoApi:
    api = MotoApi(moto_server)
    api.reset()
    return api


@pytest.fixture
def aws_settings(moto: MotoApi, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Settings:
    """Settings of the ``aws`` backend pointed at the moto server, with the lake, results bucket
    and workgroup created (as the setup DAG creates them on AWS)."""
    connection = {
        "conn_type": "aws",
        "login": "testing",
        "password": "testing",
        "extra": {"endpoint_url": moto.endpoint, "region_name": REGION},
    }
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", json.dumps(connection))
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    # Dummy credentials for anything that falls back to boto3's default chain.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    for name in ("AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)

    s3 = moto.client("s3")
    s3.create_bucket(Bucket=LAKE_BUCKET)
    s3.create_bucket(Bucket=RESULTS_BUCKET)
    moto.client("athena").create_work_group(
        Name=WORKGROUP,
        Configuration={"ResultConfiguration": {"OutputLocation": f"s3://{RESULTS_BUCKET}/"}},
    )
    return Settings(
        backend="aws",
        lake_root=f"s3://{LAKE_BUCKET}",
        state_dir=str(tmp_path / "state"),
        exports_root=f"s3://{LAKE_BUCKET}/exports",
        database=DATABASE,
        workgroup=WORKGROUP,
        athena_output=f"s3://{RESULTS_BUCKET}/",
        aws_conn_id="aws_default",
        region=REGION,
        query_timeout_s=30,
    )


def ioc_environment(settings: Settings, state_dir: Path) -> dict[str, str]:
    """The ``IOC_*`` variables that point an Airflow process at ``settings`` (the aws backend on moto)."""
    return {
        "IOC_BACKEND": "aws",
        "IOC_LAKE_ROOT": settings.lake_root,
        "IOC_EXPORTS_ROOT": settings.exports_root,
        "IOC_ATHENA_OUTPUT": settings.athena_output,
        "IOC_WORKGROUP": settings.workgroup,
        "IOC_DATABASE": settings.database,
        "IOC_STATE_DIR": str(state_dir),
    }


@pytest.fixture
def glue_tables(aws_settings: Settings) -> None:
    """The Glue database and tables, made from the DDL as the setup step makes them."""
    from ioc_analytics.backends.aws.glue import ensure_tables
    from ioc_analytics.lake.catalog import load_catalog

    ensure_tables(aws_settings, load_catalog(aws_settings.lake_uri, DATABASE))


@pytest.fixture
def athena_runs_on_duckdb(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, sample_lake: Path) -> Path:
    """moto's Athena, answering every query with what the local engine answers to the same SQL and
    bound values over a copy of the sample lake; an UNLOAD writes its rows into S3 as Parquet.

    moto records queries but runs none: by itself it can only hand out results queued in advance,
    which then answer every query alike. Here each query gets its own answer from the same SQL
    files run by DuckDB (the local backend's engine), so the checks' results, the contract checks
    of the UNLOADed partitions and the exports are all computed from the data. The rest of the
    AWS side (S3, Glue, the Athena API and its records) is moto's, over HTTP, as before. Returns
    the local lake that answers.
    """
    import datetime as dt
    import re
    import shutil
    import threading

    import pyarrow as pa
    from moto.athena.models import AthenaBackend, QueryResults
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.s3.models import s3_backends

    from ioc_analytics.backends import get_backend
    from ioc_analytics.engine.base import without_tags
    from ioc_analytics.settings import get_settings

    lake = tmp_path / "duckdb-lake"
    shutil.copytree(sample_lake, lake)
    local = get_backend(get_settings(backend="local", lake_root=str(lake), state_dir=str(tmp_path / "duckdb-state"),
                                     database=DATABASE))
    athena_types = {pa.types.is_boolean: "boolean", pa.types.is_int64: "bigint", pa.types.is_integer: "integer",
                    pa.types.is_floating: "double", pa.types.is_date: "date", pa.types.is_timestamp: "timestamp"}

    def value(literal: str) -> object:  # the ExecutionParameters the engine sent, back to Python
        if literal.startswith("'"):
            return literal[1:-1].replace("''", "'")
        if literal.startswith("DATE '"):
            return dt.date.fromisoformat(literal[6:-1])
        if literal.startswith("TIMESTAMP '"):
            return dt.datetime.fromisoformat(literal[11:-1])
        return {"true": True, "false": False, "NULL": None}.get(literal) or (
            float(literal) if "." in literal else int(literal))

    def cell(item: object) -> dict[str, str]:
        if item is None:
            return {}
        if isinstance(item, bool):
            return {"VarCharValue": str(item).lower()}
        if isinstance(item, dt.datetime):
            return {"VarCharValue": item.isoformat(sep=" ", timespec="milliseconds")}
        return {"VarCharValue": str(item)}

    answering = threading.Lock()  # moto serves each request in a thread: one DuckDB answer at a time

    def answer(self: AthenaBackend, exec_id: str) -> None:
        with answering:
            _answer(self, exec_id)

    def _answer(self: AthenaBackend, exec_id: str) -> None:
        if exec_id in self.query_results:
            return
        execution = self.executions[exec_id]
        text = without_tags(execution.query).strip()
        parameters = [value(p) for p in execution.execution_parameters or []]
        unload = re.fullmatch(r"UNLOAD \((.*)\)\s*TO '(s3://[^/]+/(?:aggregates|state)/(\w+)/(\d{4}/\d\d/\d\d)/"
                              r"(?:(\d\d)/)?[^']+/)'.*", text, re.S)
        if unload:
            select, target, name, date, hour = unload.groups()
            values = {"date": date, **({"hour": hour} if hour else {})}
            local.engine.replace_partition(name, values, select, parameters)
            folder = local.registry.location(local.catalog.table(name), values)
            bucket, _, prefix = target[len("s3://"):].partition("/")
            for n, file in enumerate(sorted(Path(folder).glob("*.parquet"))):
                s3_backends[DEFAULT_ACCOUNT_ID]["aws"].put_object(bucket, f"{prefix}part-{n:05d}.parquet",
                                                                  file.read_bytes())
            self.query_results[exec_id] = QueryResults(rows=[], column_info=[])
            return
        table = local.engine.query(text, parameters).table
        types = [next((t for test, t in athena_types.items() if test(f.type)), "varchar") for f in table.schema]
        info = [{"Name": f.name, "Label": f.name, "Type": t, "Precision": 0, "Scale": 0, "Nullable": "NULLABLE",
                 "CaseSensitive": False} for f, t in zip(table.schema, types, strict=True)]
        rows = [{"Data": [{"VarCharValue": f.name} for f in table.schema]}]
        rows += [{"Data": [cell(v) for v in row.values()]} for row in table.to_pylist()]
        self.query_results[exec_id] = QueryResults(rows=rows, column_info=info)

    monkeypatch.setattr(AthenaBackend, "_store_predefined_query_results", answer)
    return lake
