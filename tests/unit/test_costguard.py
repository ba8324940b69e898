"""The static cost guard: every SQL file passes, and each mistake it exists for is caught with
its line."""

from __future__ import annotations

import pytest

from ioc_analytics import costguard


def test_every_sql_file_of_the_project_passes():
    assert [str(f) for f in costguard.check_files()] == []


@pytest.mark.parametrize(("sql", "line", "words"), [
    ("SELECT device,\n  COUNT(*)\nFROM assessment_events\nGROUP BY device", 3,
     "reads assessment_events without a filter on its partition keys (date, assessment_type)"),
    ("SELECT openness FROM ocean_scores WHERE industry = {{ industry }}", 1,
     "reads ocean_scores without a filter on its partition keys (year, month)"),
    ("SELECT *\nFROM ocean_scores\nWHERE year = {{ year }} AND month = {{ month }}", 2,
     "SELECT * on the raw table ocean_scores"),
    ("SELECT e.device FROM completion_rates c\nLEFT JOIN assessment_events e ON e.device = c.device\n"
     "WHERE c.date = {{ d }} AND e.date = {{ d }}", 2, "reads assessment_events without a filter"),
    ("SELECT unique_users FROM daily_active_users WHERE date >= {{ a }} OR unique_users > 5", 1,
     "reads daily_active_users without a filter"),
], ids=["no-filter", "filter-on-a-column-only", "select-star-raw", "outer-join-null-side", "or-defeats-pruning"])
def test_each_costly_pattern_is_caught_with_its_line(sql, line, words):
    findings = costguard.check_sql(sql, "include/sql/queries/x.sql")
    assert any(f.line == line and words in f.problem for f in findings), [str(f) for f in findings]
    assert str(findings[0]).startswith(f"include/sql/queries/x.sql:{findings[0].line}: ")


def test_a_filtered_read_of_named_columns_passes():
    assert costguard.check_sql("SELECT openness FROM ocean_scores WHERE year = {{ y }} AND month = {{ m }} "
                               "AND industry = {{ i }}", "x.sql") == []


def test_the_command_passes_on_the_project(tmp_path):
    from tests.unit.test_cli import run_ioc

    out = run_ioc("costguard", lake=tmp_path, state=tmp_path)
    assert out.returncode == 0 and out.stdout == "" and "no cost problems found" in out.stderr
