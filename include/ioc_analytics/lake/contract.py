"""The data contract: what a valid row of every table is, declared once.

Each table of the lake has one :class:`TableContract` in :data:`CONTRACTS`: for every column its
type, whether it may be null, its domain (a numeric range, in which NaN and ±Infinity never lie;
an allowed vocabulary for a label; a pattern for an id; a map's key set and its values' domains;
a timestamp inside its partition), which keys are unique, and the severity of a breach:

- ``error``: the day of the table stops (its aggregates are not built, nothing is exported);
- ``warning``: reported and kept in the day's report; the day is built and exported.

Every other part reads it:

- the raw tables' Great Expectations suites are generated from it (``ioc_analytics.quality``): one
  expectation per column and unique key (:func:`checks`), no list of expectations kept beside it;
- the derived tables (aggregates, hourly metrics, cost tables) are held to it after they are
  built, by the same rules run on DuckDB (:func:`check_rows`);
- the footer checks accept a file's column when its Parquet type reads as the declared one
  (:func:`accepts`);
- the synthetic generator draws its vocabularies from here;
- ``docs/data-contract.md`` is generated from it (:func:`markdown`, ``ioc contract``), and the
  Glue columns carry each column's contract as their comment;
- ``tests/unit/test_contract.py`` holds it, the DDL under ``include/ioc_analytics/sql/ddl/`` and the Glue table
  definitions to each other.

A breach is reported in the contract's words: the table, the partition, the column, the class of
breach (:data:`BREACHES`), how many rows, and a few of them.

Why the rules are SQL written here rather than GX's own expectations: GX's range and set
expectations cannot tell NaN from a value out of range, and have no regular expressions on DuckDB;
a rule per (column, class) gives each breach its own class, count and samples, and one query per
column (:class:`Check`) evaluates all of its rules in one pass. The same queries run under GX for
the raw tables and directly on DuckDB for the small derived partitions, which need no GX import in
their tasks.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlglot import exp

from ioc_analytics import safety

ERROR, WARNING = "error", "warning"
SEVERITIES = (ERROR, WARNING)

# -- the classes of breach, in the words of every report ---------------------------------------

NULL = "null"
NAN = "NaN"
OUT_OF_RANGE = "out of range"
UNKNOWN_LABEL = "unknown label"
UNSAFE_TEXT = "unsafe text"
PATTERN = "pattern"
MISSING_MAP_KEY = "missing map key"
UNKNOWN_MAP_KEY = "unknown map key"
DUPLICATE_MAP_KEY = "duplicate map key"
DUPLICATE_KEY = "duplicate key"
TYPE = "type"
MISSING_COLUMN = "missing column"
UNEXPECTED_COLUMN = "unexpected column"
NOT_PARQUET = "not Parquet"
NO_ROWS = "no rows"
VOLUME = "volume"
UNKNOWN_PARTITION = "unknown partition"
EARLIER_DAY = "earlier day failed"
INVARIANT = "invariant"

#: The classes about a day rather than its rows: a later day that reads the day reads no bad row
#: from them, so they do not stop it (the look-back rule, ioc_analytics.quality.reports).
DAY_LEVEL = frozenset({"no rows", "volume", "unknown partition", "earlier day failed"})

#: Each class and what it means.
BREACHES = {
    NULL: "a null where the column may not be null",
    NAN: "NaN in a number (it compares above every number and poisons averages and percentiles)",
    OUT_OF_RANGE: "a value outside the column's range (±Infinity is always outside), or a timestamp "
                  "outside its partition",
    UNKNOWN_LABEL: "a label outside the column's vocabulary",
    UNSAFE_TEXT: "text a spreadsheet would evaluate (a leading =, +, -, @, tab or CR, after spaces too) or "
                 "that holds a control or invisible formatting character",
    PATTERN: "an id that does not match the id pattern",
    MISSING_MAP_KEY: "a map without one of its declared keys",
    UNKNOWN_MAP_KEY: "a map with a key it does not declare",
    DUPLICATE_MAP_KEY: "a map holding one key twice",
    DUPLICATE_KEY: "a unique key held by more than one row of the day (across files and partitions)",
    TYPE: "a file's column whose Parquet type does not read as the declared type",
    MISSING_COLUMN: "a file without a declared column",
    UNEXPECTED_COLUMN: "a file with a column the table does not declare",
    NOT_PARQUET: "a data file that is not readable Parquet",
    NO_ROWS: "a partition without rows",
    VOLUME: "the day's rows far from the same weekday of the last 4 weeks",
    UNKNOWN_PARTITION: "files in a folder that no engine reads (an assessment type the layout does not know)",
    EARLIER_DAY: "an earlier day that this day's aggregates read failed its own checks",
    INVARIANT: "an aggregate that disagrees with its sources (include/ioc_analytics/sql/checks/<table>.sql)",
}

# -- vocabularies: what IOC's product sends ------------------------------------------------------

ASSESSMENT_TYPES = ("personality", "personality_quick", "leadership", "team_dynamics", "career")
DEVICES = ("desktop", "mobile", "tablet")
PLATFORMS = ("web", "ios", "android")
VERSIONS = ("2.3.0", "2.3.1", "2.4.0")
INDUSTRIES = ("Technology", "Finance", "Healthcare", "Education", "Retail", "Manufacturing",
              "Government", "Consulting")
ROLES = ("Individual Contributor", "Team Lead", "Manager", "Director", "Executive")
EXPERIENCE_LEVELS = ("0-2 years", "3-5 years", "6-10 years", "11-20 years", "20+ years")
REGIONS = ("North America", "Europe", "Asia Pacific", "Latin America", "Middle East & Africa")
AGE_RANGES = ("18-24", "25-34", "35-44", "45-54", "55-64", "65+")
TRAITS = ("openness", "conscientiousness", "extraversion", "agreeableness", "neuroticism")
FACETS = {
    "openness": ("fantasy", "aesthetics", "feelings", "actions", "ideas", "values"),
    "conscientiousness": ("competence", "order", "dutifulness", "achievement_striving", "self_discipline",
                          "deliberation"),
    "extraversion": ("warmth", "gregariousness", "assertiveness", "activity", "excitement_seeking",
                     "positive_emotions"),
    "agreeableness": ("trust", "straightforwardness", "altruism", "compliance", "modesty", "tender_mindedness"),
    "neuroticism": ("anxiety", "angry_hostility", "depression", "self_consciousness", "impulsiveness",
                    "vulnerability"),
}
FACET_KEYS = tuple(f"{trait}.{facet}" for trait in TRAITS for facet in FACETS[trait])
DARK_SIDE_INDICATORS = ("excitable", "skeptical", "cautious", "reserved", "leisurely", "bold", "mischievous",
                        "colorful", "imaginative", "diligent", "dutiful")
#: A session longer than this is a clock or tracking fault (4 hours).
MAX_COMPLETION_TIME_S = 4 * 3600


# -- domains ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Range:
    """Numbers from ``low`` to ``high`` inclusive (``None``: unbounded). For doubles, NaN and
    ±Infinity are never in range."""

    low: float | None = None
    high: float | None = None

    def describe(self) -> str:
        if self.low is None and self.high is None:
            return "any number"
        if self.high is None:
            return f">= {self.low:g}"
        if self.low is None:
            return f"<= {self.high:g}"
        return f"{self.low:g} to {self.high:g}"


@dataclass(frozen=True)
class Labels:
    """A vocabulary; ``unknown`` is the severity of a label outside it (a new value may be a
    business event rather than bad data)."""

    values: tuple[str, ...]
    unknown: str = ERROR

    def describe(self) -> str:
        return "one of " + ", ".join(self.values)


@dataclass(frozen=True)
class Pattern:
    """Text that ``regex`` matches whole, as DuckDB's RE2 reads it (``\\d`` is ASCII digits only)."""

    regex: str
    meaning: str

    def describe(self) -> str:
        return self.meaning


@dataclass(frozen=True)
class Text:
    """Text with no vocabulary. ``safe``: it must not be text a spreadsheet evaluates (a label, an
    id); free text (a query, an error message) may hold anything, and is neutralised where it is
    exported."""

    safe: bool = True

    def describe(self) -> str:
        return "text" if self.safe else "free text (neutralised in spreadsheet exports)"


@dataclass(frozen=True)
class InPartition:
    """A timestamp inside its partition: the day of ``date``, or the month of ``year``/``month``."""

    def describe(self) -> str:
        return "inside its partition's period"


@dataclass(frozen=True)
class MapOf:
    """A map with exactly ``keys``; its values in ``values`` (a range, or one per struct field)."""

    keys: tuple[str, ...]
    values: Range | Mapping[str, Range]

    def describe(self) -> str:
        values = (self.values.describe() if isinstance(self.values, Range)
                  else ", ".join(f"{k} {r.describe()}" for k, r in self.values.items()))
        keys = ", ".join(self.keys[:3]) + (", ..." if len(self.keys) > 3 else "")
        return f"exactly the {len(self.keys)} keys {keys}, each once; values {values}"


Domain = Range | Labels | Pattern | Text | InPartition | MapOf

#: Opaque ids: a letter or digit, then letters, digits and ``_ . : -``; never a formula.
ID = Pattern(r"[A-Za-z0-9][A-Za-z0-9_.:\-]{0,127}", "an id: a letter or digit, then letters, digits, _ . : - "
                                                    "(at most 128)")
LAKE_DATE = Pattern(r"\d{4}/\d{2}/\d{2}", "a date as YYYY/MM/DD")
COUNT = Range(0, None)
SHARE = Range(0, 1)
SCORE = Range(0, 100)
SECONDS = Range(0, MAX_COMPLETION_TIME_S)


@dataclass(frozen=True)
class Column:
    name: str
    type: str  #: Athena's type, as Glue stores it (``string``, ``map<string,double>``)
    domain: Domain | None = None
    nullable: bool = False
    #: The severity of a null, a NaN, a value out of its range or pattern. (An unsafe text and a
    #: wrong type are always errors; a label's unknown value has its vocabulary's severity.)
    severity: str = ERROR
    why: str = ""

    def describe(self) -> str:
        """The column's contract in one line (the Glue column comment, the docs table)."""
        parts = [self.domain.describe()] if self.domain else []
        if self.type == "double" or (self.type.startswith("map<") and "double" in self.type):
            parts.append("never NaN or ±Infinity")
        if self.type == "string" and not (isinstance(self.domain, Text) and not self.domain.safe):
            parts.append("never formula-like or with control characters (error)")
        parts.append("may be null" if self.nullable else "not null")
        text = "; ".join(parts)
        if isinstance(self.domain, Labels) and self.domain.unknown != self.severity:
            text += f"; an unknown label is a {self.domain.unknown}"
        return text + f" ({self.severity})"


@dataclass(frozen=True)
class TableContract:
    name: str
    columns: tuple[Column, ...]
    partition_keys: tuple[Column, ...]
    #: Keys no two rows of a partition (a day of a raw table) may share.
    unique: tuple[tuple[str, ...], ...] = ()
    #: Where the contract is enforced.
    enforced_by: str = ""
    why: str = ""

    def column(self, name: str) -> Column:
        for column in (*self.columns, *self.partition_keys):
            if column.name == name:
                return column
        raise KeyError(f"{self.name} declares no column {name!r}")

    @property
    def row_id(self) -> tuple[str, ...]:
        """The columns that name a row in samples: the first unique key."""
        return self.unique[0] if self.unique else ()


# -- the declarations -------------------------------------------------------------------------

_USER = Column("anonymous_user_id", "string", ID, why="every user count, and the 30-day look-back, keys on it")
_INDUSTRY = Column("industry", "string", Labels(INDUSTRIES, unknown=WARNING), severity=WARNING,
                   why="a new industry is a business event (a new kind of customer): reported, built, exported as "
                       "text; ocean_trait_percentiles gives it its own row")
_ROLE = Column("role", "string", Labels(ROLES, unknown=WARNING), severity=WARNING,
               why="job titles change with the customers: a new role is reported, built and exported")
_EXPERIENCE = Column("experience", "string", Labels(EXPERIENCE_LEVELS),
                     why="fixed bands of the sign-up form: another band would split user_breakdowns silently")
_REGION = Column("region", "string", Labels(REGIONS, unknown=WARNING), severity=WARNING,
                 why="a new market is news, not bad data")
_ASSESSMENT_TYPE = Column("assessment_type", "string", Labels(ASSESSMENT_TYPES),
                          why="the partition layout (the DDL's projection enum) knows these only")
_LAKE_DATE = Column("date", "string", LAKE_DATE, why="the partition of the day")

_RAW = "validate_<table> (Great Expectations on DuckDB)"
_DAILY = "<table>.check (DuckDB over the built partition)"
_HOURLY = "the hourly build (DuckDB over the built hour)"
_COSTS = "the cost monitor, before it writes"
#: An anomaly the cost monitor (daily) or its hourly watch flagged.
_ANOMALY = (
    Column("workgroup", "string", Text(), why="the workgroup"),
    Column("kind", "string", Text(), why="the detector that flagged it"),
    Column("alerted", "boolean", why="whether this run alerted on-call"),
    Column("value", "double", Range(0, None), why="what was measured"),
    Column("baseline", "double", Range(0, None), nullable=True, why="null where the kind has none"),
    Column("threshold", "double", Range(0, None), why="the line it crossed"),
    Column("summary", "string", Text(safe=False), why="the alert's text"),
    Column("explanation", "string", Text(safe=False), why="the alert's explanation"),
)
_STATE = "nothing reads its rows to check them: it is re-derived whenever its sources change"
_STATE_WHY = "derived state (ioc_analytics.analytics.state), read by the builds, never exported"


def _aggregate(name: str, columns: tuple[Column, ...], unique: tuple[tuple[str, ...], ...] = (),
               partition_keys: tuple[Column, ...] = (_LAKE_DATE,), enforced_by: str = _DAILY,
               why: str = "") -> TableContract:
    return TableContract(name, columns, partition_keys, unique, enforced_by, why)


def _counts(*names: str, why: str = "") -> tuple[Column, ...]:
    return tuple(Column(n, "bigint", COUNT, why=why) for n in names)


#: The rate and time of sessions that completion_rates and platform_performance both give.
_COMPLETION = (
    Column("completion_rate", "double", SHARE, why="a share of sessions"),
    Column("avg_completion_time_s", "double", SECONDS, nullable=True,
           why="null when no session of the group completed"),
)
_PERCENTILES = tuple(Column(f"{trait}_p{p}", "double", SCORE, why="traits are on 0-100")
                     for trait in TRAITS for p in (25, 50, 75))
_HOUR = Column("hour", "string", Pattern(r"\d{2}", "an hour as HH"), why="the partition of the hour")

CONTRACTS: dict[str, TableContract] = {t.name: t for t in (
    TableContract(
        "assessment_events",
        (
            _USER,
            Column("session_id", "string", ID, why="a session counted twice doubles its completion"),
            Column("assessment_id", "string", ID, why="joins an event to its scores"),
            Column("timestamp", "timestamp", InPartition(),
                   why="a row outside its partition's day would be counted on the wrong day"),
            Column("version", "string", Labels(VERSIONS, unknown=WARNING), severity=WARNING,
                   why="a new app release is news, not bad data; nothing is aggregated by it"),
            Column("completion_time", "int", SECONDS, nullable=True,
                   why="0 or null for an abandoned session; past 4 hours it is a clock or tracking fault"),
            Column("device", "string", Labels(DEVICES),
                   why="completion_rates and the dashboards break down by it: a new device is a product "
                       "decision, not a new row"),
            Column("platform", "string", Labels(PLATFORMS), why="platform_performance breaks down by it"),
            Column("age_range", "string", Labels(AGE_RANGES),
                   why="fixed bands of the sign-up form; another band (an age under 18) is a privacy matter"),
            _INDUSTRY, _ROLE, _EXPERIENCE, _REGION,
        ),
        (_LAKE_DATE, _ASSESSMENT_TYPE),
        unique=(("session_id",), ("assessment_id",)),
        enforced_by=_RAW,
        why="one row per assessment session",
    ),
    TableContract(
        "ocean_scores",
        (
            _USER,
            Column("assessment_id", "string", ID, why="one score set per assessment"),
            Column("timestamp", "timestamp", InPartition(),
                   why="the day a score set belongs to (the month's partition holds the days)"),
            *(Column(trait, "double", SCORE, why="OCEAN traits are on 0-100; a NaN poisons every percentile")
              for trait in TRAITS),
            Column("consistency", "double", SHARE, why="the reliability flag reads it (>= 0.7)"),
            Column("completeness", "double", SHARE, why="the reliability flag reads it (>= 0.9)"),
            Column("facets", "map<string,struct<score:double,responses:int,std_dev:double>>",
                   MapOf(FACET_KEYS, {"score": SCORE, "responses": Range(1, None), "std_dev": Range(0, None)}),
                   why="the 30 NEO facets, six per trait; facet_summary averages them"),
            Column("dark_side_indicators", "map<string,double>", MapOf(DARK_SIDE_INDICATORS, SCORE),
                   why="the eleven derailers' risk on 0-100; dark_side_summary averages them"),
            _INDUSTRY, _ROLE, _EXPERIENCE,
        ),
        (Column("year", "string", Pattern(r"\d{4}", "a year as YYYY"), why="the partition of the month"),
         Column("month", "string", Pattern(r"\d{2}", "a month as MM"), why="the partition of the month")),
        unique=(("assessment_id",),),
        enforced_by=_RAW + ", on the day's rows",
        why="one row per scored assessment",
    ),
    _aggregate("daily_active_users", _counts("unique_users", "total_sessions", "completed_sessions",
                                             "returning_users", why="counts")),
    _aggregate("completion_rates", (
        Column("device", "string", Labels(DEVICES), why="the raw table's devices"),
        Column("assessment_type", "string", Labels(ASSESSMENT_TYPES), why="the raw table's types"),
        *_counts("users", "total_sessions", "completed_sessions", why="counts"),
        *_COMPLETION,
    ), unique=(("device", "assessment_type"),)),
    _aggregate("user_breakdowns", (
        Column("dimension", "string", Labels(("region", "role", "experience")), why="the three breakdowns"),
        Column("value", "string", Text(), nullable=True,
               why="a region, role or experience label (null where the source had none)"),
        *_counts("users", "sessions", "completed_sessions", why="counts"),
        Column("completion_rate", "double", SHARE, why="a share of sessions"),
    ), unique=(("dimension", "value"),)),
    _aggregate("assessment_funnel", (
        Column("assessment_type", "string", Labels(ASSESSMENT_TYPES), why="the raw table's types"),
        *_counts("users", "started", "completed", "scored", "reliable", why="counts"),
    ), unique=(("assessment_type",),)),
    _aggregate("ocean_trait_percentiles", (
        Column("month", "string", Pattern(r"\d{4}/\d{2}", "a month as YYYY/MM"), why="the month to date"),
        Column("industry", "string", Labels(INDUSTRIES, unknown=WARNING), nullable=True, severity=WARNING,
               why="the raw table's industries; a new one gets its own row"),
        *_counts("assessments", "users", why="counts"),
        *_PERCENTILES,
    ), unique=(("industry",),)),
    _aggregate("facet_summary", (
        Column("facet", "string", Labels(FACET_KEYS), why="the 30 NEO facets"),
        Column("trait", "string", Labels(TRAITS), why="the facet's trait"),
        *_counts("assessments", why="counts"),
        Column("avg_score", "double", SCORE, why="facet scores are on 0-100"),
        Column("stddev_score", "double", Range(0, None), nullable=True, why="null for a single assessment"),
        Column("avg_responses", "double", Range(1, None), why="at least one response per facet"),
    ), unique=(("facet",),)),
    _aggregate("dark_side_summary", (
        Column("indicator", "string", Labels(DARK_SIDE_INDICATORS), why="the eleven derailers"),
        *_counts("assessments", why="counts"),
        Column("avg_risk", "double", SCORE, why="risks are on 0-100"),
        *_counts("high_risk_assessments", why="counts"),
        Column("high_risk_share", "double", SHARE, why="a share of assessments"),
    ), unique=(("indicator",),)),
    _aggregate("user_growth_hourly", _counts("active_users", "sessions", "new_users", "users_so_far_today",
                                             why="counts"),
               partition_keys=(_LAKE_DATE, _HOUR), enforced_by=_HOURLY),
    _aggregate("platform_performance", (
        Column("platform", "string", Labels(PLATFORMS), why="the raw table's platforms"),
        Column("device", "string", Labels(DEVICES), why="the raw table's devices"),
        *_counts("sessions", "completed_sessions", why="counts"),
        *_COMPLETION,
        Column("p95_completion_time_s", "double", SECONDS, nullable=True,
               why="null when no session of the group completed"),
    ), unique=(("platform", "device"),), partition_keys=(_LAKE_DATE, _HOUR), enforced_by=_HOURLY),
    _aggregate("assessment_quality", (
        Column("assessment_type", "string", Labels(ASSESSMENT_TYPES), why="the raw table's types"),
        *_counts("completed_sessions", "scored", why="counts"),
        Column("avg_consistency", "double", SHARE, nullable=True, why="null when none of the hour's is scored"),
        Column("avg_completeness", "double", SHARE, nullable=True, why="null when none of the hour's is scored"),
        *_counts("reliable", why="counts"),
    ), unique=(("assessment_type",),), partition_keys=(_LAKE_DATE, _HOUR), enforced_by=_HOURLY),
    _aggregate("user_activity", (
        Column("anonymous_user_id", "string", ID, why="one row per user active in the 30 days"),
        Column("last_active", "string", LAKE_DATE, why="the day the user was last active, in the 30 days"),
        Column("previous_active", "string", LAKE_DATE, nullable=True,
               why="for the day's users, the day before it they were last active; null if new in the 30 days"),
    ), unique=(("anonymous_user_id",),), enforced_by=_STATE, why=_STATE_WHY),
    _aggregate("month_users", (
        Column("industry", "string", Labels(INDUSTRIES, unknown=WARNING), nullable=True, severity=WARNING,
               why="the industry the user was scored in"),
        Column("anonymous_user_id", "string", ID, why="one row per user and industry of the month to date"),
    ), unique=(("industry", "anonymous_user_id"),), enforced_by=_STATE, why=_STATE_WHY),
    _aggregate("score_digest", (
        Column("industry", "string", Labels(INDUSTRIES, unknown=WARNING), nullable=True, severity=WARNING,
               why="the score sets' industry"),
        Column("trait", "string", Labels(TRAITS), why="the five traits"),
        Column("score", "double", SCORE, nullable=True, why="a score to a tenth of a point; null for a missing one"),
        *_counts("assessments", why="counts"),
    ), unique=(("industry", "trait", "score"),), enforced_by=_STATE, why=_STATE_WHY),
    _aggregate("facet_moments", (
        Column("facet", "string", Labels(FACET_KEYS), why="the 30 NEO facets"),
        *_counts("assessments", "scores", why="counts"),
        Column("mean_score", "double", SCORE, nullable=True, why="null when the slice has no score of the facet"),
        Column("m2_score", "double", Range(0, None), why="a sum of squared deviations"),
        *_counts("responses", why="counts"),
        Column("sum_responses", "double", Range(0, None), nullable=True, why="a sum of counts"),
    ), unique=(("facet",),), partition_keys=(_LAKE_DATE, _HOUR), enforced_by=_STATE, why=_STATE_WHY),
    _aggregate("query_costs", (
        Column("query_id", "string", ID, why="Athena's query execution id (the local engine's, on local)"),
        Column("workgroup", "string", Text(), why="the workgroup"),
        Column("submitted_at", "timestamp", InPartition(), why="the day the monitor costs"),
        Column("state", "string", Labels(("SUCCEEDED", "FAILED", "CANCELLED")), why="Athena's final states"),
        *_counts("bytes_scanned", "engine_ms", why="measures"),
        Column("cost_usd", "double", Range(0, None), why="money"),
        Column("run_by", "string", Text(safe=False), why="who ran it: a DAG task, the CLI, the API's user"),
        *(Column(n, "string", Text(safe=False), nullable=True, why="from the query's ioc-tags comment")
          for n in ("dag_id", "task_id", "run_id", "ds")),
        Column("reasons", "string", Text(safe=False), nullable=True, why="why it cost what it did"),
        Column("error", "string", Text(safe=False), nullable=True, why="the engine's error"),
        Column("query", "string", Text(safe=False), why="the SQL as it ran"),
    ), unique=(("query_id",),), enforced_by=_COSTS),
    _aggregate("daily_costs", (
        Column("workgroup", "string", Text(), why="the workgroup"),
        *_counts("queries", "failed", why="counts"),
        Column("failure_rate", "double", SHARE, why="a share of queries"),
        *_counts("bytes_scanned", why="bytes"),
        Column("cost_usd", "double", Range(0, None), why="money"),
        Column("max_query_cost_usd", "double", Range(0, None), why="money"),
        Column("baseline_usd", "double", Range(0, None), nullable=True, why="null before 4 weeks of history"),
        *(Column(n, "double", Range(0, None), why="money")
          for n in ("month_to_date_usd", "projected_month_usd", "budget_usd")),
        *_counts("anomalies", why="counts"),
    ), unique=(("workgroup",),), enforced_by=_COSTS),
    _aggregate("cost_anomalies", _ANOMALY, enforced_by=_COSTS),
    _aggregate("hourly_cost_anomalies", _ANOMALY, partition_keys=(_LAKE_DATE, _HOUR),
               enforced_by="the hourly cost watch, before it writes"),
)}


def contract(table: str) -> TableContract:
    try:
        return CONTRACTS[table]
    except KeyError:
        raise KeyError(f"no data contract for table {table!r}; the tables are {', '.join(CONTRACTS)}") from None


# -- rules: the contract as queries ------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    """One (column, class of breach) of a table's contract, as a DuckDB query over ``{batch}``
    that returns the rows breaching it (one ``sample`` column each)."""

    table: str
    column: str
    breach: str
    severity: str
    query: str
    #: What holds when the rule passes, for the report.
    expects: str
    #: The part of the column it reads, when not the whole value (a map's ``values``).
    part: str = ""
    #: For a rule on each row: the condition a breaching row meets, and the text naming it.
    predicate: str = ""
    sample: str = ""

    @property
    def name(self) -> str:
        """Unique within the table: ``device: unknown label``, ``facets values: NaN``."""
        return f"{self.column}{' ' + self.part if self.part else ''}: {self.breach}"


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(value: str) -> str:
    """A SQL string literal, inside a query template (GX formats ``{batch}`` in with str.format, so
    braces are doubled)."""
    return "'" + value.replace("'", "''").replace("{", "{{").replace("}", "}}") + "'"


def _list(values: tuple[str, ...]) -> str:
    return "[" + ", ".join(_literal(v) for v in values) + "]"


def _row_label(table: TableContract) -> str:
    """A text naming the row, for samples: its first unique key (a table without one: ``row``)."""
    if not table.row_id:
        return "'row'"
    return " || ', ' || ".join(f"COALESCE(CAST({_q(c)} AS VARCHAR), 'null')" for c in table.row_id)


def _number_rules(expression: str, is_double: bool, domain: Range | None) -> list[tuple[str, str]]:
    """(breach, predicate) for a number: NaN, and out of range (±Infinity included)."""
    out = []
    if is_double:
        out.append((NAN, f"isnan({expression})"))
    bounds = []
    if is_double:
        bounds.append(f"isinf({expression})")
    if domain is not None and domain.low is not None:
        bounds.append(f"{expression} < {domain.low!r}")
    if domain is not None and domain.high is not None:
        bounds.append(f"{expression} > {domain.high!r}")
    if bounds:
        finite = f"NOT isnan({expression}) AND " if is_double else ""
        out.append((OUT_OF_RANGE, f"{finite}({' OR '.join(bounds)})"))
    return out


def _in_partition(table: TableContract, column: str) -> str:
    keys = [k.name for k in table.partition_keys]
    c = _q(column)
    if "date" in keys:
        start = "strptime(\"date\", '%Y/%m/%d')"
        if "hour" in keys:
            start = f"({start} + to_hours(CAST(\"hour\" AS INTEGER)))"
            return f"{c} < {start} OR {c} >= {start} + INTERVAL 1 HOUR"
        return f"{c} < {start} OR {c} >= {start} + INTERVAL 1 DAY"
    if keys[:2] == ["year", "month"]:
        return f'year({c}) <> CAST("year" AS INTEGER) OR month({c}) <> CAST("month" AS INTEGER)'
    raise ValueError(f"{table.name}.{column}: InPartition needs partition keys date[, hour] or year, month")


def _map_rules(table: TableContract, column: Column) -> list[tuple[str, str, str, str, str]]:
    """(breach, part, severity, predicate, sample) for a map: its key set, and its values' domains."""
    domain = column.domain
    assert isinstance(domain, MapOf)
    c, row = _q(column.name), _row_label(table)
    expected = _list(domain.keys)
    unknown = f"list_filter(map_keys({c}), lambda k: NOT list_contains({expected}, k))"
    missing = f"list_filter({expected}, lambda k: NOT list_contains(map_keys({c}), k))"
    known = f"list_distinct(list_filter(map_keys({c}), lambda k: list_contains({expected}, k)))"
    # A fast path: keys exactly the declared ones, in their order (as the product writes them) is
    # every key once and no other; only the other maps pay for the set comparisons (4x faster).
    exact = f"map_keys({c}) <> {expected} AND "
    rules = [
        (MISSING_MAP_KEY, "", column.severity, f"{exact}len({known}) < {len(domain.keys)}",
         f"{row} || ': ' || array_to_string(list_slice({missing}, 1, 3), ', ')"
         f" || CASE WHEN len({missing}) > 3 THEN ' and ' || (len({missing}) - 3) || ' more' ELSE '' END"),
        (UNKNOWN_MAP_KEY, "", column.severity, f"{exact}len({unknown}) > 0",
         f"{row} || ': ' || array_to_string(list_slice({unknown}, 1, 3), ', ')"),
        # Parquet and Arrow let a map hold a key twice; DuckDB reads it, Athena refuses it.
        (DUPLICATE_MAP_KEY, "", column.severity,
         f"{exact}len(map_keys({c})) <> len(list_distinct(map_keys({c})))",
         f"{row} || ': ' || array_to_string(list_slice(list_filter(list_distinct(map_keys({c})), "
         f"lambda k: len(list_filter(map_keys({c}), lambda j: j = k)) > 1), 1, 3), ', ')"),
    ]
    fields = {None: domain.values} if isinstance(domain.values, Range) else dict(domain.values)
    value_type = _parsed_type(column.type).expressions[1]
    if value_type.this == exp.DataType.Type.STRUCT:
        field_types = {f.name: f.args["kind"] for f in value_type.expressions}
        doubles = {f for f in fields if field_types[f].this == exp.DataType.Type.DOUBLE}
    else:
        doubles = {None} if value_type.this == exp.DataType.Type.DOUBLE else set()

    def at(f: str | None) -> str:
        return "e.value" if f is None else f"e.value.{_q(f)}"

    def offending(predicate: str) -> tuple[str, str]:
        entries = f"list_filter(map_entries({c}), lambda e: {predicate})"
        return f"len({entries}) > 0", f"{row} || ': ' || CAST(list_slice({entries}, 1, 3) AS VARCHAR)"

    nulls = " OR ".join(["e.value IS NULL", *(f"{at(f)} IS NULL" for f in fields if f is not None)])
    rules.append((NULL, "values", column.severity, *offending(nulls)))
    nan = " OR ".join(f"isnan({at(f)})" for f in fields if f in doubles)
    if nan:
        rules.append((NAN, "values", column.severity, *offending(nan)))
    outside = []
    for f, r in fields.items():
        for breach, predicate in _number_rules(at(f), f in doubles, r):
            if breach == OUT_OF_RANGE:
                outside.append(f"({predicate})")
    if outside:
        rules.append((OUT_OF_RANGE, "values", column.severity, *offending(" OR ".join(outside))))
    return rules


@functools.cache
def rules(table_name: str) -> tuple[Rule, ...]:
    """Every rule of ``table_name``'s contract, in column order, then its unique keys."""
    table = contract(table_name)
    row = _row_label(table)
    found: list[Rule] = []

    def add(column: str, breach: str, severity: str, predicate: str, sample: str, expects: str,
            part: str = "") -> None:
        query = f"SELECT {sample} AS sample FROM {{batch}} WHERE {predicate}"
        found.append(Rule(table.name, column, breach, severity, query, expects, part, predicate, sample))

    for column in table.columns:
        c, domain = _q(column.name), column.domain
        if not column.nullable:
            add(column.name, NULL, column.severity, f"{c} IS NULL", row, f"{column.name} is never null")
        value = f"CAST({c} AS VARCHAR)"
        if column.type in ("double", "int", "bigint"):
            for breach, predicate in _number_rules(c, column.type == "double",
                                                   domain if isinstance(domain, Range) else None):
                add(column.name, breach, column.severity, predicate, row if breach == NAN else value,
                    f"{column.name} {domain.describe() if domain else 'is a number'}, never NaN or ±Infinity"
                    if column.type == "double" else f"{column.name} {domain.describe()}")
        elif column.type == "string":
            safe = not isinstance(domain, Text) or domain.safe
            if safe:
                add(column.name, UNSAFE_TEXT, ERROR, f"regexp_matches({c}, {_literal(safety.unsafe_regex('re2'))})",
                    value, f"{column.name} is not text a spreadsheet evaluates, nor holds control characters")
            if isinstance(domain, Labels):
                vocabulary = ", ".join(map(_literal, domain.values))
                add(column.name, UNKNOWN_LABEL, domain.unknown, f"{c} NOT IN ({vocabulary})", value,
                    f"{column.name} is {domain.describe()}")
            elif isinstance(domain, Pattern):
                add(column.name, PATTERN, column.severity, f"NOT regexp_full_match({c}, {_literal(domain.regex)})",
                    value, f"{column.name} is {domain.describe()}")
        elif column.type == "timestamp" and isinstance(domain, InPartition):
            add(column.name, OUT_OF_RANGE, column.severity, _in_partition(table, column.name), value,
                f"{column.name} is inside its partition's period")
        elif isinstance(domain, MapOf):
            for breach, part, severity, predicate, sample in _map_rules(table, column):
                add(column.name, breach, severity, f"{c} IS NOT NULL AND ({predicate})", sample,
                    f"{column.name} holds {domain.describe()}", part)
    for key in table.unique:
        columns = ", ".join(_q(k) for k in key)
        label = " || ', ' || ".join(f"COALESCE(CAST({_q(k)} AS VARCHAR), 'null')" for k in key)
        # A null in a column that may not hold one is the null rule's; in one that may (a breakdown
        # without its label), two nulls are the same key (GROUP BY groups them).
        required = [f"{_q(k)} IS NOT NULL" for k in key if not table.column(k).nullable]
        where = f"WHERE {' AND '.join(required)} " if required else ""
        query = (f"SELECT {label} || ' (' || count(*) || ' rows)' AS sample FROM {{batch}} "
                 f"{where}GROUP BY {columns} HAVING count(*) > 1")
        found.append(Rule(table.name, ", ".join(key), DUPLICATE_KEY, ERROR, query,
                          f"no two rows share {', '.join(key)}"))
    return tuple(found)


#: How many breaching rows a report quotes.
SAMPLES = 5


@dataclass(frozen=True)
class Check:
    """The rules of one column (or one unique key) as one query over ``{batch}``: what GX runs as one
    expectation. The query returns a row ``(rule, rows, samples)`` for each rule that some rows
    break: the rule's name, how many rows (keys, for a unique key), and a few of them. One pass
    over the column for all its classes: 3.5 times faster than a query per rule on a day's maps."""

    table: str
    name: str
    rules: tuple[Rule, ...]
    query: str


@functools.cache
def checks(table_name: str) -> tuple[Check, ...]:
    """``table_name``'s rules grouped into :class:`Check`s, in column order, then the unique keys."""
    found: dict[str, list[Rule]] = {}
    for rule in rules(table_name):
        found.setdefault(rule.column if rule.predicate else rule.name, []).append(rule)
    made = []
    for name, grouped in found.items():
        if grouped[0].predicate:
            hits = ", ".join(f"CASE WHEN ({r.predicate}) THEN {{{{'rule': {_literal(r.name)}, "
                             f"'sample': CAST({r.sample} AS VARCHAR)}}}} END" for r in grouped)
            query = (f"SELECT hit.rule AS rule, count(*) AS rows, min(hit.sample, {SAMPLES}) AS samples FROM "
                     f"(SELECT unnest(list_filter([{hits}], lambda h: h IS NOT NULL)) AS hit FROM {{batch}}) "
                     "GROUP BY hit.rule ORDER BY hit.rule")
        else:  # a unique key: its own query, counted
            [rule] = grouped
            query = (f"SELECT {_literal(rule.name)} AS rule, count(*) AS rows, min(sample, {SAMPLES}) AS samples "
                     f"FROM ({rule.query}) HAVING count(*) > 0")
        made.append(Check(table_name, name, tuple(grouped), query))
    return tuple(made)


# -- the Parquet types a declared type accepts -------------------------------------------------


def accepts(declared: str, held: Any) -> bool:
    """Whether a file's column of Arrow type ``held`` reads as the declared Athena type: the
    same kind, no narrower (an ``int`` column takes 8- to 32-bit integers, Athena refuses a 64-bit
    one; a ``double`` takes float and double); strings plain, large or dictionary-encoded;
    timestamps in any unit (INT96 included)."""
    import pyarrow as pa

    def fits(dtype: exp.DataType, arrow: pa.DataType) -> bool:
        if pa.types.is_dictionary(arrow):
            arrow = arrow.value_type
        kind = dtype.this
        T = exp.DataType.Type
        if kind in (T.VARCHAR, T.TEXT, T.CHAR):
            return pa.types.is_string(arrow) or pa.types.is_large_string(arrow) or pa.types.is_string_view(arrow)
        if kind in (T.INT, T.BIGINT, T.SMALLINT, T.TINYINT):
            widths = {T.TINYINT: 8, T.SMALLINT: 16, T.INT: 32, T.BIGINT: 64}
            return pa.types.is_signed_integer(arrow) and arrow.bit_width <= widths[kind]
        if kind in (T.DOUBLE, T.FLOAT):
            return pa.types.is_floating(arrow) and not pa.types.is_float16(arrow) and (
                kind == T.DOUBLE or arrow.bit_width == 32)
        if kind == T.BOOLEAN:
            return pa.types.is_boolean(arrow)
        if kind in (T.TIMESTAMP, T.TIMESTAMPTZ):
            return pa.types.is_timestamp(arrow)
        if kind == T.DATE:
            return pa.types.is_date(arrow)
        if kind == T.MAP:
            return (pa.types.is_map(arrow) and fits(dtype.expressions[0], arrow.key_type)
                    and fits(dtype.expressions[1], arrow.item_type))
        if kind == T.STRUCT:
            if not pa.types.is_struct(arrow):
                return False
            held_fields = {arrow.field(i).name.lower(): arrow.field(i).type for i in range(arrow.num_fields)}
            wanted = {f.name.lower(): f.args["kind"] for f in dtype.expressions}
            return set(held_fields) == set(wanted) and all(fits(wanted[n], held_fields[n]) for n in wanted)
        if kind == T.ARRAY:
            return pa.types.is_list(arrow) and fits(dtype.expressions[0], arrow.value_type)
        return False

    return fits(_parsed_type(declared), held)


@functools.cache
def _parsed_type(declared: str) -> exp.DataType:
    """A declared Athena type, parsed (once: the footer checks ask for every column of every file)."""
    return exp.DataType.build(declared, dialect="hive")


# -- the derived tables, held to the contract on DuckDB ------------------------------------------


@dataclass
class Breach:
    """One rule that some rows break."""

    rule: Rule
    count: int
    samples: list[str] = field(default_factory=list)

    def describe(self) -> str:
        rows = f"{self.count} row{'' if self.count == 1 else 's'}"
        samples = f", for example {self.samples}" if self.samples else ""
        return f"{self.rule.name}, {rows}{samples} ({self.rule.expects})"


def check_rows(table_name: str, data: Any, partition: Mapping[str, str] | None = None) -> list[Breach]:
    """Run every rule of ``table_name``'s contract over ``data`` (an Arrow table of its rows;
    ``partition``: the partition's key values, when ``data`` lacks them); returns what breaks.

    For the derived tables, which are small (tens of rows a day, thousands for the query log): the
    same queries as the raw tables' GX suites, on an in-memory DuckDB, without GX's import.
    """
    import pyarrow as pa

    from ioc_analytics import embedded

    table = contract(table_name)
    missing, extra, retyped = schema_drift(table_name, data.schema)
    keys = {k.name for k in table.partition_keys}
    drift = ([(name, MISSING_COLUMN, f"{name} is in the partition's files") for name in missing]
             + [(name, UNEXPECTED_COLUMN, f"the table declares no {name}") for name in extra if name not in keys]
             + [(text.split(" ", 1)[0], TYPE, text) for text in retyped])
    if drift:  # the rules cannot run on columns that are not there, or not of their type
        return [Breach(Rule(table.name, name, breach, ERROR, "", expects), data.num_rows)
                for name, breach, expects in drift]
    for key in table.partition_keys:
        if key.name not in data.column_names and partition is not None:
            data = data.append_column(key.name, pa.array([partition[key.name]] * data.num_rows, pa.string()))
    con = embedded.connect()
    try:
        con.register("batch", data)
        found = []
        for check in checks(table_name):
            by_name = {rule.name: rule for rule in check.rules}
            for name, count, quoted in con.execute(check.query.format(batch="batch")).fetchall():
                found.append(Breach(by_name[name], count, [str(q) for q in quoted]))
        return found
    finally:
        con.close()


# -- the contract as a document ------------------------------------------------------------------


def markdown() -> str:
    """``docs/data-contract.md``: every table's contract, and the classes of breach."""
    lines = [
        "# The data contract",
        "",
        "Generated from `include/ioc_analytics/lake/contract.py` by `ioc contract > docs/data-contract.md`; "
        "`tests/unit/test_contract.py` fails when this page and the contract differ. What a valid row of each "
        "table is, and what a breach does:",
        "",
        "- **error**: the table's day stops: nothing that reads it is built or exported for the day "
        "(a derived table's partition is rolled back);",
        "- **warning**: reported in the day's quality report and the task log; the day is built and exported.",
        "",
        "An unsafe text and a wrong type are always errors. Doubles are never NaN or ±Infinity. Partition keys "
        "come from the object paths, which the layout checks (a folder that is no partition of it is an "
        "`unknown partition`). Text that a "
        "spreadsheet would evaluate is neutralised in every CSV and Excel file and API answer whatever the "
        "contract says (docs/publishing.md, \"Exports\").",
        "",
        "## Classes of breach",
        "",
        "| class | meaning |",
        "|---|---|",
        *(f"| `{name}` | {meaning} |" for name, meaning in BREACHES.items()),
    ]
    for table in CONTRACTS.values():
        lines += ["", f"## `{table.name}`", "", f"{table.why[:1].upper() + table.why[1:]}. " if table.why else ""]
        lines[-1] += f"Enforced by {table.enforced_by.replace('<table>', table.name)}."
        if table.unique:
            lines[-1] += " Unique: " + "; ".join(f"`{', '.join(k)}`" for k in table.unique) + "."
        lines += ["", "| column | type | contract | why |", "|---|---|---|---|"]
        for column in table.columns:
            lines.append(f"| `{column.name}` | `{column.type}` | {_cell(column.describe())} | {_cell(column.why)} |")
        for key in table.partition_keys:
            lines.append(f"| `{key.name}` (partition) | `{key.type}` | {_cell(key.describe())} | {_cell(key.why)} |")
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def schema_drift(table_name: str, schema: Any) -> tuple[list[str], list[str], list[str]]:
    """How a file's Arrow schema differs from the contract: the declared columns it lacks, the
    columns the contract does not declare, and the columns whose type does not read as declared
    (:func:`accepts`), each as ``name is <held>, the contract says <declared>``."""
    declared = {c.name.lower(): c.type for c in contract(table_name).columns}
    held = {f.name.lower(): f.type for f in schema}
    missing = sorted(set(declared) - set(held))
    extra = sorted(set(held) - set(declared))
    retyped = sorted(f"{name} is {held[name]}, the contract says {declared[name]}"
                     for name in set(held) & set(declared) if not accepts(declared[name], held[name]))
    return missing, extra, retyped
