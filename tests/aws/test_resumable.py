"""A build's Athena queries outlive its worker: deferred to a trigger, reconnected to on resume and
on retry, submitted once (moto server over HTTP, the real boto3 and aiobotocore calls).

moto holds a query in QUEUED with its state manager (``manual`` progression), as a long Athena
query stays RUNNING; it ignores ``ClientRequestToken`` (every submission is a new query), so the
token is checked as sent, on the request itself.
"""

from __future__ import annotations

import asyncio
import copy
import time
from dataclasses import replace

import pytest

from ioc_analytics.backends import get_backend
from ioc_analytics.backends.aws.trigger import AthenaQueryTrigger
from ioc_analytics.engine.base import QueryPending, Resume, resumable
from ioc_analytics.errors import QueryError

pytestmark = pytest.mark.integration

LAKE_BUCKET = "ioc-analytics-data-lake"
DATABASE = "ioc_analytics"
WORKGROUP = "ioc-analytics"
SELECT = ("SELECT count(DISTINCT anonymous_user_id) AS unique_users, count(*) AS total_sessions, "
          "count_if(completion_time > 0) AS completed_sessions, 0 AS returning_users "
          "FROM assessment_events WHERE date = ?")
PARTITION = {"date": "2024/01/15"}
SCOPE = "ioc_daily_analytics/scheduled__2024-01-15/daily_active_users.build/-1"


class Store(dict):
    """The task state store's interface (get, set), over a dict: what the engine writes there
    is what a retry reads back."""

    def set(self, key, value):
        self[key] = copy.deepcopy(value)


@pytest.fixture
def hold(moto):
    """Hold every query in QUEUED for ``times`` describes (moto's state manager)."""
    def held(times: int = 10**9) -> None:
        moto.set_transition("athena::execution", {"progression": "manual", "times": times})
    yield held
    moto.unset_transition("athena::execution")


def _executions(moto) -> list[dict]:
    athena = moto.client("athena")
    ids = athena.list_query_executions(WorkGroup=WORKGROUP)["QueryExecutionIds"]
    return [athena.get_query_execution(QueryExecutionId=i)["QueryExecution"] for i in ids]


def _glue_location(moto) -> str:
    return moto.client("glue").get_partition(DatabaseName=DATABASE, TableName="daily_active_users",
                                             PartitionValues=["2024/01/15"])["Partition"]["StorageDescriptor"]["Location"]


def _sent(engine) -> list[dict]:
    """The StartQueryExecution requests the engine's client sends, as botocore hands them over."""
    requests: list[dict] = []
    engine.hook.get_conn().meta.events.register(
        "provide-client-params.athena.StartQueryExecution", lambda params, **_: requests.append(dict(params)))
    return requests


def _build(engine, store: Store, attempt: int, defer_after_s: float | None = 0):
    with resumable(Resume(store, SCOPE, attempt, defer_after_s)):
        return engine.replace_partition("daily_active_users", PARTITION, SELECT, ["2024/01/15"],
                                        tags={"task_id": "daily_active_users.build"})


async def _first_event(trigger: AthenaQueryTrigger):
    async for event in trigger.run():
        return event.payload


def test_a_query_still_running_defers_and_the_resumed_build_publishes_it_without_a_second_query(
        aws_settings, moto, glue_tables, hold):
    engine = get_backend(aws_settings).engine
    sent = _sent(engine)
    store = Store()
    hold(times=3)

    with pytest.raises(QueryPending) as pending:
        _build(engine, store, attempt=1)

    [execution] = _executions(moto)
    query_id = execution["QueryExecutionId"]
    assert pending.value.query_id == query_id
    [entry] = store.values()
    assert entry["query_id"] == query_id and entry["attempt"] == 1
    assert entry["location"].startswith(f"s3://{LAKE_BUCKET}/aggregates/daily_active_users/2024/01/15/v")
    # Nothing is published while the query runs: Glue has no partition yet.
    with pytest.raises(moto.client("glue").exceptions.EntityNotFoundException):
        _glue_location(moto)
    # The trigger (as the triggerer runs it: serialised, rebuilt, awaited) waits for the query.
    trigger = pending.value.trigger
    classpath, kwargs = trigger.serialize()
    assert classpath == "ioc_analytics.backends.aws.trigger.AthenaQueryTrigger"
    event = asyncio.run(_first_event(AthenaQueryTrigger(**{**kwargs, "poll_s": 0.05})))
    assert event == {"status": "done", "query_id": query_id, "state": "SUCCEEDED"}
    assert pending.value.timeout.total_seconds() > aws_settings.query_timeout_s - 5

    stats = _build(engine, store, attempt=1)  # the build, run again on resume

    assert [e["QueryExecutionId"] for e in _executions(moto)] == [query_id], "no second submission"
    assert stats.query_id == query_id and stats.state == "SUCCEEDED"
    assert _glue_location(moto) == entry["location"]
    assert len(sent) == 1 and len(sent[0]["ClientRequestToken"]) == 64


def test_a_retry_after_the_worker_died_reconnects_to_the_running_query(aws_settings, moto, glue_tables, hold):
    engine = get_backend(aws_settings).engine
    store = Store()
    hold()
    with pytest.raises(QueryPending):  # try 1 submitted and recorded its query, then its worker died
        _build(engine, store, attempt=1)
    [running] = _executions(moto)
    moto.unset_transition("athena::execution")

    stats = _build(engine, store, attempt=2, defer_after_s=None)  # try 2, on another worker, waits in it

    assert [e["QueryExecutionId"] for e in _executions(moto)] == [running["QueryExecutionId"]]
    assert stats.query_id == running["QueryExecutionId"]
    assert _glue_location(moto) in running["Query"]


def test_a_worker_dying_between_submitting_and_recording_resubmits_the_same_request(
        aws_settings, moto, glue_tables):
    """The window ResumableJobMixin leaves open: the query id never reached the store. The retry
    sends the same text with the same ClientRequestToken, which real Athena answers with the query
    already started (moto, ignoring tokens, starts another; the request is what is checked)."""
    engine = get_backend(aws_settings).engine
    sent = _sent(engine)

    class DiesAfterSubmitting(Store):
        def set(self, key, value):
            if "query_id" in value:
                raise SystemExit("the worker died")
            super().set(key, value)

    store = DiesAfterSubmitting()
    with pytest.raises(SystemExit):
        _build(engine, store, attempt=1)
    assert "query_id" not in next(iter(store.values()))
    _build(engine, Store(store), attempt=2)

    first, second = sent
    assert first["ClientRequestToken"] == second["ClientRequestToken"]
    assert first["QueryString"] == second["QueryString"], "the same target prefix, the same text"


def test_a_query_that_ended_in_an_earlier_try_is_submitted_afresh_and_in_this_try_fails(
        aws_settings, moto, glue_tables, hold):
    engine = get_backend(aws_settings).engine
    sent = _sent(engine)
    athena = moto.client("athena")
    store = Store()
    hold()
    with pytest.raises(QueryPending):
        _build(engine, store, attempt=1)
    [first] = _executions(moto)
    athena.stop_query_execution(QueryExecutionId=first["QueryExecutionId"])  # Athena cancelled it

    # The same try, back from the triggerer: the query's end is this try's failure.
    with pytest.raises(QueryError, match=f"{first['QueryExecutionId']} was cancelled"):
        _build(engine, store, attempt=1)
    assert len(_executions(moto)) == 1
    moto.unset_transition("athena::execution")

    stats = _build(engine, store, attempt=2)  # the retry submits it afresh: a new token, a new prefix

    assert len(_executions(moto)) == 2 and stats.query_id != first["QueryExecutionId"]
    assert sent[0]["ClientRequestToken"] != sent[1]["ClientRequestToken"]
    assert _glue_location(moto) not in first["Query"]


def test_the_trigger_stops_a_query_at_its_timeout(aws_settings, moto, glue_tables, hold):
    # 5 s: long enough for the build to hand the query over on a loaded machine (its first describe
    # comes before the handover), short enough to wait for.
    engine = get_backend(replace(aws_settings, query_timeout_s=5)).engine
    hold()
    started = time.time()
    with pytest.raises(QueryPending) as pending:
        _build(engine, Store(), attempt=1)
    _, kwargs = pending.value.trigger.serialize()
    assert started + 5 <= kwargs["deadline"] <= time.time() + 5, "the timeout counts from the submission"

    event = asyncio.run(_first_event(AthenaQueryTrigger(**{**kwargs, "poll_s": 0.2})))

    assert event["status"] == "timeout" and "did not finish within 5 s" in event["message"]
    [execution] = _executions(moto)
    assert execution["Status"]["State"] == "CANCELLED"


def test_killing_the_deferred_task_stops_its_query(aws_settings, moto, glue_tables, hold):
    engine = get_backend(aws_settings).engine
    hold()
    with pytest.raises(QueryPending) as pending:
        _build(engine, Store(), attempt=1)
    asyncio.run(pending.value.trigger.on_kill())
    [execution] = _executions(moto)
    assert execution["Status"]["State"] == "CANCELLED"


def test_outside_a_build_queries_wait_in_the_process(aws_settings, moto, glue_tables, hold):
    """The CLI and the benchmarks call the steps directly: no journal, no token, no deferral."""
    engine = get_backend(aws_settings).engine
    sent = _sent(engine)
    hold(times=2)
    stats = engine.replace_partition("daily_active_users", PARTITION, SELECT, ["2024/01/15"])
    assert stats.state == "SUCCEEDED" and "ClientRequestToken" not in sent[0]
