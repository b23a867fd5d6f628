"""Travel oracle: a constraint-satisfying planner whose every fact comes through the tools.

It fixes the city route (nearest-neighbour from the origin through the region), splits the nights
evenly, then builds two candidate trips and keeps the cheaper one that satisfies every constraint:

* public — per intercity leg the cheapest flight or train with enough seats that fits the day,
  taxis (or a walk under 25 minutes) between places;
* car — every intercity leg driven in the group's own car(s), driving or walking locally.

Per city it takes the cheapest hotel that satisfies room type, house rule, minimum nights and the
rating preference (price x rooms), and schedules each full day greedily: breakfast, attraction(s),
lunch, attraction(s), dinner, back to the hotel — each the cheapest option (meal or ticket x people
plus the ride) that fits opening hours and the meal windows, preferring a required cuisine not yet
eaten. Every search and distance it relies on is a recorded tool call, so its plan is grounded.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from hiergym.envs.tools import ToolCall

from . import recorder
from .clock import add_days, hhmm
from .geo import vehicles
from .itinerary import MEALS, parse_itinerary, trip_cost
from .recorder import CallRecorder
from .rules import house_rule_ok, house_rules_of, room_type_ok
from .tasks import CITIES_FOR_DAYS, TravelTask, priced
from .tools import (
    MAX_DISTANCE_PAIRS,
    PAGE_SIZE,
    TOOLBOX,
    get_distance,
    search_attractions,
    search_flights,
    search_hotels,
    search_restaurants,
    search_trains,
)
from .verifier import DAY_END, build_verifier, needs
from .world import world_of

DAY_START = 8 * 60
TRAVEL_DAY_START = 6 * 60
LAST_MINUTE = 23 * 60 + 59
CAR_DEPARTURE = 9 * 60
WALK_LIMIT_MIN = 25
BOARDING = {"flight": 45, "train": 15}
PRE_RIDE_MARGIN = 45  # the last visit before a ride ends this long before boarding (taxi time)
DEPLANING = {"flight": 15, "train": 5}
MEAL_WINDOWS = {  # earliest start, latest start, minutes at the table
    "breakfast": (7 * 60, 10 * 60, 30),
    "lunch": (11 * 60 + 30, 14 * 60 + 30, 45),
    "dinner": (17 * 60 + 30, 21 * 60 + 30, 60),
}
MAX_HOTEL_PAGES = 5


@dataclass
class Plan:
    calls: list[ToolCall]
    itinerary: dict[str, Any]
    cost: float
    mode: str


@dataclass
class _Day:
    acts: list[dict[str, Any]] = field(default_factory=list)
    loc: str = ""
    t: int = 0


class _Planner(CallRecorder):
    def __init__(self, state: Any, task: TravelTask, mode: str):
        super().__init__(state)
        self.task, self.mode = task, mode
        self.world = world_of(state.db)
        self.used: set[str] = set()
        self.cuisines_left = set(task.cuisines)

    # ---- route -----------------------------------------------------------------------------

    def route(self) -> list[str]:
        task, world = self.task, self.world
        if not task.is_region:
            return [task.destination]
        left = [c for c in world.regions[task.destination] if c != task.origin]
        here, route = world.cities[task.origin], []
        for _ in range(CITIES_FOR_DAYS.get(task.days, task.visiting_city_number)):
            if not left:
                break
            nxt = min(
                left,
                key=lambda c: (
                    (world.cities[c].lat - here.lat) ** 2 + (world.cities[c].lon - here.lon) ** 2,
                    c,
                ),
            )
            route.append(nxt)
            left.remove(nxt)
            here = world.cities[nxt]
        return route

    # ---- choices ---------------------------------------------------------------------------

    def hotel(self, city: str, nights: int) -> dict[str, Any] | None:
        task = self.task
        room = {"entire room": "Entire home/apt", "private room": "Private room"}.get(
            task.room_type or ""
        )
        if task.room_type == "shared room":
            room = "Shared room"
        args: dict[str, Any] = {"city": city, "sort": "price"}
        if room:
            args["room_type"] = room
        if task.min_hotel_rating:
            args["min_rating"] = task.min_hotel_rating
        best, best_cost = None, math.inf
        for page in range(1, MAX_HOTEL_PAGES + 1):
            found = self.call(search_hotels, **args, page=page)
            for h in found["results"]:
                if h["price"] >= best_cost:
                    return best  # sorted by price: nothing later beats one room at best_cost
                rules = house_rules_of(h["house_rules"])
                if (
                    h["minimum_nights"] <= nights
                    and room_type_ok(task.room_type, h["room_type"])
                    and house_rule_ok(task.house_rule, rules)
                ):
                    cost = h["price"] * math.ceil(task.people / h["max_occupancy"])
                    if cost < best_cost:
                        best, best_cost = h, cost
            if page * PAGE_SIZE >= found["total"]:
                break
        return best

    def local(self, a: str, b: str) -> Any:
        """The leg the planner takes between two places: a short walk, else taxi (or own car)."""
        walk = self.world.leg("walk", a, b)
        if walk is not None and walk.minutes <= WALK_LIMIT_MIN:
            return walk
        return self.world.leg("drive" if self.mode == "car" else "taxi", a, b)

    def move(self, day: _Day, to: str, start: int | None = None) -> bool:
        if day.loc == to:
            return True
        leg = self.local(day.loc, to)
        if leg is None:
            return False
        begin = day.t if start is None else start
        day.acts.append(
            {
                "type": "transfer",
                "mode": leg.mode,
                "from": day.loc,
                "to": to,
                "start": hhmm(begin),
                "end": hhmm(begin + leg.minutes),
                "cost": leg.cost,
            }
        )
        day.loc, day.t = to, begin + leg.minutes
        return day.t <= LAST_MINUTE

    # ---- travel days -----------------------------------------------------------------------

    def rides(self, a: str, b: str, date: str) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        kinds = []
        if self.task.transport != "no flight":
            kinds.append(("flight", search_flights))
        if self.world.hub("station", a) and self.world.hub("station", b):
            kinds.append(("train", search_trains))
        for kind, tool in kinds:
            for r in self.pages(tool, 3, PAGE_SIZE, origin=a, destination=b, date=date):
                out.append({**r, "kind": kind})
        return sorted(out, key=lambda r: (r["price"], r["depart"], r["number"]))

    def travel(self, day: _Day, a: str, b: str, date: str, target: str | None) -> bool:
        """Get from city ``a`` to ``b`` (and to ``target``, the night's hotel, if any), with the
        meals and visits the day owes before leaving ``a`` and after reaching ``b`` (``needs``)."""
        away_a, away_b = a != self.task.origin, b != self.task.origin
        if self.mode == "car":
            saved = self._save()
            trial = _Day(list(day.acts), day.loc, DAY_START)
            pre, _ = needs(CAR_DEPARTURE, DAY_END, away_a, False)
            if not self.schedule(trial, a, pre, CAR_DEPARTURE):
                return self._restore(saved)
            end = target or self.world.hub("center", b)
            leg = self.world.leg("drive", trial.loc, end)
            if leg is None:
                return self._restore(saved)
            arrive = CAR_DEPARTURE + leg.minutes
            trial.acts.append(
                {
                    "type": "transfer",
                    "mode": "drive",
                    "from": trial.loc,
                    "to": end,
                    "start": hhmm(CAR_DEPARTURE),
                    "end": hhmm(arrive),
                    "cost": leg.cost,
                }
            )
            trial.loc, trial.t = end, arrive
            _, post = needs(CAR_DEPARTURE, arrive, False, away_b)
            if not self.schedule(trial, b, post) or (target and not self.move(trial, target)):
                return self._restore(saved)
            day.acts, day.loc, day.t = trial.acts, trial.loc, trial.t
            return day.t <= LAST_MINUTE
        for ride in self.rides(a, b, date):
            if ride["seats"] < self.task.people:
                continue
            kind = ride["kind"]
            hub_a = self.world.hub("airport" if kind == "flight" else "station", a)
            hub_b = self.world.hub("airport" if kind == "flight" else "station", b)
            dep = _minutes(ride["depart"])
            arr = _minutes(ride["arrive"])
            pre, post = needs(dep, arr, away_a, away_b)
            saved = self._save()
            trial = _Day(list(day.acts), day.loc, day.t)
            owes = bool(pre[0] or pre[1])
            if owes and not self.schedule(trial, a, pre, dep - BOARDING[kind] - PRE_RIDE_MARGIN):
                self._restore(saved)
                continue
            to_hub = self.local(trial.loc, hub_a) if trial.loc != hub_a else None
            leave = dep - BOARDING[kind] - (to_hub.minutes if to_hub else 0)
            earliest = trial.t if owes else TRAVEL_DAY_START
            if leave < earliest or not self.move(trial, hub_a, leave):
                self._restore(saved)
                continue
            trial.acts.append(
                {
                    "type": kind,
                    "number": ride["number"],
                    "from": a,
                    "to": b,
                    "start": ride["depart"],
                    "end": ride["arrive"],
                    "cost": ride["price"],
                }
            )
            trial.loc, trial.t = hub_b, arr + DEPLANING[kind]
            if not self.schedule(trial, b, post) or (
                target is not None and not self.move(trial, target)
            ):
                self._restore(saved)
                continue
            day.acts, day.loc, day.t = trial.acts, trial.loc, trial.t
            return True
        return False

    def _save(self) -> tuple[set[str], set[str]]:
        return set(self.used), set(self.cuisines_left)

    def _restore(self, saved: tuple[set[str], set[str]]) -> bool:
        self.used, self.cuisines_left = set(saved[0]), set(saved[1])
        return False

    def schedule(
        self, day: _Day, city: str, owed: tuple[list[str], bool], deadline: int | None = None
    ) -> bool:
        """Append the meals and visits ``owed`` in ``city`` (in a full day's order), each ending
        by ``deadline`` if given."""
        meals, visit = owed
        steps = [s for s in self.day_steps() if s[0] in meals or (visit and s[0] == "attraction")]
        if not steps:
            return True
        restaurants, attractions = self.candidates(city)
        for kind, until in steps:
            options = attractions if kind == "attraction" else restaurants
            if not self.visit(
                day, options, kind, until if deadline is None else min(until, deadline)
            ):
                return False
        return True

    # ---- full days -------------------------------------------------------------------------

    def candidates(self, city: str) -> tuple[list[dict], list[dict]]:
        task = self.task
        args: dict[str, Any] = {"city": city, "sort": "cost"}
        if task.min_restaurant_rating:
            args["min_rating"] = task.min_restaurant_rating
        restaurants = {r["id"]: r for r in self.pages(search_restaurants, 2, PAGE_SIZE, **args)}
        for c in sorted(self.cuisines_left):
            for r in self.pages(search_restaurants, 1, PAGE_SIZE, **args, cuisine=c):
                restaurants.setdefault(r["id"], r)
        attractions = self.pages(search_attractions, 2, PAGE_SIZE, city=city, sort="price")
        return list(restaurants.values()), attractions

    def visit(self, day: _Day, options: list[dict], kind: str, until: int) -> bool:
        """Append the cheapest feasible visit of ``kind`` (a meal name or "attraction")."""
        people = self.task.people
        scored = []
        for o in options:
            if o["id"] in self.used:
                continue
            leg = self.local(day.loc, o["id"]) if day.loc != o["id"] else None
            if day.loc != o["id"] and leg is None:
                continue
            ride = leg.cost * vehicles(leg.mode, people) if leg else 0.0
            price = o["cost"] if kind != "attraction" else o["price"]
            wanted = kind != "attraction" and bool(
                self.cuisines_left & set(o["cuisines"].split(", "))
            )
            scored.append((not wanted, price * people + ride, o["id"], o))
        for _, _, _, o in sorted(scored, key=lambda s: s[:3]):
            trial = _Day(list(day.acts), day.loc, day.t)
            if not self.move(trial, o["id"]):
                continue
            open_, close = _minutes(o["open"]), _minutes(o["close"])
            if kind == "attraction":
                start, length, latest = max(trial.t, open_), o["duration"], until
            else:
                lo, hi, length = MEAL_WINDOWS[kind]
                start, latest = max(trial.t, lo, open_), until
                if start > hi:
                    continue
            end = start + length
            if end > close or end > latest:
                continue
            act: dict[str, Any] = (
                {"type": "meal", "meal": kind} if kind != "attraction" else {"type": "attraction"}
            )
            act.update(
                place=o["id"],
                start=hhmm(start),
                end=hhmm(end),
                cost=o["cost"] if kind != "attraction" else o["price"],
            )
            trial.acts.append(act)
            trial.t = end
            day.acts, day.loc, day.t = trial.acts, trial.loc, trial.t
            self.used.add(o["id"])
            if kind != "attraction":
                self.cuisines_left -= set(o["cuisines"].split(", "))
            return True
        return False

    def day_steps(self) -> list[tuple[str, int]]:
        """A full day's visits in order, each with the time it must end by."""
        n = self.task.attractions_per_day
        morning, afternoon = (n + 1) // 2, n // 2
        steps = [("breakfast", 10 * 60 + 30)]
        steps += [("attraction", 14 * 60)] * morning
        steps += [("lunch", 15 * 60 + 30)]
        steps += [("attraction", 20 * 60)] * afternoon
        steps += [("dinner", 22 * 60 + 30)]
        return steps

    def full_day(self, day: _Day, city: str, hotel: str) -> bool:
        day.t = DAY_START
        return self.schedule(day, city, (list(MEALS), True)) and self.move(day, hotel)

    # ---- the whole trip --------------------------------------------------------------------

    def run(self) -> Plan | None:
        task, world = self.task, self.world
        route = self.route()
        if len(route) != task.visiting_city_number:
            return None
        nights = task.days - 1
        per_city = [nights // len(route) + (i < nights % len(route)) for i in range(len(route))]
        if min(per_city) < 1:
            return None
        night_city: list[str] = []
        hotels: list[dict[str, Any]] = []
        for city, n in zip(route, per_city, strict=True):
            h = self.hotel(city, n)
            if h is None:
                return None
            night_city += [city] * n
            hotels += [h] * n
        days = []
        loc = world.hub("center", task.origin)
        assert loc is not None
        for d in range(task.days):
            date = add_days(task.start_date, d)
            here = night_city[d - 1] if d > 0 else task.origin
            there = night_city[d] if d < nights else task.origin
            target = hotels[d]["id"] if d < nights else None
            day = _Day([], loc, DAY_START)
            if here != there:
                ok = self.travel(day, here, there, date, target)
            else:
                ok = self.full_day(day, here, hotels[d]["id"])
            if not ok:
                return None
            self.distances(day.acts)
            loc = day.loc
            days.append(
                {
                    "day": d + 1,
                    "date": date,
                    "activities": day.acts,
                    "accommodation": (
                        {"place": hotels[d]["id"], "cost": hotels[d]["price"]}
                        if d < nights
                        else None
                    ),
                }
            )
        if self.cuisines_left:
            return None
        itinerary, errors = parse_itinerary({"days": days, "total_cost": 0.0})
        assert itinerary is not None, errors
        occupancy = {h["id"]: h["max_occupancy"] for h in hotels}
        cost = trip_cost(itinerary, task.people, occupancy)
        document = {"days": days, "total_cost": cost}
        calls = [*self.calls, ToolCall("submit", {"itinerary": document})]
        return Plan(calls, document, cost, self.mode)

    def distances(self, acts: list[dict[str, Any]]) -> None:
        """Look up every transfer of a day (get_distance), in calls of at most 48 pairs."""
        legs = [(a["from"], a["to"]) for a in acts if a["type"] == "transfer"]
        for i in range(0, len(legs), 6):
            chunk = legs[i : i + 6]
            origins = list(dict.fromkeys(x for x, _ in chunk))
            destinations = list(dict.fromkeys(y for _, y in chunk))
            assert len(origins) * len(destinations) <= MAX_DISTANCE_PAIRS
            self.call(get_distance, origins=origins, destinations=destinations)


def _minutes(text: str) -> int:
    return int(text[:2]) * 60 + int(text[3:])


def plan(state: Any, task: TravelTask, modes: tuple[str, ...] = ("public", "car")) -> Plan | None:
    """The cheapest plan over the allowed modes, or None if the oracle finds none."""
    best = None
    for mode in modes:
        if mode == "car" and task.transport == "no self-driving":
            continue
        found = _Planner(state, task, mode).run()
        if found is not None and (best is None or found.cost < best.cost - 1e-9):
            best = found
    return best


def prove(state: Any, draft: TravelTask) -> TravelTask | None:
    """The build-time prover (env.py hands it to ``tasks.generate_tasks``): None if the oracle finds
    no plan for ``draft``; else the task priced from the oracle's cheapest plan, once that plan's
    calls, run through the tools, pass the verifier on every level (a disagreement raises: it is a
    bug, never a silently dropped task)."""
    found = plan(state, draft)
    if found is None:
        return None
    task = priced(draft, found.cost, len(found.calls))
    recorder.prove(found.calls, state, TOOLBOX, build_verifier(state.db), task)
    return task
