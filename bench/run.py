"""The benchmark harness: the pipeline at three scales, against its targets and against pandas.

    python bench/run.py [--scales small,medium,large] [--large N] [--workers 2] [--work DIR]
                        [--peer-memory-gb 20] [--out bench/RESULTS.md]

Scales (events a day; each generates January 2024 and benchmarks its last day, 2024-01-31, so
the 30-day look-back and the month-to-date queries read what they read in production):

=======  ==========  ===================================================================
small    333         the guide's activation level, 10,000 assessments a month
medium   1,000,000
large    10,000,000  or ``--large N``
=======  ==========  ===================================================================

For each scale it measures, and writes as one markdown file (``--out``, rewritten after each
scale, so a long run keeps what it measured):

- the generator's throughput (rows a second: events and score sets), wall time and peak memory
  (``--workers`` processes, 2 by default: each holds the user pool and an hour, 0.65 GiB at
  a million events a day, 1.5 GiB at ten million). A finished lake is marked, and a re-run with
  ``--work`` reuses it if its shape is the same;
- the daily DAG's wall time under ``airflow dags test`` (Airflow's overhead included), task by
  task from the metadata database, and its peak memory (every task runs in that one process).
  The day before is run first, unmeasured, as the schedule would have: the state tables the
  builds read (``ioc_analytics.analytics.state``) then hold the day before, and the measured run
  is a day like every other, one day of raw data and one step of each state's chain (a first
  run, with no state yet, derives the whole look-back once);
- the hourly SQL for each of the day's 24 hours (``pipeline.build_hourly``, as the hourly DAG
  runs it), so that a day's scheduled scans are the daily DAG's queries and 24 hours of these;
- every query of the run: seconds, bytes scanned, the bytes it needs, the bytes of the tables it
  reads, Athena's price, and scanned / needed. *Needed* is read from the Parquet footers: the
  compressed column chunks the query reads, in the partitions it selects, in the row groups its
  filters can match (by the row groups' min/max), leaving out a filter's column in a row group
  whose statistics already decide the filter. The run lifts the per-query cutoff, so that a
  large scale runs to the end; queries past the production cutoff are marked;
- the time the DAG processor spends parsing each DAG file, against Airflow's default
  ``dagbag_import_timeout`` (30 s);
- a peer: the seven aggregates computed the plain pandas way (``bench/pandas_peer.py``, whose
  answers match the engine's), in its own process, as a ratio to the engine's seven build
  queries. It is stopped past ``--peer-memory-gb`` GiB of memory, and the table says so.

Sizes of data are in MB of 2^20 bytes, as Athena bills them; memory in MiB and GiB.

Never run by the tests. Targets: at the medium scale, each aggregate query at most 2 s, the
whole DAG at most 30 s and the local engine at least 10 times faster than pandas; at the large
scale, the DAG at most 90 s and 4 GiB, every scheduled query at most 512 MiB (half the per-query
cutoff) and a day's scheduled scans at most 3 GiB; the generator at most 2 GiB a worker;
scanned / needed at most 1.2; each DAG file parsed in under 1 s.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pyarrow.parquet as pq

from ioc_analytics.backends import get_backend
from ioc_analytics.devtools.scanplan import ScanPlan, scan_plan
from ioc_analytics.engine.base import MB, athena_cost  # MB: 2**20 bytes, as AWS bills
from ioc_analytics.lake.catalog import load_catalog
from ioc_analytics.lake.tables import AGGREGATES
from ioc_analytics.settings import Settings, get_settings

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
DAY = dt.date(2024, 1, 31)
DAYS = 31
SCALES = {"small": 333, "medium": 1_000_000, "large": 10_000_000}
SEED = 42
PARSE_TIMEOUT_S = 30.0  # Airflow's default [core] dagbag_import_timeout
CUTOFF = Settings.bytes_scanned_cutoff  # the production per-query cutoff (1 GiB)

_PARSE = """
import sys, time
from airflow.dag_processing.dagbag import DagBag
import airflow.sdk  # what the DAG processor has imported before it parses a file
started = time.perf_counter()
bag = DagBag(dag_folder=sys.argv[1])
print(time.perf_counter() - started, len(bag.dags), len(bag.import_errors))
"""

_HOURLY = """
import datetime as dt, sys
from ioc_analytics.analytics import pipeline
from ioc_analytics.lake.tables import HOURLY
from ioc_analytics.settings import get_settings
lake, state, day = sys.argv[1:]
settings = get_settings(backend="local", lake_root=lake, state_dir=state)
for hour in range(24):
    for name in HOURLY:
        pipeline.build_hourly(settings, dt.datetime.combine(dt.date.fromisoformat(day), dt.time(hour)), name,
                              {"dag_id": "ioc_hourly_metrics", "task_id": f"{name}.hour", "ds": day})
"""

_GENERATE = """
import dataclasses, datetime as dt, json, pathlib, sys
from ioc_analytics.devtools.generate import generate_lake
lake, start, days, per_day, seed, workers, out = sys.argv[1:]
report = generate_lake(lake, dt.date.fromisoformat(start), int(days), int(per_day), int(seed), int(workers))
pathlib.Path(out).write_text(json.dumps(dataclasses.asdict(report)))
"""


@dataclass
class Measured:
    returncode: int
    seconds: float
    peak_mib: float
    output: str
    stopped: bool = False


def measured(command: list[str], env: dict[str, str] | None = None, memory_limit_gb: float | None = None
             ) -> Measured:
    """Run ``command``; its wall time, and the peak resident memory of the largest process of
    its tree (``wait4``'s ``ru_maxrss`` covers the children each process waited for). With a
    memory limit, the tree is killed once its resident memory passes it."""
    with tempfile.TemporaryFile("w+") as out:
        started = time.perf_counter()
        child = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT, text=True)
        stopped = False
        watched = psutil.Process(child.pid)
        while True:  # wait4 (not Popen.poll, which would reap the child and lose its rusage)
            pid, status, usage = os.wait4(child.pid, 0 if memory_limit_gb is None or stopped else os.WNOHANG)
            if pid:
                break
            try:
                tree = [watched, *watched.children(recursive=True)]
                resident = sum(p.memory_info().rss for p in tree)
            except psutil.NoSuchProcess:
                continue
            if resident > memory_limit_gb * 2**30:  # the tree's resident memory, shared pages twice
                stopped = True
                for process in reversed(tree):
                    with contextlib.suppress(psutil.NoSuchProcess):
                        process.kill()
            time.sleep(0.2)
        child.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.perf_counter() - started
        out.seek(0)
        return Measured(child.returncode, seconds, usage.ru_maxrss / 1024, out.read(), stopped)


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


# -- bytes a query needs ------------------------------------------------------------------------

def _verdict(chunk, operator: str, value: object) -> str:
    """What a column chunk's min/max say of ``column <operator> value``: "none" of its rows can
    match, "all" do, or "some"."""
    stats = chunk.statistics if chunk.is_stats_set else None
    if stats is None or not stats.has_min_max:
        return "some"
    low, high = stats.min, stats.max
    try:
        if isinstance(low, dt.datetime) and isinstance(value, str):
            value = dt.datetime.fromisoformat(value)
        elif isinstance(low, (int, float)) and isinstance(value, str):
            value = float(value)
        none = {"=": value < low or value > high, ">": high <= value, ">=": high < value,
                "<": low >= value, "<=": low > value}[operator]
        every = {"=": low == high == value, ">": low > value, ">=": low >= value,
                 "<": high < value, "<=": high <= value}[operator]
    except (TypeError, ValueError):  # values the statistics cannot be compared with: undecided
        return "some"
    if none:
        return "none"
    return "all" if every and not stats.null_count else "some"


def needed_bytes(scans: list[ScanPlan]) -> int:
    """Compressed bytes of the column chunks the query must read: its columns, in the partitions
    it selects, in the row groups its comparisons can match; a column read only by comparisons
    is not needed in a row group whose statistics decide them all."""
    total = 0
    for scan in scans:
        for path in scan.files:
            meta = pq.read_metadata(path)
            for g in range(meta.num_row_groups):
                group = meta.row_group(g)
                chunks: dict[str, list] = {}
                for c in range(group.num_columns):
                    chunk = group.column(c)
                    chunks.setdefault(chunk.path_in_schema.split(".")[0].lower(), []).append(chunk)
                verdicts = [(column, _verdict(chunks[column][0], op, value) if len(chunks.get(column, [])) == 1
                             else "some") for column, op, value in scan.bounds]
                if any(v == "none" for _, v in verdicts):
                    continue
                undecided = {column for column, v in verdicts if v == "some"}
                columns = (scan.columns - scan.filter_only) | (undecided & scan.filter_only)
                total += sum(chunk.total_compressed_size for name in columns for chunk in chunks.get(name, []))
    return total


# -- one scale ----------------------------------------------------------------------------------

@dataclass
class ScaleResult:
    name: str
    events_per_day: int
    lines: list[str] = field(default_factory=list)
    rows_per_s: float | None = None  # None: the lake was reused, the generator not timed
    generator: str = "not timed (the lake was in the work folder)"
    dag_s: float = 0.0
    dag_peak_mib: float = 0.0
    slowest_build: tuple[float, str] = (0.0, "")
    ratios: list[float] = field(default_factory=list)
    past_cutoff: list[str] = field(default_factory=list)
    unneeded_mb: float = 0.0  # scanned by queries that need less than a megabyte
    peer: str = ""
    peer_ratio: float | None = None
    generator_peak_mib: float = 0.0
    hourly_s: float = 0.0
    #: The day's scheduled scans: every query of the daily DAG's run and of the day's 24 hours.
    day_bytes: int = 0
    heaviest: tuple[int, str] = (0, "")


def _lake_made(lake: Path) -> Path:
    return lake / ".bench-lake.json"  # written once the generator has finished


def generate(result: ScaleResult, lake: Path, workers: int) -> None:
    """Generate the scale's lake, unless the work folder holds a finished one of the same shape."""
    shape = {"events_per_day": result.events_per_day, "days": DAYS, "last_day": DAY.isoformat(), "seed": SEED}
    marker = _lake_made(lake)
    if marker.exists() and json.loads(marker.read_text()) == shape:
        return
    shutil.rmtree(lake, ignore_errors=True)  # unfinished, or another shape
    start = DAY - dt.timedelta(days=DAYS - 1)
    with tempfile.NamedTemporaryFile(suffix=".json") as report_file:
        run = measured([sys.executable, "-c", _GENERATE, str(lake), start.isoformat(), str(DAYS),
                        str(result.events_per_day), str(SEED), str(workers), report_file.name])
        if run.returncode != 0:
            sys.exit(f"the generator failed:\n{run.output[-3000:]}")
        report = json.loads(Path(report_file.name).read_text())
    marker.write_text(json.dumps(shape))
    rows = report["events"] + report["scores"]
    result.rows_per_s = rows / run.seconds
    result.generator_peak_mib = run.peak_mib
    result.generator = (f"{result.rows_per_s:,.0f} rows/s ({report['events']:,} events and {report['scores']:,} "
                        f"score sets, {report['bytes'] / MB:,.0f} MB, in {run.seconds:.0f} s with {workers} "
                        f"worker{'s' if workers > 1 else ''}; peak RSS {run.peak_mib:,.0f} MiB per process)")


def run_dag(result: ScaleResult, work: Path, lake: Path) -> tuple[Path, Path]:
    state, home = work / "state", work / "airflow"
    for folder in (state, lake / "aggregates", lake / "quality", home, work / "exports"):
        shutil.rmtree(folder, ignore_errors=True)
    env = {**os.environ, "AIRFLOW_HOME": str(home), "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
           "AIRFLOW__CORE__LOAD_EXAMPLES": "False", "IOC_BACKEND": "local", "IOC_LAKE_ROOT": str(lake),
           "IOC_STATE_DIR": str(state), "IOC_EXPORTS_ROOT": str(work / "exports"),
           # lifted, so that every query runs to the end; the table marks those past CUTOFF
           "IOC_BYTES_SCANNED_CUTOFF": str(2**50), "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    subprocess.run([str(BIN / "airflow"), "db", "migrate"], env=env, check=True, capture_output=True)
    before = measured([str(BIN / "airflow"), "dags", "test", "ioc_daily_analytics", (DAY - dt.timedelta(days=1))
                       .isoformat()], env)  # the day before, as the schedule ran it: not measured
    (work / "dag-run-before.log").write_text(before.output)
    if before.returncode != 0:
        sys.exit(f"the DAG run of the day before failed: see {work / 'dag-run-before.log'}")
    (state / "query_log.jsonl").unlink()
    run = measured([str(BIN / "airflow"), "dags", "test", "ioc_daily_analytics", DAY.isoformat()], env)
    (work / "dag-run.log").write_text(run.output)
    if run.returncode != 0:
        sys.exit(f"the DAG run failed: see {work / 'dag-run.log'}")
    result.dag_s, result.dag_peak_mib = run.seconds, run.peak_mib
    hourly = measured([sys.executable, "-c", _HOURLY, str(lake), str(state), DAY.isoformat()], env)
    if hourly.returncode != 0:
        sys.exit(f"the hourly builds failed:\n{hourly.output[-3000:]}")
    result.hourly_s = hourly.seconds
    return state, home


def bench_scale(result: ScaleResult, work: Path, workers: int, peer_memory_gb: float) -> None:
    lake = work / "lake"
    generate(result, lake, workers)
    state, home = run_dag(result, work, lake)
    out = result.lines
    out += [f"## {result.name}: {result.events_per_day:,} events a day ({DAYS} days to {DAY})", "",
            f"Generator: {result.generator}.", "",
            f"Daily DAG (`airflow dags test`, Airflow's overhead included; every task runs in its one "
            f"process; the day before ran first, unmeasured): **{result.dag_s:.1f} s** wall, peak RSS "
            f"{result.dag_peak_mib:,.0f} MiB. The hourly SQL for the day's 24 hours: {result.hourly_s:.1f} s.", "",
            "| task | seconds |", "|---|---:|"]
    with sqlite3.connect(home / "airflow.db") as con:
        for task_id, seconds in con.execute(
                "SELECT task_id, (julianday(end_date) - julianday(start_date)) * 86400 FROM task_instance "
                "WHERE run_id = (SELECT run_id FROM dag_run WHERE logical_date LIKE ?) ORDER BY start_date",
                (f"{DAY.isoformat()}%",)):
            out.append(f"| {task_id} | {seconds:.2f} |")

    engine = get_backend(get_settings(lake_root=str(lake), state_dir=str(state))).engine
    catalog = load_catalog(str(lake))
    sizes = {name: sum(p.stat().st_size for p in Path(table.location).rglob("*.parquet"))
             for name, table in catalog.tables.items()}
    out += ["", "MB: 2^20 bytes, as Athena bills them.", "",
            "| query (task) | seconds | MB scanned | MB needed | MB of its tables | Athena's price | "
            "scanned / needed |", "|---|---:|---:|---:|---:|---:|---:|"]
    build_seconds = 0.0
    for record in (json.loads(line) for line in (state / "query_log.jsonl").read_text().splitlines()):
        task, scanned = record["tags"].get("task_id", "?"), record["bytes_scanned"]
        if "state" in record["tags"]:
            task += f" (state {record['tags']['state']})"
        result.day_bytes += scanned
        result.heaviest = max(result.heaviest, (scanned, task))
        scans = scan_plan(engine, record["query"], record.get("parameters") or [])
        needed = needed_bytes(scans)
        whole = sum(sizes[t] for t in {s.table for s in scans})
        if needed > MB:
            result.ratios.append(scanned / needed)
            ratio = f"{scanned / needed:.2f}"
        else:  # footers and a small aggregate: the ratio says nothing, what is read is shown
            result.unneeded_mb += scanned / MB
            ratio = "n/a (needs < 1 MB)"
        if scanned > CUTOFF:
            result.past_cutoff.append(task)
            ratio += f"; **past the {CUTOFF / 2**30:.0f} GiB cutoff**"
        out.append(f"| {task} | {record['elapsed_s']:.2f} | {scanned / MB:,.1f} | {needed / MB:,.1f} | "
                   f"{whole / MB:,.1f} | ${athena_cost(scanned):.6f} | {ratio} |")
        if record["tags"].get("task_id", "").endswith(".build"):  # the day's state steps are its build too
            build_seconds += record["elapsed_s"]
            result.slowest_build = max(result.slowest_build, (record["elapsed_s"], task.removesuffix(".build")))
    if not build_seconds:
        sys.exit(f"the run logged no build query: see {state / 'query_log.jsonl'}")

    with tempfile.NamedTemporaryFile(suffix=".txt") as seconds_file:
        peer = measured([sys.executable, str(ROOT / "bench" / "pandas_peer.py"), str(lake), DAY.isoformat(),
                         seconds_file.name], memory_limit_gb=peer_memory_gb)
        seconds = Path(seconds_file.name).read_text()
    if peer.stopped:
        result.peer = (f"stopped past {peer_memory_gb:g} GiB of memory after {peer.seconds:.0f} s: the pandas way "
                       "does not fit")
    elif peer.returncode != 0:
        sys.exit(f"the pandas peer failed:\n{peer.output[-3000:]}")
    else:
        result.peer_ratio = float(seconds) / build_seconds
        result.peer = (f"{float(seconds):.1f} s (peak RSS {peer.peak_mib:,.0f} MiB) against the engine's "
                       f"{build_seconds:.1f} s: **{result.peer_ratio:.1f}x**")
    out += ["", f"Peer: the {len(AGGREGATES)} aggregates the pandas way: {result.peer}.", ""]


def summary(results: list[ScaleResult], parses: list[tuple[str, float, int]]) -> list[str]:
    """The targets, one row each, against every scale measured; "met" or "missed" where the
    target applies (some only at the medium scale)."""
    header = "| target | " + " | ".join(f"{r.name} ({r.events_per_day:,}/day)" for r in results) + " |"
    rows = [header, "|---|" + "---:|" * len(results)]

    def row(target: str, cells: list[str], met: list[bool | None] | None = None) -> None:
        verdicts = [("" if ok is None else " (met)" if ok else " (**missed**)") for ok in (met or [None] * len(cells))]
        rows.append(f"| {target} | " + " | ".join(c + v for c, v in zip(cells, verdicts, strict=True)) + " |")

    def at_medium(test) -> list[bool | None]:
        return [test(r) if r.name == "medium" else None for r in results]

    def at_large(test) -> list[bool | None]:
        return [test(r) if r.name == "large" else None for r in results]

    row("generator", [f"{r.rows_per_s:,.0f} rows/s" if r.rows_per_s else "not timed" for r in results])
    row("generator <= 2 GiB a worker", [f"{r.generator_peak_mib / 1024:.1f} GiB" if r.rows_per_s else "not timed"
                                        for r in results],
        [r.generator_peak_mib <= 2048 if r.rows_per_s else None for r in results])
    row("whole daily DAG <= 30 s (medium), <= 90 s (large)", [f"{r.dag_s:.1f} s" for r in results],
        [{"medium": r.dag_s <= 30, "large": r.dag_s <= 90}.get(r.name) for r in results])
    row("peak memory of the DAG run <= 4 GiB (large)", [f"{r.dag_peak_mib / 1024:.1f} GiB" for r in results],
        at_large(lambda r: r.dag_peak_mib <= 4096))
    row("each aggregate query <= 2 s (at medium)",
        [f"slowest {r.slowest_build[0]:.1f} s (`{r.slowest_build[1]}`)" for r in results],
        at_medium(lambda r: r.slowest_build[0] <= 2))
    row("every scheduled query <= 512 MiB (large)",
        [f"heaviest {r.heaviest[0] / MB:,.0f} MiB (`{r.heaviest[1]}`)" for r in results],
        at_large(lambda r: r.heaviest[0] <= 512 * MB))
    row("a day's scheduled scans <= 3 GiB (large)", [f"{r.day_bytes / 2**30:,.2f} GiB" for r in results],
        at_large(lambda r: r.day_bytes <= 3 * 2**30))
    row("scanned / needed <= 1.2", [f"{min(r.ratios):.2f}-{max(r.ratios):.2f}" if r.ratios else "n/a" for r in results],
        [max(r.ratios) <= 1.2 if r.ratios else None for r in results])
    row("read by queries that need < 1 MB", [f"{r.unneeded_mb:,.1f} MB" for r in results])
    row(f"queries past the {CUTOFF / 2**30:.0f} GiB cutoff", [", ".join(r.past_cutoff) or "none" for r in results])
    fastest, slowest = min(s for _, s, _ in parses), max(s for _, s, _ in parses)
    verdict = "met" if slowest < 1 else "**missed**"
    rows.append(f"| each DAG file parsed < 1 s (the same files at every scale) | {fastest:.2f}-{slowest:.2f} s "
                f"({verdict})" + " |" * len(results))
    row("pandas / engine >= 10x (at medium)",
        [f"{r.peer_ratio:.1f}x" if r.peer_ratio is not None else "pandas did not fit" for r in results],
        at_medium(lambda r: r.peer_ratio is not None and r.peer_ratio >= 10))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scales", default="small,medium,large")
    parser.add_argument("--large", type=int, default=SCALES["large"], help="events a day of the large scale")
    parser.add_argument("--workers", type=int, default=2,
                        help="generator processes (each peaks at about 0.65 GiB at 1M events a day, 1.5 GiB at 10M)")
    parser.add_argument("--work", type=Path, help="keep the generated lakes here, to re-run without generating")
    parser.add_argument("--peer-memory-gb", type=float, default=20.0, help="stop the pandas peer past this (GiB)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "RESULTS.md")
    args = parser.parse_args()
    scales = dict(SCALES, large=args.large)
    chosen = args.scales.split(",")
    unknown = [s for s in chosen if s not in scales]
    if unknown:
        sys.exit(f"unknown scale {unknown}: choose from {', '.join(scales)}")
    parses = parse_times()
    command = " ".join(["python bench/run.py", *sys.argv[1:]])
    head = [f"# Benchmarks, {dt.date.today()}", "",
            f"Machine: {os.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.0f} GiB; `{command}`.", ""]
    parse_lines = ["## DAG files: parse time", "",
                   f"| file | DAGs | seconds | of the {PARSE_TIMEOUT_S:.0f} s timeout |", "|---|---:|---:|---:|",
                   *(f"| {name} | {dags} | {seconds:.3f} | {seconds / PARSE_TIMEOUT_S:.1%} |"
                     for name, seconds, dags in parses), ""]
    results = []
    for scale in chosen:
        work = (args.work / scale) if args.work else Path(tempfile.mkdtemp(prefix=f"ioc-bench-{scale}-"))
        work.mkdir(parents=True, exist_ok=True)
        result = ScaleResult(scale, scales[scale])
        try:
            bench_scale(result, work, args.workers, args.peer_memory_gb)
        finally:
            if args.work is None:
                shutil.rmtree(work, ignore_errors=True)
        results.append(result)
        lines = [*head, "## Targets", "", *summary(results, parses), "", *parse_lines,
                 *(line for r in results for line in r.lines)]
        args.out.write_text("\n".join(lines) + "\n")  # after each scale: a long run keeps what it measured
    print(args.out.read_text())
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
