"""What people type and read: a day typed either way, and counts in words ("1 row", "2 rows")."""

from __future__ import annotations

import datetime as dt
import re


def plural(count: int, unit: str, many: str | None = None) -> str:
    """``count`` and ``unit``, in the plural unless ``count`` is 1 (``many`` when not ``unit + "s"``)."""
    return f"{count} {unit if count == 1 else many or unit + 's'}"


def parse_day(text: str) -> dt.date:
    """A day typed as the CLI and the API take it (``2024-01-15``) or as the lake writes it
    (``2024/01/15``); ValueError says which is wrong: the spelling, or the calendar."""
    typed = text.strip()
    if not re.fullmatch(r"\d{4}([-/])\d{2}\1\d{2}", typed):
        raise ValueError(f"{text!r} is not a date: type it as YYYY-MM-DD (or YYYY/MM/DD)")
    try:
        return dt.date.fromisoformat(typed.replace("/", "-"))
    except ValueError:
        raise ValueError(f"{text!r} is not a day of the calendar (a month from 01 to 12, a day that the month "
                         "has)") from None
