"""The local dashboard in a real browser: Debian's Chromium, headless (installed by the test when
the machine lacks it), driven through the DevTools protocol. The page draws its charts with the
vendored Chart.js; the test reads what the library drew (each chart's labels, values, legend and
axes, from ``Chart.getChart``), checks it against the aggregates, moves the mouse onto a point
and reads the tooltip that appears, and opens a day with nothing built to read why each chart
is empty. The network is off: the page needs none.

Set ``IOC_SAVE_SCREENSHOTS=<folder>`` to keep the screenshot.
"""

from __future__ import annotations

import base64
import datetime as dt
import itertools
import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from ioc_analytics import quality
from ioc_analytics.analytics import pipeline
from ioc_analytics.publishing import dashboard
from ioc_analytics.settings import get_settings
from tests.helpers import TODAY, read_aggregate
from tests.system.conftest import FLAGS

pytestmark = pytest.mark.integration

DAY = TODAY - dt.timedelta(days=3)
BUILT = [DAY - dt.timedelta(days=n) for n in (0, 1, 2, 5, 9)]  # 5 of the 30 days: the others are gaps
MIN_USERS = 40


def _start_chromium(chromium: str, profile: Path) -> tuple[subprocess.Popen, str]:
    """Headless Chromium with its DevTools port open; the process and the browser's WebSocket."""
    process = subprocess.Popen([chromium, *FLAGS, f"--user-data-dir={profile}", "--remote-debugging-port=0",
                                "--remote-allow-origins=*", "about:blank"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    for line in process.stderr:
        if found := re.search(r"DevTools listening on (ws://\S+)", line):
            return process, found[1]
    raise AssertionError(f"Chromium exited before opening its DevTools port: {process.wait()}")


class Browser:
    """One tab of a headless Chromium, through the DevTools protocol's WebSocket."""

    def __init__(self, ws) -> None:
        self.ws = ws
        self.ids = itertools.count(1)
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        self.send("Emulation.setDeviceMetricsOverride", {"width": 1400, "height": 1500, "deviceScaleFactor": 1,
                                                         "mobile": False}, session=True)

    def send(self, method: str, params: dict | None = None, session: bool = False) -> dict:
        message = {"id": next(self.ids), "method": method, "params": params or {}}
        if session:
            message["sessionId"] = self.session
        self.ws.send(json.dumps(message))
        while True:
            answer = json.loads(self.ws.recv(timeout=60))
            if answer.get("id") == message["id"]:
                assert "error" not in answer, answer
                return answer["result"]

    def js(self, expression: str):
        result = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                                "awaitPromise": True}, session=True)
        assert "exceptionDetails" not in result, result
        return result["result"].get("value")

    def open(self, path: str) -> int:
        self.send("Page.navigate", {"url": f"file://{path}"}, session=True)
        deadline = time.monotonic() + 30
        while (drawn := self.js("document.body && document.body.dataset.chartsDrawn")) is None:
            assert time.monotonic() < deadline, "the page's script never finished"
            time.sleep(0.1)
        return int(drawn)


@pytest.fixture()
def browser(chromium, tmp_path):
    from websockets.sync.client import connect

    process, url = _start_chromium(chromium, tmp_path / "profile")
    try:
        with connect(url, max_size=2**26) as ws:
            yield Browser(ws)
    finally:
        process.terminate()
        process.wait(timeout=30)


CHARTS = """JSON.stringify(Object.fromEntries(["dau", "completion", "percentiles", "cost"].map(id => {
  const c = Chart.getChart(`${id}-chart`);
  return [id, c && {labels: c.data.labels, datasets: c.data.datasets.map(d => ({label: d.label, data: d.data})),
    legend: c.legend.options.display ? c.legend.legendItems.map(i => i.text) : [],
    x: {min: c.scales.x.min, max: c.scales.x.max, title: c.options.scales.x.title.text},
    y: {min: c.scales.y.min, max: c.scales.y.max, title: c.options.scales.y.title.text}}];
})))"""


def _hover(browser: Browser, chart: str, dataset: int, index: int) -> dict:
    """Move the mouse onto one drawn element of a chart; the tooltip Chart.js then shows."""
    x, y = browser.js(f"""(() => {{ const c = Chart.getChart("{chart}-chart"), box = c.canvas.getBoundingClientRect();
        const at = c.getDatasetMeta({dataset}).data[{index}].getCenterPoint();
        return [box.left + at.x, box.top + at.y]; }})()""")
    browser.send("Input.dispatchMouseEvent", {"type": "mouseMoved", "x": x, "y": y}, session=True)
    deadline = time.monotonic() + 10
    while True:
        tip = browser.js(f"""(() => {{ const t = Chart.getChart("{chart}-chart").tooltip;
            return t.getActiveElements().length ? {{title: t.title, body: t.body.map(b => b.lines).flat(),
                                                   footer: t.footer}} : null; }})()""")
        if tip:
            return tip
        assert time.monotonic() < deadline, f"no tooltip on {chart} at {x}, {y}"
        time.sleep(0.1)


def test_the_dashboard_draws_every_chart_from_the_days_data_with_axes_legends_and_tooltips(
        browser, sample_lake, tmp_path):
    lake, state = tmp_path / "lake", tmp_path / "state"
    shutil.copytree(sample_lake, lake, ignore=shutil.ignore_patterns("aggregates", "quality"))
    settings = get_settings(backend="local", lake_root=str(lake), state_dir=str(state),
                            exports_root=str(tmp_path / "exports"), min_group_users=MIN_USERS)
    tags = {"dag_id": "ioc_daily_analytics", "run_id": "scheduled__test", "ds": DAY.isoformat()}
    for day in BUILT:
        pipeline.build_aggregate(settings, day, "daily_active_users", {**tags, "task_id": "daily_active_users.build"})
    for name in ("completion_rates", "ocean_trait_percentiles"):
        pipeline.build_aggregate(settings, DAY, name, {**tags, "task_id": f"{name}.build"})
        pipeline.quality_gate(settings, DAY, name, {**tags, "task_id": f"{name}.check"})
    quality.validate_source(settings, DAY, "assessment_events")

    page = dashboard.render(settings, DAY, tags)
    assert page == f"{tmp_path}/exports/dashboard/{DAY}.html"
    assert (tmp_path / "exports" / "dashboard" / "index.html").read_bytes() == Path(page).read_bytes()
    assert "cdn" not in Path(page).read_text().lower() and "<script src" not in Path(page).read_text()
    assert browser.open(page) == 5
    charts = json.loads(browser.js(CHARTS))

    # Daily active users: every one of the 30 days on the axis, a gap where a day is not built.
    dau = charts["dau"]
    days = [(DAY - dt.timedelta(days=n)).isoformat() for n in range(29, -1, -1)]
    assert dau["labels"] == days and dau["legend"] == ["daily active users", "returning users"]
    expected = {d.isoformat(): int(read_aggregate(state, "daily_active_users", d)["unique_users"].iloc[0])
                for d in BUILT}
    assert dau["datasets"][0]["data"] == [expected.get(d) for d in days]
    assert dau["y"]["min"] == 0 and dau["y"]["max"] >= max(expected.values()) and dau["y"]["title"] == "users"
    tip = _hover(browser, "dau", 0, days.index(DAY.isoformat()))
    assert tip["title"] == [DAY.isoformat()] and f"daily active users: {expected[DAY.isoformat()]:,}" in tip["body"]

    # Completion: a bar per assessment type and device, on a 0-100 axis; small groups left out, and said.
    rates = read_aggregate(state, "completion_rates", DAY)
    small = rates[rates["users"] < MIN_USERS]
    assert 0 < len(small) < len(rates), "the threshold should suppress some groups and not others"
    completion = charts["completion"]
    assert (completion["y"]["min"], completion["y"]["max"]) == (0, 100)
    assert completion["labels"] == sorted(rates["assessment_type"].unique())
    assert completion["legend"] == sorted(rates["device"].unique())
    for dataset in completion["datasets"]:
        for kind, value in zip(completion["labels"], dataset["data"], strict=True):
            row = rates[(rates["device"] == dataset["label"]) & (rates["assessment_type"] == kind)].iloc[0]
            assert value == (None if row["users"] < MIN_USERS else pytest.approx(row["completion_rate"] * 100))
    note = browser.js("document.querySelector('#completion .note').textContent")
    assert note.startswith(f"Not shown: {len(small)} group(s) of fewer than {MIN_USERS} users")

    # Percentiles: p25 to p75 of each trait, by industry, on a 0-100 axis.
    traits = read_aggregate(state, "ocean_trait_percentiles", DAY).sort_values("industry")
    shown = traits[traits["users"] >= MIN_USERS]
    percentiles = charts["percentiles"]
    assert (percentiles["x"]["min"], percentiles["x"]["max"]) == (0, 100) and len(shown) > 0
    assert percentiles["labels"] == shown["industry"].tolist()
    assert percentiles["legend"] == ["openness", "conscientiousness", "extraversion", "agreeableness", "neuroticism"]
    openness = percentiles["datasets"][0]["data"]
    ranges = zip(shown["openness_p25"], shown["openness_p75"], strict=True)
    assert openness == [[pytest.approx(low), pytest.approx(high)] for low, high in ranges]
    tip = _hover(browser, "percentiles", 0, 0)
    assert tip["body"] == [f"openness: p25 {shown['openness_p25'].iloc[0]:.1f}, median "
                           f"{shown['openness_p50'].iloc[0]:.1f}, p75 {shown['openness_p75'].iloc[0]:.1f}"]

    # Quality: the day's reports.
    assert browser.js("document.getElementById('quality-status').textContent") == "All 3 passed"
    cells = browser.js("[...document.querySelectorAll('#quality-table tr')].slice(1).map(r => [r.cells[0].textContent,"
                       " r.cells[1].textContent])")
    assert cells == [["assessment_events", "PASSED"], ["completion_rates", "PASSED"],
                     ["ocean_trait_percentiles", "PASSED"]]

    # Cost: this run's queries by task, from the query log.
    logged = [json.loads(line) for line in (state / "query_log.jsonl").read_text().splitlines()]
    mine = {}
    for record in logged:
        if record["tags"].get("run_id") == tags["run_id"] and "task_id" in record["tags"]:
            mine[record["tags"]["task_id"]] = mine.get(record["tags"]["task_id"], 0) + record["cost_usd"]
    cost = charts["cost"]
    assert sorted(cost["labels"]) == sorted(mine) and len(mine) == 5
    assert dict(zip(cost["labels"], cost["datasets"][0]["data"], strict=True)) == pytest.approx(mine)
    assert browser.js("document.getElementById('cost-total').textContent").startswith(
        f"In all: ${sum(mine.values()):.6f} for ")

    shot = base64.b64decode(browser.send("Page.captureScreenshot", {"format": "png"}, session=True)["data"])
    assert shot.startswith(b"\x89PNG") and len(shot) > 50_000
    if folder := os.environ.get("IOC_SAVE_SCREENSHOTS"):
        Path(folder).mkdir(parents=True, exist_ok=True)
        (Path(folder) / "dashboard-test.png").write_bytes(shot)

    # A day with nothing built: each chart says why instead of drawing nothing.
    nothing = DAY - dt.timedelta(days=20)
    assert browser.open(dashboard.render(settings, nothing, {})) == 0
    why = browser.js("Object.fromEntries([...document.querySelectorAll('[data-empty]')].map(e => "
                     "[e.id, e.querySelector('.empty').textContent]))")
    assert set(why) == {"dau", "completion", "percentiles", "quality", "cost"}
    assert why["completion"] == f"The completion rates of {nothing} are not built yet: run the daily DAG for it (or " \
                                "backfill it) to build it."
    assert why["quality"] == "No data-quality report for this day yet: the day has not been validated."
    assert (tmp_path / "exports" / "dashboard" / "index.html").read_bytes() == Path(page).read_bytes(), \
        "an older day's page leaves the latest as the index"
