"""TravelPlanner oracle: writes a plan in TravelPlanner's format from tool answers only.

* Route — the destination city; for a state, the first ordering (by name) of the state's cities
  (search_cities) in which every city can host its nights and every leg has a route
  (get_distance), found depth-first.
* Nights — split evenly over the cities; in each city the traveller arrives, spends the full days,
  and leaves on the next travel day.
* Transport — every leg self-driving, or every leg by taxi, or (when flights were imported) the
  cheapest flight of each leg with a taxi where none flies: the cheapest mode the query allows
  (TravelPlanner forbids mixing self-driving with flights or taxis).
* Per city the cheapest accommodation that meets the room type, the house rule and its minimum
  nights (price x rooms); per full day the cheapest unused breakfast, lunch and dinner (a wanted
  cuisine not yet eaten first) and an unused attraction.

TravelPlanner's evaluation finds a planned name by containment within its city, so the oracle only
names places that this look-up reads back as themselves: it skips a name that is part of another
name of the same city (or repeats one), and one that "Name, City" would not parse back.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from hiergym.envs.tools import ToolCall

from ..recorder import CallRecorder
from ..rules import ROOM_TYPE_RULES, house_rule_ok, house_rules_of
from .evaluate import get_valid_name_city
from .tasks import TravelPlannerTask
from .tools import (
    PAGE_SIZE,
    directory,
    get_distance,
    search_accommodations,
    search_attractions,
    search_cities,
    search_flights,
    search_restaurants,
)

MAX_PAGES = 10
MAX_ROUTE_LOOKUPS = 40
VEHICLE_SEATS = {"self-driving": 5, "taxi": 4}


@dataclass(frozen=True)
class Plan:
    calls: list[ToolCall]
    plan: list[dict[str, Any]]
    mode: str


@dataclass(frozen=True)
class _Stay:
    city: str
    nights: int
    accommodation: dict[str, Any]
    restaurants: list[dict[str, Any]]
    attractions: list[dict[str, Any]]


def readable(rows: list[dict[str, Any]], city: str) -> list[dict[str, Any]]:
    """The rows whose name TravelPlanner's look-up reads back as exactly that row."""
    names = [r["name"] for r in rows]
    return [
        r
        for r in rows
        if sum(r["name"] in other for other in names) == 1
        and ";" not in r["name"]
        and get_valid_name_city(f"{r['name']}, {city}") == (r["name"], city)
    ]


def night_cost(accommodation: dict[str, Any], people: int) -> float:
    """A night for the group: the room's price times the rooms it takes (TravelPlanner's rule)."""
    return accommodation["price"] * math.ceil(people / (accommodation["maximum_occupancy"] or 1))


def nights_per_city(days: int, cities: int) -> list[int]:
    nights = days - 1
    return [nights // cities + (i < nights % cities) for i in range(cities)]


class _Planner(CallRecorder):
    def __init__(self, env: Any, task: TravelPlannerTask):
        super().__init__(env)
        self.task = task
        self.has_flights = directory(env.db).has_flights
        self._stays: dict[tuple[str, int], _Stay | None] = {}
        self._routes: dict[tuple[str, str], dict[str, Any] | None] = {}
        self.route_lookups = 0

    # ---- what a city offers -----------------------------------------------------------------

    def listing(self, tool: Any, city: str) -> list[dict[str, Any]]:
        return readable(self.pages(tool, MAX_PAGES, PAGE_SIZE, city=city), city)

    def stay(self, city: str, nights: int) -> _Stay | None:
        """The city's cheapest fitting accommodation and its readable places, if it can host us."""
        key = (city, nights)
        if key not in self._stays:
            self._stays[key] = self._find_stay(city, nights)
        return self._stays[key]

    def _find_stay(self, city: str, nights: int) -> _Stay | None:
        task = self.task
        fitting = [
            a
            for a in self.listing(search_accommodations, city)
            if a["price"] is not None
            and (a["minimum_nights"] or 1) <= nights
            and (task.room_type is None or ROOM_TYPE_RULES[task.room_type](a["room_type"]))
            and house_rule_ok(task.house_rule, house_rules_of(a["house_rules"]))
        ]
        if not fitting:
            return None
        best = min(fitting, key=lambda a: (night_cost(a, task.people), a["name"]))
        full_days = nights - 1
        restaurants = [
            r for r in self.listing(search_restaurants, city) if r["average_cost"] is not None
        ]
        attractions = self.listing(search_attractions, city)
        if len(restaurants) < 3 * full_days or len(attractions) < full_days:
            return None
        return _Stay(city, nights, best, restaurants, attractions)

    def route(self, a: str, b: str) -> dict[str, Any] | None:
        """get_distance's answer from ``a`` to ``b``, or None without a route."""
        if (a, b) not in self._routes:
            self.route_lookups += 1
            found = self.call(get_distance, origin=a, destination=b)
            self._routes[(a, b)] = found if found.get("cost") else None
        return self._routes[(a, b)]

    # ---- the city route --------------------------------------------------------------------

    def candidates(self) -> list[str]:
        task = self.task
        if task.visiting_city_number == 1:
            return [task.dest]
        cities = self.call(search_cities, state=task.dest)["cities"]
        return [c for c in cities if c != task.org]

    def routes(self) -> Iterator[list[_Stay]]:
        """City orderings whose cities can host their nights and whose legs all have routes."""
        task = self.task
        nights = nights_per_city(task.days, task.visiting_city_number)
        cities = self.candidates()

        def extend(stays: list[_Stay], here: str) -> Iterator[list[_Stay]]:
            if self.route_lookups > MAX_ROUTE_LOOKUPS:
                return
            if len(stays) == len(nights):
                if self.route(here, task.org):
                    yield stays
                return
            for city in cities:
                if any(s.city == city for s in stays):
                    continue
                stay = self.stay(city, nights[len(stays)])
                if stay is not None and self.route(here, city):
                    yield from extend([*stays, stay], city)

        if min(nights) >= 1:
            yield from extend([], task.org)

    # ---- transport -------------------------------------------------------------------------

    def modes(self) -> list[str]:
        rule = self.task.transportation
        allowed = ["self-driving", "taxi"] if rule != "no self-driving" else ["taxi"]
        if self.has_flights and rule != "no flight":
            allowed.append("flight")
        return allowed

    def ride(self, mode: str, a: str, b: str, date: str) -> tuple[str, float]:
        """The day's transportation entry and its cost for the group."""
        people = self.task.people
        if mode == "flight":
            found = self.pages(search_flights, 1, PAGE_SIZE, origin=a, destination=b, date=date)
            flights = [f for f in found if f["price"] is not None]
            if flights:  # cheapest first
                f = flights[0]
                text = (
                    f"Flight Number: {f['number']}, from {a} to {b}, "
                    f"Departure Time: {f['depart']}, Arrival Time: {f['arrive']}"
                )
                return text, f["price"] * people
            mode = "taxi"  # no flight that day: a taxi, which TravelPlanner lets mix with flights
        route = self._routes[(a, b)]
        assert route is not None
        cost = route["cost"][mode]
        label = "Self-driving" if mode == "self-driving" else "Taxi"
        text = (
            f"{label}, from {a} to {b}, duration: {route['duration']}, "
            f"distance: {route['distance']}, cost: {cost}"
        )
        return text, cost * math.ceil(people / VEHICLE_SEATS[mode])

    # ---- the plan --------------------------------------------------------------------------

    def write(self, stays: list[_Stay], mode: str) -> tuple[list[dict[str, Any]], float] | None:
        task = self.task
        people = task.people
        plan: list[dict[str, Any]] = []
        cost = 0.0
        used: set[tuple[str, str]] = set()
        wanted = set(task.cuisines)
        here = task.org
        for stay in [*stays, None]:
            there = stay.city if stay else task.org
            transport, fare = self.ride(mode, here, there, task.dates[len(plan)])
            cost += fare
            plan.append(_day(len(plan) + 1, f"from {here} to {there}", transport))
            if stay is None:
                break
            acc = stay.accommodation
            bed = f"{acc['name']}, {stay.city}"
            plan[-1]["accommodation"] = bed
            for _ in range(stay.nights - 1):
                day = _day(len(plan) + 1, stay.city, "-", accommodation=bed)
                for meal in ("breakfast", "lunch", "dinner"):
                    r = _cheapest(stay.restaurants, used, wanted)
                    if r is None:
                        return None
                    used.add(("restaurant", r["name"]))
                    wanted -= set(r["cuisines"].split(", "))
                    day[meal] = f"{r['name']}, {stay.city}"
                    cost += r["average_cost"] * people
                a = next(
                    (a for a in stay.attractions if ("attraction", a["name"]) not in used), None
                )
                if a is None:
                    return None
                used.add(("attraction", a["name"]))
                day["attraction"] = f"{a['name']}, {stay.city};"
                plan.append(day)
            cost += night_cost(acc, people) * stay.nights
            here = stay.city
        if wanted:
            return None
        return plan, cost

    def run(self) -> Plan | None:
        for stays in self.routes():
            best = None
            for mode in self.modes():
                written = self.write(stays, mode)
                if written is not None and (best is None or written[1] < best[1] - 1e-9):
                    best = (written[0], written[1], mode)
            if best is not None:
                calls = [*self.calls, ToolCall("submit", {"plan": best[0]})]
                return Plan(calls, best[0], best[2])
        return None


def _day(n: int, city: str, transportation: str, accommodation: str = "-") -> dict[str, Any]:
    return {
        "days": n,
        "current_city": city,
        "transportation": transportation,
        "breakfast": "-",
        "attraction": "-",
        "lunch": "-",
        "dinner": "-",
        "accommodation": accommodation,
    }


def _cheapest(
    restaurants: list[dict[str, Any]], used: set[tuple[str, str]], wanted: set[str]
) -> dict[str, Any] | None:
    """The cheapest unused restaurant, one serving a still-wanted cuisine first."""
    options = [r for r in restaurants if ("restaurant", r["name"]) not in used]
    if not options:
        return None
    return min(
        options,
        key=lambda r: (not wanted & set(r["cuisines"].split(", ")), r["average_cost"], r["name"]),
    )


def plan(env: Any, task: TravelPlannerTask) -> Plan | None:
    """The oracle's plan for ``task``, or None if it finds none."""
    return _Planner(env, task).run()
