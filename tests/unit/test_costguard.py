"""The static cost guard: every SQL file passes, and each mistake it exists for is caught with
its line."""

from __future__ import annotations

import pytest

from ioc_analytics.cost import guard
from ioc_analytics.devtools import costguard

SQL = "include/ioc_analytics/sql"


def test_every_sql_file_of_the_project_passes():
    assert [str(f) for f in guard.check_files()] == []


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
    ("SELECT device\nFROM assessment_events WHERE assessment_type = 'career'", 2,
     "reads assessment_events with a filter on assessment_type but not on date: Athena would scan every date"),
    ("SELECT e.*, c.device FROM completion_rates c\nJOIN assessment_events e ON e.device = c.device\n"
     "WHERE c.date = {{ d }} AND e.date = {{ d }}", 2, "SELECT * on the raw table assessment_events"),
], ids=["no-filter", "filter-on-a-column-only", "select-star-raw", "outer-join-null-side", "or-defeats-pruning",
        "no-time-key", "qualified-star"])
def test_each_costly_pattern_is_caught_with_its_line(sql, line, words):
    findings = guard.check_sql(sql, "include/ioc_analytics/sql/queries/x.sql")
    assert any(f.line == line and words in f.problem for f in findings), [str(f) for f in findings]
    assert str(findings[0]).startswith(f"include/ioc_analytics/sql/queries/x.sql:{findings[0].line}: ")


def test_a_file_that_does_not_parse_is_named_with_its_line(tmp_path):
    (tmp_path / "broken.sql").write_text("SELECT device FROM\nassessment_events WHERE date = (1 + ")
    (finding,) = guard.check_files(tmp_path)
    assert str(finding).startswith(f"{tmp_path}/broken.sql:2: does not parse as Athena SQL")


def test_a_filtered_read_of_named_columns_passes():
    assert guard.check_sql("SELECT openness FROM ocean_scores WHERE year = {{ y }} AND month = {{ m }} "
                               "AND industry = {{ i }}", "x.sql") == []


def test_the_command_passes_on_the_project_at_ten_million_events_a_day_and_prints_each_estimate(tmp_path):
    from tests.unit.test_cli import run_ioc

    # Ten times the planned volume: every query stays under the cutoff (the builds read one day of
    # raw data and the state of the day before, not their look-back).
    out = run_ioc("costguard", "--events-per-day", "10000000", lake=tmp_path, state=tmp_path)
    assert out.returncode == 0 and out.stdout == "" and "no cost problems found" in out.stderr, out.stderr
    assert "estimated scans on a 90-day lake of 10,000,000 events a day (cutoff 1,024 MiB)" in out.stderr
    rows = {line.split()[-1]: line.split() for line in out.stderr.splitlines() if line.strip().endswith(".sql")}
    assert {f"{SQL}/daily_active_users.sql", f"{SQL}/state/user_activity.sql", f"{SQL}/hourly/user_growth_hourly.sql"
            } <= set(rows)
    per_query = {path: float(row[0].replace(",", "")) for path, row in rows.items()}
    per_day = {path: float(row[2].replace(",", "")) for path, row in rows.items()}
    assert max(per_query.values()) < 1024
    # an hourly file runs 24 times a day, a daily one once, the API's never on a schedule
    assert per_day[f"{SQL}/hourly/user_growth_hourly.sql"] > 20 * per_query[f"{SQL}/hourly/platform_performance.sql"]
    assert per_day[f"{SQL}/completion_rates.sql"] == per_query[f"{SQL}/completion_rates.sql"] > 0
    assert per_day[f"{SQL}/queries/ocean_scores_by_industry.sql"] == 0
    assert "a day's scheduled scans (the daily SQL once, the hourly SQL 24 times" in out.stderr
    # Far past it, the heaviest query passes the cutoff, named with its file.
    out = run_ioc("costguard", "--events-per-day", "40000000", lake=tmp_path, state=tmp_path)
    assert out.returncode == 1
    assert "would scan about" in out.stdout and "past the per-query cutoff of 1.00 GiB" in out.stdout


def test_the_estimate_follows_partitions_columns_and_row_group_statistics(tmp_path):
    root = tmp_path
    queries = {
        "day_facets": "SELECT facets FROM ocean_scores WHERE year = {{ year }} AND month = {{ month }}\n"
                      "  AND \"timestamp\" >= {{ day_start }} AND \"timestamp\" < {{ next_day_start }}",
        "month_facets": "SELECT facets FROM ocean_scores WHERE year = {{ year }} AND month = {{ month }}",
        "month_traits": "SELECT openness FROM ocean_scores WHERE year = {{ year }} AND month = {{ month }}",
        "year_facets": "SELECT count(*) AS n, max(cardinality(facets)) AS f\nFROM ocean_scores WHERE year = {{ year }}",
    }
    for name, text in queries.items():
        (root / f"{name}.sql").write_text(text)
    estimates = {e.path.removeprefix(f"{root}/").removesuffix(".sql"): e
                 for e in costguard.estimate_files(root, events_per_day=1_000_000)}
    size = {name: e.bytes for name, e in estimates.items()}
    # The statistics of the day's row groups leave out the rest of the month: 31 days of March.
    assert 25 < size["month_facets"] / size["day_facets"] < 37
    assert size["month_facets"] > 20 * size["month_traits"], "facets are the wide column"
    assert 2.5 < size["year_facets"] / size["month_facets"] < 3.5  # the 90 days span three months
    findings = costguard.check_estimates(list(estimates.values()), 2**30, 1_000_000)
    # A month of facets at a million events a day is already past a gigabyte; a day is not.
    assert [f.path for f in findings] == [f"{root}/month_facets.sql", f"{root}/year_facets.sql"]
    assert "would scan about" in findings[0].problem and "past the per-query cutoff of 1.00 GiB" in findings[0].problem
