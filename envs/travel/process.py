"""Turn-level checks for ProcessReward: asking about a city outside the trip costs a little.

(Failed and repeated calls are already penalised by ProcessReward's default checks.)
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from .data import load_sources

CITY_ARGUMENTS = ("city", "origin", "destination")


@lru_cache(maxsize=1)
def _regions() -> dict[str, str]:
    return {c["name"].lower(): c["region"] for c in load_sources()[0]}


def trip_cities(task: Any) -> set[str]:
    """Lower-case names of the cities a task may involve: its origin and its destination(s)."""
    regions = _regions()
    cities = {task.origin.lower(), task.destination.lower()}
    cities |= {c for c, r in regions.items() if r == task.destination}
    return cities


def off_trip_city(turn: Any, trajectory: Any) -> float:
    """-1 per call in this turn whose city argument names a city outside the trip."""
    cities = trip_cities(trajectory.task)
    off = 0
    for call in turn.calls:
        for key in CITY_ARGUMENTS:
            value = call.arguments.get(key)
            if isinstance(value, str) and value.strip().lower() not in cities:
                off += 1
                break
    return -float(off)


def turn_checks() -> list[tuple[str, Any, float]]:
    return [("off_trip_city", off_trip_city, 0.05)]
