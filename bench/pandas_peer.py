"""The benchmark's peer: the daily DAG's seven aggregates computed the plain pandas way.

Read the Parquet files each aggregate needs (``pd.read_parquet`` on the day's, the look-back's or
the month's files, only the columns it uses, as anyone would), then group by. Maps are flattened
with pyarrow before they reach pandas: a month of facet maps as Python objects does not fit in
memory at a million events a day. The answers are those of ``include/ioc_analytics/sql/*.sql``, so the ratio
compares like with like (percentiles exact here, approximate in the engine; the columns carry
the aggregate tables' names: ``tests/unit/test_aggregates.py`` compares them with the engine's).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

TRAITS = ("openness", "conscientiousness", "extraversion", "agreeableness", "neuroticism")


def _events(lake: Path, day: dt.date, columns: list[str]) -> pd.DataFrame:
    frames = []
    for path in sorted((lake / "assessments" / day.strftime("%Y/%m/%d")).glob("*/*.parquet")):
        frame = pd.read_parquet(path, columns=columns)
        frame["assessment_type"] = path.parent.name
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def _month_scores(lake: Path, day: dt.date, columns: list[str], only_day: bool) -> pa.Table:
    """The month partition's score sets of the day (or of the month to date), filtered file by
    file as they are read (the row-group statistics skip the other days)."""
    start = dt.datetime.combine(day if only_day else day.replace(day=1), dt.time())
    end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time())
    files = sorted((lake / "ocean_scores" / day.strftime("%Y/%m")).glob("*.parquet"))
    return pa.concat_tables([pq.read_table(f, columns=[*columns, "timestamp"],
                                           filters=[("timestamp", ">=", start), ("timestamp", "<", end)])
                             for f in files])


def _entries(table: pa.Table, column: str) -> pd.DataFrame:
    """A map column's entries, one row each (key and value), flattened by pyarrow."""
    maps = table[column].combine_chunks()
    keys, items = maps.keys.to_numpy(zero_copy_only=False), maps.items
    if pa.types.is_struct(items.type):
        return pd.DataFrame({"key": keys, "score": items.field("score").to_numpy(zero_copy_only=False),
                             "responses": items.field("responses").to_numpy(zero_copy_only=False)})
    return pd.DataFrame({"key": keys, "value": items.to_numpy(zero_copy_only=False)})


def aggregates(lake: Path, day: dt.date) -> dict[str, pd.DataFrame]:
    events = _events(lake, day, ["anonymous_user_id", "assessment_id", "completion_time", "device", "region",
                                 "role", "experience"])
    events["done"] = events["completion_time"] > 0
    out: dict[str, pd.DataFrame] = {}

    earlier = set()
    for n in range(1, 31):
        folder = lake / "assessments" / (day - dt.timedelta(days=n)).strftime("%Y/%m/%d")
        for path in folder.glob("*/*.parquet"):
            earlier.update(pd.read_parquet(path, columns=["anonymous_user_id"])["anonymous_user_id"].unique())
    users = events["anonymous_user_id"].unique()
    out["daily_active_users"] = pd.DataFrame([{
        "unique_users": len(users), "total_sessions": len(events), "completed_sessions": int(events["done"].sum()),
        "returning_users": int(pd.Index(users).isin(list(earlier)).sum())}])

    grouped = events.groupby(["device", "assessment_type"])
    rates = grouped.agg(users=("anonymous_user_id", "nunique"), total_sessions=("done", "size"),
                        completed_sessions=("done", "sum"))
    rates["completion_rate"] = rates["completed_sessions"] / rates["total_sessions"]
    rates["avg_completion_time_s"] = events[events["done"]].groupby(["device", "assessment_type"])[
        "completion_time"].mean()
    out["completion_rates"] = rates.reset_index()

    parts = []
    for dimension in ("region", "role", "experience"):
        part = events.groupby(dimension).agg(users=("anonymous_user_id", "nunique"), sessions=("done", "size"),
                                             completed=("done", "sum")).reset_index()
        parts.append(part.rename(columns={dimension: "value"}).assign(dimension=dimension))
    out["user_breakdowns"] = pd.concat(parts, ignore_index=True).rename(columns={"completed": "completed_sessions"})

    day_scores = _month_scores(lake, day, ["assessment_id", "consistency", "completeness", "facets",
                                           "dark_side_indicators"], only_day=True)
    scored = day_scores.select(["assessment_id", "consistency", "completeness"]).to_pandas()
    funnel = events.merge(scored, on="assessment_id", how="left")
    funnel["scored"] = funnel["consistency"].notna()
    funnel["reliable"] = (funnel["consistency"] >= 0.7) & (funnel["completeness"] >= 0.9)
    out["assessment_funnel"] = funnel.groupby("assessment_type").agg(
        users=("anonymous_user_id", "nunique"), started=("done", "size"), completed=("done", "sum"),
        scored=("scored", "sum"), reliable=("reliable", "sum")).reset_index()

    month = _month_scores(lake, day, ["anonymous_user_id", "industry", *TRAITS], only_day=False).to_pandas()
    by_industry = month.groupby("industry")
    percentiles = by_industry[list(TRAITS)].quantile([0.25, 0.5, 0.75]).unstack()
    percentiles.columns = [f"{trait}_p{int(q * 100)}" for trait, q in percentiles.columns]
    percentiles["assessments"] = by_industry.size()
    percentiles["users"] = by_industry["anonymous_user_id"].nunique()
    out["ocean_trait_percentiles"] = percentiles.reset_index()

    facets = _entries(day_scores, "facets")
    out["facet_summary"] = facets.groupby("key").agg(assessments=("score", "size"), avg_score=("score", "mean"),
                                                     stddev_score=("score", "std"),
                                                     avg_responses=("responses", "mean")).reset_index().rename(
        columns={"key": "facet"})
    risks = _entries(day_scores, "dark_side_indicators")
    risks["high"] = risks["value"] >= 70
    out["dark_side_summary"] = risks.groupby("key").agg(avg_risk=("value", "mean"),
                                                        high_risk_share=("high", "mean")).reset_index().rename(
        columns={"key": "indicator"})
    return out


if __name__ == "__main__":  # python bench/pandas_peer.py LAKE YYYY-MM-DD FILE: writes the seconds it took
    import sys
    import time

    started = time.perf_counter()
    aggregates(Path(sys.argv[1]), dt.date.fromisoformat(sys.argv[2]))
    Path(sys.argv[3]).write_text(f"{time.perf_counter() - started}\n")
