"""The trigger that waits for a build's Athena query in Airflow's triggerer, holding no worker slot.

Why not the provider's ``AthenaTrigger``: it waits a number of attempts and then reports an error,
leaving the query running; and it has no ``on_kill``. A build's query must end at its timeout
(counted from when it was submitted, across deferrals and tries) and be stopped there, as it is
when the worker waits; and a task a user kills while deferred stops its query too. The waiting is
the same ``GetQueryExecution`` polling, through the provider's ``AthenaHook`` (its async client).

The event says how the wait ended: ``{"status": "done", "state": ...}`` once the query is final
(the build then runs again and reconnects to it), or ``{"status": "timeout", "message": ...}``
once it was stopped at the deadline.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from ioc_analytics.errors import QueryTimeoutError

#: Seconds between two polls: from the first, backing off to the most (a deferred query is
#: usually a long one, and each poll is an API call).
POLL_FIRST_S = 0.5
POLL_S = 5.0
TERMINAL = ("SUCCEEDED", "FAILED", "CANCELLED")


class AthenaQueryTrigger(BaseTrigger):
    def __init__(self, *, query_id: str, deadline: float, timeout_s: int, aws_conn_id: str | None,
                 region_name: str | None = None, poll_s: float = POLL_S) -> None:
        super().__init__()
        self.query_id = query_id
        self.deadline = deadline
        self.timeout_s = timeout_s
        self.aws_conn_id = aws_conn_id
        self.region_name = region_name
        self.poll_s = poll_s

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (f"{type(self).__module__}.{type(self).__qualname__}", {
            "query_id": self.query_id, "deadline": self.deadline, "timeout_s": self.timeout_s,
            "aws_conn_id": self.aws_conn_id, "region_name": self.region_name, "poll_s": self.poll_s})

    def _hook(self):
        from airflow.providers.amazon.aws.hooks.athena import AthenaHook

        return AthenaHook(aws_conn_id=self.aws_conn_id, region_name=self.region_name)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        delay = min(POLL_FIRST_S, self.poll_s)
        async with await self._hook().get_async_conn() as client:
            while True:
                execution = (await client.get_query_execution(QueryExecutionId=self.query_id))["QueryExecution"]
                state = execution["Status"]["State"]
                if state in TERMINAL:
                    self.log.info("Athena query %s is %s", self.query_id, state)
                    yield TriggerEvent({"status": "done", "query_id": self.query_id, "state": state})
                    return
                remaining = self.deadline - time.time()
                if remaining <= 0:
                    await client.stop_query_execution(QueryExecutionId=self.query_id)
                    yield TriggerEvent({"status": "timeout", "query_id": self.query_id,
                                        "message": str(QueryTimeoutError.stopped(self.query_id, self.timeout_s))})
                    return
                self.log.info("Athena query %s is %s; %.0f s left before its timeout", self.query_id, state, remaining)
                await asyncio.sleep(min(delay, remaining))
                delay = min(delay * 1.5, self.poll_s)

    async def on_kill(self) -> None:
        """A user killed the deferred task: stop its query (not on a triggerer restart, which
        hands the trigger to another triggerer)."""
        async with await self._hook().get_async_conn() as client:
            await client.stop_query_execution(QueryExecutionId=self.query_id)
