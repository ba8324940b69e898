"""The daily DAG on the aws backend, end to end with ``airflow dags test``, against moto.

moto stores objects and Glue partitions for real but does not execute Athena queries: it records
each one (text, workgroup, result location, execution parameters). Each query is answered by the
local engine running the same SQL with the same bound values over a copy of the lake, and an
UNLOAD writes its rows into S3 (``athena_runs_on_duckdb``), so what the DAG does with the answers
is checked on real numbers: the aggregates' partitions in S3 against pandas, the checks and the
exports computed from them. And what the DAG asks of AWS, the backend's contract: the freshness
sensors read the day's S3 objects, every aggregate is UNLOADed into a new version prefix and its
Glue partition pointed there, every query names the workgroup and the result location, carries
its tags and binds the date as a parameter. And every build deferred: each build's query, held in
QUEUED, is handed to the trigger (``IOC_ATHENA_DEFER_AFTER_S=0``), which `airflow dags test` runs
inline; the resumed build reconnects to it, so each is submitted once.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ioc_analytics import quality
from ioc_analytics.analytics import state
from ioc_analytics.backends.aws.engine import athena_literal
from ioc_analytics.backends.aws.glue import ensure_tables
from ioc_analytics.engine.base import read_tags
from ioc_analytics.lake import contract, sql
from ioc_analytics.lake.catalog import load_catalog
from ioc_analytics.lake.tables import AGGREGATES, STATES
from ioc_analytics.publishing.exports import export_sql
from tests.aws.conftest import DATABASE, LAKE_BUCKET, RESULTS_BUCKET, WORKGROUP, ioc_environment
from tests.helpers import TODAY, assert_matches_pandas, expected_aggregates, read_events, read_scores

pytestmark = pytest.mark.integration

AIRFLOW = str(Path(sys.executable).parent / "airflow")
DAY = TODAY - dt.timedelta(days=2)
def _upload_day(moto, sample_lake: Path) -> int:
    """The raw Parquet files of the day and of the 30 days before it (the state of the 30-day
    look-back derives from them: every assessment type, and the months of scores) into S3."""
    s3 = moto.client("s3")
    days = [DAY - dt.timedelta(days=n) for n in range(31)]
    files = sorted({*(f for d in days for f in sample_lake.glob(f"assessments/{d:%Y/%m/%d}/*/*.parquet")),
                    *(f for d in days for f in sample_lake.glob(f"ocean_scores/{d:%Y/%m}/*.parquet"))})
    for path in files:
        s3.upload_file(str(path), LAKE_BUCKET, path.relative_to(sample_lake).as_posix())
    return len(files)


def test_daily_dag_on_aws(airflow_db, aws_settings, moto, sample_lake, athena_runs_on_duckdb, tmp_path):
    ensure_tables(aws_settings, load_catalog(aws_settings.lake_uri, DATABASE))
    assert _upload_day(moto, sample_lake) > 5
    # The state the builds read, derived first on the same backend (as the builds derive it: the
    # local DAG tests and test_state cover a DAG deriving it itself); the DAG's own queries below
    # then defer one by one, each once.
    prebuilt = [item for name in AGGREGATES for item in state.ensure(aws_settings, name, DAY, {"prebuilt": "yes"})]
    assert prebuilt
    env = {
        **os.environ,
        **ioc_environment(aws_settings, tmp_path / "state"),
        # Every build's query is handed to the trigger at once: moto holds each query in QUEUED
        # for its first describe, as a long query is still running when the build looks.
        "IOC_ATHENA_DEFER_AFTER_S": "0",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }
    moto.set_transition("athena::execution", {"progression": "manual", "times": 1})
    try:
        run = subprocess.run([AIRFLOW, "dags", "test", "ioc_daily_analytics", DAY.isoformat()],
                             capture_output=True, text=True, env=env, timeout=600)
    finally:
        moto.unset_transition("athena::execution")
    output = run.stdout + run.stderr
    assert run.returncode == 0, output[-5000:]

    # The sensors read the day's objects in S3 (partition projection: Glue has nothing to say).
    assert f"assessment_events for {DAY}: 5 partitions hold rows, 0 are empty or missing" in output
    assert f"ocean_scores for {DAY}: 1 partition holds rows" in output
    assert "assessment_events uses partition projection" in output  # repair: a logged no-op

    athena = moto.client("athena")
    ids = athena.list_query_executions(WorkGroup=WORKGROUP)["QueryExecutionIds"]
    executions = [athena.get_query_execution(QueryExecutionId=i)["QueryExecution"] for i in ids]
    glue = moto.client("glue")
    s3 = moto.client("s3")
    # The builds derive the state they read first (its own queries, tagged with it): each an UNLOAD
    # into a new version of a state partition, registered in Glue, with what it derives from beside it.
    states = [e for e in executions if "state" in read_tags(e["Query"])]
    assert {read_tags(e["Query"])["state"] for e in states} == set(STATES)
    assert all(read_tags(e["Query"]).get("prebuilt") for e in states), "the DAG found its state current"
    for execution in states:
        target = re.search(r"\nTO '([^']+)'", execution["Query"]).group(1)
        assert target.startswith(f"s3://{LAKE_BUCKET}/state/{read_tags(execution['Query'])['state']}/")
        s3.head_object(Bucket=LAKE_BUCKET, Key=target.split(f"{LAKE_BUCKET}/")[1] + "_ioc_inputs.json")
    executions = [e for e in executions if e not in states]
    # Each build deferred its query to the trigger and, resumed, reconnected to that query: one
    # submission per task, as the count below says.
    assert output.count("the triggerer waits for it, holding no worker slot") == len(AGGREGATES)
    assert output.count("[DAG TEST] running trigger in line") == len(AGGREGATES)
    assert output.count("Reconnecting to Athena query") == len(AGGREGATES)
    assert len(executions) == 3 * len(AGGREGATES), sorted(read_tags(e["Query"])["task_id"] for e in executions)
    lake_date = DAY.strftime("%Y/%m/%d")
    by_task = {read_tags(e["Query"])["task_id"]: e for e in executions}
    assert len(by_task) == len(executions), "one query per task"
    for execution in executions:
        assert read_tags(execution["Query"])["dag_id"] == "ioc_daily_analytics"
        assert read_tags(execution["Query"])["ds"] == DAY.isoformat()
        assert execution["WorkGroup"] == WORKGROUP
        assert execution["QueryExecutionContext"]["Database"] == DATABASE
        assert execution["ResultConfiguration"]["OutputLocation"].startswith(f"s3://{RESULTS_BUCKET}/")

    expected = expected_aggregates(read_events(sample_lake), read_scores(sample_lake), DAY)
    for name in AGGREGATES:
        table = load_catalog(aws_settings.lake_uri, DATABASE).table(name)
        for step, rendered in (("build", sql.render(name, DAY)), ("check", sql.render(f"checks/{name}", DAY)),
                               ("export", export_sql(table, DAY))):
            execution = by_task[f"{name}.{step}"]
            # The day's values reach Athena as execution parameters, in the order of the text.
            assert execution["ExecutionParameters"] == [athena_literal(v) for v in rendered.parameters]
            body = execution["Query"].split("*/", 1)[1].strip()
            assert f"{DAY:%Y}" not in body.split("\nTO '")[0], "no date pasted into the SQL"
            assert rendered.sql.strip() in body

        unload = by_task[f"{name}.build"]["Query"].split("*/", 1)[1].strip()
        assert unload.startswith(f"UNLOAD ({sql.render(name, DAY).sql.strip()})")
        target = re.search(r"\nTO '([^']+)'", unload).group(1)
        assert re.fullmatch(rf"s3://{LAKE_BUCKET}/aggregates/{name}/{lake_date}/v\d{{8}}T\d{{12}}-[0-9a-f]{{6}}/",
                            target)
        partition = glue.get_partition(DatabaseName=DATABASE, TableName=name, PartitionValues=[lake_date])
        assert partition["Partition"]["StorageDescriptor"]["Location"] == target
        s3.head_object(Bucket=LAKE_BUCKET, Key=target.split(f"{LAKE_BUCKET}/")[1] + "_ioc_committed")
        manifest_key = f"exports/{name}/{DAY}/manifest.json"
        manifest = json.loads(s3.get_object(Bucket=LAKE_BUCKET, Key=manifest_key)["Body"].read())
        assert sorted(f["format"] for f in manifest["files"]) == ["csv", "json", "parquet", "xlsx"]
        assert manifest["source"]["partition"] == target and manifest["source"]["validation"]["passed"]
        # The partition UNLOAD wrote is the day's aggregate: the plain pandas answer on the files.
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket=LAKE_BUCKET, Prefix=target.split(f"{LAKE_BUCKET}/")[1])
                .get("Contents", []) if o["Key"].endswith(".parquet")]
        built = pa.concat_tables([pq.read_table(io.BytesIO(s3.get_object(Bucket=LAKE_BUCKET, Key=k)["Body"].read()))
                                  for k in keys]).to_pandas().assign(date=lake_date)
        assert_matches_pandas(built, expected[name], name)
        # The export is that partition, row for row, with its columns.
        [csv] = [f["path"] for f in manifest["files"] if f["format"] == "csv"]
        body = s3.get_object(Bucket=LAKE_BUCKET, Key=csv.split(f"{LAKE_BUCKET}/")[1])["Body"].read()
        exported = pd.read_csv(io.BytesIO(body))
        assert len(exported) == len(built) > 0, name
        assert set(exported.columns) >= {c.name for c in table.columns}, name

    # The gates ran on the day's S3 objects, and every table's report is kept in the S3 lake.
    for table in ("assessment_events", "ocean_scores", *AGGREGATES):
        report = json.loads(s3.get_object(Bucket=LAKE_BUCKET, Key=f"quality/{table}/{DAY}.json")["Body"].read())
        assert report["passed"] and report["evaluated"] >= 1, table
    checks = len(contract.rules("assessment_events")) + quality.TABLE_CHECKS
    assert f"assessment_events for {DAY} passed {checks} checks" in output

    assert not (tmp_path / "state" / "catalog.sqlite").exists(), "aws keeps partitions in Glue, not locally"
