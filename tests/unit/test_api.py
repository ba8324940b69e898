"""The query API's library and request checking, and a prepared query run on the real local
engine (row limit, suppression, bound parameters). Its HTTP face, with Airflow's authentication,
is tests/system/test_query_api.py."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json

import pytest
import sqlglot
from sqlglot import exp

from ioc_analytics.lake import sql
from ioc_analytics.publishing import api
from tests.helpers import read_scores

TODAY = dt.date(2024, 2, 1)


def test_every_named_query_declares_what_it_binds_and_binds_only_in_where_clauses():
    library = api.library()
    assert {"ocean_scores_by_industry", "daily_active_users", "completion_rates",
            "ocean_trait_percentiles"} <= set(library)
    for query in library.values():
        assert query.description and query.parameters, query.name
        values = {p.name: p.bind(None if p.default else "Technology", TODAY) for p in query.parameters}
        rendered = sql.render_with(f"queries/{query.name}", values)  # an undeclared name fails here
        placeholders = list(sqlglot.parse_one(rendered.sql, read="athena").find_all(exp.Placeholder))
        assert len(placeholders) == len(rendered.parameters) > 0, query.name
        assert all(p.find_ancestor(exp.Where) for p in placeholders), query.name


def test_the_guides_example_binds_the_industry_and_the_partition_it_needs():
    query, values, fmt = api.prepare({"query": "ocean_scores_by_industry", "parameters": {"industry": "Technology"}},
                                     TODAY)
    assert values == {"industry": "Technology", "year": "2024", "month": "02"} and fmt == "json"
    rendered = sql.render_with(f"queries/{query.name}", values)
    assert "WHERE year = ? AND month = ? AND industry = ?" in rendered.sql
    assert rendered.parameters == ["2024", "02", "Technology"]


@pytest.mark.parametrize(("body", "status", "message"), [
    ({"query": "drop_everything"}, 404, "no query named 'drop_everything': use one of completion_rates"),
    ({"query": "ocean_scores_by_industry"}, 400, "parameter 'industry' is required (string [A-Z]"),
    ({"query": "daily_active_users", "parameters": {"days": 3}}, 400,
     "daily_active_users takes no parameter 'days': it takes start, end"),
    ({"query": "daily_active_users", "parameters": {"start": "15/01/2024"}}, 400,
     "parameter 'start': '15/01/2024' is not a date as YYYY-MM-DD"),
    ({"query": "daily_active_users", "parameters": {"start": "2024-02-30"}}, 400, "is not a date as YYYY-MM-DD"),
    ({"query": "ocean_scores_by_industry", "parameters": {"industry": "Technology", "month": 13}}, 400,
     "parameter 'month': 13 is not a month from 1 to 12"),
    ({"query": "ocean_scores_by_industry", "parameters": {"industry": "Technology", "year": True}}, 400,
     "parameter 'year': True is not a year as YYYY"),
    ({"query": "ocean_scores_by_industry", "parameters": {"industry": "Technology' OR '1'='1"}}, 400,
     "is not a string matching"),
    ({"query": "ocean_scores_by_industry", "parameters": {"industry": ["Technology"]}}, 400,
     "is not a string matching"),
    ({"query": "daily_active_users", "format": "pdf"}, 400, "format 'pdf' is not one of json, csv, xlsx, parquet"),
    ({"query": "daily_active_users", "parameters": "start=2024-01-01"}, 400, "parameters must be a JSON object"),
    ({"query": "daily_active_users", "limit": 5}, 400, "unknown fields ['limit']"),
    (["daily_active_users"], 400, "the body must be a JSON object"),
], ids=["unknown-query", "missing", "extra", "bad-date", "impossible-date", "month", "bool-year", "injection",
        "list", "format", "parameters-not-object", "unknown-field", "body-not-object"])
def test_bad_requests_are_refused_with_one_message(body, status, message):
    with pytest.raises(api.RequestError) as refused:
        api.prepare(body, TODAY)
    assert refused.value.status == status and message in str(refused.value), str(refused.value)


def test_a_run_binds_its_values_and_refuses_an_answer_past_the_row_limit(local_settings, sample_lake):
    query, values, _ = api.prepare({"query": "ocean_scores_by_industry",
                                    "parameters": {"industry": "Finance", "year": 2024, "month": 1}}, TODAY)
    answer = api.run(local_settings, query, values, "tester")
    scores = read_scores(sample_lake)
    expected = scores[(scores["year"] == "2024") & (scores["month"] == "01") & (scores["industry"] == "Finance")]
    assert answer.table.num_rows == len(expected) > 0
    assert set(answer.table.column("industry").to_pylist()) == {"Finance"}
    logged = json.loads(local_settings.query_log_path.read_text().splitlines()[-1])
    assert logged["parameters"] == ["2024", "01", "Finance"] and "Finance" not in logged["query"]
    assert logged["tags"] == {"source": "ioc-api", "query": "ocean_scores_by_industry", "user": "tester"}

    small = dataclasses.replace(local_settings, api_max_rows=len(expected) - 1)
    with pytest.raises(api.RequestError, match=f"more than IOC_API_MAX_ROWS={len(expected) - 1} rows") as refused:
        api.run(small, query, values, "tester")
    assert refused.value.status == 413
    exact = dataclasses.replace(local_settings, api_max_rows=len(expected))
    assert api.run(exact, query, values, "tester").table.num_rows == len(expected)


def test_no_data_is_a_404_not_an_empty_answer(local_settings):
    query, values, _ = api.prepare({"query": "ocean_scores_by_industry",
                                    "parameters": {"industry": "Finance", "year": 2031, "month": 3}}, TODAY)
    with pytest.raises(api.RequestError, match="no data for these parameters") as refused:
        api.run(local_settings, query, values, "tester")
    assert refused.value.status == 404
