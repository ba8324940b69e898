"""Every SQL file under include/ioc_analytics/sql/ renders to one Athena statement whose values are bound."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlglot
from sqlglot import exp

from ioc_analytics.lake import sql
from ioc_analytics.lake.tables import AGGREGATES
from ioc_analytics.settings import SQL_DIR

FILES = sorted(p.relative_to(SQL_DIR).with_suffix("").as_posix()
               for p in SQL_DIR.rglob("*.sql") if p.relative_to(SQL_DIR).parts[0] not in ("ddl", "queries"))
DAY = dt.date(2024, 1, 15)


def test_there_are_sql_files():
    assert "daily_active_users" in FILES and "checks/daily_active_users" in FILES


@pytest.mark.parametrize("name", FILES)
def test_values_are_bound_as_parameters_in_where_clauses_only(name):
    rendered = sql.render(name, DAY)
    tree = sqlglot.parse_one(rendered.sql, read="athena")
    placeholders = list(tree.find_all(exp.Placeholder))
    assert rendered.parameters and len(placeholders) == len(rendered.parameters)
    # Athena takes execution parameters in WHERE clauses only.
    assert all(p.find_ancestor(exp.Where) is not None for p in placeholders), name
    assert "2024" not in rendered.sql, "no date pasted into the text"
    assert set(rendered.parameters) <= set(sql.values_for(name, DAY).values())


@pytest.mark.parametrize("name", AGGREGATES)
def test_the_export_query_binds_the_date_in_its_where_clause_only(name):
    from ioc_analytics.lake.catalog import load_catalog
    from ioc_analytics.publishing.exports import export_sql

    rendered = export_sql(load_catalog("/lake").table(name), DAY)
    placeholders = list(sqlglot.parse_one(rendered.sql, read="athena").find_all(exp.Placeholder))
    assert rendered.parameters == ["2024/01/15"] and len(placeholders) == 1
    assert placeholders[0].find_ancestor(exp.Where) is not None


def test_parameters_follow_the_order_of_the_text():
    rendered = sql.render("daily_active_users", DAY)
    assert rendered.parameters == ["2024/01/15", "2024/01/15", "2024/01/15"]


def test_each_aggregate_reads_exactly_the_sources_it_waits_for():
    from ioc_analytics.lake.tables import AGGREGATES, RAW_TABLES, STATES

    for name, sources in AGGREGATES.items():
        tree = sqlglot.parse_one(sql.render(name, DAY).sql, read="athena")
        tables = {t.name for t in tree.find_all(exp.Table)}
        # directly, or through the state it reads (each derived from one raw table)
        read = (tables & set(RAW_TABLES)) | {STATES[t][0] for t in tables & set(STATES)}
        assert read == set(sources), name
