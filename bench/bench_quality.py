"""What the data-quality gates add to the daily run, and whether their memory grows with the day.

    python bench/bench_quality.py [--events-per-day 100000,1000000] [--work DIR] [--keep]

For each daily volume, generates the benchmarked day (2024-01-31) and the same weekday of the
four weeks before it (what the volume check reads), unless the work folder already holds them,
then validates the day in a fresh process per table, as the DAG's `validate_<table>` tasks do:
Great Expectations' import, then `quality.validate_source`. Prints a markdown table: seconds
for the import and the validation, the rows validated, and the process's peak memory.

Never run by the tests. Target: validating one day of 1,000,000 events and its
scores adds under 20 s to the daily run, with memory that does not grow with the day's rows.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DAY = dt.date(2024, 1, 31)
HISTORY = [DAY - dt.timedelta(weeks=w) for w in range(4, -1, -1)]


def measure(lake: str, table: str) -> None:
    """In a fresh process: import GX, validate, print one JSON line."""
    from ioc_analytics import quality
    from ioc_analytics.settings import get_settings

    started = time.perf_counter()
    import great_expectations  # noqa: F401  (what every validate task pays first)

    imported = time.perf_counter()
    settings = get_settings(backend="local", lake_root=lake, state_dir=tempfile.mkdtemp())
    report = quality.validate_source(settings, DAY, table)
    done = time.perf_counter()
    print(json.dumps({"table": table, "import_s": imported - started, "validate_s": done - imported,
                      "rows": report.rows, "errors": len(report.errors), "warnings": len(report.warnings),
                      "peak_rss_mb": peak_rss_mb()}))


def peak_rss_mb() -> float:
    """This process's peak resident memory. (Not ``getrusage``: Linux carries ``ru_maxrss`` over
    ``exec`` from the parent, here the generator, while ``VmHWM`` belongs to this process alone.)"""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events-per-day", default="100000,1000000")
    parser.add_argument("--work", default=None, help="where the lakes go (reused if present)")
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--measure", nargs=2, metavar=("LAKE", "TABLE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        measure(*args.measure)
        return

    from ioc_analytics.devtools.generate import generate_lake

    work = Path(args.work or tempfile.mkdtemp(prefix="ioc-bench-quality-"))
    rows = ["| events/day | table | rows validated | GX import (s) | validation (s) | peak RSS (MB) | result |",
            "|---:|---|---:|---:|---:|---:|---|"]
    try:
        for volume in (int(v) for v in args.events_per_day.split(",")):
            lake = work / f"lake-{volume}"
            for day in HISTORY:
                if not (lake / "assessments" / day.strftime("%Y/%m/%d")).is_dir():
                    generate_lake(lake, day, 1, volume, seed=7)
            total = 0.0
            for table in ("assessment_events", "ocean_scores"):
                run = subprocess.run([sys.executable, __file__, "--measure", str(lake), table],
                                     capture_output=True, text=True, check=True)
                result = json.loads(run.stdout.strip().splitlines()[-1])
                total += result["import_s"] + result["validate_s"]
                verdict = "passed" if not result["errors"] else f"{result['errors']} errors"
                rows.append(f"| {volume:,} | {table} | {result['rows']:,} | {result['import_s']:.1f} | "
                            f"{result['validate_s']:.1f} | {result['peak_rss_mb']:,.0f} | {verdict} |")
            rows.append(f"| {volume:,} | **both, one after the other** | | | **{total:.1f}** | | |")
    finally:
        if not args.keep and not args.work:
            shutil.rmtree(work, ignore_errors=True)
    print("\n".join(rows))


if __name__ == "__main__":
    main()
