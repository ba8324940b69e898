"""The daily DAG on the local backend at a given daily volume: wall time, per task, per query.

    python bench/bench_daily_dag.py [--events-per-day 1000000] [--days 31] [--work DIR] [--keep]

Generates ``--days`` days of events and scores ending on the benchmarked day (so the 30-day
returning-user look-back and the month-to-date percentiles read what they read in production),
then runs ``airflow dags test ioc_daily_analytics <last day>`` in a throwaway Airflow home and
prints markdown tables:

- the DAG's wall time (Airflow's own overhead included) and the peak memory of the run;
- each task's duration, from Airflow's metadata database;
- each query of the run: elapsed time, bytes scanned, and the bytes it *needs*: the compressed
  size of the column chunks it reads, in the partitions it selects (from the Parquet footers).
  scanned / needed above 1 means the engine read more than the query needs.

Never run by the tests. Targets (issue 4): whole DAG under 60 s, every aggregate query under 5 s,
scanned / needed at most 1.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq

from ioc_analytics.engine.local import LocalEngine
from ioc_analytics.generate import generate_lake
from ioc_analytics.settings import get_settings
from ioc_analytics.tables import AGGREGATES

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def needed_bytes(engine: LocalEngine, sql: str, parameters: list) -> int:
    """Compressed bytes of the column chunks the query reads, in the partitions it selects."""
    total = 0
    for _table, files, columns in engine.scan_plan(sql, parameters):
        for path in files:
            meta = pq.read_metadata(path)
            for g in range(meta.num_row_groups):
                group = meta.row_group(g)
                for c in range(group.num_columns):
                    chunk = group.column(c)
                    if chunk.path_in_schema.split(".")[0].lower() in columns:
                        total += chunk.total_compressed_size
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events-per-day", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=31)
    parser.add_argument("--day", type=dt.date.fromisoformat, default=dt.date(2024, 1, 31))
    parser.add_argument("--work", type=Path, help="where the lake and state go (default: a temporary folder)")
    parser.add_argument("--keep", action="store_true", help="keep the lake (to re-run without generating)")
    args = parser.parse_args()

    work = args.work or Path(tempfile.mkdtemp(prefix="ioc-bench-dag-"))
    lake, state, home = work / "lake", work / "state", work / "airflow"
    try:
        if not (lake / "assessments" / args.day.strftime("%Y/%m/%d")).exists():
            start = args.day - dt.timedelta(days=args.days - 1)
            report = generate_lake(lake, start, args.days, args.events_per_day, seed=42)
            print(f"generated {report.events:,} events, {report.scores:,} score sets in {report.elapsed_s:.0f} s")
        shutil.rmtree(state, ignore_errors=True)
        shutil.rmtree(lake / "aggregates", ignore_errors=True)
        shutil.rmtree(home, ignore_errors=True)
        env = {**os.environ, "AIRFLOW_HOME": str(home), "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
               "AIRFLOW__CORE__LOAD_EXAMPLES": "False", "IOC_BACKEND": "local", "IOC_LAKE_ROOT": str(lake),
               "IOC_STATE_DIR": str(state), "IOC_EXPORTS_ROOT": str(work / "exports"),
               "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
        subprocess.run([str(BIN / "airflow"), "db", "migrate"], env=env, check=True, capture_output=True)
        started = time.perf_counter()
        run = subprocess.run([str(BIN / "airflow"), "dags", "test", "ioc_daily_analytics", args.day.isoformat()],
                             env=env, capture_output=True, text=True)
        wall = time.perf_counter() - started
        peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        (work / "dag-run.log").write_text(run.stdout + run.stderr)
        if run.returncode != 0:
            sys.exit(f"the DAG run failed: see {work / 'dag-run.log'}")
        report_tables(args, home, state, lake, wall, peak_mb)
    finally:
        if not args.keep and args.work is None:
            shutil.rmtree(work, ignore_errors=True)


def report_tables(args, home: Path, state: Path, lake: Path, wall: float, peak_mb: float) -> None:
    print(f"\n**Daily DAG, {args.events_per_day:,} events/day, {args.day}**: {wall:.1f} s wall "
          f"(`airflow dags test`, Airflow's overhead included), peak RSS {peak_mb:,.0f} MB\n")
    with sqlite3.connect(home / "airflow.db") as con:
        rows = con.execute("SELECT task_id, (julianday(end_date) - julianday(start_date)) * 86400 FROM task_instance "
                           "ORDER BY start_date").fetchall()
    print("| task | seconds |\n|---|---:|")
    for task_id, seconds in rows:
        print(f"| {task_id} | {seconds:.2f} |")

    engine = LocalEngine(get_settings(lake_root=str(lake), state_dir=str(state)))
    log = [json.loads(line) for line in (state / "query_log.jsonl").read_text().splitlines()]
    print("\n| query (task) | seconds | MB scanned | MB needed | scanned / needed |\n|---|---:|---:|---:|---:|")
    for record in log:
        task = record["tags"].get("task_id", "?")
        sql = record["query"].split("*/", 1)[1]
        needed = needed_bytes(engine, sql, record.get("parameters") or [])
        # Below a megabyte (a COUNT(*) answered from footers, a read of a small aggregate) the
        # footers DuckDB reads dominate and the ratio says nothing.
        ratio = f"{record['bytes_scanned'] / needed:.2f}" if needed > 2**20 else "n/a (< 1 MB)"
        print(f"| {task} | {record['elapsed_s']:.2f} | {record['bytes_scanned'] / 1e6:,.1f} | "
              f"{needed / 1e6:,.1f} | {ratio} |")
    slowest = max((r["elapsed_s"], r["tags"].get("task_id")) for r in log if r["tags"].get("task_id", "").endswith(
        ".build"))
    print(f"\nslowest aggregate query: {slowest[1]} {slowest[0]:.2f} s; {len(AGGREGATES)} aggregates")


if __name__ == "__main__":
    main()
