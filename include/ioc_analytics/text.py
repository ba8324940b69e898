"""Counts in words, for the messages people read: "1 row", "2 rows", "1 partition holds rows"."""

from __future__ import annotations


def plural(count: int, unit: str, many: str | None = None) -> str:
    """``count`` and ``unit``, in the plural unless ``count`` is 1 (``many`` when not ``unit + "s"``)."""
    return f"{count} {unit if count == 1 else many or unit + 's'}"
