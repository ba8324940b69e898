"""The steps of the daily pipeline, one function per task, backend-agnostic.

DAG files only wire these together; every function takes the resolved settings and the logical
date, and returns a small JSON-able summary that Airflow keeps in XCom.
"""

from __future__ import annotations

import datetime as dt
import io
import logging
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

import pyarrow.csv as pacsv

from ioc_analytics import sql
from ioc_analytics.catalog import load_catalog
from ioc_analytics.engine import get_engine
from ioc_analytics.errors import DataQualityError, FreshnessError
from ioc_analytics.lake import get_lake
from ioc_analytics.settings import Settings

log = logging.getLogger(__name__)


def source_partitions(settings: Settings, day: dt.date) -> dict[str, list[dict[str, str]]]:
    """Every source partition that holds the date's data, by table."""
    catalog = load_catalog(settings.lake_uri, settings.database)
    values = sql.date_values(day)
    events = catalog.table("assessment_events")
    return {
        "assessment_events": [
            {"date": values["lake_date"], "assessment_type": t} for t in events.enum_values("assessment_type")
        ],
        "ocean_scores": [{"year": values["year"], "month": values["month"]}],
    }


def check_freshness(settings: Settings, day: dt.date) -> dict[str, object]:
    """Fail unless each source table has data for the date.

    ``assessment_events`` is fresh when at least one assessment type has a partition with rows
    for the date: a quiet assessment type on a given day is normal and only logged. Rows are
    counted from the Parquet footers, so a file with a schema and no rows is no data.
    """
    catalog = load_catalog(settings.lake_uri, settings.database)
    lake = get_lake(settings)
    lake.check()
    report: dict[str, object] = {}
    problems = []
    for table_name, partitions in source_partitions(settings, day).items():
        table = catalog.table(table_name)
        present, missing = [], []
        for values in partitions:
            files = lake.partition_files(table, values)
            (present if any(lake.row_count(f) > 0 for f in files) else missing).append(values)
        for values in missing:
            log.info("%s: no data yet at %s", table_name, table.partition_location(values))
        report[table_name] = {"present": len(present), "missing": [list(v.values()) for v in missing]}
        if not present:
            where = ", ".join(table.partition_location(v) for v in partitions[:2])
            problems.append(f"{table_name} has no data for {day.isoformat()} (looked in {where}"
                            f"{' ...' if len(partitions) > 2 else ''})")
    if problems:
        raise FreshnessError("; ".join(problems) + ": the upstream export is late or failed")
    return report


def register_partitions(settings: Settings, day: dt.date) -> dict[str, str]:
    """Make the date's source partitions visible to the query engine.

    Tables with partition projection need nothing: Athena computes their partitions from the
    location template, and the local engine lists the lake folder the same way.
    """
    catalog = load_catalog(settings.lake_uri, settings.database)
    engine = get_engine(settings)
    outcome = {}
    for table_name, partitions in source_partitions(settings, day).items():
        table = catalog.table(table_name)
        if table.projection_enabled:
            log.info("%s uses partition projection over %s: nothing to register",
                     table_name, table.location_template)
            outcome[table_name] = "projection"
        else:
            added = engine.register_partitions(table_name, partitions)
            log.info("%s: registered %d partitions %s", table_name, len(added), added)
            outcome[table_name] = f"registered {len(added)}"
    return outcome


def build_aggregate(settings: Settings, day: dt.date, name: str, tags: Mapping[str, str]) -> dict[str, object]:
    """Replace the date's partition of aggregate ``name`` with ``include/sql/<name>.sql``."""
    select = sql.render(name, day)
    stats = get_engine(settings).replace_partition(
        name, {"date": sql.date_values(day)["lake_date"]}, select.sql, select.parameters, tags=tags
    )
    log.info("%s for %s: %s", name, day, stats.summary())
    return stats.as_dict()


def quality_gate(settings: Settings, day: dt.date, name: str, tags: Mapping[str, str]) -> dict[str, bool]:
    """Run ``include/sql/checks/<name>.sql``; fail naming every check that is false."""
    checks_sql = sql.render(f"checks/{name}", day)
    result = get_engine(settings).query(checks_sql.sql, checks_sql.parameters, tags=tags)
    checks = result.table.to_pylist()[0]
    failed = [check for check, passed in checks.items() if not passed]
    if failed:
        raise DataQualityError(
            f"{name} for {day.isoformat()} failed {len(failed)} of {len(checks)} checks: {', '.join(failed)}. "
            f"Nothing of this date is exported; fix the source data and clear the task to re-run."
        )
    log.info("%s for %s passed %d checks", name, day, len(checks))
    return checks


def export_csv(settings: Settings, day: dt.date, name: str, tags: Mapping[str, str]) -> str:
    """Publish ``include/sql/exports/<name>.sql`` as CSV; returns where the file is."""
    export_sql = sql.render(f"exports/{name}", day)
    result = get_engine(settings).query(export_sql.sql, export_sql.parameters, tags=tags)
    buffer = io.BytesIO()
    pacsv.write_csv(result.table, buffer)
    relative = f"{name}/{name}_{day.isoformat()}.csv"
    if settings.exports_root.startswith("s3://"):
        from airflow.providers.amazon.aws.hooks.s3 import S3Hook

        target = f"{settings.exports_root.rstrip('/')}/{relative}"
        S3Hook(aws_conn_id=settings.aws_conn_id).load_bytes(buffer.getvalue(), key=target, replace=True)
    else:
        path = Path(settings.exports_root).expanduser().resolve() / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", delete=False) as tmp:
            tmp.write(buffer.getvalue())
        os.replace(tmp.name, path)
        target = str(path)
    log.info("exported %d rows of %s for %s to %s", result.table.num_rows, name, day, target)
    return target
