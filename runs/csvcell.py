"""One CSV cell a spreadsheet shows as text, never runs as a formula (CSV injection): the
one rule for every CSV export (the QA lead's report, a load run's stats and series)."""

from __future__ import annotations

from datetime import datetime

# What starts a formula in Excel, LibreOffice or Sheets: = + - @, and a tab or a carriage
# return, which some of them strip before looking at the next character.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value):
    """None as empty, dates in ISO 8601, booleans as yes/no, numbers as numbers (a negative
    one too); text starting a formula is quoted with a leading apostrophe."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | float):
        return value
    text = str(value)
    if text[:1] in FORMULA_STARTS and not _is_number(text):
        return "'" + text
    return text


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
