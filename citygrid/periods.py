"""Periods given as two dates or date-times (HTTP ``start``/``end``, the CLI's ``--since``/``--until``).

Periods are inclusive dates: a date end covers that whole day, so ``start=2026-03-01&end=2026-03-01`` is the
first of March, and the end handed on is the next day's start, exclusive (every query tests ``< end``). A
date-time end is exclusive as given. Converting a text into an instant (and the deployment's time zone) is the
caller's ``parse``; no database and no Flask here.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from typing import Any, TypeVar

from citygrid.errors import InvalidInput

DATE_ONLY = re.compile(r"^\s*\d{4}-\d{2}-\d{2}\s*$")
T = TypeVar("T")


def period(start: str | None, end: str | None, parse: Callable[[str, str], T], *, start_field: str = "start",
           end_field: str = "end") -> tuple[T | None, T | None]:
    """(start, exclusive end) of the period ``start``..``end``, each converted by ``parse(text, field)``.

    Parameters
    ----------
    start, end : ISO 8601 dates or date-times, or None (open-ended).
    parse : converts one text (raising ``InvalidInput`` naming the field when malformed).

    Returns
    -------
    The parsed start, and the parsed end — for a date end, the parsed start of the following day.

    Raises
    ------
    InvalidInput : a malformed value, or a period that holds no time (start after the end day, or a
        date-time start at or after a date-time end).

    Examples
    --------
    >>> period("2026-03-01", "2026-03-01", lambda text, field: text)
    ('2026-03-01', '2026-03-02')
    """
    first = parse(start, start_field) if start else None
    if end and DATE_ONLY.match(end):
        try:
            day = dt.date.fromisoformat(end.strip())
        except ValueError:
            raise InvalidInput(f"{end_field} must be an ISO 8601 date or date-time", field=end_field) from None
        if day == dt.date.max:
            raise InvalidInput(f"{end_field} must be a date before 9999-12-31", field=end_field)
        last = parse((day + dt.timedelta(days=1)).isoformat(), end_field)
    else:
        last = parse(end, end_field) if end else None
    if first is not None and last is not None and _instant(first) >= _instant(last):
        raise InvalidInput(f"{start_field} must not be after {end_field} (periods are inclusive dates: "
                           f"{start_field}={start}&{end_field}={start} is that one day; a date-time "
                           f"{end_field} is exclusive)", field=start_field)
    return first, last


def _instant(value: Any) -> dt.datetime:
    """A parsed bound as a datetime to compare with the other (both naive, or both aware)."""
    when = value if isinstance(value, dt.datetime) else (
        dt.datetime.combine(value, dt.time()) if isinstance(value, dt.date)
        else dt.datetime.fromisoformat(str(value).replace("Z", "+00:00")))
    return when.replace(tzinfo=None) if when.tzinfo is None else when.astimezone(dt.UTC).replace(tzinfo=None)
