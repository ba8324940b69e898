"""Independent readers of the lake for tests: pandas straight from the Parquet files."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

#: The tests' fixed clock: the sample lake's recent days end here, whatever day the tests run, so
#: that no test meets a month's or a day's edge by chance. What the engines stamp with the wall
#: clock (the query log) is read back with the wall clock.
TODAY = dt.date(2024, 3, 20)
RECENT_DAYS = 35
EVENTS_PER_DAY = 1500
#: The day of the ``one_day_lake`` fixture, inside the sample lake's January 2024.
ONE_DAY = dt.date(2024, 1, 10)


def fault_messages(day: dt.date) -> dict[str, tuple[str, list[str]]]:
    """Each fault of the bad-input corpus (``devtools.faults.FAULTS``) injected on ``day``: the table it
    damages, and the words the on-call message must contain."""
    return {
        "null-id": ("assessment_events", ["anonymous_user_id: null", "1 row,"]),
        "negative-completion-time": ("assessment_events", ["completion_time: out of range", "-5"]),
        "absurd-completion-time": ("assessment_events", ["completion_time: out of range", "999999"]),
        "duplicate-events": ("assessment_events", ["assessment_id: duplicate key", "2 keys", "(2 rows)"]),
        "outside-partition": ("assessment_events", ["timestamp: out of range", "1 row,",
                                                    f"{day + dt.timedelta(days=1)}"]),
        "unknown-device": ("assessment_events", ["device: unknown label", "smart_fridge"]),
        "column-missing": ("assessment_events", ["region: missing column"]),
        "column-added": ("assessment_events", ["tracking_pixel: unexpected column"]),
        "column-retyped": ("assessment_events", ["completion_time: type", "string, the contract says int"]),
        "not-parquet": ("assessment_events", ["not Parquet", "part-99999.parquet"]),
        "empty-partition": ("assessment_events", ["no rows", f"no rows of {day}"]),
        "formula-label": ("assessment_events", ["role: unsafe text", "=HYPERLINK("]),
        "out-of-range-trait": ("ocean_scores", ["openness: out of range", "130.0"]),
        "nan-trait": ("ocean_scores", ["openness: NaN", "1 row,"]),
        "missing-facet": ("ocean_scores", ["facets: missing map key", "1 row,", "openness.fantasy"]),
    }


def read_events(lake: Path) -> pd.DataFrame:
    """All assessment events with their partition values, read straight from the files.

    Independent of the engine: the partition values come from the folder names here.
    """
    import pandas as pd
    import pyarrow.parquet as pq

    frames = []
    for path in sorted((lake / "assessments").glob("*/*/*/*/*.parquet")):
        year, month, day, assessment_type = path.parts[-5:-1]
        frame = pq.read_table(path).to_pandas()
        frame["date"] = f"{year}/{month}/{day}"
        frame["assessment_type"] = assessment_type
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def read_scores(lake: Path) -> pd.DataFrame:
    import pandas as pd
    import pyarrow.parquet as pq

    frames = []
    for path in sorted((lake / "ocean_scores").glob("*/*/*.parquet")):
        frame = pq.read_table(path).to_pandas()
        frame["year"], frame["month"] = path.parts[-3], path.parts[-2]
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


# -- the aggregates, computed independently with pandas from the Parquet files -----------------

TRAITS = ("openness", "conscientiousness", "extraversion", "agreeableness", "neuroticism")


def expected_aggregates(events: pd.DataFrame, scores: pd.DataFrame, day: dt.date) -> dict[str, pd.DataFrame]:
    """Every aggregate of the daily DAG for ``day``, the plain pandas way, keyed by table.

    Percentiles are nearest-rank (numpy's ``inverted_cdf``: the smallest score that at least that
    share of the scores are at or below) over the scores rounded to a tenth of a point, as the
    engines compute them from the day's histograms (``score_digest``).
    """
    import numpy as np
    import pandas as pd

    lake_date = day.strftime("%Y/%m/%d")
    today = events[events["date"] == lake_date].assign(completed=lambda f: f["completion_time"].fillna(0) > 0)
    window = events[(events["date"] >= (day - dt.timedelta(days=30)).strftime("%Y/%m/%d"))
                    & (events["date"] < lake_date)]
    start = pd.Timestamp(day)
    month = scores[(scores["year"] == f"{day:%Y}") & (scores["month"] == f"{day:%m}")]
    to_date = month[month["timestamp"] < start + pd.Timedelta(days=1)]
    of_day = month[(month["timestamp"] >= start) & (month["timestamp"] < start + pd.Timedelta(days=1))]

    out = {"daily_active_users": pd.DataFrame([{
        "unique_users": today["anonymous_user_id"].nunique(),
        "total_sessions": len(today),
        "completed_sessions": int(today["completed"].sum()),
        "returning_users": len(set(today["anonymous_user_id"]) & set(window["anonymous_user_id"])),
    }])}

    rates = today.groupby(["device", "assessment_type"]).agg(
        users=("anonymous_user_id", "nunique"), total_sessions=("completed", "size"),
        completed_sessions=("completed", "sum"))
    rates["completion_rate"] = rates["completed_sessions"] / rates["total_sessions"]
    rates["avg_completion_time_s"] = today[today["completed"]].groupby(
        ["device", "assessment_type"])["completion_time"].mean().astype(float)
    out["completion_rates"] = rates.reset_index()

    frames = []
    for dimension in ("region", "role", "experience"):
        grouped = today.assign(value=today[dimension]).groupby("value", dropna=False).agg(
            users=("anonymous_user_id", "nunique"), sessions=("completed", "size"),
            completed_sessions=("completed", "sum"))
        frames.append(grouped.reset_index().assign(dimension=dimension))
    breakdowns = pd.concat(frames, ignore_index=True)
    breakdowns["completion_rate"] = breakdowns["completed_sessions"] / breakdowns["sessions"]
    out["user_breakdowns"] = breakdowns

    scored = today.merge(scores[["assessment_id", "consistency", "completeness"]], on="assessment_id", how="left")
    scored["scored"] = scored["consistency"].notna()
    scored["reliable"] = (scored["consistency"] >= 0.7) & (scored["completeness"] >= 0.9)
    out["assessment_funnel"] = scored.groupby("assessment_type").agg(
        users=("anonymous_user_id", "nunique"), started=("scored", "size"), completed=("completed", "sum"),
        scored=("scored", "sum"), reliable=("reliable", "sum")).reset_index()

    percentiles = to_date.groupby("industry").agg(assessments=("openness", "size"),
                                                  users=("anonymous_user_id", "nunique"))
    for trait in TRAITS:
        for p in (25, 50, 75):
            percentiles[f"{trait}_p{p}"] = to_date.groupby("industry")[trait].apply(
                lambda column, q=p / 100: np.quantile(column.dropna().round(1), q, method="inverted_cdf"))
    out["ocean_trait_percentiles"] = percentiles.reset_index().assign(month=f"{day:%Y/%m}")

    facets = pd.DataFrame([(k, v["score"], v["responses"]) for pairs in of_day["facets"] for k, v in pairs],
                          columns=["facet", "score", "responses"])
    summary = facets.groupby("facet").agg(assessments=("score", "size"), avg_score=("score", "mean"),
                                          stddev_score=("score", "std"), avg_responses=("responses", "mean"))
    out["facet_summary"] = summary.reset_index().assign(trait=lambda f: f["facet"].str.split(".").str[0])

    dark = pd.DataFrame([kv for pairs in of_day["dark_side_indicators"] for kv in pairs], columns=["indicator", "risk"])
    dark["high"] = dark["risk"] >= 70
    dark_summary = dark.groupby("indicator").agg(assessments=("risk", "size"), avg_risk=("risk", "mean"),
                                                 high_risk_assessments=("high", "sum"))
    dark_summary["high_risk_share"] = dark_summary["high_risk_assessments"] / dark_summary["assessments"]
    out["dark_side_summary"] = dark_summary.reset_index()
    return out


def read_aggregate(state_dir: Path, table: str, day: dt.date) -> pd.DataFrame:
    """A registered aggregate partition, found through the local registry's SQLite file directly,
    with its partition value as the ``date`` column."""
    import json
    import sqlite3

    import pyarrow.parquet as pq

    with sqlite3.connect(state_dir / "catalog.sqlite") as con:
        rows = con.execute("SELECT location FROM partitions WHERE table_name = ? AND key = ?",
                           (table, json.dumps([day.strftime("%Y/%m/%d")]))).fetchall()
    assert len(rows) == 1, f"{table} {day} is not registered"
    return pq.read_table(rows[0][0]).to_pandas().assign(date=day.strftime("%Y/%m/%d"))


def sorted_aggregate(frame: pd.DataFrame, name: str) -> pd.DataFrame:
    """An aggregate's rows in the order of its key (the contract's unique key)."""
    from ioc_analytics.lake.contract import contract

    keys = list(contract(name).unique[0]) if contract(name).unique else []
    return frame.sort_values(keys).reset_index(drop=True) if keys else frame


def assert_matches_pandas(got: pd.DataFrame, want: pd.DataFrame, name: str) -> None:
    """A built aggregate (its ``date`` column aside) against the pandas answer: counts exactly,
    floats to 1e-9 (not the approximate percentiles: see test_aggregates)."""
    import numpy as np
    import pandas as pd

    got, want = sorted_aggregate(got.drop(columns="date", errors="ignore"), name), sorted_aggregate(want, name)
    assert len(got) == len(want) > 0, name
    for column in got.columns:
        if pd.api.types.is_float_dtype(got[column]):
            np.testing.assert_allclose(got[column].to_numpy(), want[column].to_numpy(dtype=float), rtol=1e-9,
                                       err_msg=f"{name}.{column}")
        else:
            assert got[column].tolist() == want[column].tolist(), f"{name}.{column}"


def assert_same_aggregate(left: pd.DataFrame, right: pd.DataFrame, name: str) -> None:
    """Equal, to the last digit (the percentiles too: nearest rank over the days' histograms)."""
    import pandas as pd

    pd.testing.assert_frame_equal(left, right, obj=name)


def export_file(exports_root: Path, name: str, day: dt.date, fmt: str = "csv") -> Path | None:
    """The current export of an aggregate for a day, found through its manifest (None if none)."""
    import json

    manifest = exports_root / name / day.isoformat() / "manifest.json"
    if not manifest.is_file():
        return None
    [entry] = [f for f in json.loads(manifest.read_text())["files"] if f["format"] == fmt]
    return Path(entry["path"])


def suppressed(frame: pd.DataFrame, name: str, min_users: int = 10) -> pd.DataFrame:
    """An aggregate as its exports show it: breakdown rows with fewer than ``min_users`` users blanked."""
    from ioc_analytics.lake.tables import BREAKDOWN_USERS

    users = BREAKDOWN_USERS.get(name)
    if users is None:
        return frame
    out = frame.copy()
    numeric = [c for c in out.columns if out[c].dtype.kind in "iuf"]
    out[numeric] = out[numeric].astype(float)
    out.loc[out[users] < min_users, numeric] = float("nan")
    return out


# -- partition repair: one scenario, run on each backend --------------------------------------

V_OLD, V_NEW = "v20240101T000000000000-aaaaaa", "v20240102T000000000000-bbbbbb"


def repair_scenario(table, put, registry) -> dict[str, str]:
    """Lay out versions and registrations of ``table`` (partitioned by date) for five days, one
    case each; ``put(location, name)`` writes an object. Returns each day's registered location
    as repair should leave it."""
    base = table.location.rstrip("/")
    days = ("10", "11", "12", "13", "14", "20")
    loc = {day: {v: f"{base}/2024/01/{day}/{v}/" for v in (V_OLD, V_NEW)} for day in days}
    for day, version, committed in [("10", V_OLD, True), ("11", V_OLD, True), ("12", V_OLD, True),
                                    ("12", V_NEW, True), ("14", V_NEW, False), ("20", V_NEW, True)]:
        put(loc[day][version], "part-00000.parquet")
        if committed:
            put(loc[day][version], "_ioc_committed")
    registry.register(table, {"date": "2024/01/10"}, loc["10"][V_OLD])  # in order
    registry.register(table, {"date": "2024/01/12"}, loc["12"][V_OLD])  # behind a newer committed version
    registry.register(table, {"date": "2024/01/13"}, loc["13"][V_OLD])  # points at nothing
    return {
        "2024/01/10": loc["10"][V_OLD], "2024/01/11": loc["11"][V_OLD],
        "2024/01/12": loc["12"][V_NEW], "2024/01/13": loc["13"][V_OLD],
    }


def check_repair(report, registry, table, expected: dict[str, str]) -> None:
    assert report.added == [{"date": "2024/01/11"}]
    assert report.repointed == [{"date": "2024/01/12"}]
    assert report.stale == [{"date": "2024/01/13"}]
    assert len(report.incomplete) == 1 and "/2024/01/14/" in report.incomplete[0]
    assert {k[0]: v for k, v in registry.partitions(table).items()} == expected, "01/14 and 01/20 unregistered"


REPAIR_WINDOW = [{"date": f"2024/01/{d}"} for d in range(10, 15)]
