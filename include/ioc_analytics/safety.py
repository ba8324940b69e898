"""Text that a spreadsheet would evaluate, and how an export neutralises it.

OWASP's "CSV Injection" page: a cell whose text starts with ``=``, ``+``, ``-``, ``@``, a tab or a
carriage return is read as a formula by Excel, LibreOffice and Google Sheets (``=HYPERLINK(...)``
turns a label into a link, DDE payloads run programs). Its remedy, taken here: prefix such a cell
with a single quote, so that the spreadsheet shows it as text. Leading spaces (and the no-break
and ideographic spaces) do not protect a cell in every spreadsheet, and the full-width forms of
the four characters are evaluated by some locales' input methods, so both count too.

One definition serves two readers that must agree: the data contract's *unsafe text* rule
(a label like this is an error at the gate, ``contract.py``, as a DuckDB regular expression) and
the exports and API answers (:func:`neutralise`, in Python). A label with control or invisible
formatting characters (a bidi override shows a label other than it is) is unsafe in the contract
as well, though a spreadsheet does not evaluate it.
"""

from __future__ import annotations

import re

#: Characters that start a formula, and their full-width forms.
FORMULA_STARTS = "=+-@\uff1d\uff0b\uff0d\uff20"
#: Characters a spreadsheet evaluates at the start of a cell on their own (OWASP: tab, CR; LF too).
LEADING_CONTROLS = "\t\r\n"
#: What may stand before a formula character: those, and the spaces (ASCII, no-break, ogham,
#: the typographic ones, narrow no-break, medium mathematical, ideographic).
LEADING_RANGES = ((0x09, 0x0A), (0x0D, 0x0D), (0x20, 0x20), (0xA0, 0xA0), (0x1680, 0x1680), (0x2000, 0x200A),
                  (0x202F, 0x202F), (0x205F, 0x205F), (0x3000, 0x3000))
#: Control characters (C0, DEL, C1) and invisible formatting ones (the Arabic letter mark,
#: zero-width, bidi controls, line and paragraph separators, word joiners, the BOM, tags).
CONTROL_RANGES = ((0x00, 0x1F), (0x7F, 0x9F), (0x061C, 0x061C), (0x200B, 0x200F), (0x2028, 0x202E),
                  (0x2060, 0x2069), (0xFEFF, 0xFEFF), (0xE0000, 0xE007F))
#: What the exports put in front of a formula-like cell.
PREFIX = "'"


def _char(code: int, dialect: str) -> str:
    if dialect == "python":
        return f"\\U{code:08x}"
    return f"\\x{{{code:X}}}"  # RE2 (DuckDB)


def _chars(text: str, dialect: str) -> str:
    return "".join(_char(ord(c), dialect) for c in text)


def _ranges(ranges: tuple[tuple[int, int], ...], dialect: str) -> str:
    return "".join(f"{_char(low, dialect)}-{_char(high, dialect)}" for low, high in ranges)


def formula_regex(dialect: str = "python") -> str:
    """A cell a spreadsheet evaluates: a formula character after any spaces, tabs or line breaks,
    or a leading tab, CR or LF. ``dialect`` is ``python`` or ``re2`` (DuckDB's ``regexp_matches``)."""
    return (f"^[{_ranges(LEADING_RANGES, dialect)}]*[{_chars(FORMULA_STARTS, dialect)}]"
            f"|^[{_chars(LEADING_CONTROLS, dialect)}]")


def unsafe_regex(dialect: str = "python") -> str:
    """Text the contract refuses in a label or an id: formula-like, or holding a control or an
    invisible formatting character anywhere."""
    return f"{formula_regex(dialect)}|[{_ranges(CONTROL_RANGES, dialect)}]"


_FORMULA = re.compile(formula_regex())
_UNSAFE = re.compile(unsafe_regex())


def is_formula_like(text: str) -> bool:
    return bool(_FORMULA.search(text))


def is_unsafe(text: str) -> bool:
    return bool(_UNSAFE.search(text))


def neutralise(text: str) -> tuple[str, bool]:
    """The text as a spreadsheet cell that shows it and runs nothing, and whether it changed."""
    if _FORMULA.search(text):
        return PREFIX + text, True
    return text, False
