"""Times of day as "HH:MM" strings outside, minutes after midnight inside; dates as ISO strings."""

from __future__ import annotations

import datetime as dt
import re
from functools import lru_cache

_HHMM = re.compile(r"([01]\d|2[0-3]):([0-5]\d)")
FIRST_DATE = dt.date(2024, 3, 1)
N_DATES = 61  # 2024-03-01 .. 2024-04-30


def hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


TIMES = {f"{m // 60:02d}:{m % 60:02d}": m for m in range(24 * 60)}
"""Minutes after midnight of every "HH:MM": one dict hit per time."""


def parse_hhmm(text: object) -> int | None:
    """Minutes after midnight of "HH:MM" (00:00..23:59), or None if ``text`` is not such a time."""
    if not isinstance(text, str):
        return None
    minute = TIMES.get(text)
    if minute is not None:
        return minute
    m = _HHMM.fullmatch(text.strip())
    return int(m.group(1)) * 60 + int(m.group(2)) if m else None


@lru_cache(maxsize=1)
def all_dates() -> tuple[str, ...]:
    """Every date with a timetable, in order."""
    return tuple((FIRST_DATE + dt.timedelta(days=i)).isoformat() for i in range(N_DATES))


@lru_cache(maxsize=1)
def date_set() -> frozenset[str]:
    return frozenset(all_dates())


@lru_cache(maxsize=4096)  # pure, and verifiers ask for the same few dates thousands of times
def add_days(date: str, days: int) -> str:
    return (dt.date.fromisoformat(date) + dt.timedelta(days=days)).isoformat()


def parse_date(text: object) -> str | None:
    """The ISO date ``text`` names, or None."""
    return _iso_date(text) if isinstance(text, str) else None


@lru_cache(maxsize=4096)
def _iso_date(text: str) -> str | None:
    try:
        return dt.date.fromisoformat(text.strip()).isoformat()
    except ValueError:
        return None
