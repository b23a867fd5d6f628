"""Travel verifier: format -> feasibility -> grounding -> constraints -> quality, each gating the next.

* format — one submission whose itinerary parses (itinerary.py names every schema error's path);
* feasibility (trajectory level) — the plan could happen: days and dates, times in order and never
  overlapping, the traveller is where each activity happens (legs at least as long as the real
  travel time, rides from the right hub), opening hours and meal windows, a bed every night but the
  last, start at the origin's centre and end in the origin city, a reasonable city route (each city
  one contiguous stay, in the destination), no repeated restaurant or attraction, minimum nights,
  non-conflicting transport (driving needs one's own car for the whole trip), enough free seats,
  no pointless hop (a day never returns to a city it left), and complete days: away from home, a
  journey exempts only its own hours, so every meal whose window and the visit hours (an
  attraction) that lie wholly before the first departure or after the last arrival are owed
  (see :func:`needs`; a day without a journey the route needs owes them all);
Grounding, constraints and quality require the levels before them (``Level.requires``): they
mean nothing for an infeasible or ungrounded plan, so no aggregator pays for them then.

* grounding (turn level) — every flight, train, hotel, restaurant, attraction and transfer, with its
  times and prices, matches a tool response the agent received before submitting (a citation);
  a plan with no items grounds nothing (score 0);
* constraints — budget (TravelPlanner's multipliers), the stated total, room type, house rule,
  cuisines, transport exclusions;
* quality — cost against the oracle's plan, and the soft preferences.
"""

from __future__ import annotations

from typing import Any

from hiergym.envs.evidence import Citations
from hiergym.rewards.levels import (
    Finding,
    HierarchicalVerifier,
    Level,
    LevelResult,
    SkipLevel,
    VerifyContext,
)

from .clock import TIMES, add_days, hhmm
from .itinerary import MEALS, RIDES, Activity, Itinerary, parse_itinerary, trip_cost
from .levels import FormatLevel, WorldLevel, submitted
from .rules import HOUSE_RULES, house_rule_ok, house_rules_of, room_type_ok
from .tasks import TravelTask
from .world import World, world_of

MONEY_TOLERANCE = 0.005  # half a cent
MEAL_WINDOWS = {  # when each meal may start (minutes after midnight)
    "breakfast": (6 * 60, 11 * 60),
    "lunch": (11 * 60, 15 * 60 + 30),
    "dinner": (17 * 60, 22 * 60 + 30),
}
MIN_MEAL_MINUTES = 20
RIDE_HUB = {"flight": "airport", "train": "station"}
VISIT_HOURS = (10 * 60, 17 * 60)
"""A day spent in a city of the trip through these hours owes an attraction (and the preferred
number of them)."""
DAY_END = 24 * 60


def needs(
    leave: int, arrive: int, away_before: bool, away_after: bool
) -> tuple[tuple[list[str], bool], tuple[list[str], bool]]:
    """What a day owes, as ``((meals, attraction) before leaving, (meals, attraction) after
    arriving)``: every meal whose whole window (MEAL_WINDOWS) and the visit hours (VISIT_HOURS)
    if they lie wholly in a city of the trip, i.e. before ``leave`` (the start of the first leg
    that changes city) in a city away from home (``away_before``), or after ``arrive`` (the end of
    the last such leg) likewise. Only the journey exempts: a day without one passes
    ``leave = arrive = DAY_END`` and owes everything wherever the traveller is away from home.
    """
    lo, hi = VISIT_HOURS
    before = [m for m, (_, end) in MEAL_WINDOWS.items() if end <= leave] if away_before else []
    after = [m for m, (start, _) in MEAL_WINDOWS.items() if start >= arrive] if away_after else []
    return (before, away_before and hi <= leave), (after, away_after and lo >= arrive)


def _itinerary(ctx: VerifyContext) -> Itinerary:
    return submitted(ctx, "itinerary")


def _w(what: tuple[str, int, Activity] | str) -> str:
    """A finding's name for an activity: ``day 2 activity 3 (meal R-ORD-004)``."""
    if isinstance(what, str):
        return what
    label, j, a = what
    return f"{label} activity {j + 1} ({a.type} {a.number or a.place or a.mode})"


def _where(world: World, place: str) -> str:
    p = world.places.get(place)
    return f"{place} ({p.city})" if p else place


class FeasibilityLevel(WorldLevel):
    name = "feasibility"
    world: World

    def check(self, ctx: VerifyContext) -> LevelResult:
        itinerary = _itinerary(ctx)
        task: TravelTask = ctx.task
        world = self.world
        found: list[Finding] = []

        def bad(code: str, message: str) -> None:
            found.append(Finding(code, message))

        n = len(itinerary.days)
        if n != task.days:
            bad("wrong_days", f"{n} days planned; the trip has {task.days}")
        loc = world.hub("center", task.origin) or ""
        nights: list[tuple[str, str]] = []  # (hotel, city) per night
        seen: dict[str, str] = {}
        drive = public = False
        checks = 0
        visit_days: list[bool] = []  # per day: does it owe an attraction (see needs)
        bed_cities = [
            world.places[d.accommodation.place].city
            if d.accommodation is not None and d.accommodation.place in world.places
            else ""
            for d in itinerary.days
        ]
        for i, day in enumerate(itinerary.days):
            label = f"day {i + 1}"
            # TravelPlanner's "current city": where the traveller wakes up and where they sleep.
            day_cities = {
                bed_cities[i - 1] if i > 0 else task.origin,
                bed_cities[i] if i < n - 1 else task.origin,
            }
            if day.day != i + 1:
                bad("wrong_day_number", f"{label} is numbered {day.day}")
            expected = add_days(task.start_date, i)
            if day.date != expected:
                bad("wrong_date", f"{label} is dated {day.date}; it should be {expected}")
            prev_end, meals, attractions = -1, dict.fromkeys(MEALS, 0), 0
            here = world.places.get(loc)
            path = [here.city] if here else []  # the cities the traveller is in, in order
            leave = arrive = -1  # start of the first and end of the last leg that changes city
            for j, a in enumerate(day.activities):
                checks += 1
                what = (label, j, a)  # formatted only into a finding (_w): most checks pass
                if a.end <= a.start:
                    bad("bad_time", f"{_w(what)} ends at {hhmm(a.end)}, not after it starts")
                if a.start < prev_end:
                    bad(
                        "overlap",
                        f"{_w(what)} starts at {hhmm(a.start)}, before the previous one ends at {hhmm(prev_end)}",
                    )
                prev_end = max(prev_end, a.end)
                if a.type in RIDES:
                    public = True
                    loc = self._ride(a, loc, what, task, day.date, bad)
                    path, leave, arrive = self._moved(path, loc, a, leave, arrive)
                elif a.type == "transfer":
                    if a.origin != loc:
                        bad(
                            "not_there",
                            f"{_w(what)} leaves from {_where(world, a.origin)}, but the traveller is at {_where(world, loc)}",
                        )
                    a_place, b_place = world.places.get(a.origin), world.places.get(a.destination)
                    if a_place and b_place:
                        leg = world.leg(a.mode, a.origin, a.destination)
                        if leg is None:
                            bad(
                                "no_route",
                                f"{_w(what)}: no {a.mode} route from {a.origin} to {a.destination}",
                            )
                        elif a.end - a.start < leg.minutes:
                            bad(
                                "leg_too_short",
                                f"{_w(what)}: {a.mode} from {a.origin} to {a.destination} takes {leg.minutes} min, planned {a.end - a.start}",
                            )
                        if a_place.city != b_place.city:
                            public = public or a.mode == "taxi"
                    drive = drive or a.mode == "drive"
                    loc = a.destination
                    path, leave, arrive = self._moved(path, loc, a, leave, arrive)
                else:
                    self._visit(a, loc, what, bad)
                    place = world.places.get(a.place)
                    if place is not None and place.city not in day_cities:
                        bad(
                            "wrong_city",
                            f"{_w(what)} is in {place.city}; on {label} the traveller is in "
                            f"{' and '.join(sorted(c for c in day_cities if c))}",
                        )
                    if a.place in seen:
                        bad(
                            f"repeated_{'restaurant' if a.type == 'meal' else 'attraction'}",
                            f"{_w(what)} repeats {a.place}, already visited on {seen[a.place]}",
                        )
                    seen[a.place] = label
                    if a.type == "meal":
                        meals[a.meal] += 1
                    else:
                        attractions += 1
            stay = day.accommodation
            if i < n - 1:
                if stay is None:
                    bad("no_bed", f"no accommodation for the night of {label}")
                else:
                    hotel = world.places.get(stay.place)
                    if hotel is not None and hotel.kind != "hotel":
                        bad("wrong_kind", f"{label}: {stay.place} is not an accommodation")
                    if loc != stay.place:
                        bad(
                            "not_at_hotel",
                            f"{label} ends at {_where(world, loc)}, not at the accommodation {_where(world, stay.place)}",
                        )
                    nights.append((stay.place, hotel.city if hotel else ""))
            else:
                if stay is not None:
                    bad(
                        "bed_after_last_day",
                        f"{label} is the last day; the trip has no night after it",
                    )
                end = world.places.get(loc)
                if end is None or end.city != task.origin:
                    bad("not_home", f"the trip ends at {_where(world, loc)}, not in {task.origin}")
            woke, sleeps = (
                (bed_cities[i - 1] if i > 0 else task.origin),
                (bed_cities[i] if i < n - 1 else task.origin),
            )
            if len(set(path)) != len(path):
                bad(
                    "pointless_hop",
                    f"{label} goes {' -> '.join(path)}: a ride that comes back serves no route "
                    "and exempts nothing from the day's meals and visits",
                )
            if woke == sleeps or leave < 0:  # no journey the route needs: the whole day counts
                leave = arrive = DAY_END
            (owed, visit), (owed_after, visit_after) = needs(
                leave, arrive, woke != task.origin, sleeps != task.origin
            )
            missing = [m for m in MEALS if (m in owed or m in owed_after) and not meals[m]]
            visit = visit or visit_after
            visit_days.append(visit)
            if missing or (visit and not attractions):
                gaps = missing + ([] if attractions or not visit else ["an attraction"])
                when = (
                    "a full day"
                    if leave == DAY_END
                    else f"a travel day ({hhmm(leave)}-{hhmm(arrive)} between cities)"
                )
                bad("incomplete_day", f"{label} is {when} without {', '.join(gaps)}")
            extra = [m for m, c in meals.items() if c > 1]
            if extra:
                bad("duplicate_meal", f"{label} has more than one {', '.join(extra)}")
        self._route(nights, task, bad)
        self._minimum_nights(nights, bad)
        if drive and public:
            bad(
                "transport_conflict",
                "a drive in one's own car, but some intercity legs are flights, trains or taxis (the car would be left behind)",
            )
        ctx.scratch["visit_days"] = visit_days
        score = max(0.0, 1.0 - len(found) / max(1, checks + n))
        return self.result(score, found, passed=not found)

    def _moved(
        self, path: list[str], loc: str, a: Activity, leave: int, arrive: int
    ) -> tuple[list[str], int, int]:
        """The day's city path, first departure and last arrival after a move to ``loc``."""
        place = self.world.places.get(loc)
        if place is None or (path and path[-1] == place.city):
            return path, leave, arrive
        if path:  # the move changed city
            leave = a.start if leave < 0 else leave
            arrive = a.end
        path.append(place.city)
        return path, leave, arrive

    def _ride(self, a: Activity, loc: str, what: Any, task: TravelTask, date: str, bad: Any) -> str:
        world = self.world
        kind = RIDE_HUB[a.type]
        origin_hub, dest_hub = world.hub(kind, a.origin), world.hub(kind, a.destination)
        if origin_hub is None or dest_hub is None:
            bad("unknown_city", f"{_w(what)}: no {kind} in {a.origin!r} or {a.destination!r}")
            return dest_hub or loc
        if origin_hub != loc:
            bad(
                "not_there",
                f"{_w(what)} leaves from {origin_hub}, but the traveller is at {_where(world, loc)}",
            )
        ride = world.ride(a.type, a.number, date)
        if (
            ride is not None
            and ride.origin == a.origin
            and ride.destination == a.destination
            and ride.seats < task.people
        ):
            bad(
                "no_seats",
                f"{_w(what)}: {a.number} has {ride.seats} free seats for {task.people} people",
            )
        return dest_hub

    def _visit(self, a: Activity, loc: str, what: Any, bad: Any) -> None:
        world = self.world
        if a.place != loc:
            bad(
                "not_there",
                f"{_w(what)} is at {_where(world, a.place)}, but the traveller is at {_where(world, loc)}",
            )
        place = world.places.get(a.place)
        if place is None:
            return  # an unknown place fails grounding; feasibility judges what exists
        wanted = "restaurant" if a.type == "meal" else "attraction"
        if place.kind != wanted:
            bad("wrong_kind", f"{_w(what)}: {a.place} is a {place.kind}, not a {wanted}")
            return
        if a.start < place.open_min or a.end > place.close_min:
            bad(
                "closed",
                f"{_w(what)}: {a.place} is open {hhmm(place.open_min)}-{hhmm(place.close_min)}, visited {hhmm(a.start)}-{hhmm(a.end)}",
            )
        if a.type == "meal":
            lo, hi = MEAL_WINDOWS[a.meal]
            if not lo <= a.start <= hi:
                bad(
                    "meal_time",
                    f"{_w(what)}: {a.meal} at {hhmm(a.start)}; it starts between {hhmm(lo)} and {hhmm(hi)}",
                )
            if a.end - a.start < MIN_MEAL_MINUTES:
                bad("too_short", f"{_w(what)}: {a.end - a.start} min is too short for a meal")
        else:
            needed = min(60, world.attractions[a.place]["duration"] // 2)
            if a.end - a.start < needed:
                bad(
                    "too_short",
                    f"{_w(what)}: {a.end - a.start} min at {a.place}; a visit takes at least {needed}",
                )

    def _route(self, nights: list[tuple[str, str]], task: TravelTask, bad: Any) -> None:
        cities = [c for _, c in nights if c]
        blocks = [c for k, c in enumerate(cities) if k == 0 or cities[k - 1] != c]
        if len(blocks) != len(set(blocks)):
            bad("city_route", f"the route {' -> '.join(blocks)} returns to a city it left")
        if task.origin in blocks:
            bad("city_route", f"a night in the origin city {task.origin}")
        if task.is_region:
            outside = [c for c in set(blocks) if self.world.cities[c].region != task.destination]
            if outside:
                bad("city_route", f"{', '.join(sorted(outside))} not in {task.destination}")
            if len(set(blocks)) != task.visiting_city_number:
                bad(
                    "city_route",
                    f"{len(set(blocks))} cities visited; the trip asks for {task.visiting_city_number}",
                )
        elif any(c != task.destination for c in blocks):
            bad(
                "city_route",
                f"nights in {', '.join(sorted(set(blocks) - {task.destination}))}, not {task.destination}",
            )

    def _minimum_nights(self, nights: list[tuple[str, str]], bad: Any) -> None:
        k = 0
        while k < len(nights):
            hotel, run = nights[k][0], 1
            while k + run < len(nights) and nights[k + run][0] == hotel:
                run += 1
            doc = self.world.hotels.get(hotel)
            if doc is not None and run < doc["min_nights"]:
                bad(
                    "minimum_nights",
                    f"{run} night(s) at {hotel}; it takes at least {doc['min_nights']}",
                )
            k += run


_LISTED = {  # tool -> the kind of place it lists
    "search_hotels": "hotel",
    "search_restaurants": "restaurant",
    "search_attractions": "attraction",
}
_PRICE_FIELD = {"hotel": "price", "restaurant": "cost", "attraction": "price"}
_PLACE_KIND = {"meal": "restaurant", "attraction": "attraction"}
_RIDES = {"search_flights": "flight", "search_trains": "train"}


def _told(r: Any) -> tuple[str, dict[Any, Any]] | None:
    """What one successful tool result lists: its kind and its rows by key."""
    data, name = r.data, r.name
    if name in _LISTED:
        return _LISTED[name], {x["id"]: x for x in data["results"]}
    if name in _RIDES:
        date, origin, destination = data["date"], data["origin"], data["destination"]
        return _RIDES[name], {
            (x["number"], date): (
                origin,
                destination,
                TIMES.get(x["depart"]),
                TIMES.get(x["arrive"]),
                x["price"],
            )
            for x in data["results"]
        }
    if name == "get_distance":  # a leg takes as long and costs as much both ways
        legs = {}
        for p in data["pairs"]:
            legs[p["to"], p["from"]] = legs[p["from"], p["to"]] = p
        return "leg", legs
    return None


class GroundingLevel(Level):
    name = "grounding"
    requires = ("feasibility",)

    def check(self, ctx: VerifyContext) -> LevelResult:
        itinerary = _itinerary(ctx)
        told = Citations(ctx.trajectory, _told)
        found: list[Finding] = []
        items = 0

        def priced(hit: tuple[int, Any] | None, price_of: Any, cost: float, what: Any) -> None:
            """The item's citation: none (ungrounded), or one whose price differs (mismatch)."""
            if hit is None:
                found.append(
                    Finding("ungrounded", f"{_w(what)}: no tool response in this episode shows it")
                )
                return
            price = price_of(hit[1])
            if abs(cost - price) > MONEY_TOLERANCE:
                found.append(
                    Finding("mismatch", f"{_w(what)}: costs {price}, planned {cost}", hit[0])
                )

        for i, day in enumerate(itinerary.days):
            label = f"day {i + 1}"
            for j, a in enumerate(day.activities):
                items += 1
                what = (label, j, a)
                kind = a.type
                if kind == "flight" or kind == "train":
                    hit = told.first(kind, (a.number, day.date))
                    priced(hit, _ride_price, a.cost, what)
                    if hit is not None:
                        origin, dest, dep, arr, _ = hit[1]
                        if (a.origin, a.destination, a.start, a.end) != (origin, dest, dep, arr):
                            shown = f"{origin}->{dest} {hhmm(dep or 0)}-{hhmm(arr or 0)}"
                            planned = f"{a.origin}->{a.destination} {hhmm(a.start)}-{hhmm(a.end)}"
                            found.append(
                                Finding(
                                    "mismatch",
                                    f"{_w(what)}: {shown} in the response, planned {planned}",
                                    hit[0],
                                )
                            )
                elif kind == "transfer":
                    hit = told.first("leg", (a.origin, a.destination), a.mode)
                    priced(hit, lambda p, m=a.mode: p[m]["cost"], a.cost, what)
                else:
                    place = _PLACE_KIND[kind]
                    hit = told.first(place, a.place)
                    priced(hit, lambda x, f=_PRICE_FIELD[place]: x[f], a.cost, what)
            stay = day.accommodation
            if stay is not None:
                items += 1
                what = f"day {i + 1} accommodation {stay.place} (a night)"
                priced(told.first("hotel", stay.place), _hotel_price, stay.cost, what)
        if not items:  # nothing grounded is not "all grounded"
            found.append(Finding("nothing_to_ground", "the itinerary plans nothing to ground"))
            return self.result(0.0, found, passed=False, metrics={"items": 0})
        score = max(0.0, 1.0 - len(found) / items)
        return self.result(
            score, found, passed=not found, metrics={"items": items}, evidence=told.cited
        )


def _ride_price(facts: tuple) -> float:
    return facts[4]


def _hotel_price(row: dict[str, Any]) -> float:
    return row["price"]


class ConstraintsLevel(WorldLevel):
    name = "constraints"
    requires = ("feasibility", "grounding")
    world: World

    def check(self, ctx: VerifyContext) -> LevelResult:
        itinerary = _itinerary(ctx)
        task: TravelTask = ctx.task
        world = self.world
        cost = trip_cost(itinerary, task.people, world.occupancy)
        ctx.scratch["cost"] = cost
        results: list[tuple[bool, Finding | None]] = []

        def rule(ok: bool, code: str, message: str) -> None:
            results.append((ok, None if ok else Finding(code, message)))

        rule(
            cost <= task.budget + MONEY_TOLERANCE,
            "over_budget",
            f"the trip costs ${cost:,.2f}; the budget is ${task.budget:,.2f}",
        )
        rule(
            abs(itinerary.total_cost - cost) <= 0.01,
            "wrong_total",
            f"total_cost says ${itinerary.total_cost:,.2f}; the items add up to ${cost:,.2f}",
        )
        stays = [d.accommodation.place for d in itinerary.days if d.accommodation is not None]
        hotels = [world.hotels[h] for h in dict.fromkeys(stays) if h in world.hotels]
        if task.room_type:
            wrong = [h["id"] for h in hotels if not room_type_ok(task.room_type, h["room_type"])]
            rule(not wrong, "room_type", f"{', '.join(wrong)}: not {task.room_type}")
        if task.house_rule:
            wrong = [
                h["id"]
                for h in hotels
                if not house_rule_ok(task.house_rule, house_rules_of(h["house_rules"]))
            ]
            rule(not wrong, "house_rule", f"{', '.join(wrong)}: {HOUSE_RULES[task.house_rule]}")
        if task.cuisines:
            eaten: set[str] = set()
            for d in itinerary.days:
                for a in d.activities:
                    r = world.restaurants.get(a.place) if a.type == "meal" else None
                    if r is not None and r["city"] != task.origin:
                        eaten |= set(r["cuisines"].split(", "))
            for c in task.cuisines:
                rule(c in eaten, "cuisine", f"no {c} meal at the destination")
        if task.transport:
            acts = [a for d in itinerary.days for a in d.activities]
            if task.transport == "no flight":
                rule(
                    not any(a.type == "flight" for a in acts),
                    "transport",
                    "a flight, but the task says no flight",
                )
            else:
                rule(
                    not any(a.mode == "drive" for a in acts),
                    "transport",
                    "a drive, but the task says no self-driving",
                )
        passed = sum(ok for ok, _ in results)
        findings = [f for _, f in results if f is not None]
        return self.result(
            passed / len(results), findings, passed=not findings, metrics={"cost": cost}
        )


class QualityLevel(WorldLevel):
    name = "quality"
    threshold = 0.8
    requires = ("feasibility", "grounding", "constraints")
    world: World

    def check(self, ctx: VerifyContext) -> LevelResult:
        itinerary = _itinerary(ctx)
        task: TravelTask = ctx.task
        world = self.world
        cost = ctx.scratch.get("cost")
        if cost is None:
            cost = trip_cost(itinerary, task.people, world.occupancy)
        findings = []
        cost_score = 1.0 if cost <= task.oracle_cost + 0.01 else task.oracle_cost / cost
        if cost_score < 1.0:
            findings.append(
                Finding(
                    "costly", f"${cost:,.2f}; the reference plan costs ${task.oracle_cost:,.2f}"
                )
            )
        prefs: list[bool] = []
        if task.min_hotel_rating:
            low = [
                d.accommodation.place
                for d in itinerary.days
                if d.accommodation
                and world.hotels.get(d.accommodation.place, {}).get("rating", 0)
                < task.min_hotel_rating
            ]
            prefs.append(not low)
            if low:
                findings.append(
                    Finding(
                        "preference",
                        f"accommodation rated under {task.min_hotel_rating}: {', '.join(dict.fromkeys(low))}",
                    )
                )
        if task.min_restaurant_rating:
            low = [
                a.place
                for d in itinerary.days
                for a in d.activities
                if a.type == "meal"
                and world.restaurants.get(a.place, {}).get("rating", 0) < task.min_restaurant_rating
            ]
            prefs.append(not low)
            if low:
                findings.append(
                    Finding(
                        "preference",
                        f"restaurants rated under {task.min_restaurant_rating}: {', '.join(low)}",
                    )
                )
        if task.attractions_per_day > 1:
            owed = ctx.scratch.get("visit_days")
            if owed is None:
                raise SkipLevel("no feasibility verdict on which days owe attractions")
            short = [
                i + 1
                for i, d in enumerate(itinerary.days)
                if owed[i]
                and sum(a.type == "attraction" for a in d.activities) < task.attractions_per_day
            ]
            prefs.append(not short)
            if short:
                findings.append(
                    Finding(
                        "preference",
                        f"fewer than {task.attractions_per_day} attractions on day(s) {short}",
                    )
                )
        score = cost_score if not prefs else 0.5 * cost_score + 0.5 * sum(prefs) / len(prefs)
        return self.result(
            score, findings, metrics={"cost": cost, "reference_cost": task.oracle_cost}
        )


def build_verifier(db: Any, aggregate: Any = "gated", **params: Any) -> HierarchicalVerifier:
    world = world_of(db)
    return HierarchicalVerifier(
        [
            FormatLevel("itinerary", lambda raw, task: parse_itinerary(raw)),
            FeasibilityLevel(world),
            GroundingLevel(),
            ConstraintsLevel(world),
            QualityLevel(world),
        ],
        aggregate,
        **params,
    )


def _trip_cities(world: World, task: TravelTask) -> frozenset[str]:
    """The cities the trip may stay in: the destination, or the region's cities but the origin."""
    if not task.is_region:
        return frozenset([task.destination])
    return frozenset(c for c in world.regions.get(task.destination, ()) if c != task.origin)


class DayPlanner:
    """The rule of the ``day_k_planned`` subgoals (:func:`subgoals`), fed one turn at a time:
    :attr:`days` is how many days of the trip the turns fed so far hold the grounding for.

    A day is planned by one ``get_distance`` result (the travel times its transfers are grounded
    by) whose places include a bed, a hotel a ``search_hotels`` result showed in a city the trip
    may stay in that meets the task's room type and house rule, and what that day owes there
    (:func:`needs`): a full day's meal places (one per meal of MEAL_WINDOWS) a
    ``search_restaurants`` result showed in the bed's city that no earlier planned day used (a
    restaurant is never repeated; one new restaurant a call is no day), or, for a day of travel (a journey
    exempts its hours from meals), a leg to or from the trip's other cities (the origin, the other
    cities of the trip) or the bed city's airport or station and a place in the bed city: the
    city's journey in (a leg from there) or out (a leg to there), each planned once per city, so
    hubs and other places asked in every combination plan at most two days per city.
    The city is the agent's pick: any city of the trip counts. Only places the agent was shown
    count (a hotel or restaurant id it never saw plans nothing), a result plans at most one day,
    and asking the same distances again plans nothing new.
    """

    def __init__(self, world: World, task: TravelTask):
        self.world, self.task = world, task
        self.cities = _trip_cities(world, task)
        self.beds: set[str] = set()
        self.meals: set[str] = set()
        self.used: set[str] = set()
        self.asked: set[tuple[str, str]] = set()  # the legs (from, to) of the days planned
        self.journeys: set[tuple[str, str]] = set()  # (bed city, "in" | "out") days of travel
        self.days = 0

    def feed(self, turn: Any) -> None:
        task = self.task
        for r in turn.results:
            if not r.ok or not isinstance(r.data, dict):
                continue
            if r.name == "search_hotels":
                self.beds.update(
                    h["id"]
                    for h in r.data["results"]
                    if room_type_ok(task.room_type, h["room_type"])
                    and house_rule_ok(task.house_rule, house_rules_of(h["house_rules"]))
                )
            elif r.name == "search_restaurants":
                self.meals.update(x["id"] for x in r.data["results"])
            elif r.name == "get_distance":
                self._distances(r.data["pairs"])

    def _distances(self, pairs: list[dict[str, Any]]) -> None:
        world = self.world
        places = {p[end] for p in pairs for end in ("from", "to")}
        for city in sorted({world.places[h].city for h in places & self.beds} & self.cities):
            new = {p for p in (places & self.meals) - self.used if world.places[p].city == city}
            others = ({self.task.origin} | self.cities) - {city}
            hubs = {world.hub("airport", city), world.hub("station", city)}

            # each place's side: away (another city of the trip, or a hub: a journey's end) or
            # here (the bed city); a leg from away to here is the city's journey in, here to
            # away its journey out
            side = {
                p: "away"
                if world.places[p].city in others or p in hubs
                else "here"
                if world.places[p].city == city
                else None
                for p in places
            }
            way = {("away", "here"): "in", ("here", "away"): "out"}
            legs = {
                (p["from"], p["to"]): way[side[p["from"]], side[p["to"]]]
                for p in pairs
                if (side[p["from"]], side[p["to"]]) in way
            }
            # a day of travel: a leg not asked before, on a journey (the city's in or out) that
            # planned no day yet; what a day plans is spent: asking again plans nothing
            journeys = sorted(
                {(city, direction) for leg, direction in legs.items() if leg not in self.asked}
                - self.journeys
            )
            full_day = len(new) >= len(MEAL_WINDOWS)  # a day at home base owes every meal
            if full_day or journeys:
                self.used |= new
                self.asked |= legs.keys()
                if not full_day:
                    self.journeys.add(journeys[0])
                self.days += 1
                return


def planned_days(world: World, task: TravelTask, turns: Any) -> int:
    """How many days of the trip ``turns`` hold the grounding for (:class:`DayPlanner`)."""
    planner = DayPlanner(world, task)
    for turn in turns:
        planner.feed(turn)
    return planner.days


DAY_TOOLS = frozenset({"get_distance"})
"""The only tool whose result can plan a day (:meth:`DayPlanner.feed`: the searches only show the
places a later ``get_distance`` plans with), so the day subgoals are asked on its turns only."""


def subgoals(db: Any, task: TravelTask) -> list[Any]:
    """Travel's subgoal boundaries, one per day of the task (built at reset: a 3-day trip has three,
    a 7-day one seven): ``day_k_planned`` is reached at the turn after which the agent holds the
    grounding for k days (:class:`DayPlanner`), in whichever cities of the trip it picked. Results
    of the submitting action count for nothing (as at the grounding level). Each pays
    ``1 / days``."""
    from hiergym.envs.core import Subgoal

    world = world_of(db)
    memo: dict[str, Any] = {"planner": DayPlanner(world, task), "fed": 0, "last": None}

    def count(trajectory: Any) -> int:
        turns = trajectory.turns
        n = len(turns) - (trajectory.submission is not None and bool(turns))  # before the submit
        fed = memo["fed"]
        if fed == n and (not n or turns[n - 1] is memo["last"]):
            return memo["planner"].days  # this turn is counted (the other subgoals ask too)
        if fed > n or (fed and turns[fed - 1] is not memo["last"]):
            # another trajectory (a fork went its own way): start over from its first turn
            memo["planner"], fed = DayPlanner(world, task), 0
        for i in range(fed, n):  # turns are only appended: feed the new ones (held: `is` is safe)
            memo["planner"].feed(turns[i])
        memo["fed"], memo["last"] = n, turns[n - 1] if n else None
        return memo["planner"].days

    return [
        Subgoal(
            f"day_{k}_planned",
            lambda turn, trajectory, _task, k=k: count(trajectory) >= k,
            1.0 / task.days,
            f"holds the beds, meals and travel times of {k} day(s) of the trip",
            tools=DAY_TOOLS,
        )
        for k in range(1, task.days + 1)
    ]
