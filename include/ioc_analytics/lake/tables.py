"""The tables of the lake by role: what the product writes, and what the daily DAG builds.

Each aggregate has, under ``include/ioc_analytics/sql/``, its DDL (``ddl/<name>.sql``), its query
(``<name>.sql``) and its checks (``checks/<name>.sql``); ``tests/unit/test_sql_files.py`` holds them
to that. Kept apart from the rest of the package because DAG files import it at parse time.
"""

#: The tables that arrive from IOC's product (and from ``ioc generate``), with partition projection.
RAW_TABLES = ("assessment_events", "ocean_scores")

#: The aggregate tables the daily DAG builds, in the order it shows them, each with the raw tables
#: it reads (its build waits for those only).
AGGREGATES = {
    "daily_active_users": ("assessment_events",),
    "completion_rates": ("assessment_events",),
    "user_breakdowns": ("assessment_events",),
    "assessment_funnel": ("assessment_events", "ocean_scores"),
    "ocean_trait_percentiles": ("ocean_scores",),
    "facet_summary": ("ocean_scores",),
    "dark_side_summary": ("ocean_scores",),
}

#: The hourly metric tables (the guide's scheduled Lambda queries) that the hourly DAG builds, one
#: partition per UTC hour, each from ``include/ioc_analytics/sql/hourly/<name>.sql``, with the raw tables it reads.
HOURLY = {
    "user_growth_hourly": ("assessment_events",),
    "platform_performance": ("assessment_events",),
    "assessment_quality": ("assessment_events", "ocean_scores"),
}

#: For the aggregates that break people down by an attribute: the column counting the distinct
#: users behind each row. Rows with fewer than ``IOC_MIN_GROUP_USERS`` are suppressed in every
#: export and API answer (publishing/exports.py). The others (the day's totals, a facet over everyone) are
#: not breakdowns of people.
BREAKDOWN_USERS = {
    "completion_rates": "users",
    "user_breakdowns": "users",
    "assessment_funnel": "users",
    "ocean_trait_percentiles": "users",
}

#: The state tables (``ioc_analytics.analytics.state``): compact tables derived from one raw table,
#: so that a day's build reads one day of raw data whatever its look-back. Each with the raw table
#: it derives from and its chain: ``"rolling"`` (each day from the day before, over the 30-day
#: look-back), ``"month"`` (each day from the day before, within the month), or None (each day
#: from its own day alone).
STATES = {
    "user_activity": ("assessment_events", "rolling"),
    "month_users": ("ocean_scores", "month"),
    "score_digest": ("ocean_scores", None),
    "facet_moments": ("ocean_scores", None),
}

#: Which state tables an aggregate or hourly metric reads, and for which days of its own day's:
#: ``"day"``, ``"day_before"`` or ``"month_to_date"`` (each day of the month up to it).
STATE_READS = {
    "daily_active_users": (("user_activity", "day"),),
    "ocean_trait_percentiles": (("score_digest", "month_to_date"), ("month_users", "day")),
    "facet_summary": (("facet_moments", "day"),),
    "user_growth_hourly": (("user_activity", "day_before"),),
}
