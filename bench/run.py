"""The benchmark harness: the pipeline at three scales, against its targets and against pandas.

    python bench/run.py [--scales small,medium,large] [--work DIR] [--out bench/RESULTS.md]

Scales (events a day; each run generates the month up to the benchmarked day, 2024-01-31, so
the 30-day look-back and the month-to-date queries read what they read in production):

=======  ===============  ================================================================
small    333              the guide's activation level, 10,000 assessments a month
medium   1,000,000
large    ``--large N``    10,000,000 does not fit this 2-core, 24 GB machine (the generator
                          holds a day in memory: about 2.3 GB per million events), so the
                          largest that does is given explicitly; the table says which
=======  ===============  ================================================================

For each scale it measures, and writes as one markdown file (``--out``):

- the generator's throughput (rows a second, events and score sets);
- the daily DAG's wall time under ``airflow dags test`` (Airflow's overhead included), task by
  task from the metadata database, and the run's peak memory;
- every query of the run: seconds, bytes scanned, the bytes it needs (the column chunks of the
  partitions it selects, from the Parquet footers), the bytes of the tables it reads, Athena's
  price for it, and scanned / needed;
- the time the DAG processor spends parsing each DAG file, against Airflow's default
  ``dagbag_import_timeout`` (30 s);
- a peer: the seven aggregates computed the plain pandas way (read the Parquet each needs, group
  by: ``bench/pandas_peer.py``, whose answers match the engine's), timed in the same run, as a
  ratio to the engine's seven build queries.

Never run by the tests. Targets (issue 9): each aggregate query under 5 s and the whole DAG under
60 s at the medium scale; scanned / needed at most 1.2; each DAG file parsed in under 1 s; the
local engine at least 5 times faster than pandas at the medium scale.
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

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "bench")]


from bench_daily_dag import needed_bytes  # noqa: E402

from ioc_analytics.catalog import load_catalog  # noqa: E402
from ioc_analytics.engine.base import athena_cost  # noqa: E402
from ioc_analytics.engine.local import LocalEngine  # noqa: E402
from ioc_analytics.generate import generate_lake  # noqa: E402
from ioc_analytics.settings import get_settings  # noqa: E402
from ioc_analytics.tables import AGGREGATES  # noqa: E402

BIN = Path(sys.executable).parent
DAY = dt.date(2024, 1, 31)
DAYS = 31
SCALES = {"small": 333, "medium": 1_000_000}
PARSE_TIMEOUT_S = 30.0  # Airflow's default [core] dagbag_import_timeout

_PARSE = """
import sys, time
from airflow.dag_processing.dagbag import DagBag
import airflow.sdk  # what the DAG processor has imported before it parses a file
started = time.perf_counter()
bag = DagBag(dag_folder=sys.argv[1])
print(time.perf_counter() - started, len(bag.dags), len(bag.import_errors))
"""


def parse_times() -> list[tuple[str, float, int]]:
    """Seconds to parse each DAG file, in a fresh process that has imported Airflow already."""
    found = []
    for path in sorted((ROOT / "dags").glob("*.py")):
        env = {**os.environ, "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
        done = subprocess.run([sys.executable, "-c", _PARSE, str(path)], capture_output=True, text=True, env=env,
                              check=True)
        seconds, dags, errors = done.stdout.split()[-3:]
        if int(errors):
            sys.exit(f"{path.name} does not parse: {done.stdout[-2000:]}")
        found.append((path.name, float(seconds), int(dags)))
    return found


def table_bytes(table_location: str) -> int:
    return sum(p.stat().st_size for p in Path(table_location).rglob("*.parquet"))


def run_dag(work: Path, lake: Path) -> tuple[float, float, Path, Path]:
    state, home = work / "state", work / "airflow"
    for folder in (state, lake / "aggregates", lake / "quality", home, work / "exports"):
        shutil.rmtree(folder, ignore_errors=True)
    env = {**os.environ, "AIRFLOW_HOME": str(home), "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
           "AIRFLOW__CORE__LOAD_EXAMPLES": "False", "IOC_BACKEND": "local", "IOC_LAKE_ROOT": str(lake),
           "IOC_STATE_DIR": str(state), "IOC_EXPORTS_ROOT": str(work / "exports"),
           "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    subprocess.run([str(BIN / "airflow"), "db", "migrate"], env=env, check=True, capture_output=True)
    started = time.perf_counter()
    run = subprocess.run([str(BIN / "airflow"), "dags", "test", "ioc_daily_analytics", DAY.isoformat()],
                         env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    (work / "dag-run.log").write_text(run.stdout + run.stderr)
    if run.returncode != 0:
        sys.exit(f"the DAG run failed: see {work / 'dag-run.log'}")
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return wall, peak_mb, state, home


def pandas_peer(lake: Path) -> float:
    """Seconds for the seven aggregates the plain pandas way (``bench/pandas_peer.py``)."""
    import pandas_peer

    started = time.perf_counter()
    pandas_peer.aggregates(lake, DAY)
    return time.perf_counter() - started


def bench_scale(name: str, events_per_day: int, work: Path) -> list[str]:
    lake = work / "lake"
    out = [f"## {name}: {events_per_day:,} events a day ({DAYS} days to {DAY})", ""]
    if not (lake / "assessments" / DAY.strftime("%Y/%m/%d")).exists():
        report = generate_lake(lake, DAY - dt.timedelta(days=DAYS - 1), DAYS, events_per_day, seed=42)
        rows = report.events + report.scores
        out += [f"Generator: {report.events:,} events and {report.scores:,} score sets, {report.bytes / 2**20:,.0f} MB,"
                f" in {report.elapsed_s:.1f} s: **{rows / report.elapsed_s:,.0f} rows/s**.", ""]
    else:
        out += ["Generator: the lake was already in the work folder (not timed).", ""]
    wall, peak_mb, state, home = run_dag(work, lake)
    out += [f"Daily DAG (`airflow dags test`, Airflow's overhead included): **{wall:.1f} s** wall, "
            f"peak RSS {peak_mb:,.0f} MB (target at medium: < 60 s).", "", "| task | seconds |", "|---|---:|"]
    with sqlite3.connect(home / "airflow.db") as con:
        for task_id, seconds in con.execute(
                "SELECT task_id, (julianday(end_date) - julianday(start_date)) * 86400 FROM task_instance "
                "ORDER BY start_date"):
            out.append(f"| {task_id} | {seconds:.2f} |")

    settings = get_settings(lake_root=str(lake), state_dir=str(state))
    engine, catalog = LocalEngine(settings), load_catalog(str(lake))
    sizes = {t: table_bytes(catalog.table(t).location) for t in ("assessment_events", "ocean_scores")}
    out += ["", "| query (task) | seconds | MB scanned | MB needed | MB of its tables | cost at Athena's price | "
            "scanned / needed |", "|---|---:|---:|---:|---:|---:|---:|"]
    build_seconds = 0.0
    for record in (json.loads(line) for line in (state / "query_log.jsonl").read_text().splitlines()):
        task = record["tags"].get("task_id", "?")
        sql = record["query"].split("*/", 1)[1]
        needed = needed_bytes(engine, sql, record.get("parameters") or [])
        tables = {t for t, _, _ in engine.scan_plan(sql, record.get("parameters") or [])}
        whole = sum(sizes.get(t, 0) for t in tables)
        ratio = f"{record['bytes_scanned'] / needed:.2f}" if needed > 2**20 else "n/a (< 1 MB)"
        out.append(f"| {task} | {record['elapsed_s']:.2f} | {record['bytes_scanned'] / 2**20:,.1f} | "
                   f"{needed / 2**20:,.1f} | {whole / 2**20:,.1f} | ${athena_cost(record['bytes_scanned']):.6f} | "
                   f"{ratio} |")
        if task.endswith(".build"):
            build_seconds += record["elapsed_s"]
    peer = pandas_peer(lake)
    out += ["", f"Peer: the {len(AGGREGATES)} aggregates the pandas way took {peer:.1f} s; the engine's "
            f"{len(AGGREGATES)} build queries {build_seconds:.1f} s: **{peer / build_seconds:.1f}x** "
            "(target at medium: >= 5x).", ""]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scales", default="small,medium")
    parser.add_argument("--large", type=int, help="events a day of the large scale (the largest that fits)")
    parser.add_argument("--work", type=Path, help="keep the generated lakes here, to re-run without generating")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "RESULTS.md")
    args = parser.parse_args()
    scales = dict(SCALES, **({"large": args.large} if args.large else {}))
    chosen = args.scales.split(",")
    unknown = [s for s in chosen if s not in scales]
    if unknown:
        sys.exit(f"unknown scale {unknown}: choose from {', '.join(scales)} (large needs --large N)")
    lines = [f"# Benchmarks, {dt.date.today()}", "", f"Machine: {os.cpu_count()} cores, "
             f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GB; `python bench/run.py "
             f"--scales {args.scales}{f' --large {args.large}' if args.large else ''}`.", "",
             "## DAG files: parse time", "", f"| file | DAGs | seconds | of the {PARSE_TIMEOUT_S:.0f} s timeout |",
             "|---|---:|---:|---:|"]
    for name, seconds, dags in parse_times():
        lines.append(f"| {name} | {dags} | {seconds:.3f} | {seconds / PARSE_TIMEOUT_S:.1%} |")
    lines.append("")
    for scale in chosen:
        work = (args.work / scale) if args.work else Path(tempfile.mkdtemp(prefix=f"ioc-bench-{scale}-"))
        work.mkdir(parents=True, exist_ok=True)
        try:
            lines += bench_scale(scale, scales[scale], work)
        finally:
            if args.work is None:
                shutil.rmtree(work, ignore_errors=True)
        args.out.write_text("\n".join(lines) + "\n")  # after each scale: a long run keeps what it measured
    print("\n".join(lines))
    print(f"\nwritten to {args.out}")


if __name__ == "__main__":
    main()
