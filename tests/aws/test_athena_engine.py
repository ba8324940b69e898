"""AthenaEngine and S3Lake against a real moto server (the real boto3 calls, through the provider).

What moto 5.2.5 cannot do, and what these tests do instead:

- It does not run queries: results are seeded (``/moto-api/static/athena/query-results``) and
  UNLOAD writes no files. So the tests check what the engine sends (read back from moto's query
  history) and what it makes of the results, not what Athena would compute.
- ``DataScannedInBytes`` and ``TotalExecutionTimeInMillis`` are always 0: the cost is checked at
  Athena's 10 MB minimum only (``athena_cost`` itself has its own unit tests).
- A query cannot end FAILED, and ``Status`` never carries ``AthenaError``: the error mapping is
  tested as the pure function :func:`athena_error` on ``Status`` dicts shaped like Athena's.
  CANCELLED can be reached (StopQueryExecution), with moto's state manager holding a query in
  QUEUED, and is tested on the server.
- ``GetQueryResults`` ignores ``MaxResults`` and returns one page: paging (and the header row
  appearing on the first page only) is tested on :func:`result_table` with pages as Athena sends.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from dataclasses import replace
from decimal import Decimal

import pyarrow as pa
import pytest

from ioc_analytics.backends import get_backend
from ioc_analytics.backends.aws.engine import athena_error, athena_literal, result_table, unload_sql
from ioc_analytics.backends.aws.lake import S3Lake
from ioc_analytics.engine.base import MB, athena_cost, read_tags, with_tags
from ioc_analytics.errors import (
    BytesScannedCutoffError,
    LakeNotFoundError,
    QueryError,
    QueryTimeoutError,
    SqlSyntaxError,
    UnknownColumnError,
    UnknownTableError,
)
from ioc_analytics.lake.catalog import load_catalog

pytestmark = pytest.mark.integration

# As the aws_settings fixture (tests/aws/conftest.py) creates them.
LAKE_BUCKET = "ioc-analytics-data-lake"
RESULTS_BUCKET = "ioc-athena-query-results"
WORKGROUP = "ioc-analytics"
DATABASE = "ioc_analytics"

TAGS = {"dag_id": "daily_aggregates", "task_id": "daily_active_users", "ds": "2024-01-15"}


def _column(name: str, type_: str, precision: int = 0, scale: int = 0) -> dict:
    return {"Name": name, "Label": name, "Type": type_, "Precision": precision, "Scale": scale,
            "Nullable": "NULLABLE", "CaseSensitive": type_ == "varchar"}


def _row(*values: str | None) -> dict:
    return {"Data": [{} if v is None else {"VarCharValue": v} for v in values]}


def _executions(moto) -> list[dict]:
    """Every query moto received, as GetQueryExecution reports it (oldest first)."""
    athena = moto.client("athena")
    ids = athena.list_query_executions(WorkGroup=WORKGROUP)["QueryExecutionIds"]
    return [athena.get_query_execution(QueryExecutionId=i)["QueryExecution"] for i in ids]


def _put(moto, *keys: str, body: bytes = b"parquet bytes") -> None:
    s3 = moto.client("s3")
    for key in keys:
        s3.put_object(Bucket=LAKE_BUCKET, Key=key, Body=body)


def _keys(moto, prefix: str = "") -> set[str]:
    pages = moto.client("s3").get_paginator("list_objects_v2").paginate(Bucket=LAKE_BUCKET, Prefix=prefix)
    return {obj["Key"] for page in pages for obj in page.get("Contents", [])}


# -- query ----------------------------------------------------------------------------------------


TYPED_COLUMNS = [
    _column("platform", "varchar", 2147483647),
    _column("sessions", "integer", 10),
    _column("users", "bigint", 19),
    _column("avg_minutes", "double", 17),
    _column("returning", "boolean"),
    _column("day", "date"),
    _column("first_seen", "timestamp", 3),
    _column("revenue", "decimal", 10, 2),
]


def test_query_returns_a_typed_table(aws_settings, moto):
    moto.seed_athena_results({
        "rows": [
            _row("platform", "sessions", "users", "avg_minutes", "returning", "day", "first_seen", "revenue"),
            _row("web", "120", "9007199254740993", "12.5", "true", "2024-01-15", "2024-01-15 08:30:00.123", "19.99"),
            _row("ios", None, "0", "NaN", "false", "2024-01-16", "2024-01-16 00:00:00.000", None),
            _row("", "-3", None, None, None, None, None, "0.10"),
        ],
        "column_info": TYPED_COLUMNS,
    })
    engine = get_backend(aws_settings).engine

    result = engine.query("SELECT platform, sessions FROM daily_platform WHERE date = ?", ["2024/01/15"])

    assert result.table.schema == pa.schema([
        ("platform", pa.string()), ("sessions", pa.int32()), ("users", pa.int64()),
        ("avg_minutes", pa.float64()), ("returning", pa.bool_()), ("day", pa.date32()),
        ("first_seen", pa.timestamp("us")), ("revenue", pa.decimal128(10, 2)),
    ])
    rows = result.table.to_pylist()
    assert len(rows) == 3  # the header row is not data
    assert rows[0] == {
        "platform": "web", "sessions": 120, "users": 9007199254740993, "avg_minutes": 12.5,
        "returning": True, "day": dt.date(2024, 1, 15),
        "first_seen": dt.datetime(2024, 1, 15, 8, 30, 0, 123000), "revenue": Decimal("19.99"),
    }
    assert rows[1]["sessions"] is None and rows[1]["revenue"] is None
    assert rows[1]["avg_minutes"] != rows[1]["avg_minutes"]  # NaN stays NaN
    assert rows[2]["platform"] == ""  # an empty string is not NULL
    assert rows[2]["sessions"] == -3 and rows[2]["users"] is None and rows[2]["revenue"] == Decimal("0.10")

    stats = result.stats
    assert stats.state == "SUCCEEDED" and stats.rows == 3
    assert stats.query_id == _executions(moto)[0]["QueryExecutionId"]
    # moto reports 0 bytes scanned and 0 ms: the cost is Athena's 10 MB minimum.
    assert stats.bytes_scanned == 0 and stats.cost_usd == pytest.approx(athena_cost(10 * MB))


def test_an_empty_result_keeps_its_columns(aws_settings, moto):
    moto.seed_athena_results({"rows": [_row("platform", "sessions")], "column_info": TYPED_COLUMNS[:2]})

    table = get_backend(aws_settings).engine.query("SELECT platform, sessions FROM t WHERE false").table

    assert table.num_rows == 0
    assert table.schema == pa.schema([("platform", pa.string()), ("sessions", pa.int32())])


def test_start_query_execution_carries_workgroup_database_output_tags_and_parameters(aws_settings, moto):
    sql = "SELECT count(*) AS n FROM assessment_events WHERE date = ? AND completion_time > ? AND region = ?"

    get_backend(aws_settings).engine.query(sql, ["2024/01/15", 300, "Côte d'Ivoire"], tags=TAGS)

    [execution] = _executions(moto)
    assert execution["WorkGroup"] == WORKGROUP
    assert execution["QueryExecutionContext"] == {"Database": DATABASE}
    # moto appends <query id>.csv to the location, as Athena does.
    assert execution["ResultConfiguration"]["OutputLocation"].startswith(f"s3://{RESULTS_BUCKET}/")
    assert execution["Query"] == with_tags(sql, TAGS)
    assert read_tags(execution["Query"]) == TAGS
    # Bound, not pasted: the text keeps its placeholders and the values travel as literals.
    assert "2024/01/15" not in execution["Query"]
    assert execution["ExecutionParameters"] == ["'2024/01/15'", "300", "'Côte d''Ivoire'"]


def test_a_query_without_parameters_sends_no_execution_parameters(aws_settings, moto):
    get_backend(aws_settings).engine.query("SELECT 1")

    [execution] = _executions(moto)
    assert "ExecutionParameters" not in execution  # Athena rejects an empty list
    assert execution["Query"] == "SELECT 1"


@pytest.mark.parametrize(
    ("value", "literal"),
    [
        ("2024/01/15", "'2024/01/15'"),
        ("O'Brien", "'O''Brien'"),
        ("", "''"),
        (42, "42"),
        (-7, "-7"),
        (2.5, "2.5"),
        (Decimal("19.990"), "19.990"),
        (True, "true"),
        (False, "false"),
        (None, "NULL"),
        (dt.date(2024, 1, 15), "DATE '2024-01-15'"),
        (dt.datetime(2024, 1, 15, 8, 30), "TIMESTAMP '2024-01-15 08:30:00.000'"),
        (dt.datetime(2024, 1, 15, 9, 30, tzinfo=dt.timezone(dt.timedelta(hours=1))),
         "TIMESTAMP '2024-01-15 08:30:00.000'"),
    ],
)
def test_parameters_become_athena_literals(value, literal):
    assert athena_literal(value) == literal


@pytest.mark.parametrize("value", [float("nan"), float("inf"), object(), [1, 2]])
def test_parameters_that_have_no_athena_literal_are_refused(value):
    with pytest.raises(QueryError, match="Athena parameter"):
        athena_literal(value)


def test_a_query_past_the_timeout_is_stopped(aws_settings, moto):
    # Hold every query in QUEUED (moto's state manager), as a long Athena query would stay RUNNING.
    moto.set_transition("athena::execution", {"progression": "manual", "times": 10**9})
    try:
        engine = get_backend(replace(aws_settings, query_timeout_s=1)).engine
        started = time.monotonic()
        with pytest.raises(QueryTimeoutError, match="did not finish within 1 s") as caught:
            engine.query("SELECT * FROM assessment_events")
        assert time.monotonic() - started < 5
    finally:
        moto.unset_transition("athena::execution")

    [execution] = _executions(moto)
    assert caught.value.query_id == execution["QueryExecutionId"]
    assert caught.value.query_id in str(caught.value)
    assert execution["Status"]["State"] == "CANCELLED"  # StopQueryExecution was sent


def test_a_cancelled_query_raises_with_its_id(aws_settings, moto):
    # moto cannot fail a query, but StopQueryExecution cancels one: hold it in QUEUED and stop it
    # from "another client" while the engine waits.
    moto.set_transition("athena::execution", {"progression": "manual", "times": 10**9})
    athena = moto.client("athena")

    def cancel_first_query() -> None:
        for _ in range(200):
            ids = athena.list_query_executions(WorkGroup=WORKGROUP)["QueryExecutionIds"]
            if ids:
                athena.stop_query_execution(QueryExecutionId=ids[0])
                return
            time.sleep(0.05)

    canceller = threading.Thread(target=cancel_first_query)
    canceller.start()
    try:
        with pytest.raises(QueryError, match="was cancelled") as caught:
            get_backend(aws_settings).engine.query("SELECT 1")
    finally:
        canceller.join()
        moto.unset_transition("athena::execution")

    assert type(caught.value) is QueryError
    [execution] = _executions(moto)
    assert caught.value.query_id == execution["QueryExecutionId"]
    assert caught.value.query_id in str(caught.value)


def test_an_unknown_workgroup_is_reported(aws_settings, moto):
    engine = get_backend(replace(aws_settings, workgroup="nope")).engine

    with pytest.raises(QueryError, match="WorkGroup does not exist"):
        engine.query("SELECT 1")


# -- error mapping (pure: moto cannot produce FAILED) ----------------------------------------------


def _failed(message: str, *, error_type: int = 1000, category: int = 2, retryable: bool = False) -> dict:
    return {
        "State": "FAILED",
        "StateChangeReason": message,
        "AthenaError": {"ErrorCategory": category, "ErrorType": error_type, "Retryable": retryable,
                        "ErrorMessage": message},
    }


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (_failed("line 1:8: mismatched input 'FORM'. Expecting: ',', 'FROM', <EOF>"), SqlSyntaxError),
        (_failed("SYNTAX_ERROR: line 1:1: Incorrect syntax"), SqlSyntaxError),
        (_failed("TABLE_NOT_FOUND: line 1:15: Table 'awsdatacatalog.ioc_analytics.nope' does not exist"),
         UnknownTableError),
        (_failed("SYNTAX_ERROR: line 1:15: Table awsdatacatalog.ioc_analytics.nope does not exist"),
         UnknownTableError),
        (_failed("COLUMN_NOT_FOUND: line 1:8: Column 'nope' cannot be resolved or requester is not authorized "
                 "to access requested resources"), UnknownColumnError),
        (_failed("SYNTAX_ERROR: line 1:8: Column 'nope' cannot be resolved"), UnknownColumnError),
        ({"State": "CANCELLED", "StateChangeReason": "Query cancelled: Bytes scanned limit was exceeded"},
         BytesScannedCutoffError),
        (_failed("Query timeout", error_type=206, category=1, retryable=True), QueryTimeoutError),
        (_failed("HIVE_CURSOR_ERROR: Failed to read Parquet file", error_type=1001), QueryError),
    ],
)
def test_athena_errors_map_to_project_errors(status, kind):
    error = athena_error("q-123", status)

    assert type(error) is kind
    assert error.query_id == "q-123"
    assert "q-123" in str(error)
    assert status["StateChangeReason"] in str(error)


def test_the_athena_error_message_wins_over_the_state_change_reason():
    status = {"State": "FAILED", "StateChangeReason": "generic",
              "AthenaError": {"ErrorCategory": 2, "ErrorType": 1006, "ErrorMessage": "COLUMN_NOT_FOUND: x"}}

    error = athena_error("q-1", status)

    assert isinstance(error, UnknownColumnError) and "COLUMN_NOT_FOUND: x" in str(error)


def test_retryable_errors_say_so_and_are_retried():
    transient = athena_error("q-1", _failed("Internal error", error_type=100, retryable=True))
    assert "retryable" in str(transient) and transient.retryable
    assert not athena_error("q-2", _failed("SYNTAX_ERROR: line 1:8")).retryable


# -- result pages (pure: moto returns a single page) ----------------------------------------------


def test_result_pages_are_joined_and_only_the_first_has_a_header():
    columns = [_column("n", "bigint"), _column("label", "varchar")]
    pages = [
        {"ResultSet": {"ResultSetMetadata": {"ColumnInfo": columns}, "Rows": [_row("n", "label"), _row("1", "a")]}},
        {"ResultSet": {"ResultSetMetadata": {"ColumnInfo": columns}, "Rows": [_row("2", "b"), _row("3", None)]}},
    ]

    table = result_table(pages)

    assert table.to_pydict() == {"n": [1, 2, 3], "label": ["a", "b", None]}


def test_complex_and_zoned_values():
    columns = [_column("facets", "map"), _column("at", "timestamp with time zone"), _column("blob", "varbinary")]
    pages = [{"ResultSet": {"ResultSetMetadata": {"ColumnInfo": columns}, "Rows": [
        _row("facets", "at", "blob"),
        _row("{openness.fantasy={score=61.0}}", "2024-01-15 08:30:00.000 Europe/Paris", "68 69"),
    ]}}]

    [row] = result_table(pages).to_pylist()

    assert row["facets"] == "{openness.fantasy={score=61.0}}"  # Athena's display text, kept as is
    assert row["at"] == dt.datetime(2024, 1, 15, 7, 30, tzinfo=dt.UTC)
    assert row["blob"] == b"hi"


# -- replace_partition ----------------------------------------------------------------------------


DAU_SELECT = ("SELECT count(DISTINCT anonymous_user_id) AS unique_users, count(*) AS total_sessions, "
              "count_if(completion_time > 0) AS completed_sessions, 0 AS returning_users "
              "FROM assessment_events WHERE date = ?")
DAU_PREFIX = "aggregates/daily_active_users/2024/01/15/"


def _glue_location(moto, table="daily_active_users", values=("2024/01/15",)) -> str:
    partition = moto.client("glue").get_partition(DatabaseName=DATABASE, TableName=table, PartitionValues=list(values))
    return partition["Partition"]["StorageDescriptor"]["Location"]


def test_replace_partition_unloads_a_new_version_then_switches_the_glue_partition(aws_settings, moto, glue_tables):
    engine = get_backend(aws_settings).engine

    stats = engine.replace_partition("daily_active_users", {"date": "2024/01/15"}, DAU_SELECT, ["2024/01/15"],
                                     tags=TAGS)

    [execution] = _executions(moto)
    first = _glue_location(moto)
    assert first.startswith(f"s3://{LAKE_BUCKET}/{DAU_PREFIX}v") and first.endswith("/")
    assert execution["Query"] == with_tags(
        f"UNLOAD ({DAU_SELECT})\nTO '{first}'\nWITH (format = 'PARQUET', compression = 'SNAPPY')", TAGS)
    assert execution["ExecutionParameters"] == ["'2024/01/15'"]
    assert execution["WorkGroup"] == WORKGROUP
    assert execution["ResultConfiguration"]["OutputLocation"].startswith(f"s3://{RESULTS_BUCKET}/")
    assert stats.query_id == execution["QueryExecutionId"] and stats.state == "SUCCEEDED" and stats.tags == TAGS
    # moto does not run UNLOAD: the version holds only the commit marker that the engine wrote.
    assert _keys(moto, DAU_PREFIX) == {first.split(f"{LAKE_BUCKET}/")[1] + "_ioc_committed"}
    descriptor = moto.client("glue").get_partition(
        DatabaseName=DATABASE, TableName="daily_active_users", PartitionValues=["2024/01/15"])["Partition"]
    assert descriptor["StorageDescriptor"]["SerdeInfo"]["SerializationLibrary"].endswith("ParquetHiveSerDe")

    engine.replace_partition("daily_active_users", {"date": "2024/01/15"}, DAU_SELECT, ["2024/01/15"])
    second = _glue_location(moto)
    engine.replace_partition("daily_active_users", {"date": "2024/01/15"}, DAU_SELECT, ["2024/01/15"])
    third = _glue_location(moto)
    assert first < second < third
    versions = {k.split("/")[5] for k in _keys(moto, DAU_PREFIX)}
    assert versions == {second.split("/")[-2], third.split("/")[-2]}, "the current and the previous version only"


def test_a_failed_unload_leaves_the_partition_where_it_was(aws_settings, moto, glue_tables):
    get_backend(aws_settings).engine.replace_partition("daily_active_users", {"date": "2024/01/15"}, DAU_SELECT,
                                                 ["2024/01/15"])
    before, keys = _glue_location(moto), _keys(moto, DAU_PREFIX)

    with pytest.raises(QueryError, match="WorkGroup"):
        get_backend(replace(aws_settings, workgroup="nope")).engine.replace_partition(
            "daily_active_users", {"date": "2024/01/15"}, DAU_SELECT, ["2024/01/15"])

    assert _glue_location(moto) == before and _keys(moto, DAU_PREFIX) == keys


def test_replace_partition_refuses_a_select_list_unlike_the_ddl_before_anything_runs(aws_settings, moto, glue_tables):
    with pytest.raises(QueryError, match="returns columns .*unique_users, sessions"):
        get_backend(aws_settings).engine.replace_partition(
            "daily_active_users", {"date": "2024/01/15"},
            "SELECT count(DISTINCT u) AS unique_users, count(*) AS sessions FROM t",
        )
    assert _executions(moto) == [] and _keys(moto) == set()


def test_replace_partition_refuses_bad_partition_values_and_raw_tables(aws_settings, moto, glue_tables):
    from ioc_analytics.errors import CatalogError, ConfigError

    with pytest.raises(CatalogError, match="not a valid value"):
        get_backend(aws_settings).engine.replace_partition("daily_active_users", {"date": "2024/01"}, DAU_SELECT)
    with pytest.raises(ConfigError, match="uses partition projection"):
        get_backend(aws_settings).engine.replace_partition(
            "assessment_events", {"date": "2024/01/15", "assessment_type": "personality"}, "SELECT 1")
    assert _executions(moto) == []


def test_replace_partition_needs_the_glue_table(aws_settings, moto):
    with pytest.raises(UnknownTableError, match="not in the Glue Data Catalog"):
        get_backend(aws_settings).engine.replace_partition("daily_active_users", {"date": "2024/01/15"}, DAU_SELECT)
    assert _executions(moto) == []


def test_glue_tables_are_made_from_the_ddl_idempotently(aws_settings, moto):
    from ioc_analytics.backends.aws.glue import ensure_tables

    catalog = load_catalog(aws_settings.lake_uri, DATABASE)
    assert set(ensure_tables(aws_settings, catalog).values()) == {"created"}
    assert set(ensure_tables(aws_settings, catalog).values()) == {"unchanged"}
    table = moto.client("glue").get_table(DatabaseName=DATABASE, Name="ocean_scores")["Table"]
    assert table["Parameters"]["projection.enabled"] == "true"
    assert [k["Name"] for k in table["PartitionKeys"]] == ["year", "month"]
    columns = {c["Name"]: c["Type"] for c in table["StorageDescriptor"]["Columns"]}
    assert columns["facets"] == "map<string,struct<score:double,responses:int,std_dev:double>>"
    assert columns["dark_side_indicators"] == "map<string,double>"
    assert table["StorageDescriptor"]["Location"] == f"s3://{LAKE_BUCKET}/ocean_scores/"


def test_unload_text_escapes_the_target_and_drops_a_trailing_semicolon():
    assert unload_sql("SELECT 1;\n", "s3://b/it's/") == (
        "UNLOAD (SELECT 1)\nTO 's3://b/it''s/'\nWITH (format = 'PARQUET', compression = 'SNAPPY')"
    )


# -- S3Lake -----------------------------------------------------------------------------------------


def test_s3_lake_lists_partitions_and_reports_strays(aws_settings, moto):
    _put(
        moto,
        "assessments/2024/01/15/personality/part-0.parquet",
        "assessments/2024/01/15/personality/part-1.parquet",
        "assessments/2024/01/15/leadership/part-0.parquet",
        "assessments/2024/01/16/personality/part-0.parquet",
        # hidden: in-progress writes and markers, at any depth
        "assessments/2024/01/15/personality/_SUCCESS",
        "assessments/2024/01/15/personality/.part-2.parquet.crc",
        "assessments/2024/01/15/_tmp/part-9.parquet",
        "assessments/2024/01/15/personality/",  # a folder marker, as the S3 console makes
        # strays: outside the layout
        "assessments/2024/01/15/unknown_type/part-0.parquet",
        "assessments/readme.txt",
        # another table
        "ocean_scores/2024/01/part-0.parquet",
    )
    catalog = load_catalog(aws_settings.lake_uri, DATABASE)
    lake = get_backend(aws_settings).lake

    listing = lake.list_table(catalog.table("assessment_events"))

    assert [p.values for p in listing.partitions] == [
        {"date": "2024/01/15", "assessment_type": "leadership"},
        {"date": "2024/01/15", "assessment_type": "personality"},
        {"date": "2024/01/16", "assessment_type": "personality"},
    ]
    personality = listing.partitions[1]
    assert [f.path for f in personality.files] == [
        f"s3://{LAKE_BUCKET}/assessments/2024/01/15/personality/part-0.parquet",
        f"s3://{LAKE_BUCKET}/assessments/2024/01/15/personality/part-1.parquet",
    ]
    assert personality.size == 2 * len(b"parquet bytes")
    assert sorted(listing.strays) == [
        f"s3://{LAKE_BUCKET}/assessments/2024/01/15/unknown_type/part-0.parquet",
        f"s3://{LAKE_BUCKET}/assessments/readme.txt",
    ]

    ocean = lake.list_table(catalog.table("ocean_scores"))
    assert [p.values for p in ocean.partitions] == [{"year": "2024", "month": "01"}] and not ocean.strays

    files = lake.partition_files(catalog.table("assessment_events"),
                                 {"date": "2024/01/15", "assessment_type": "personality"})
    assert [f.path for f in files] == [f.path for f in personality.files]


def test_s3_lake_delete_prefix_stays_inside_the_lake(aws_settings, moto):
    from ioc_analytics.errors import ConfigError

    lake = get_backend(aws_settings).lake
    for uri in (f"s3://{LAKE_BUCKET}/", f"s3://{LAKE_BUCKET}", f"s3://{RESULTS_BUCKET}/x/",
                f"s3://{LAKE_BUCKET}/assessments"):
        with pytest.raises(ConfigError, match="refusing to delete"):
            lake.delete_prefix(uri)


def test_s3_lake_check_names_a_missing_bucket_and_the_connection(aws_settings, moto):
    lake = S3Lake("s3://no-such-lake-bucket/prefix", aws_settings.aws_conn_id, aws_settings.region)

    with pytest.raises(LakeNotFoundError, match="'no-such-lake-bucket'.*does not exist.*'aws_default'"):
        lake.check()
    with pytest.raises(LakeNotFoundError):
        lake.list_table(load_catalog(lake.root, DATABASE).table("ocean_scores"))

    get_backend(aws_settings).lake.check()  # the fixture's lake bucket is there


def _parquet(table: pa.Table, **options) -> bytes:
    import io

    import pyarrow.parquet as pq

    buffer = io.BytesIO()
    pq.write_table(table, buffer, **options)
    return buffer.getvalue()


def test_s3_lake_counts_rows_from_the_footer(aws_settings, moto):
    from ioc_analytics.errors import BadDataFileError
    from ioc_analytics.lake.store import DataFile

    wide = pa.table({f"c{i}": list(range(2000)) for i in range(20)})
    objects = {
        "small.parquet": (_parquet(pa.table({"a": list(range(100))})), 100),
        "empty.parquet": (_parquet(pa.table({"a": pa.array([], pa.int64())})), 0),
        # a footer larger than the first ranged read: one row group per 10 rows
        "big-footer.parquet": (_parquet(wide, row_group_size=10), 2000),
    }
    for name, (body, _) in objects.items():
        _put(moto, f"assessments/{name}", body=body)
    _put(moto, "assessments/not-parquet.parquet", body=b"date,device\n2024-01-01,desktop\n")
    lake = get_backend(aws_settings).lake
    assert isinstance(lake, S3Lake) and lake.bucket == LAKE_BUCKET
    assert len(objects["big-footer.parquet"][0]) > 64 * 1024

    for name, (body, rows) in objects.items():
        assert lake.footer(DataFile(f"s3://{LAKE_BUCKET}/assessments/{name}", len(body))).num_rows == rows, name
    with pytest.raises(BadDataFileError, match="not-parquet.parquet is not a readable Parquet file"):
        lake.footer(DataFile(f"s3://{LAKE_BUCKET}/assessments/not-parquet.parquet", 32))


@pytest.mark.parametrize(("code", "status", "retryable"), [
    ("TooManyRequestsException", 400, True),
    ("InternalServerException", 500, True),
    ("InvalidRequestException", 400, False),
])
def test_throttling_is_retried_and_a_bad_request_is_not(aws_settings, moto, code, status, retryable):
    """moto never throttles: botocore's Stubber answers this one call as Athena would."""
    from botocore.stub import Stubber

    engine = get_backend(aws_settings).engine
    client = engine.hook.get_conn()
    assert client is engine.hook.get_conn(), "the hook must hand out one client for the stub to apply"
    with Stubber(client) as stub:
        stub.add_client_error("start_query_execution", service_error_code=code, service_message="slow down",
                              http_status_code=status)
        with pytest.raises(QueryError, match=f"{code}: slow down") as caught:
            engine.query("SELECT 1")
    assert caught.value.retryable is retryable
