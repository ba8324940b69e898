"""The steps of the daily pipeline, one function per task, backend-agnostic.

DAG files only wire these together; every function takes the resolved settings and the logical
date, and returns a small JSON-able summary that Airflow keeps in XCom.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field

from ioc_analytics.analytics import state
from ioc_analytics.backends import get_backend
from ioc_analytics.errors import BadDataFileError, ConfigError, DataQualityError
from ioc_analytics.lake import contract, partitions, sources, sql
from ioc_analytics.settings import Settings

log = logging.getLogger(__name__)

#: How many days back partition repair compares the lake with the catalog.
REPAIR_WINDOW_DAYS = 31


@dataclass
class Freshness:
    """Which of a source table's partitions hold rows of a day."""

    table: str
    day: dt.date
    present: list[dict[str, str]] = field(default_factory=list)
    missing: list[dict[str, str]] = field(default_factory=list)
    #: Where the missing partitions were looked for.
    locations: list[str] = field(default_factory=list)
    #: Partitions that must hold rows (the others are optional).
    required: list[dict[str, str]] = field(default_factory=list)

    @property
    def fresh(self) -> bool:
        """Every required partition, and at least one partition, holds rows."""
        return bool(self.present) and all(values in self.present for values in self.required)

    def as_dict(self) -> dict[str, object]:
        return {"table": self.table, "day": self.day.isoformat(), "present": self.present, "missing": self.missing}


def freshness(settings: Settings, day: dt.date, table_name: str) -> Freshness:
    """Which of ``table_name``'s partitions hold rows of ``day``, from the Parquet footers alone.

    A file with a schema and no rows is no data. A partition coarser than a day (``ocean_scores``
    by month) holds the day when some row group's ``timestamp`` statistics reach into it. Reads
    the lake itself (S3 on ``aws``): the raw tables use partition projection, so Glue has no
    partitions of theirs to ask about.
    """
    backend = get_backend(settings)
    table, lake = backend.catalog.table(table_name), backend.lake
    lake.check()
    wanted = sources.source_partitions(settings, day)[table_name]
    report = Freshness(table_name, day, required=sources.required_partitions(settings, day, table_name))
    by_timestamp = "date" not in table.partition_names
    for values in wanted:
        rows = 0
        for file in lake.partition_files(table, values):
            try:
                meta = lake.footer(file)
            except BadDataFileError as err:
                # Something has landed; whether it is good is the data-quality gate's to say, in
                # full, so the sensor does not stop on it.
                log.warning("%s: %s; the data-quality gate will report it", table_name, err)
                rows += 1
                continue
            rows += sources.rows_on(meta, day) if by_timestamp else meta.num_rows
        if rows > 0:
            report.present.append(values)
        else:
            report.missing.append(values)
            report.locations.append(table.partition_location(values))
    return report


def late_message(report: Freshness) -> str:
    """What is missing: every partition if none holds the day, else the required ones that don't."""
    missing = report.missing if not report.present else [v for v in report.required if v not in report.present]
    where = [report.locations[report.missing.index(v)] for v in missing]
    listed = ", ".join(where[:2]) + (" ..." if len(where) > 2 else "")
    what = "no data" if not report.present else "no data in its required partitions"
    return f"{report.table} has {what} for {report.day.isoformat()} (looked in {listed})"


def repair_partitions(settings: Settings, day: dt.date, window_days: int = REPAIR_WINDOW_DAYS) -> dict[str, object]:
    """Make the catalog's partitions of every table without projection agree with the lake, for
    the ``window_days`` days up to ``day`` (see :func:`ioc_analytics.lake.partitions.repair`).

    Tables with partition projection need nothing: Athena computes their partitions from the
    location template, and the local engine lists the lake folders the same way.
    """
    backend = get_backend(settings)
    catalog, lake, registry = backend.catalog, backend.lake, backend.registry
    dates = [(day - dt.timedelta(days=n)).strftime("%Y/%m/%d") for n in range(window_days)]
    outcome: dict[str, object] = {}
    for table in catalog.tables.values():
        if table.projection_enabled:
            log.info("%s uses partition projection over %s: nothing to repair", table.name, table.location_template)
            outcome[table.name] = "projection"
            continue
        report = partitions.repair(lake, registry, table, _window(table, dates))
        log.info("%s", report.summary())
        for kind in ("added", "repointed", "stale"):
            for values in getattr(report, kind):
                log.info("%s %s: %s", table.name, kind, values)
        for location in report.incomplete:
            log.warning("%s: uncommitted version at %s (a failed, running or rolled-back build); "
                        "repair deletes it once it is a day old", table.name, location)
        outcome[table.name] = {"added": report.added, "repointed": report.repointed, "stale": report.stale,
                               "incomplete": len(report.incomplete)}
    outcome["stale_aggregates"] = _stale_aggregates(settings, day)
    return outcome


#: The days before a run's own whose aggregates it checks for staleness (each checked against
#: every source it reads, however far back: a day delivered again shows in the days that read it).
STALE_CHECK_DAYS = 7


def _stale_aggregates(settings: Settings, day: dt.date) -> dict[str, dict[str, list[str]]]:
    """The aggregates of the days before ``day`` built before a source they read was written
    (see :mod:`ioc_analytics.operations.status`), each said in the log; by day."""
    from ioc_analytics.operations import status

    found = status.stale(settings, [day - dt.timedelta(days=n) for n in range(1, STALE_CHECK_DAYS + 1)])
    for stale_day, names in sorted(found.items()):
        log.warning("stale: %s", status.describe(stale_day, list(names), sorted({f for fs in names.values()
                                                                                   for f in fs})))
    if found:
        log.warning("%s", status.RERUN)
    return {d.isoformat(): names for d, names in sorted(found.items())}


def _window(table, dates: list[str]) -> list[dict[str, str]]:
    """The partitions of ``dates``: one per day, or 24 per day for the hourly tables."""
    if table.partition_names == ("date",):
        return [{"date": d} for d in dates]
    if table.partition_names == ("date", "hour"):
        return [{"date": d, "hour": f"{h:02d}"} for d in dates for h in range(24)]
    raise ConfigError(f"{table.name} is partitioned by {', '.join(table.partition_names)}: repair knows "
                      "tables partitioned by date, or by date and hour")


def build_aggregate(settings: Settings, day: dt.date, name: str, tags: Mapping[str, str]) -> dict[str, object]:
    """Replace the date's partition of aggregate ``name`` with ``include/ioc_analytics/sql/<name>.sql``,
    after making current the state it reads (:mod:`ioc_analytics.analytics.state`)."""
    built = state.ensure(settings, name, day, tags)
    if built:
        log.info("%s for %s: state derived first: %s", name, day, ", ".join(built))
    select = sql.render(name, day)
    stats = get_backend(settings).engine.replace_partition(
        name, {"date": sql.date_values(day)["lake_date"]}, select.sql, select.parameters, tags=tags
    )
    log.info("%s for %s: %s", name, day, stats.summary())
    return stats.as_dict()


def build_hourly(settings: Settings, hour: dt.datetime, name: str, tags: Mapping[str, str]) -> dict[str, object]:
    """Replace the hour's partition of hourly metric ``name`` with ``include/ioc_analytics/sql/hourly/<name>.sql``,
    then hold it to its data contract (rolled back if it breaks it).

    An hour without sessions (a quiet night) is a partition without rows, not an error; an hour
    whose day the lake does not hold yet fails (NoDataError): the source has not landed.
    """
    values = sql.hour_values(hour)
    built = state.ensure(settings, name, dt.date.fromisoformat(str(values["ds"])), tags)
    if built:
        log.info("%s for %s %s:00: state derived first: %s", name, values["ds"], values["hour"], ", ".join(built))
    select = sql.render_with(f"hourly/{name}", values)
    partition = {"date": values["lake_date"], "hour": values["hour"]}
    stats = get_backend(settings).engine.replace_partition(name, partition, select.sql, select.parameters, tags=tags)
    _hold_to_contract(settings, name, partition, f"{values['ds']} {values['hour']}:00")
    log.info("%s for %s %s:00: %s", name, values["ds"], values["hour"], stats.summary())
    return stats.as_dict()


def _breaches(settings: Settings, table, partition: Mapping[str, str]) -> list[contract.Breach]:
    """The contract's breaches of the registered version of a derived table's partition, read from
    its files (none if no version is registered)."""
    backend = get_backend(settings)
    location = backend.registry.location(table, dict(partition))
    if location is None:
        return []
    return contract.check_rows(table.name, partitions.read_location(backend.lake, table, location), partition)


def _hold_to_contract(settings: Settings, name: str, partition: Mapping[str, str], when: str) -> None:
    """Fail naming each error-level breach of a built partition, after rolling it back; log the
    warnings."""
    table = get_backend(settings).catalog.table(name)
    found = _breaches(settings, table, partition)
    for breach in found:
        if breach.rule.severity != contract.ERROR:
            log.warning("%s for %s: %s", name, when, breach.describe())
    errors = [b for b in found if b.rule.severity == contract.ERROR]
    if errors:
        raise DataQualityError(
            f"{name} for {when} breaks its data contract: " + "; ".join(b.describe() for b in errors)
            + f". The partition was rolled {_roll_back(settings, table, partition)}; the source data let it "
            "through: check the source's quality report (`ioc quality`), fix it, then clear this task.")


def _roll_back(settings: Settings, table, partition: Mapping[str, str]) -> str:
    """Take back a partition that failed (:func:`partitions.roll_back`); where it now stands, in words."""
    backend = get_backend(settings)
    now = partitions.roll_back(backend.lake, backend.registry, table, partition)
    return f"back to its earlier version {now}" if now else "to no data (there was no earlier version)"


def validate_source(settings: Settings, day: dt.date, table_name: str) -> dict[str, object]:
    """Run the raw table's data-quality suite on the day and gate on it (see :mod:`ioc_analytics.quality`)."""
    from ioc_analytics import quality  # imports Great Expectations (seconds): only in these tasks

    return quality.gate(quality.validate_source(settings, day, table_name))


def quality_gate(settings: Settings, day: dt.date, name: str, tags: Mapping[str, str]) -> dict[str, bool]:
    """Hold the day's partition of aggregate ``name`` to ``include/ioc_analytics/sql/checks/<name>.sql`` and to
    its data contract, keep the result as the aggregate's quality report, and fail naming every
    error, after rolling the partition back (:func:`ioc_analytics.lake.partitions.roll_back`), so that
    readers never keep a day that failed."""
    from ioc_analytics import quality

    checks_sql = sql.render(f"checks/{name}", day)
    result = get_backend(settings).engine.query(checks_sql.sql, checks_sql.parameters, tags=tags)
    checks = result.table.to_pylist()[0]
    table = get_backend(settings).catalog.table(name)
    partition = {"date": sql.date_values(day)["lake_date"]}
    report = quality.keep_checks(settings, day, name, checks, _breaches(settings, table, partition),
                                 f"date={partition['date']}")
    for warning in report.warnings:
        log.warning("%s for %s: %s", name, day, warning.describe())
    if report.errors:
        raise DataQualityError(
            f"{name} for {day.isoformat()} failed {len(report.errors)} of {report.evaluated} checks: "
            f"{'; '.join(f.describe() for f in report.errors)}. The partition was rolled "
            f"{_roll_back(settings, table, partition)} and nothing of it is exported; fix the source data, then "
            "clear the build task to re-run."
        )
    log.info("%s for %s passed %d checks", name, day, report.evaluated)
    return checks
