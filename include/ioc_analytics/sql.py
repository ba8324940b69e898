"""SQL files under ``include/sql/``, rendered for one logical date.

SQL is written once, in Athena dialect, one statement per file, named after the table it writes.
The only template values are the date's partition values, derived here from a real date (never
from free text); values that come from users are bound as ``?`` parameters by the engines.
"""

from __future__ import annotations

import datetime as dt

import jinja2

from ioc_analytics.settings import SQL_DIR

LOOKBACK_DAYS = 30

_env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(SQL_DIR), undefined=jinja2.StrictUndefined, keep_trailing_newline=True
)


def date_values(day: dt.date) -> dict[str, str]:
    """The partition values and windows of one logical date, as the SQL files name them."""
    return {
        "ds": day.isoformat(),
        "lake_date": day.strftime("%Y/%m/%d"),
        "year": day.strftime("%Y"),
        "month": day.strftime("%m"),
        "lookback_start": (day - dt.timedelta(days=LOOKBACK_DAYS)).strftime("%Y/%m/%d"),
    }


def render(name: str, day: dt.date) -> str:
    """Render ``include/sql/<name>.sql`` for ``day``."""
    return _env.get_template(f"{name}.sql").render(**date_values(day))
