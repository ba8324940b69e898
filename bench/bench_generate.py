"""Generator throughput: events and score sets per second at a given daily volume.

    python bench/bench_generate.py [--events-per-day 1000000] [--days 3] [--lake DIR]

Writes into a temporary folder (removed afterwards) unless --lake is given, and prints one
markdown table row for the README's "Benchmarks" section. Never run by the tests.
"""

from __future__ import annotations

import argparse
import datetime as dt
import platform
import resource
import shutil
import tempfile
from pathlib import Path

from ioc_analytics.generate import generate_lake


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events-per-day", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=3)
    parser.add_argument("--lake", type=Path, help="keep the lake here (default: a temporary folder)")
    args = parser.parse_args()

    root = args.lake or Path(tempfile.mkdtemp(prefix="ioc-bench-generate-"))
    try:
        report = generate_lake(root, dt.date(2024, 1, 1), args.days, args.events_per_day, seed=42)
    finally:
        if args.lake is None:
            shutil.rmtree(root, ignore_errors=True)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    rows = report.events + report.scores
    print("| events/day | days | events | score sets | MB written | seconds | events/s | rows/s | peak RSS MB |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    print(f"| {args.events_per_day:,} | {args.days} | {report.events:,} | {report.scores:,} "
          f"| {report.bytes / 2**20:,.0f} | {report.elapsed_s:.1f} | {report.events / report.elapsed_s:,.0f} "
          f"| {rows / report.elapsed_s:,.0f} | {peak_mb:,.0f} |")
    print(f"\n({platform.processor() or platform.machine()}, {platform.python_version()}, "
          f"{dt.date.today().isoformat()})")


if __name__ == "__main__":
    main()
