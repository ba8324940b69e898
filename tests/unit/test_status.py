"""``ioc status``: each day's state, and stale aggregates found from what each build reads.

Four generated days, the last three run through the pipeline's steps (validated, built, checked,
exported); then the middle day delivered again. What is stale follows what each aggregate's SQL
reads: the day's own partition, the 30-day look-back of returning users, the month to date of
the percentiles, the first hours of the next day's scores that the funnel joins."""

from __future__ import annotations

import datetime as dt
import time

import pytest

from ioc_analytics.analytics import pipeline
from ioc_analytics.devtools.generate import generate_lake
from ioc_analytics.lake.tables import AGGREGATES, RAW_TABLES
from ioc_analytics.operations import status
from ioc_analytics.publishing import exports
from ioc_analytics.settings import get_settings
from tests.helpers import EVENTS_PER_DAY
from tests.unit.test_cli import run_ioc

DAYS = [dt.date(2024, 2, 10) + dt.timedelta(days=n) for n in range(4)]
EVENTS_AGGREGATES = {n for n, sources in AGGREGATES.items() if "assessment_events" in sources}


def _run_day(settings, day):
    for table in RAW_TABLES:
        pipeline.validate_source(settings, day, table)
    for name in AGGREGATES:
        pipeline.build_aggregate(settings, day, name, {})
        pipeline.quality_gate(settings, day, name, {})
        exports.export_aggregate(settings, day, name, {})


@pytest.fixture(scope="module")
def lake(tmp_path_factory):
    root = tmp_path_factory.mktemp("status")
    generate_lake(root / "lake", DAYS[0], len(DAYS), EVENTS_PER_DAY, seed=3)
    settings = get_settings(backend="local", lake_root=str(root / "lake"), state_dir=str(root / "state"),
                            exports_root=str(root / "exports"))
    for day in DAYS[1:]:
        _run_day(settings, day)
    return settings, root


def _states(settings, day):
    return {table: cell.state for table, cell in status.day_status(settings, day).items()}


def test_each_day_says_how_far_it_got_and_a_day_delivered_again_makes_what_reads_it_stale(lake):
    settings, root = lake
    assert _states(settings, DAYS[0]) == {**dict.fromkeys(RAW_TABLES, "landed"), **dict.fromkeys(AGGREGATES, "missing")}
    for day in DAYS[1:]:
        assert _states(settings, day) == {**dict.fromkeys(RAW_TABLES, "validated"),
                                          **dict.fromkeys(AGGREGATES, "exported")}, day
    assert status.stale(settings, DAYS) == {}

    time.sleep(1.1)  # the validation's time is kept to the second
    generate_lake(root / "lake", DAYS[2], 1, EVENTS_PER_DAY, seed=4)  # upstream delivers the day again
    middle, after, before = (_states(settings, d) for d in (DAYS[2], DAYS[3], DAYS[1]))
    assert middle == {**dict.fromkeys(RAW_TABLES, "changed"), **dict.fromkeys(AGGREGATES, "stale")}
    # The day after: what reads the look-back or the month to date, not what reads its own day.
    assert {t for t, s in after.items() if s == "stale"} == {"daily_active_users", "ocean_trait_percentiles"}, after
    assert after["completion_rates"] == after["facet_summary"] == "exported"
    # The day before reads nothing of it but the score sets of its last sessions, which the funnel
    # joins (written up to 4 hours after the day).
    assert {t for t, s in before.items() if s == "stale"} == {"assessment_funnel"}, before
    assert before["assessment_events"] == before["ocean_scores"] == "validated"

    found = status.stale(settings, DAYS)
    assert set(found) == {DAYS[1], DAYS[2], DAYS[3]}
    assert all(f.startswith(f"assessments/{DAYS[2]:%Y/%m/%d}/") for f in found[DAYS[3]]["daily_active_users"])
    assert found[DAYS[3]]["ocean_trait_percentiles"] == [f"ocean_scores/{DAYS[2]:%Y/%m}/part-{DAYS[2]:%Y%m%d}.parquet"]

    # The daily DAG's repair step says so, in its log and its summary.
    repaired = pipeline.repair_partitions(settings, DAYS[3] + dt.timedelta(days=1))
    assert set(repaired["stale_aggregates"]) == {d.isoformat() for d in DAYS[1:]}
    assert set(repaired["stale_aggregates"][DAYS[2].isoformat()]) == set(AGGREGATES)

    screen = run_ioc("status", str(DAYS[0]), str(DAYS[3]), lake=root / "lake", state=root / "state")
    assert screen.returncode == 1, screen.stderr
    lines = screen.stdout.splitlines()
    assert lines[0].split() == ["day", "events", "scores", "dau", "completion", "breakdowns", "funnel",
                                "percentiles", "facets", "dark_side"]
    assert lines[3].split() == [str(DAYS[2]), "changed", "changed", *["stale"] * 7]
    assert f"{DAYS[3]}: daily_active_users, ocean_trait_percentiles read files written after " \
           f"the build: assessments/{DAYS[2]:%Y/%m/%d}/" in screen.stdout
    assert screen.stdout.rstrip().endswith("--reprocess-behavior completed`)")

    for day in DAYS[2:]:  # re-running the day and the one after it clears them
        _run_day(settings, day)
    assert status.stale(settings, DAYS[2:]) == {}
    assert _states(settings, DAYS[2]) == {**dict.fromkeys(RAW_TABLES, "validated"),
                                          **dict.fromkeys(AGGREGATES, "exported")}


def test_the_command_checks_its_days(lake):
    settings, root = lake
    backwards = run_ioc("status", str(DAYS[3]), str(DAYS[0]), lake=root / "lake", state=root / "state")
    assert backwards.returncode == 2 and "is before the first" in backwards.stderr
    missing = run_ioc("status", lake=root / "nowhere", state=root / "state")
    assert missing.returncode == 2 and "ioc generate" in missing.stderr, missing.stderr
    one = run_ioc("status", DAYS[1].strftime("%Y/%m/%d"), lake=root / "lake", state=root / "state")
    assert [line.split()[0] for line in one.stdout.splitlines()[1:2]] == [str(DAYS[1])]
