"""Distances, travel times and costs between places: pure functions of coordinates.

One model serves the tools (``get_distance``), the verifier (is a leg long enough?) and the oracle,
so they can never disagree. Roads are 1.3x the great-circle distance; taxis and cars crawl at
30 km/h for the first 20 km (city traffic) and run at 90 km/h beyond; walking is 5 km/h and only
offered up to 6 km. Times are whole minutes, rounded up; costs are dollars, rounded to cents.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

MODES = ("walk", "taxi", "drive")
ROAD_FACTOR = 1.3
MAX_WALK_KM = 6.0
CITY_KM = 20.0
CITY_KMH = 30.0
HIGHWAY_KMH = 90.0
WALK_KMH = 5.0
TAXI_BASE, TAXI_PER_KM = 3.5, 2.1
DRIVE_PER_KM = 0.25  # fuel and wear of one's own car
TAXI_SEATS, CAR_SEATS = 4, 5


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in km."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6371.0 * math.asin(min(1.0, math.sqrt(a)))


@dataclass(frozen=True)
class Leg:
    """One way of getting from A to B: minutes, cost per vehicle (or 0 on foot), road km."""

    mode: str
    minutes: int
    cost: float
    km: float


def road_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    return round(ROAD_FACTOR * haversine_km(lat1, lon1, lat2, lon2), 2)


def leg(mode: str, km: float) -> Leg | None:
    """The leg by ``mode`` over ``km`` road kilometres, or ``None`` where the mode has no route."""
    if mode == "walk":
        if km > MAX_WALK_KM:
            return None
        return Leg(mode, max(1, math.ceil(km / WALK_KMH * 60)), 0.0, km)
    city = min(km, CITY_KM)
    hours = city / CITY_KMH + max(0.0, km - CITY_KM) / HIGHWAY_KMH
    minutes = math.ceil(hours * 60) + (5 if mode == "taxi" else 2)  # waiting / parking
    cost = TAXI_BASE + TAXI_PER_KM * km if mode == "taxi" else DRIVE_PER_KM * km
    return Leg(mode, minutes, round(cost, 2), km)


def vehicles(mode: str, people: int) -> int:
    """How many taxis or cars a group needs (TravelPlanner: 4 per taxi, 5 per car)."""
    if mode == "taxi":
        return math.ceil(people / TAXI_SEATS)
    if mode == "drive":
        return math.ceil(people / CAR_SEATS)
    return 0
