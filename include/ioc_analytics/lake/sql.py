"""SQL files under ``include/ioc_analytics/sql/``, rendered for one logical date.

SQL is written once, in Athena dialect, one statement per file, named after the table it writes.
A file names the date's values as ``{{ lake_date }}`` and the like; rendering puts a ``?`` in
their place and returns the values, in the order of the text, as parameters that the engine
binds (Athena's ExecutionParameters, DuckDB's prepared statements). No value is ever pasted into
the SQL text. Athena accepts ``?`` only in WHERE clauses, and so do these files.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

import jinja2

from ioc_analytics.lake.contract import MAX_COMPLETION_TIME_S
from ioc_analytics.settings import SQL_DIR

LOOKBACK_DAYS = 30

#: How long after a session starts its score set can be written: the longest session the
#: contract allows (a score set is written when its session completes).
SCORING_WINDOW = dt.timedelta(seconds=MAX_COMPLETION_TIME_S)

_env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(SQL_DIR), undefined=jinja2.StrictUndefined, keep_trailing_newline=True
)


def date_values(day: dt.date) -> dict[str, object]:
    """The partition values and windows of one logical date, as the SQL files name them.

    Timestamps are naive UTC, as the lake's ``timestamp`` columns are."""
    following = day + dt.timedelta(days=1)
    return {
        "ds": day.isoformat(),
        "lake_date": day.strftime("%Y/%m/%d"),
        "year": day.strftime("%Y"),
        "month": day.strftime("%m"),
        "next_year": following.strftime("%Y"),
        "next_month": following.strftime("%m"),
        "day_start": dt.datetime(day.year, day.month, day.day),
        "month_start": dt.datetime(day.year, day.month, 1),
        "next_day_start": dt.datetime(following.year, following.month, following.day),
        "lookback_start": (day - dt.timedelta(days=LOOKBACK_DAYS)).strftime("%Y/%m/%d"),
        "previous_date": (day - dt.timedelta(days=1)).strftime("%Y/%m/%d"),
        # the first day of the 30 that end with this one
        "rolling_start": (day - dt.timedelta(days=LOOKBACK_DAYS - 1)).strftime("%Y/%m/%d"),
        "month_first": day.replace(day=1).strftime("%Y/%m/%d"),
        # the score sets of the day's sessions: written by the end of the last one's scoring
        # window, in the day's month partition or the next day's
        "scored_until": dt.datetime(following.year, following.month, following.day) + SCORING_WINDOW,
    }


def hour_values(hour: dt.datetime) -> dict[str, object]:
    """The values of one UTC hour (naive, or aware in any zone): its day's, the hour's bounds, the
    hour as a partition value (``"07"``) and the day a week before (``week_before``)."""
    if hour.tzinfo is not None:
        hour = hour.astimezone(dt.UTC).replace(tzinfo=None)
    start = hour.replace(minute=0, second=0, microsecond=0)
    return {
        **date_values(start.date()),
        "hour": start.strftime("%H"),
        "hour_start": start,
        "next_hour_start": start + dt.timedelta(hours=1),
        "week_before": (start.date() - dt.timedelta(days=7)).strftime("%Y/%m/%d"),
        "scored_until": start + dt.timedelta(hours=1) + SCORING_WINDOW,
    }


@dataclass
class Rendered:
    sql: str
    parameters: list[object] = field(default_factory=list)


class _Bound:
    """A template value that renders as ``?`` and records itself, in the order Jinja renders."""

    def __init__(self, value: object, into: list[object]) -> None:
        self.value, self.into = value, into

    def __str__(self) -> str:
        self.into.append(self.value)
        return "?"


def render(name: str, day: dt.date) -> Rendered:
    """Render ``include/ioc_analytics/sql/<name>.sql`` for ``day``: the SQL with ``?`` and its parameters
    (an hourly file, ``hourly/<name>``, for the day's noon hour; a state's, ``state/<name>``, as
    it is most days: from the day before's state and the day's data, for the noon slice)."""
    return render_with(name, values_for(name, day), {"previous": True, "today": True} if name.startswith("state/")
                       else None)


#: The variants a state's query runs in (``{% if previous %}``, ``{% if today %}``): from the
#: day before's state and the day's data, where a chain starts (no state before), and on a day
#: without data. Without either, a state is empty and written without a query.
STATE_VARIANTS = ({"previous": True, "today": True}, {"previous": False, "today": True},
                  {"previous": True, "today": False})


def variants(name: str, text: str) -> list[str]:
    """The statements a SQL file's text stands for, its values left as ``{{ ... }}``: one for a
    plain file, one per :data:`STATE_VARIANTS` for a state's."""
    if "{%" not in text:
        return [text]
    keep = re.sub(r"\{\{(.*?)\}\}", r"{{ '{{' }}\1{{ '}}' }}", text)  # values pass through
    return [_env.from_string(keep).render(**flags) for flags in STATE_VARIANTS]


#: The hours of a slice of a day (``facet_moments``: a day's facets are read four hours at a time).
SLICE_HOURS = 4


def slice_values(day: dt.date, first_hour: int) -> dict[str, object]:
    """The bounds of the slice of ``day`` that starts at ``first_hour``."""
    start = dt.datetime.combine(day, dt.time(first_hour))
    return {"slice_start": start, "slice_end": start + dt.timedelta(hours=SLICE_HOURS)}


def values_for(name: str, day: dt.date) -> dict[str, object]:
    """What a file's placeholders take for ``day``: the hour's values for ``hourly/`` files, a
    slice's for ``state/`` files."""
    if name.startswith("hourly/"):
        return hour_values(dt.datetime.combine(day, dt.time(12)))
    if name.startswith("state/"):
        return date_values(day) | slice_values(day, 12)
    return date_values(day)


def render_with(name: str, values: Mapping[str, object], flags: Mapping[str, bool] | None = None) -> Rendered:
    """Render ``include/ioc_analytics/sql/<name>.sql`` with ``values`` bound as ``?`` parameters;
    ``flags`` choose between the file's ``{% if %}`` variants and are never bound."""
    return render_text(_env.get_template(f"{name}.sql"), values, flags)


def render_text(template: str | jinja2.Template, values: Mapping[str, object],
                flags: Mapping[str, bool] | None = None) -> Rendered:
    """Render SQL text (or a loaded template) with ``values`` bound as ``?`` parameters."""
    parameters: list[object] = []
    bound = {key: _Bound(value, parameters) for key, value in values.items()}
    if isinstance(template, str):
        template = _env.from_string(template)
    return Rendered(template.render(**bound, **{k: bool(v) for k, v in (flags or {}).items()}), parameters)
