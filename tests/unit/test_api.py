"""The query API's library and request checking, and a prepared query run on the real local
engine (row limit, suppression, bound parameters). Its HTTP face, with Airflow's authentication,
is tests/system/test_query_api.py."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re

import pytest
import sqlglot
from sqlglot import exp

from ioc_analytics.lake import sql
from ioc_analytics.publishing import api
from tests.helpers import read_scores

TODAY = dt.date(2024, 2, 1)


def test_every_named_query_declares_what_it_binds_and_binds_only_in_where_clauses():
    from ioc_analytics.lake.catalog import load_catalog

    catalog = load_catalog("/lake", "ioc_analytics")
    library = api.library()
    assert {"ocean_scores_by_industry", "daily_active_users", "completion_rates",
            "ocean_trait_percentiles"} <= set(library)
    for query in library.values():
        assert query.description and query.parameters, query.name
        values = {p.name: p.bind(None if p.default else "Technology", TODAY) for p in query.parameters}
        values |= query.span_values(values)  # a span's dates give their partitions and bounds
        rendered = sql.render_with(f"queries/{query.name}", values)  # an undeclared name fails here
        placeholders = list(sqlglot.parse_one(rendered.sql, read="athena").find_all(exp.Placeholder))
        assert len(placeholders) == len(rendered.parameters) > 0, query.name
        assert all(p.find_ancestor(exp.Where) for p in placeholders), query.name
        # Pages are ordered by every selected column: none may be a map, an array or a row.
        tree = sqlglot.parse_one(rendered.sql, read="athena")
        [source] = [t.name for t in tree.find_all(exp.Table)]
        types = {c.name: c.type for c in (*catalog.table(source).columns, *catalog.table(source).partition_keys)}
        for column in (s.find(exp.Column) for s in tree.selects):
            assert not types[column.name].is_type(*exp.DataType.NESTED_TYPES), (query.name, column.name)


def test_the_guides_example_binds_the_industry_and_the_partitions_and_days_it_needs():
    query, values, fmt = api.prepare({"query": "ocean_scores_by_industry", "parameters": {"industry": "Technology"}},
                                     TODAY)
    assert {k: values[k] for k in ("industry", "start", "end")} == {
        "industry": "Technology", "start": "2024/01/31", "end": "2024/01/31"} and fmt == "json"
    rendered = sql.render_with(f"queries/{query.name}", values)
    assert "((year = ? AND month = ?) OR (year = ? AND month = ?))" in rendered.sql
    assert rendered.parameters == ["2024", "01", "2024", "01", dt.datetime(2024, 1, 31), dt.datetime(2024, 2, 1),
                                   "Technology"]
    # days across a month end reads both months, and the days' bounds
    _, values, _ = api.prepare({"query": "ocean_scores_by_industry", "parameters": {
        "industry": "Technology", "start": "2024-01-29", "end": "2024-02-02"}}, TODAY)
    assert sql.render_with(f"queries/{query.name}", values).parameters == [
        "2024", "01", "2024", "02", dt.datetime(2024, 1, 29), dt.datetime(2024, 2, 3), "Technology"]


@pytest.mark.parametrize(("start", "end", "message"), [
    ("2024-01-01", "2024-01-08", "ocean_scores_by_industry reads at most 5 days at a time, and 2024-01-01 to "
                                 "2024-01-08 is 8: ask for 5 days or fewer"),
    ("2024-01-31", "2024-01-01", "end (2024-01-01) is before start (2024-01-31): swap them"),
])
def test_a_span_past_what_the_query_allows_is_refused(start, end, message):
    with pytest.raises(api.RequestError, match=re.escape(message)) as refused:
        api.request({"query": "ocean_scores_by_industry",
                     "parameters": {"industry": "Finance", "start": start, "end": end}}, TODAY)
    assert refused.value.status == 400


@pytest.mark.parametrize(("body", "status", "message"), [
    ({"query": "drop_everything"}, 404, "no query named 'drop_everything': use one of completion_rates"),
    ({"query": "ocean_scores_by_industry"}, 400, "parameter 'industry' is required (string [A-Z]"),
    ({"query": "daily_active_users", "parameters": {"days": 3}}, 400,
     "daily_active_users takes no parameter 'days': it takes start, end"),
    ({"query": "daily_active_users", "parameters": {"start": "15/01/2024"}}, 400,
     "parameter 'start': '15/01/2024' is not a date: type it as YYYY-MM-DD (or YYYY/MM/DD)"),
    ({"query": "daily_active_users", "parameters": {"start": "2024-02-30"}}, 400,
     "parameter 'start': '2024-02-30' is not a day of the calendar"),
    ({"query": "ocean_scores_by_industry", "parameters": {"industry": "Technology", "month": 1}}, 400,
     "ocean_scores_by_industry takes no parameter 'month': it takes industry, start, end"),
    ({"query": "ocean_scores_by_industry", "parameters": {"industry": "Technology", "start": True}}, 400,
     "parameter 'start': True is not a date"),
    ({"query": "ocean_scores_by_industry", "parameters": {"industry": "Technology' OR '1'='1"}}, 400,
     "is not a string matching"),
    ({"query": "ocean_scores_by_industry", "parameters": {"industry": ["Technology"]}}, 400,
     "is not a string matching"),
    ({"query": "daily_active_users", "format": "pdf"}, 400, "format 'pdf' is not one of json, csv, xlsx, parquet"),
    ({"query": "daily_active_users", "parameters": "start=2024-01-01"}, 400, "parameters must be a JSON object"),
    ({"query": "daily_active_users", "page": 2}, 400, "unknown fields ['page']"),
    ({"query": "daily_active_users", "limit": 0}, 400, "limit 0 is not a whole number of rows from 1"),
    ({"query": "daily_active_users", "limit": "10"}, 400, "limit '10' is not a whole number"),
    ({"cursor": "not a cursor!"}, 400, "the cursor is not one this API gave"),
    ({"cursor": "e30"}, 400, "the cursor is not one this API gave"),  # "{}"
    ({"cursor": "eyJxdWVyeSI6ImRhaWx5X2FjdGl2ZV91c2VycyIsInBhcmFtZXRlcnMiOnt9LCJvZmZzZXQiOi0xfQ"}, 400,
     "the cursor is not one this API gave"),  # a negative offset
    ({"cursor": "abc", "query": "daily_active_users"}, 400, "a cursor carries its query and parameters"),
    (["daily_active_users"], 400, "the body must be a JSON object"),
], ids=["unknown-query", "missing", "extra", "bad-date", "impossible-date", "month", "bool-year", "injection",
        "list", "format", "parameters-not-object", "unknown-field", "limit-zero", "limit-text", "cursor-garbage",
        "cursor-empty", "cursor-negative-offset", "cursor-and-query", "body-not-object"])
def test_bad_requests_are_refused_with_one_message(body, status, message):
    with pytest.raises(api.RequestError) as refused:
        api.prepare(body, TODAY)
    assert refused.value.status == status and message in str(refused.value), str(refused.value)


def test_a_date_is_taken_in_either_spelling():
    dashed = api.prepare({"query": "daily_active_users", "parameters": {"start": "2024-01-05", "end": "2024-01-09"}})
    slashed = api.prepare({"query": "daily_active_users", "parameters": {"start": "2024/01/05", "end": "2024/01/09"}})
    assert dashed[1] == slashed[1] == {"start": "2024/01/05", "end": "2024/01/09"}
    with pytest.raises(api.RequestError, match="is not a date: type it as YYYY-MM-DD"):
        api.prepare({"query": "daily_active_users", "parameters": {"start": "2024-01/05"}})


def test_a_run_binds_its_values(local_settings, sample_lake):
    query, values, _ = api.prepare({"query": "ocean_scores_by_industry", "parameters": {
        "industry": "Finance", "start": "2024-01-10", "end": "2024-01-14"}}, TODAY)
    answer = api.run(local_settings, query, values, "tester")
    expected = _week_of_finance(sample_lake)
    assert answer.table.num_rows == len(expected) > 0 and not answer.more
    assert set(answer.table.column("industry").to_pylist()) == {"Finance"}
    logged = json.loads(local_settings.query_log_path.read_text().splitlines()[-1])
    assert logged["parameters"] == ["2024", "01", "2024", "01", "2024-01-10 00:00:00", "2024-01-15 00:00:00",
                                    "Finance"] and "Finance" not in logged["query"]
    assert logged["tags"] == {"source": "ioc-api", "query": "ocean_scores_by_industry", "user": "tester"}


def _week_of_finance(lake):
    scores = read_scores(lake)
    return scores[(scores["timestamp"] >= "2024-01-10") & (scores["timestamp"] < "2024-01-15")
                  & (scores["industry"] == "Finance")]


def _page_through(settings, body, today=TODAY):
    """Every page of an answer, by following each page's cursor as a client does."""
    pages, call = [], api.request(body, today)
    while True:
        answer = api.run(settings, call.query, call.values, "tester", offset=call.offset, limit=call.limit)
        pages.append(answer)
        if not answer.more:
            return pages
        call = api.request({"cursor": call.cursor(answer.table.num_rows), "limit": body.get("limit")}, today)


# Reuse off runs every page again (OFFSET and LIMIT): at the cap, four pages (with 7 rows a page it
# would be dozens of runs of the same query, a minute of the suite for the same property).
@pytest.mark.parametrize(("limit", "reuse"), [(None, 60), (7, 60), (None, 0)])
def test_paging_gives_every_row_exactly_once_in_pages_no_larger_than_asked(local_settings, sample_lake, limit,
                                                                           reuse):
    """From one kept result, or (reuse off) each page run again with OFFSET and LIMIT."""
    expected = _week_of_finance(sample_lake)
    cap = len(expected) // 3 - 1  # four pages at the cap
    settings = dataclasses.replace(local_settings, api_max_rows=cap, result_reuse_minutes=reuse)
    body = {"query": "ocean_scores_by_industry",
            "parameters": {"industry": "Finance", "start": "2024-01-10", "end": "2024-01-14"}}
    if limit:
        body["limit"] = limit
    pages = _page_through(settings, body)
    size = limit or cap
    assert len(pages) == -(-len(expected) // size) >= 4
    assert all(p.table.num_rows == size for p in pages[:-1]) and 0 < pages[-1].table.num_rows <= size
    assert [p.offset for p in pages] == [i * size for i in range(len(pages))]
    assert [p.more for p in pages] == [True] * (len(pages) - 1) + [False]
    got = [row for p in pages for row in p.table.column("assessment_id").to_pylist()]
    assert len(got) == len(set(got)) == len(expected) and set(got) == set(expected["assessment_id"])
    # in the query's own order across the pages
    assert got == expected.sort_values(["timestamp", "assessment_id"])["assessment_id"].tolist()


def test_each_page_is_suppressed_as_the_whole_answer_is(local_settings):
    """completion_rates suppresses groups of few users: paged four rows at a time, the rows and
    their blanked cells are the whole answer's, and the pages' suppression counts add up to its."""
    from ioc_analytics.analytics import pipeline

    settings = dataclasses.replace(local_settings, min_group_users=40)
    for day in (dt.date(2024, 1, 8), dt.date(2024, 1, 9)):
        pipeline.validate_source(settings, day, "assessment_events")
        pipeline.build_aggregate(settings, day, "completion_rates", {})
    body = {"query": "completion_rates", "parameters": {"start": "2024-01-08", "end": "2024-01-09"}}
    whole = api.run(settings, *api.prepare(body, TODAY)[:2], "tester")
    assert whole.table.num_rows > 20 and not whole.more
    assert 0 < whole.suppression["rows"] < whole.table.num_rows, "some groups blanked, not all"
    pages = _page_through(dataclasses.replace(settings, api_max_rows=4), body)
    assert [r for p in pages for r in p.table.to_pylist()] == whole.table.to_pylist()
    assert sum(p.suppression["rows"] for p in pages) == whole.suppression["rows"]


def test_a_page_past_the_cap_is_refused_and_a_cursor_pins_the_month_and_is_checked_again(local_settings):
    small = dataclasses.replace(local_settings, api_max_rows=5)
    call = api.request({"query": "daily_active_users", "limit": 6}, TODAY)
    with pytest.raises(api.RequestError, match="limit 6 is past IOC_API_MAX_ROWS=5: ask for pages of at most 5"):
        api.run(small, call.query, call.values, "tester", limit=call.limit)
    # The default days are the first page's, on every page after it.
    first = api.request({"query": "ocean_scores_by_industry", "parameters": {"industry": "Finance"}},
                        dt.date(2024, 1, 31))
    later = api.request({"cursor": first.cursor(10)}, dt.date(2024, 2, 1))
    assert later.values == first.values and later.given == {"industry": "Finance", "start": "2024-01-30",
                                                            "end": "2024-01-30"}
    assert later.offset == 10
    # A cursor is only a position: its parameters are checked as a request's.
    import base64

    forged = base64.urlsafe_b64encode(json.dumps({"query": "ocean_scores_by_industry", "offset": 0, "parameters": {
        "industry": "x' OR 1=1 --", "start": "2024-01-30", "end": "2024-01-30"}}).encode()).decode().rstrip("=")
    with pytest.raises(api.RequestError, match="parameter 'industry'") as refused:
        api.request({"cursor": forged}, TODAY)
    assert refused.value.status == 400


def test_no_data_is_a_404_not_an_empty_answer(local_settings):
    query, values, _ = api.prepare({"query": "ocean_scores_by_industry",
                                    "parameters": {"industry": "Finance", "start": "2031-03-01",
                                                   "end": "2031-03-01"}}, TODAY)
    with pytest.raises(api.RequestError, match="no data for these parameters") as refused:
        api.run(local_settings, query, values, "tester")
    assert refused.value.status == 404


def test_pages_and_a_repeated_query_are_cut_from_one_kept_result_until_the_data_changes(local_settings,
                                                                                        sample_lake, tmp_path):
    """The first page scans; every next page, and the same query asked again, is read from the kept
    result (no bytes, no cost, reused in the history); a new file under the query is a new scan."""
    import shutil

    lake = tmp_path / "lake"
    shutil.copytree(sample_lake / "ocean_scores" / "2024" / "01", lake / "ocean_scores" / "2024" / "01")
    settings = dataclasses.replace(local_settings, lake_root=str(lake), state_dir=str(tmp_path / "state"),
                                   api_max_rows=50)
    body = {"query": "ocean_scores_by_industry",
            "parameters": {"industry": "Finance", "start": "2024-01-10", "end": "2024-01-14"}}
    pages = _page_through(settings, body)
    assert len(pages) >= 3
    assert pages[0].stats["bytes_scanned"] > 0 and not pages[0].stats["reused"]
    assert all(p.stats["reused"] and p.stats["bytes_scanned"] == 0 == p.stats["cost_usd"] for p in pages[1:])
    logged = [json.loads(line) for line in settings.query_log_path.read_text().splitlines()]
    assert [e["reused"] for e in logged] == [False] + [True] * (len(pages) - 1)
    assert all(e["cost_usd"] == 0 for e in logged[1:])

    again = api.run(settings, *api.prepare(body, TODAY)[:2], "someone else")
    assert again.stats["reused"] and again.table.to_pylist() == pages[0].table.to_pylist()
    off = api.run(dataclasses.replace(settings, result_reuse_minutes=0), *api.prepare(body, TODAY)[:2], "t")
    assert not off.stats["reused"] and off.stats["bytes_scanned"] > 0

    # a day delivered again: a file under the query changed, so its kept result is not this data's
    day_file = lake / "ocean_scores" / "2024" / "01" / "part-20240112.parquet"
    import pyarrow.parquet as pq

    data = pq.read_table(day_file)
    pq.write_table(data.slice(0, data.num_rows // 2), day_file)
    fresh = api.run(settings, *api.prepare(body, TODAY)[:2], "tester")
    assert not fresh.stats["reused"] and fresh.stats["bytes_scanned"] > 0
    assert len(_page_through(settings, body)) * 50 >= len(_week_of_finance(lake)) > 0
