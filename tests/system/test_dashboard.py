"""The local dashboard rendered by a real browser: Debian's Chromium, headless, installed by the
test when the machine lacks it. The page draws its charts with its own script; the test reads
the DOM after the script ran and checks that every chart is drawn from the day's data."""

from __future__ import annotations

import datetime as dt
import re
import shutil
import subprocess

import pytest

from ioc_analytics import quality
from ioc_analytics.analytics import pipeline
from ioc_analytics.publishing import dashboard
from ioc_analytics.settings import get_settings
from tests.helpers import TODAY, read_aggregate
from tests.system.conftest import FLAGS

pytestmark = pytest.mark.integration

DAY = TODAY - dt.timedelta(days=3)
DAYS = [DAY - dt.timedelta(days=n) for n in range(4, -1, -1)]
def _dom(chromium: str, page: str, tmp_path) -> str:
    done = subprocess.run([chromium, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=5000",
                           "--dump-dom", f"file://{page}"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "<html" in done.stdout, done.stderr[-2000:]
    return done.stdout


def test_the_dashboard_draws_every_chart_from_the_days_data(chromium, sample_lake, tmp_path):
    lake, state = tmp_path / "lake", tmp_path / "state"
    shutil.copytree(sample_lake, lake, ignore=shutil.ignore_patterns("aggregates", "quality"))
    settings = get_settings(backend="local", lake_root=str(lake), state_dir=str(state),
                            exports_root=str(tmp_path / "exports"), min_group_users=40)
    tags = {"dag_id": "test"}
    for day in DAYS:
        pipeline.build_aggregate(settings, day, "daily_active_users", tags)
    for name in ("completion_rates", "ocean_trait_percentiles"):
        pipeline.build_aggregate(settings, DAY, name, tags)
        pipeline.quality_gate(settings, DAY, name, tags)
    quality.validate_source(settings, DAY, "assessment_events")

    page = dashboard.render(settings, DAY)
    assert page == f"{tmp_path}/exports/dashboard/{DAY}.html"
    assert (tmp_path / "exports" / "dashboard" / "index.html").read_bytes() == (
        tmp_path / "exports" / "dashboard" / f"{DAY}.html").read_bytes()
    dom = _dom(chromium, page, tmp_path)

    assert 'data-charts-drawn="4"' in dom, dom[-3000:]
    assert len(re.findall(r'<circle [^>]*class="point"', dom)) == len(DAYS)
    rates = read_aggregate(state, "completion_rates", DAY)
    small = int((rates["users"] < 40).sum())
    assert 0 < small < len(rates), "the threshold should suppress some groups and not others"
    assert len(re.findall(r'class="bar"', dom)) == len(rates) - small
    assert len(re.findall(r'class="bar suppressed"', dom)) == small
    assert dom.count("suppressed (fewer than 40 users)") == small
    industries = read_aggregate(state, "ocean_trait_percentiles", DAY)
    shown = int((industries["users"] >= 40).sum())
    assert len(re.findall(r'class="range"', dom)) == 5 * shown > 0
    table = re.search(r'<table id="quality-table">(.*?)</table>', dom, re.S).group(1)
    assert re.findall(r"<td>([a-z_]+)</td><td class=\"passed\">PASSED</td>", table) == [
        "assessment_events", "completion_rates", "ocean_trait_percentiles"]
