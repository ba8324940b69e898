"""How a day's scheduled scans grow: with the length of the lake's history, and with a day's volume.

    python bench/bench_growth.py [--history 30,60,90] [--volumes 1000000,3000000,10000000]

Each cell is ``ioc costguard``'s estimate (``ioc_analytics.devtools.costguard``: every SQL file
run on a generated lake, its scans sized from the Parquet footers of a day at 50,000 events and
scaled to the volume) of what a day's schedule reads: the daily DAG's SQL once (the builds, the
state they derive, the checks), the hourly SQL for each of 24 hours, a sliced state for each
slice; and the heaviest single query. Target: flat in history, linear in a day's volume.
``bench/run.py`` measures the same on a real day at each volume (its "a day's scheduled scans").
Never run by the tests.
"""

from __future__ import annotations

import argparse
import datetime as dt

from ioc_analytics.devtools import costguard


def measure(events_per_day: int, history_days: int) -> tuple[float, float, str]:
    """A day's scheduled GiB, the heaviest query's MiB and its file."""
    estimates = costguard.estimate_files(events_per_day=events_per_day, lake_days=history_days)
    heaviest = max((e for e in estimates if e.day_bytes), key=lambda e: e.bytes)
    return costguard.day_total(estimates) / 2**30, heaviest.bytes / 2**20, heaviest.path.rsplit("/sql/", 1)[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--history", default="30,60,90", help="days of history in the lake")
    parser.add_argument("--volumes", default="1000000,3000000,10000000", help="events a day")
    args = parser.parse_args()
    history = [int(h) for h in args.history.split(",")]
    volumes = [int(v) for v in args.volumes.split(",")]
    lines = [f"A day's scheduled scans, {dt.date.today()} (`ioc costguard`'s estimate):", "",
             "| events a day | days of history | a day's scheduled scans | heaviest scheduled query |",
             "|---:|---:|---:|---|"]
    for volume in volumes:
        for days in history if volume == volumes[0] else history[-1:]:
            total, heaviest, path = measure(volume, days)
            lines.append(f"| {volume:,} | {days} | {total:,.2f} GiB | {heaviest:,.0f} MiB (`{path}`) |")
            print(lines[-1], flush=True)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
