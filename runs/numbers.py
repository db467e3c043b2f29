"""Whole numbers from what a user typed (a query string, a form field, a JSON string).

The one rule for every place that turns text into an id or a count: ASCII digits only
("²" is a digit to ``str.isdigit`` but not to ``int``), and no longer than the largest value
allowed, so that a 5,000-digit "id" is refused here instead of raising in ``int()`` (Python
refuses to convert more than 4,300 digits) or overflowing the database's 64-bit integers.
"""

from __future__ import annotations

ID_MAX = 2**63 - 1  # the largest primary key (a signed 64-bit integer)


def whole_number(text: str, maximum: int = ID_MAX) -> int | None:
    """``text`` (surrounding blanks ignored) as a whole number 0..``maximum``, else None."""
    text = text.strip()
    if not (text.isascii() and text.isdigit()) or len(text) > len(str(maximum)):
        return None
    value = int(text)
    return value if value <= maximum else None


def object_id(text: str) -> int | None:
    """``text`` as a database id (1..ID_MAX), else None."""
    value = whole_number(text)
    return value if value else None
