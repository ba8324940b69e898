"""Which partitions of the raw tables hold a day's data, and how many of a file's rows fall in a
day, from the Parquet footers alone (the freshness sensors, the quality gate and the builds share
these)."""

from __future__ import annotations

import datetime as dt

import pyarrow.parquet as pq

from ioc_analytics.errors import ConfigError
from ioc_analytics.lake import sql
from ioc_analytics.lake.catalog import load_catalog
from ioc_analytics.settings import Settings


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


def required_partitions(settings: Settings, day: dt.date, table_name: str) -> list[dict[str, str]]:
    """The source partitions the day cannot be computed without: the assessment types in
    ``IOC_REQUIRED_ASSESSMENT_TYPES``, and the month of ``ocean_scores``."""
    wanted = source_partitions(settings, day)[table_name]
    required_types = {t.strip() for t in settings.required_assessment_types.split(",") if t.strip()}
    unknown = required_types - {v.get("assessment_type") for v in wanted}
    if table_name == "assessment_events" and unknown:
        raise ConfigError(f"IOC_REQUIRED_ASSESSMENT_TYPES names {', '.join(sorted(unknown))}, which are not "
                          f"assessment types: use some of {', '.join(v['assessment_type'] for v in wanted)}")
    return [v for v in wanted if "assessment_type" not in v or v["assessment_type"] in required_types]


def rows_on(meta: pq.FileMetaData, day: dt.date) -> int:
    """Rows in the row groups whose ``timestamp`` range overlaps ``day`` (all rows if the file
    has no timestamp statistics: then the footer cannot tell, and the file counts)."""
    start = dt.datetime.combine(day, dt.time())
    return rows_between(meta, start, start + dt.timedelta(days=1))


def rows_between(meta: pq.FileMetaData, start: dt.datetime, end: dt.datetime) -> int:
    """Rows in the row groups whose ``timestamp`` range overlaps [start, end), as :func:`rows_on`."""
    rows = 0
    for g in range(meta.num_row_groups):
        group = meta.row_group(g)
        stats = next((group.column(c).statistics for c in range(group.num_columns)
                      if group.column(c).path_in_schema == "timestamp"), None)
        if stats is None or not stats.has_min_max or not isinstance(stats.min, dt.datetime):
            rows += group.num_rows  # no statistics, or not of a timestamp (a retyped column): it counts
        elif _naive_utc(stats.min) < end and _naive_utc(stats.max) >= start:
            rows += group.num_rows
    return rows


def _naive_utc(moment: dt.datetime) -> dt.datetime:
    """A timestamp statistic as naive UTC (files written with UTC-adjusted timestamps give aware ones)."""
    return moment.astimezone(dt.UTC).replace(tzinfo=None) if moment.tzinfo else moment
