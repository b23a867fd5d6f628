"""TravelPlanner oracle: the cheapest plan TravelPlanner's database allows for a query, written
from tool answers, or the reason none exists.

Search (over the sandbox in memory: TravelPlanner's view of its database, see importer.py):

* Cities — the destination, or every ordering of ``visiting_city_number`` cities of the state
  other than the origin (the ``MAX_CANDIDATES`` that host a stay most cheaply), with every split
  of the nights over them (at least one each).
* Stay — per city the cheapest accommodation (price x rooms) that meets the room type, the house
  rule and its minimum nights; per full day three restaurants and an attraction, none repeated.
* Cuisines — the wanted cuisines are assigned across the whole trip: each to one city, whose
  full-day meals then include a restaurant serving it, at the least extra cost over the
  cheapest meals (TravelPlanner counts a cuisine anywhere but in the origin).
* Transport — all self-driving, all taxi, or (when flights were imported) per leg the cheaper
  of the cheapest flight that day and a taxi, so a leg without a road route flies: every mode
  the query allows (TravelPlanner forbids self-driving with flights or taxis).

The cheapest plan within the budget wins (``budget=False`` ignores the budget: the query
generator sets the budget from the plan). The oracle then makes the calls that show every item
it uses (search_cities, the result pages that list its accommodations, restaurants, attractions
and flights, get_distance for each drive) and writes the plan from those answers.

TravelPlanner's evaluation finds a planned name by containment within its city, so the oracle only
names places that this look-up reads back as themselves: it skips a name that is part of another
name of the same city (or repeats one), and one that "Name, City" would not parse back.
"""

from __future__ import annotations

import itertools
import math
import sqlite3
from dataclasses import dataclass
from typing import Any

from hiergym.envs.tools import ToolCall

from ..recorder import CallRecorder
from ..rules import ROOM_TYPE_RULES, house_rule_ok, house_rules_of
from .database import TravelPlannerDB, fare_order, open_database, route_cost
from .evaluate import get_valid_name_city, total_cost
from .tasks import TravelPlannerTask
from .tools import (
    PAGE_SIZE,
    get_distance,
    search_accommodations,
    search_attractions,
    search_cities,
    search_flights,
    search_restaurants,
)

MAX_CANDIDATES = 8  # cities of a state tried in a multi-city trip (the cheapest hosts)
PER_CUISINE = 4  # restaurants serving a wanted cuisine tried per city
VEHICLE_SEATS = {"self-driving": 5, "taxi": 4}
MAX_PAGES = 60


@dataclass(frozen=True)
class Plan:
    calls: list[ToolCall]
    plan: list[dict[str, Any]]
    mode: str
    cost: float = 0.0


@dataclass(frozen=True)
class Unsolvable:
    """Why a query has no plan in the database (or none within its budget)."""

    reason: str


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
    rooms = math.ceil(people / (accommodation.get("max_occupancy") or 1))
    return accommodation["price"] * rooms


def nights_per_city(days: int, cities: int) -> list[int]:
    nights = days - 1
    return [nights // cities + (i < nights % cities) for i in range(cities)]


def splits(nights: int, cities: int) -> list[tuple[int, ...]]:
    """Every way to spend ``nights`` over ``cities`` cities in order, at least one night each;
    the even split first."""
    even = tuple(nights_per_city(nights + 1, cities))
    out = [
        s
        for s in itertools.product(range(1, nights + 1), repeat=cities)
        if sum(s) == nights and s != even
    ]
    return ([even] if min(even, default=0) >= 1 else []) + out


def _database(conn: sqlite3.Connection) -> TravelPlannerDB:
    return open_database(conn.execute("PRAGMA database_list").fetchone()[2])


@dataclass(frozen=True)
class _Leg:
    origin: str
    destination: str
    date: str
    mode: str  # self-driving | taxi | flight
    cost: float
    flight: dict[str, Any] | None = None


@dataclass(frozen=True)
class _Meals:
    cost: float
    restaurants: tuple[dict[str, Any], ...]


class _Search:
    """The cheapest plan for one task, over the database in memory."""

    def __init__(self, tp: TravelPlannerDB, task: TravelPlannerTask):
        self.tp, self.task = tp, task
        self.people = task.people
        self.reasons: list[str] = []
        self._cities: dict[str, dict[str, Any]] = {}
        self._meal_cache: dict[tuple, _Meals | None] = {}
        self._leg_cache: dict[tuple, _Leg | None] = {}

    # ---- what a city offers -----------------------------------------------------------------

    def _city_rows(self, rows: dict[str, list[dict[str, Any]]], city: str) -> list[dict]:
        return readable(rows.get(city, []), city)

    def city(self, city: str) -> dict[str, Any]:
        if city not in self._cities:
            task = self.task
            fitting = [
                a
                for a in self._city_rows(self.tp.accommodations, city)
                if a["price"] is not None
                and (task.room_type is None or ROOM_TYPE_RULES[task.room_type](a["room_type"]))
                and house_rule_ok(task.house_rule, house_rules_of(a["house_rules"]))
            ]
            restaurants = sorted(
                (r for r in self._city_rows(self.tp.restaurants, city) if r["average_cost"]),
                key=lambda r: r["average_cost"],
            )
            self._cities[city] = {
                "accommodations": fitting,
                "restaurants": restaurants,
                "attractions": self._city_rows(self.tp.attractions, city),
            }
        return self._cities[city]

    def bed(self, city: str, nights: int) -> dict[str, Any] | None:
        fitting = [
            a for a in self.city(city)["accommodations"] if (a["minimum_nights"] or 1) <= nights
        ]
        return min(fitting, key=lambda a: (night_cost(a, self.people), a["name"]), default=None)

    def can_host(self, city: str, nights: int) -> str | None:
        """Why ``city`` cannot host ``nights`` nights, or None."""
        offer = self.city(city)
        if self.bed(city, nights) is None:
            return f"no accommodation in {city} fits {self._rules()} for {nights} night(s)"
        full = nights - 1
        if len(offer["attractions"]) < full or len(offer["restaurants"]) < 3 * full:
            return f"{city} has too few restaurants or attractions for {full} full day(s)"
        return None

    def _rules(self) -> str:
        task = self.task
        parts = [f"room type {task.room_type}"] if task.room_type else []
        parts += [f"house rule {task.house_rule}"] if task.house_rule else []
        return " and ".join(parts) or "the group"

    def meals(self, city: str, full: int, cuisines: frozenset[str]) -> _Meals | None:
        key = (city, full, cuisines)
        cache = self._meal_cache
        if key not in cache:
            cache[key] = self._meals(city, full, cuisines)
        return cache[key]

    def _meals(self, city: str, full: int, cuisines: frozenset[str]) -> _Meals | None:
        restaurants = self.city(city)["restaurants"]
        need = 3 * full
        if need == 0:
            return _Meals(0.0, ()) if not cuisines else None
        options = [
            [r for r in restaurants if c in str(r["cuisines"])][:PER_CUISINE]
            for c in sorted(cuisines)
        ]
        best: _Meals | None = None
        for picks in itertools.product(*options):
            chosen = list({r["name"]: r for r in picks}.values())
            if len(chosen) > need:
                continue
            names = {r["name"] for r in chosen}
            chosen += [r for r in restaurants if r["name"] not in names][: need - len(chosen)]
            if len(chosen) < need:
                continue
            cost = sum(r["average_cost"] for r in chosen) * self.people
            if best is None or cost < best.cost - 1e-9:
                best = _Meals(cost, tuple(sorted(chosen, key=lambda r: r["average_cost"])))
        return best

    # ---- legs ------------------------------------------------------------------------------

    def leg(self, a: str, b: str, date: str, mode: str) -> _Leg | None:
        key = (a, b, date, mode)
        cache = self._leg_cache
        if key not in cache:
            cache[key] = self._leg(a, b, date, mode)
        return cache[key]

    def _leg(self, a: str, b: str, date: str, mode: str) -> _Leg | None:
        if mode == "flight":
            options = [self._flight(a, b, date), self.leg(a, b, date, "taxi")]
            options = [o for o in options if o is not None]
            return min(options, key=lambda o: o.cost, default=None)
        route = self.tp.routes.get((a, b))
        if route is None:
            return None
        cost = route_cost(route, mode) * math.ceil(self.people / VEHICLE_SEATS[mode])
        return _Leg(a, b, date, mode, cost)

    def _flight(self, a: str, b: str, date: str) -> _Leg | None:
        if not self.tp.has_flights:
            return None
        store = self.tp.flight_store
        assert store is not None  # has_flights
        priced = [r for r in store.route(self.tp.conn, a, b, date) if r[1] is not None]
        if not priced:
            return None
        n, price, dep, arr = min(priced, key=fare_order)[:4]  # min: the first of equals
        row = {"number": n, "price": price, "dep_time": dep, "arr_time": arr}
        return _Leg(a, b, date, "flight", price * self.people, row)

    def modes(self) -> list[str]:
        rule = self.task.transportation
        allowed = ["taxi"] if rule == "no self-driving" else ["self-driving", "taxi"]
        if self.tp.has_flights and rule != "no flight":
            allowed.append("flight")
        return allowed

    # ---- the search ------------------------------------------------------------------------

    def candidates(self) -> list[str]:
        task = self.task
        if task.visiting_city_number == 1:
            return [task.dest]
        members = [
            c for c, s in sorted(self.tp.city_state.items()) if s == task.dest and c != task.org
        ]
        nights = nights_per_city(task.days, task.visiting_city_number)
        hosting = []
        for city in members:
            why = self.can_host(city, min(nights))
            if why is None:
                bed = self.bed(city, min(nights))
                meals = self.meals(city, min(nights) - 1, frozenset()) or _Meals(0.0, ())
                hosting.append((night_cost(bed, self.people) * min(nights) + meals.cost, city))
            else:
                self.reasons.append(why)
        if len(hosting) < task.visiting_city_number:
            self.reasons.append(
                f"{task.dest} has {len(hosting)} cities that can host the stay; the query visits "
                f"{task.visiting_city_number}"
            )
        return [c for _, c in sorted(hosting)[:MAX_CANDIDATES]]

    def run(self, budget: bool) -> tuple[float, dict[str, Any]] | Unsolvable:
        task = self.task
        best: tuple[float, dict[str, Any]] | None = None
        cities = self.candidates()
        wanted = tuple(task.cuisines)
        for order in itertools.permutations(cities, task.visiting_city_number):
            for nights in splits(task.days - 1, len(order)):
                found = self._stays(order, nights, wanted)
                if found is None:
                    continue
                stay_cost, stays = found
                for mode in self.modes():
                    legs = self._legs(order, nights, mode)
                    if legs is None:
                        continue
                    cost = stay_cost + sum(leg.cost for leg in legs)
                    if best is None or cost < best[0] - 1e-9:
                        best = (cost, {"stays": stays, "legs": legs, "mode": mode})
        if best is None:
            reasons = list(dict.fromkeys(self.reasons)) or ["no city ordering works"]
            return Unsolvable("no plan in the database: " + "; ".join(reasons[:4]))
        if budget and best[0] > task.budget + 1e-9:
            return Unsolvable(
                f"the cheapest plan in the database costs ${best[0]:,.0f}, over the budget "
                f"${task.budget:,.0f}"
            )
        return best

    def _stays(self, order: tuple[str, ...], nights: tuple[int, ...], wanted: tuple[str, ...]):
        stays = []
        cost = 0.0
        for city, n in zip(order, nights, strict=True):
            why = self.can_host(city, n)
            if why is not None:
                self.reasons.append(why)
                return None
            bed = self.bed(city, n)
            stays.append((city, n, bed))
            cost += night_cost(bed, self.people) * n
        best = None
        for assignment in itertools.product(range(len(order)), repeat=len(wanted)):
            meals = []
            for i, (city, n, _) in enumerate(stays):
                mine = frozenset(c for c, j in zip(wanted, assignment, strict=True) if j == i)
                m = self.meals(city, n - 1, mine)
                if m is None:
                    break
                meals.append(m)
            else:
                total = sum(m.cost for m in meals)
                if best is None or total < best[0] - 1e-9:
                    best = (total, meals)
        if best is None:
            self.reasons.append(
                f"the cuisines {', '.join(wanted)} cannot all be eaten on the full days in "
                f"{', '.join(order)}"
            )
            return None
        out = [
            {
                "city": city,
                "nights": n,
                "bed": bed,
                "meals": meals.restaurants,
                "sights": [a["name"] for a in self.city(city)["attractions"][: n - 1]],
            }
            for (city, n, bed), meals in zip(stays, best[1], strict=True)
        ]
        return cost + best[0], out

    def _legs(self, order: tuple[str, ...], nights: tuple[int, ...], mode: str):
        task = self.task
        stops = [task.org, *order, task.org]
        day, legs = 0, []
        for i in range(len(stops) - 1):
            leg = self.leg(stops[i], stops[i + 1], task.dates[day], mode)
            if leg is None:
                how = "flight or road route" if mode == "flight" else f"{mode} route"
                self.reasons.append(f"no {how} from {stops[i]} to {stops[i + 1]}")
                return None
            legs.append(leg)
            if i < len(nights):
                day += nights[i]
        return legs


class _Writer(CallRecorder):
    """Makes the calls that show the chosen items, and writes the plan from their answers."""

    def __init__(self, env: Any, task: TravelPlannerTask):
        super().__init__(env)
        self.task = task

    def shown(self, tool: Any, names: set[str], key: str = "name", **arguments: Any) -> dict:
        """The rows named ``names`` from the pages of ``tool`` that show them."""
        found: dict[str, dict] = {}
        for page in range(1, MAX_PAGES + 1):
            answer = self.call(tool, **arguments, page=page)
            found.update({r[key]: r for r in answer["results"] if r[key] in names})
            if names <= set(found) or page * PAGE_SIZE >= answer["total"]:
                break
        missing = names - set(found)
        if missing:
            raise RuntimeError(f"the tools never showed {sorted(missing)[:3]} ({tool.name})")
        return found

    def write(self, chosen: dict[str, Any]) -> list[dict[str, Any]]:
        task = self.task
        if task.visiting_city_number > 1:
            self.call(search_cities, state=task.dest)
        plan: list[dict[str, Any]] = []
        legs = chosen["legs"]
        for j, stay in enumerate([*chosen["stays"], None]):
            leg = legs[j]
            plan.append(
                _day(len(plan) + 1, f"from {leg.origin} to {leg.destination}", self.ride(leg))
            )
            if stay is None:
                break
            city = stay["city"]
            bed = self.shown(search_accommodations, {stay["bed"]["name"]}, city=city)
            bed_text = f"{bed[stay['bed']['name']]['name']}, {city}"
            plan[-1]["accommodation"] = bed_text
            full = stay["nights"] - 1
            meals = list(stay["meals"])
            shown = self.shown(search_restaurants, {r["name"] for r in meals}, city=city)
            shown_sights = self.shown(search_attractions, set(stay["sights"]), city=city)
            sights = [shown_sights[name]["name"] for name in stay["sights"]]
            for d in range(full):
                day = _day(len(plan) + 1, city, "-", accommodation=bed_text)
                for k, meal in enumerate(("breakfast", "lunch", "dinner")):
                    day[meal] = f"{shown[meals[3 * d + k]['name']]['name']}, {city}"
                day["attraction"] = f"{sights[d]}, {city};"
                plan.append(day)
        return plan

    def ride(self, leg: _Leg) -> str:
        if leg.mode == "flight":
            assert leg.flight is not None
            number = leg.flight["number"]
            f = self.shown(
                search_flights,
                {number},
                key="number",
                origin=leg.origin,
                destination=leg.destination,
                date=leg.date,
            )[number]
            return (
                f"Flight Number: {number}, from {leg.origin} to {leg.destination}, "
                f"Departure Time: {f['depart']}, Arrival Time: {f['arrive']}"
            )
        route = self.call(get_distance, origin=leg.origin, destination=leg.destination)
        label = "Self-driving" if leg.mode == "self-driving" else "Taxi"
        return (
            f"{label}, from {leg.origin} to {leg.destination}, duration: {route['duration']}, "
            f"distance: {route['distance']}, cost: {route['cost'][leg.mode]}"
        )


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


def solve(env: Any, task: TravelPlannerTask, *, budget: bool = True) -> Plan | Unsolvable:
    """The oracle's plan for ``task`` (its calls, last the submit), or why there is none."""
    tp = _database(env.db)
    found = _Search(tp, task).run(budget)
    if isinstance(found, Unsolvable):
        return found
    cost, chosen = found
    writer = _Writer(env, task)
    plan = writer.write(chosen)
    checked = total_cost(task.record, plan, tp)
    if abs(checked - cost) > 1e-6:
        raise RuntimeError(
            f"the oracle costed its plan ${cost:g}; TravelPlanner's rule ${checked:g}"
        )
    calls = [*writer.calls, ToolCall("submit", {"plan": plan})]
    return Plan(calls, plan, chosen["mode"], cost)


def plan(env: Any, task: TravelPlannerTask, *, budget: bool = True) -> Plan | None:
    """The oracle's plan for ``task``, or None if the database has none (see :func:`solve`)."""
    found = solve(env, task, budget=budget)
    return None if isinstance(found, Unsolvable) else found


class TravelPlannerOracle:
    """``make_oracle()``'s answer: ``plan(task)`` gives the calls; a served task without a plan
    is an error that says why (every served task must be solvable)."""

    def __init__(self, sandbox: Any):
        self.sandbox = sandbox

    def plan(self, task: Any) -> list[ToolCall]:
        found = solve(self.sandbox, task)
        if isinstance(found, Unsolvable):
            raise RuntimeError(f"the oracle cannot solve {task.task_id}: {found.reason}")
        return found.calls
