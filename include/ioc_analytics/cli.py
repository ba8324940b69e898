"""``ioc``: the project's command line.

    ioc generate --start YYYY-MM-DD [--days N] [--events-per-day N] [--seed S] [--workers N] [--lake DIR]
    ioc query [--format table|csv|json] "SQL"      (or - to read the SQL from stdin)
    ioc tables
    ioc quality YYYY-MM-DD [--validate]             the day's data-quality reports
    ioc status [FIRST [LAST]]                       each day's tables: landed, validated, exported, stale
    ioc fault --date YYYY-MM-DD --fault NAME [--assessment-type T] [--lake DIR]
    ioc quicksight                                  (aws) create or update the QuickSight datasets and dashboard
    ioc costguard [--events-per-day N]              the SQL files' cost mistakes and estimated scans
    ioc setup [--today YYYY-MM-DD]                  create or check what the pipelines need; readiness
    ioc recover YYYY-MM-DD [...] [--dry-run]         re-run a fixed bad day, then the days it blocked
    ioc contract [TABLE]                            the data contract

A date is typed as YYYY-MM-DD or as the lake writes it, YYYY/MM/DD. ``--lake`` defaults to
``IOC_LAKE_ROOT``. Every subcommand's ``--help`` has its options, their defaults and an example.

Results go to stdout; statistics (bytes scanned, cost) and errors to stderr, so that
``ioc query --format csv ... > out.csv`` gives a clean file. A problem the user can fix prints
one ``error:`` line and exits 2, never a traceback.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from collections.abc import Sequence

from ioc_analytics.errors import ConfigError, IocError


def _date(text: str) -> dt.date:
    """A day typed either way (:func:`ioc_analytics.text.parse_day`)."""
    from ioc_analytics.text import parse_day

    try:
        return parse_day(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _command(sub, name: str, help: str, example: str, description: str | None = None) -> argparse.ArgumentParser:
    """A subcommand whose ``--help`` shows what it does, every option's default and an example."""
    return sub.add_parser(name, help=help, description=description or help[0].upper() + help[1:] + ".",
                          epilog=f"example:\n  {example}", formatter_class=_HelpFormatter)


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Defaults in the options' help (those that have one), and the example kept as written."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default in (None, False) or "default" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


_LAKE_HELP = "the lake folder (default: IOC_LAKE_ROOT, else ./data/lake)"


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ioc", description="IOC analytics: generate a sample lake, query it, check and show each day's "
                                "state, recover after a bad day, set up, check the SQL's cost.")
    sub = parser.add_subparsers(dest="command", required=True)

    gen = _command(sub, "generate", "write a deterministic synthetic lake: assessment events and OCEAN scores",
                   "ioc generate --start 2024-01-01 --days 31 --events-per-day 1000")
    gen.add_argument("--lake", default=None, metavar="DIR", help=_LAKE_HELP + "; created if missing")
    gen.add_argument("--start", required=True, type=_date, metavar="DAY", help="the first day, YYYY-MM-DD")
    gen.add_argument("--days", type=_positive, metavar="N", default=1, help="how many days from --start")
    gen.add_argument("--events-per-day", type=_positive, metavar="N", default=10_000, help="assessment events a day")
    gen.add_argument("--seed", type=int, metavar="N", default=42, help="the same seed writes the same lake")
    gen.add_argument("--workers", type=_positive, metavar="N", default=1,
                     help="processes writing days at once (the same lake; each holds the user pool and an hour)")

    query = _command(sub, "query", "run Athena SQL on the configured backend (IOC_BACKEND)",
                     "ioc query \"SELECT device, count(*) AS n FROM assessment_events WHERE date = '2024/01/15' "
                     "GROUP BY device\"")
    query.add_argument("sql", help="the SQL text, or - to read it from stdin")
    query.add_argument("--format", choices=("table", "csv", "json"), default="table",
                       help="csv and json print every row; table the first --max-rows")
    query.add_argument("--max-rows", type=_positive, metavar="N", default=200, help="rows shown by --format table")

    _command(sub, "tables", "list the catalog's tables, columns and partition keys", "ioc tables")

    quality = _command(sub, "quality", "show a day's data-quality reports (exit 1 if one failed)",
                       "ioc quality 2024-01-15 --validate")
    quality.add_argument("date", type=_date, help="the day, YYYY-MM-DD")
    quality.add_argument("--validate", action="store_true", help="validate the raw tables now, then show")

    status = _command(sub, "status", "each day's state, table by table: landed, validated, built, exported, stale "
                                     "(exit 1 unless every day is validated and exported)",
                      "ioc status 2024-01-01 2024-01-31")
    status.add_argument("first", type=_date, nargs="?", help="the first day, YYYY-MM-DD (default: 30 days ago)")
    status.add_argument("last", type=_date, nargs="?", help="the last day (default: the first day if one is "
                                                            "given, else yesterday)")

    from ioc_analytics.devtools.faults import FAULTS
    from ioc_analytics.lake.contract import ASSESSMENT_TYPES

    fault = _command(sub, "fault", "damage one day of a generated lake (the bad-input corpus)",
                     "ioc fault --date 2024-01-15 --fault unknown-device")
    fault.add_argument("--lake", default=None, metavar="DIR", help=_LAKE_HELP)
    fault.add_argument("--date", required=True, type=_date, metavar="DAY", help="the day to damage, YYYY-MM-DD")
    fault.add_argument("--fault", required=True, choices=sorted(FAULTS), metavar="NAME",
                       help="what to do to it: " + ", ".join(sorted(FAULTS)))
    fault.add_argument("--assessment-type", choices=ASSESSMENT_TYPES, metavar="TYPE", default="personality",
                       help="the events partition to damage (events faults only): " + ", ".join(ASSESSMENT_TYPES))
    _command(sub, "quicksight", "aws: create or update the QuickSight data source, datasets and dashboard (idempotent)",
             "IOC_BACKEND=aws IOC_LAKE_ROOT=s3://ioc-analytics-data-lake ioc quicksight")
    guard = _command(sub, "costguard", "check the package's SQL for unfiltered partitioned reads, SELECT * on raw "
                                       "tables and scans past the cutoff on a 90-day lake (exit 1 if any)",
                     "ioc costguard --events-per-day 3000000")
    guard.add_argument("--events-per-day", type=_positive, metavar="N", default=None,
                       help="the daily volume the 90-day lake is sized for (default: 1,000,000)")
    setup = _command(sub, "setup", "create or repair the catalog, workgroup, bucket, alarms (idempotent); "
                                   "readiness", "ioc setup --today 2024-02-01")
    setup.add_argument("--today", type=_date, metavar="DAY", default=None,
                       help="the readiness window is the 30 days before this day, YYYY-MM-DD (default: today, UTC)")

    recover = _command(
        sub, "recover", "after fixing a bad day: re-run it, then the days its failure blocked (Airflow's REST API)",
        "ioc recover 2024-01-15",
        description="Validate each named day again, then re-run it and every later day that its failure stopped "
                    "(the 30-day look-back, the month to date) with Airflow backfills that re-run failed runs. "
                    "Airflow's API is IOC_AIRFLOW_URL; log in with IOC_AIRFLOW_TOKEN, or IOC_AIRFLOW_USERNAME and "
                    "IOC_AIRFLOW_PASSWORD (make airflow's generated password is found by itself).")
    recover.add_argument("days", nargs="*", type=_date, metavar="DAY",
                         help="a day whose own checks failed, YYYY-MM-DD (none: list such days)")
    recover.add_argument("--dry-run", action="store_true", help="show what would be re-run; change nothing")

    contract = _command(sub, "contract", "print the data contract (markdown, as docs/data-contract.md)",
                        "ioc contract assessment_events")
    contract.add_argument("table", nargs="?", help="one table only")
    return parser


def _lake(args: argparse.Namespace) -> str:
    """``--lake``, else the configured lake (``IOC_LAKE_ROOT``); a generated lake is a local folder."""
    from ioc_analytics.settings import get_settings

    lake = args.lake or get_settings().lake_root
    if lake.startswith("s3://"):
        raise ConfigError(f"{lake} is in S3: `ioc {args.command}` writes a local lake; pass --lake DIR")
    return lake


def _generate(args: argparse.Namespace) -> None:
    from ioc_analytics.devtools.generate import generate_lake
    from ioc_analytics.text import plural

    args.lake = _lake(args)
    report = generate_lake(args.lake, args.start, args.days, args.events_per_day, args.seed, args.workers)
    print(
        f"wrote {report.events:,} assessment events and {report.scores:,} OCEAN score sets "
        f"for {plural(report.days, 'day')} to {args.lake} ({plural(report.files, 'file')}, "
        f"{report.bytes / 2**20:,.1f} MB, "
        f"{report.elapsed_s:.1f} s)"
    )


def _query(args: argparse.Namespace) -> None:
    from ioc_analytics.backends import get_backend

    text = sys.stdin.read() if args.sql == "-" else args.sql
    if not text.strip():
        raise ConfigError("no SQL given: pass the query as an argument, or - and the query on stdin")
    result = get_backend().engine.query(text, tags={"source": "ioc-cli"})
    table = result.table
    if args.format == "csv":
        import pyarrow.csv as pacsv

        from ioc_analytics.publishing.exports import spreadsheet_safe

        table, neutralised = spreadsheet_safe(table)  # the file is opened in a spreadsheet: as the exports
        pacsv.write_csv(table, sys.stdout.buffer)
        if neutralised:
            print(f"{neutralised} cells that a spreadsheet would evaluate were written with a leading ' "
                  "(--format json gives the raw text)", file=sys.stderr)
    elif args.format == "json":
        from ioc_analytics.publishing.exports import json_rows

        json.dump(json_rows(table), sys.stdout, indent=1)
        print()
    else:
        frame = table.slice(0, args.max_rows).to_pandas()
        print(frame.to_string(index=False) if len(frame) else "(no rows)")
        if table.num_rows > args.max_rows:
            print(f"... {table.num_rows - args.max_rows:,} more rows (use --format csv for all)")
    print(result.stats.summary(), file=sys.stderr)


def _tables(_: argparse.Namespace) -> None:
    from ioc_analytics.backends import get_backend

    catalog = get_backend().catalog
    for table in catalog.tables.values():
        projection = "projection" if table.projection_enabled else "registered partitions"
        print(f"{catalog.database}.{table.name}  ({table.location_template}, {projection})")
        for column in table.columns:
            print(f"    {column.name:<24} {column.athena_type}")
        for key in table.partition_keys:
            print(f"    {key.name:<24} {key.athena_type}  (partition key)")


def _quality(args: argparse.Namespace) -> int:
    from ioc_analytics import quality
    from ioc_analytics.backends import get_backend
    from ioc_analytics.lake.tables import RAW_TABLES
    from ioc_analytics.settings import get_settings

    settings = get_settings()
    get_backend(settings).lake.check()  # a lake that is not there says so, with the fix
    if args.validate:
        for table in RAW_TABLES:
            quality.validate_source(settings, args.date, table)
    reports = quality.load_reports(settings, args.date)
    print(quality.render(reports))
    return 0 if reports and all(r["passed"] for r in reports) else 1


def _status(args: argparse.Namespace) -> int:
    from ioc_analytics.backends import get_backend
    from ioc_analytics.operations import status
    from ioc_analytics.settings import get_settings

    settings = get_settings()
    get_backend(settings).lake.check()
    yesterday = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)
    first = args.first or yesterday - dt.timedelta(days=29)
    last = args.last or args.first or yesterday
    if last < first:
        raise ConfigError(f"the last day {last} is before the first {first}: name the earlier day first")
    if (last - first).days >= 366:
        raise ConfigError(f"{first} to {last} is more than a year of days: ask for a shorter range")
    screen, healthy = status.render(settings, [first + dt.timedelta(days=n) for n in range((last - first).days + 1)])
    print(screen)
    return 0 if healthy else 1


def _fault(args: argparse.Namespace) -> None:
    from ioc_analytics.devtools.faults import inject_fault

    args.lake = _lake(args)
    print(f"damaged {inject_fault(args.lake, args.date, args.fault, args.assessment_type)} with {args.fault}")


def _quicksight(_: argparse.Namespace) -> None:
    from ioc_analytics.backends import get_backend

    for resource, (state, arn) in get_backend().quicksight().items():
        print(f"{state:<10} {resource}  {arn}")


def _costguard(args: argparse.Namespace) -> int:
    from ioc_analytics.cost import guard
    from ioc_analytics.devtools import costguard
    from ioc_analytics.settings import get_settings

    volume = args.events_per_day or costguard.PLANNED_EVENTS_PER_DAY
    cutoff = get_settings().bytes_scanned_cutoff
    estimates = costguard.estimate_files(events_per_day=volume)
    findings = guard.check_files() + costguard.check_estimates(estimates, cutoff, volume)
    for finding in findings:
        print(finding)
    print(f"estimated scans on a {costguard.LAKE_DAYS}-day lake of {volume:,} events a day "
          f"(cutoff {cutoff / 2**20:,.0f} MiB):", file=sys.stderr)
    print(f"  {'a query':>13}  {'a day':>13}", file=sys.stderr)
    for estimate in sorted(estimates, key=lambda e: -e.bytes):
        print(f"  {estimate.bytes / 2**20:>9,.1f} MiB  {estimate.day_bytes / 2**20:>9,.1f} MiB  {estimate.path}"
              f"{'  ' + estimate.note if estimate.note else ''}", file=sys.stderr)
    print(f"a day's scheduled scans (the daily SQL once, the hourly SQL 24 times, a sliced state for each "
          f"slice): {costguard.day_total(estimates) / 2**30:,.2f} GiB", file=sys.stderr)
    where = "include/ioc_analytics/sql/"
    print(f"{len(findings)} cost problems in {where}" if findings else f"{where}: no cost problems found",
          file=sys.stderr)
    return 1 if findings else 0


def _setup(args: argparse.Namespace) -> None:
    from ioc_analytics.operations import setup
    from ioc_analytics.settings import get_settings

    print(setup.ensure(get_settings(), today=args.today).render())


def _recover(args: argparse.Namespace) -> int:
    from ioc_analytics.operations import recover
    from ioc_analytics.settings import get_settings

    return 0 if recover.recover(get_settings(), args.days, dry_run=args.dry_run) else 1


def _contract(args: argparse.Namespace) -> None:
    from ioc_analytics.lake import contract

    if args.table:
        table = contract.contract(args.table) if args.table in contract.CONTRACTS else None
        if table is None:
            raise ConfigError(f"no table {args.table!r}; the tables are {', '.join(contract.CONTRACTS)}")
        for column in (*table.columns, *table.partition_keys):
            print(f"{column.name:<24} {column.type:<12} {column.describe()}")
        return
    sys.stdout.write(contract.markdown())


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        commands = {"generate": _generate, "query": _query, "tables": _tables, "quality": _quality, "status": _status,
                    "fault": _fault,
                    "quicksight": _quicksight, "costguard": _costguard, "setup": _setup, "recover": _recover,
                    "contract": _contract}
        return commands[args.command](args) or 0
    except BrokenPipeError:  # `ioc query ... | head`
        return 0
    except IocError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # a folder that cannot be created or written, a full disk
        print(f"error: {err}", file=sys.stderr)
        return 2
    except Exception as err:
        if type(err).__module__.startswith("botocore"):  # the aws backend: credentials, endpoint, access
            print(f"error: AWS: {err} (the aws backend reaches AWS through the Airflow connection "
                  f"IOC_AWS_CONN_ID, aws_default unless set: check its credentials, region and endpoint)",
                  file=sys.stderr)
            return 2
        raise


if __name__ == "__main__":
    sys.exit(main())
