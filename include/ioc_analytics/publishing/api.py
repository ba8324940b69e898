"""The parameterised query API: ``POST /api/analytics/query``, served by an Airflow plugin.

Only named queries run: the files under ``include/ioc_analytics/sql/queries/``, each with its parameters
declared in its header, one per line::

    -- @param industry string [A-Z][A-Za-z &-]{1,39}     a string that must match the pattern
    -- @param start lake_date = today-30                  a date, YYYY-MM-DD or YYYY/MM/DD, bound as 'YYYY/MM/DD'
    -- @param year year = current                         a year, bound as 'YYYY'
    -- @param month month = current                       1-12, bound as 'MM'
    -- @param limit integer 1..1000 = 100                 a whole number in a range
    -- @suppress users                                    blank breakdown rows with few users
    -- @span start end 7                                  start <= end, at most 7 days from start to end

A ``@span`` of two dates also gives the query each date's month partition and bounds, bound as
the dates are: ``start_year``, ``start_month``, ``start_at`` (its first instant), and
``end_year``, ``end_month``, ``end_before`` (the instant after its last day). A query over raw
data bounds its days so that what it scans stays under the per-query cutoff at full volume.

A named query selects scalar columns only: its pages are cut in an order of every column it
selects, and a map or an array has no order.

A request names the query, its parameters and a format (json, csv, xlsx, parquet). Every value
is checked against its declaration and then bound by the engine (Athena execution parameters,
DuckDB prepared statements); none is pasted into SQL. A bad request (unknown query, a missing,
extra or mistyped parameter, a value outside its pattern, an unknown format) is answered 400 or
404 with one message, and runs nothing. An answer comes in pages (``limit`` rows, at most
``IOC_API_MAX_ROWS``), each with the cursor of the next (:func:`request`, :func:`run`), cut
from one kept result of the whole answer (``IOC_RESULT_REUSE_MINUTES``); every query has the
engine's bytes-scanned cutoff and timeout, and every page the small-group suppression of the
exports.

Airflow does not authenticate a plugin's FastAPI app (it is mounted, and inherits none of the
core API's dependencies), so every route here depends on Airflow's own ``get_user`` and asks the
auth manager whether the caller may read assets: the same JWT (``POST /auth/token``) or UI
session as the rest of Airflow.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import sqlglot
from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from sqlglot import exp

from ioc_analytics.backends import get_backend
from ioc_analytics.errors import BytesScannedCutoffError, IocError, NoDataError, QueryTimeoutError
from ioc_analytics.lake import sql
from ioc_analytics.settings import SQL_DIR
from ioc_analytics.text import parse_day

QUERIES_DIR = SQL_DIR / "queries"
_PARAM = re.compile(r"--\s*@param\s+(?P<name>[a-z_][a-z0-9_]*)\s+(?P<type>[a-z_]+)(?:\s+(?P<spec>.*?))?"
                    r"(?:\s*=\s*(?P<default>\S+))?\s*$")
_SUPPRESS = re.compile(r"--\s*@suppress\s+(?P<column>[a-z_][a-z0-9_]*)\s*$")
_SPAN = re.compile(r"--\s*@span\s+(?P<first>[a-z_][a-z0-9_]*)\s+(?P<last>[a-z_][a-z0-9_]*)\s+(?P<days>\d+)\s*$")


class RequestError(Exception):
    """A bad request: the HTTP status and one message; nothing has run."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Parameter:
    name: str
    type: str
    spec: str | None
    default: str | None

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "type": self.type, "pattern_or_range": self.spec, "default": self.default,
                "required": self.default is None}

    def bind(self, value: Any, today: dt.date) -> object:
        """The value to bind, checked against the declaration; raises RequestError."""
        if value is None:
            value = self.default_value(today)
        problem = f"parameter {self.name!r}: {value!r} is not"
        if self.type == "string":
            if not isinstance(value, str) or not re.fullmatch(self.spec or ".*", value):
                raise RequestError(400, f"{problem} a string matching {self.spec}")
            return value
        if self.type == "integer":
            low, high = (int(v) for v in (self.spec or "0..0").split(".."))
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise RequestError(400, f"{problem} a whole number from {low} to {high}")
            return value
        if self.type == "lake_date":  # typed as the CLI takes it, or as the lake writes it
            if not isinstance(value, str):
                raise RequestError(400, f"{problem} a date as YYYY-MM-DD (or YYYY/MM/DD)")
            try:
                return parse_day(value).strftime("%Y/%m/%d")
            except ValueError as err:
                raise RequestError(400, f"parameter {self.name!r}: {err}") from None
        text = str(value) if isinstance(value, (int, str)) and not isinstance(value, bool) else ""
        if self.type == "year":
            if not re.fullmatch(r"\d{4}", text):
                raise RequestError(400, f"{problem} a year as YYYY")
            return text
        if self.type == "month":
            if not re.fullmatch(r"\d{1,2}", text) or not 1 <= int(text) <= 12:
                raise RequestError(400, f"{problem} a month from 1 to 12")
            return f"{int(text):02d}"
        raise RequestError(500, f"query declares parameter {self.name!r} of unknown type {self.type!r}")

    def default_value(self, today: dt.date) -> Any:
        """The default, as a request would give it; raises RequestError if there is none."""
        if self.default is None:
            raise RequestError(400, f"parameter {self.name!r} is required ({self.type}"
                                    f"{' ' + self.spec if self.spec else ''})")
        if self.default == "current":
            return today.strftime("%Y") if self.type == "year" else today.month
        if self.default == "yesterday":
            return (today - dt.timedelta(days=1)).isoformat()
        if self.default.startswith("today-"):
            return (today - dt.timedelta(days=int(self.default[len("today-"):]))).isoformat()
        return int(self.default) if self.type == "integer" else self.default


@dataclass(frozen=True)
class NamedQuery:
    name: str
    description: str
    parameters: tuple[Parameter, ...]
    suppress: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    #: ``(first, last, days)``: two date parameters at most ``days`` days apart, first to last inclusive.
    span: tuple[str, str, int] | None = None

    def span_values(self, values: dict[str, object]) -> dict[str, object]:
        """The span's checked dates and what they give the query (see the module); raises RequestError."""
        if self.span is None:
            return {}
        first, last, days = self.span
        start, end = (dt.datetime.strptime(str(values[name]), "%Y/%m/%d") for name in (first, last))
        if end < start:
            raise RequestError(400, f"{last} ({end:%Y-%m-%d}) is before {first} ({start:%Y-%m-%d}): swap them")
        if (end - start).days + 1 > days:
            raise RequestError(400, f"{self.name} reads at most {days} days at a time, and {start:%Y-%m-%d} to "
                                    f"{end:%Y-%m-%d} is {(end - start).days + 1}: ask for {days} days or fewer "
                                    "and request the next days after")
        return {f"{first}_year": f"{start:%Y}", f"{first}_month": f"{start:%m}", f"{first}_at": start,
                f"{last}_year": f"{end:%Y}", f"{last}_month": f"{end:%m}", f"{last}_before": end + dt.timedelta(days=1)}

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description, "suppresses_groups_by": self.suppress,
                "parameters": [p.describe() for p in self.parameters],
                "span": None if self.span is None else {"from": self.span[0], "to": self.span[1],
                                                        "at_most_days": self.span[2]}}


@cache
def library() -> dict[str, NamedQuery]:
    """Every named query, from its file's header."""
    queries = {}
    for path in sorted(QUERIES_DIR.glob("*.sql")):
        description, parameters, suppress, span = [], [], None, None
        for line in path.read_text().splitlines():
            if not line.startswith("--"):
                break
            if match := _PARAM.match(line):
                parameters.append(Parameter(match["name"], match["type"], match["spec"], match["default"]))
            elif match := _SUPPRESS.match(line):
                suppress = match["column"]
            elif match := _SPAN.match(line):
                span = (match["first"], match["last"], int(match["days"]))
            else:
                description.append(line.lstrip("- ").strip())
        queries[path.stem] = NamedQuery(path.stem, " ".join(description), tuple(parameters), suppress, span=span)
    return queries


FORMATS = ("json", "csv", "xlsx", "parquet")
MEDIA_TYPES = {"json": "application/json", "csv": "text/csv",
               "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
               "parquet": "application/vnd.apache.parquet"}


@dataclass
class Answer:
    query: str
    parameters: dict[str, object]
    table: Any  # pyarrow.Table
    suppression: dict[str, Any]
    stats: dict[str, Any]
    offset: int = 0  # the page's first row in the whole answer
    more: bool = False  # whether rows follow this page


@dataclass(frozen=True)
class Call:
    """A checked request: what to run, in which format, and which page of the answer."""
    query: NamedQuery
    values: dict[str, object]  # as bound
    format: str
    given: dict[str, object]  # every parameter as a request gives it, defaults resolved (a cursor pins them)
    offset: int = 0
    limit: int | None = None  # None: IOC_API_MAX_ROWS

    def cursor(self, rows: int) -> str:
        """The cursor of the page after this one, which held ``rows`` rows."""
        text = json.dumps({"query": self.query.name, "parameters": self.given, "offset": self.offset + rows},
                          separators=(",", ":"), sort_keys=True)
        return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _decode_cursor(cursor: Any) -> tuple[Any, Any, int]:
    """A cursor's query, parameters and offset, checked again as any request is (it is only a
    page's position: nothing in it is trusted)."""
    refused = RequestError(400, "the cursor is not one this API gave (a page's next_cursor): start again from the "
                                "first page, without a cursor")
    if not isinstance(cursor, str) or not re.fullmatch(r"[A-Za-z0-9_-]{1,4000}", cursor):
        raise refused
    try:
        decoded = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except ValueError:
        raise refused from None
    if not isinstance(decoded, dict) or set(decoded) != {"query", "parameters", "offset"}:
        raise refused
    offset = decoded["offset"]
    if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
        raise refused
    return decoded["query"], decoded["parameters"], offset


def request(body: Any, today: dt.date | None = None) -> Call:
    """Check a request body: the query, its values, the format and the page. Runs nothing.

    The first page names ``query`` and ``parameters``; each page's answer gives the cursor of the
    next (``next_cursor``), and a request with ``cursor`` asks for that page: the cursor carries
    the query, its parameters (their defaults as resolved for the first page, so that every page
    reads the first page's days) and the position. ``limit`` is a page's size (at most, and by
    default, ``IOC_API_MAX_ROWS``)."""
    if not isinstance(body, dict):
        raise RequestError(400, 'the body must be a JSON object: {"query": ..., "parameters": {...}, "format": ...}')
    unknown_keys = sorted(set(body) - {"query", "parameters", "format", "limit", "cursor"})
    if unknown_keys:
        raise RequestError(400, f"unknown fields {unknown_keys}: use query, parameters, format, limit and cursor")
    offset = 0
    if "cursor" in body:
        if "query" in body or "parameters" in body:
            raise RequestError(400, "a cursor carries its query and parameters: send the cursor alone (with format "
                                    "or limit if you like)")
        name, given, offset = _decode_cursor(body["cursor"])
    else:
        name, given = body.get("query"), body.get("parameters", {})
    fmt, limit = body.get("format", "json"), body.get("limit")
    queries = library()
    if not isinstance(name, str) or name not in queries:
        raise RequestError(404, f"no query named {name!r}: use one of {', '.join(queries)} "
                                "(GET /api/analytics/queries)")
    if fmt not in FORMATS:
        raise RequestError(400, f"format {fmt!r} is not one of {', '.join(FORMATS)}")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise RequestError(400, f"limit {limit!r} is not a whole number of rows from 1 (a page's size)")
    if not isinstance(given, dict):
        raise RequestError(400, "parameters must be a JSON object of names and values")
    query = queries[name]
    extra = sorted(set(given) - {p.name for p in query.parameters})
    if extra:
        raise RequestError(400, f"{name} takes no parameter {', '.join(map(repr, extra))}: it takes "
                                f"{', '.join(p.name for p in query.parameters)}")
    today = today or dt.datetime.now(dt.UTC).date()
    resolved = {p.name: given[p.name] if given.get(p.name) is not None else p.default_value(today)
                for p in query.parameters}
    values = {p.name: p.bind(resolved[p.name], today) for p in query.parameters}
    values.update(query.span_values(values))
    return Call(query, values, fmt, resolved, offset, limit)


def prepare(body: Any, today: dt.date | None = None) -> tuple[NamedQuery, dict[str, object], str]:
    """Check a request body; returns the query, the values to bind and the format. Runs nothing."""
    call = request(body, today)
    return call.query, call.values, call.format


def run(settings: Any, query: NamedQuery, values: dict[str, object], user: str,
        tags: dict[str, str] | None = None, offset: int = 0, limit: int | None = None) -> Answer:
    """Run a prepared query on the configured engine: one page of its answer, ``limit`` rows
    (``IOC_API_MAX_ROWS`` by default and at most) from ``offset``, suppressed. ``tags`` add to the
    query's own (a DAG task's, for cost attribution).

    Pages are cut from one total order, so that paging through gives every row exactly once: the
    query's own ORDER BY, then every column it selects, in turn (rows equal in every column are
    alike, whichever page holds them). Every page is cut from the whole ordered answer, which the
    engine keeps for ``IOC_RESULT_REUSE_MINUTES``: the next page, or the same query asked again
    within that time (a dashboard's refresh), reads that result instead of scanning again
    (``stats.reused``; Athena's query result reuse on ``aws``). With reuse off
    (``IOC_RESULT_REUSE_MINUTES=0``), each page is the query run again with OFFSET and LIMIT."""
    from ioc_analytics.publishing.exports import suppress_small_groups

    page = settings.api_max_rows if limit is None else limit
    if page > settings.api_max_rows:
        raise RequestError(400, f"limit {page} is past IOC_API_MAX_ROWS={settings.api_max_rows}: ask for pages of "
                                f"at most {settings.api_max_rows} rows and follow next_cursor")
    rendered = sql.render_with(f"queries/{query.name}", values)
    statement = sqlglot.parse_one(rendered.sql, read="athena")
    statement = statement.order_by(*(exp.Literal.number(i + 1) for i in range(len(statement.selects))), append=True)
    reuse = settings.result_reuse_minutes
    if not reuse:
        # Nothing is kept: each page is the query run again for its rows alone, one row past the page
        # telling whether another follows. The limit and offset are integers of ours, written into
        # the statement (Athena binds parameters in WHERE clauses only).
        statement = (statement.offset(offset) if offset else statement).limit(page + 1)
    try:
        result = get_backend(settings).engine.query(statement.sql("athena"), rendered.parameters,
                                                    tags={"source": "ioc-api", "query": query.name, "user": user,
                                                          **(tags or {})},
                                                    reuse_minutes=reuse)
    except NoDataError as err:
        raise RequestError(404, f"no data for these parameters: {err}") from None
    except BytesScannedCutoffError as err:
        raise RequestError(413, str(err)) from None
    except QueryTimeoutError as err:
        raise RequestError(504, str(err)) from None
    except IocError as err:
        raise RequestError(422, str(err)) from None
    rows = result.table.slice(offset if reuse else 0, page + 1)
    more = rows.num_rows > page
    table, suppression = suppress_small_groups(rows.slice(0, page), query.suppress, settings.min_group_users)
    declared = {p.name: values[p.name] for p in query.parameters}
    return Answer(query.name, declared, table, {"users_column": suppression.users_column,
                                              "min_group_users": suppression.min_group_users,
                                              "rows": suppression.rows, "cells": suppression.cells},
                  {"bytes_scanned": result.stats.bytes_scanned, "cost_usd": result.stats.cost_usd,
                   "elapsed_s": round(result.stats.elapsed_s, 3), "query_id": result.stats.query_id,
                   "reused": result.stats.reused},
                  offset, more)


def create_app() -> Any:
    """The FastAPI app the plugin mounts at ``/api/analytics``."""
    from airflow.api_fastapi.core_api.security import get_user, requires_access_asset

    app = FastAPI(title="IOC analytics query API", description=__doc__.split("\n\n")[0],
                  dependencies=[Depends(get_user), Depends(requires_access_asset("GET"))])

    @app.exception_handler(RequestError)
    async def _request_error(_: Request, err: RequestError) -> JSONResponse:
        return JSONResponse(status_code=err.status, content={"detail": str(err)})

    @app.get("/queries")
    def queries() -> list[dict[str, Any]]:
        """The named queries and their parameters."""
        return [q.describe() for q in library().values()]

    @app.post("/query")
    async def query(http: Request, user=Depends(get_user)) -> Response:  # noqa: B008 (FastAPI's idiom)
        try:
            body = await http.json()
        except ValueError:
            raise RequestError(400, "the body is not JSON") from None
        call = request(body)
        from starlette.concurrency import run_in_threadpool

        from ioc_analytics.settings import get_settings

        answer = await run_in_threadpool(run, get_settings(), call.query, call.values, user.get_name(),
                                         offset=call.offset, limit=call.limit)
        following = call.cursor(answer.table.num_rows) if answer.more else None
        if call.format == "json":
            return JSONResponse({"query": answer.query, "parameters": answer.parameters,
                                 "columns": answer.table.column_names, "row_count": answer.table.num_rows,
                                 "offset": answer.offset, "next_cursor": following,
                                 "rows": _json_rows(answer.table), "suppressed": answer.suppression,
                                 "stats": answer.stats})
        from ioc_analytics.publishing.exports import render_file

        file = render_file(answer.table, answer.query, call.format)
        headers = {"Content-Disposition": f'attachment; filename="{file.name}"', "X-Offset": str(answer.offset)}
        if following:
            headers["X-Next-Cursor"] = following
        return Response(file.data, media_type=MEDIA_TYPES[call.format], headers=headers)

    return app


def _json_rows(table: Any) -> list[dict[str, Any]]:
    from ioc_analytics.publishing.exports import json_rows

    return json_rows(table)
