"""Mutated oracle solutions, each with the verifier level it must fail at (see hiergym.testing).

Each mutant edits the oracle's submitted itinerary (or its calls) in one way a careless or
hallucinating agent would. Mutants that need a flight in the plan take the first task of the same
split and difficulty whose oracle plan flies, so they apply to every task.
"""

from __future__ import annotations

import copy
from dataclasses import replace
from types import SimpleNamespace
from typing import Any

from hiergym.envs.tools import ToolCall

from .clock import hhmm, parse_hhmm
from .tasks import TravelTask, load_tasks
from .world import world_of


def _itinerary(calls: list[ToolCall]) -> dict[str, Any]:
    return copy.deepcopy(calls[-1].arguments["itinerary"])


def _resubmit(calls: list[ToolCall], itinerary: dict[str, Any]) -> list[Any]:
    return [*calls[:-1], ToolCall("submit", {"itinerary": itinerary})]


def _acts(itinerary: dict[str, Any], kind: str) -> list[tuple[int, int, dict[str, Any]]]:
    return [
        (d, j, a)
        for d, day in enumerate(itinerary["days"])
        for j, a in enumerate(day["activities"])
        if a["type"] == kind
    ]


def _shift(a: dict[str, Any], minutes: int) -> None:
    a["start"] = hhmm(parse_hhmm(a["start"]) + minutes)
    a["end"] = hhmm(parse_hhmm(a["end"]) + minutes)


def _swap_place(
    itinerary: dict[str, Any], day: int, visit: dict[str, Any], place: str, cost: float
) -> None:
    """Move a meal or visit of ``day`` to ``place`` at its ``cost``, and the legs that lead there
    and away with it, so the itinerary stays coherent and only the swap itself is wrong."""
    old = visit["place"]
    for a in itinerary["days"][day]["activities"]:
        for key in ("from", "to"):
            if a.get(key) == old:
                a[key] = place
    visit["place"], visit["cost"] = place, cost


def _flying(task: TravelTask, calls: list[ToolCall], db: Any) -> tuple[TravelTask, list[ToolCall]]:
    """This task and plan if it flies, else the first task of its split and difficulty that does."""
    if _acts(_itinerary(calls), "flight"):
        return task, calls
    from .oracle import plan

    state = SimpleNamespace(db=db)
    for other in load_tasks(db, f"mutants:{id(db)}", task.split, task.difficulty):
        found = plan(state, other)
        if found is not None and _acts(found.itinerary, "flight"):
            return other, found.calls
    raise AssertionError(f"no {task.split}/{task.difficulty} task whose oracle plan flies")


def flight_time_shifted(task: TravelTask, calls: list[ToolCall], db: Any) -> tuple[Any, list[Any]]:
    task, calls = _flying(task, calls, db)
    itinerary = _itinerary(calls)
    _, _, flight = _acts(itinerary, "flight")[0]
    _shift(flight, -30)  # earlier: the oracle boards 45 min ahead, so nothing overlaps
    return task, _resubmit(calls, itinerary)


def invented_flight_number(
    task: TravelTask, calls: list[ToolCall], db: Any
) -> tuple[Any, list[Any]]:
    task, calls = _flying(task, calls, db)
    itinerary = _itinerary(calls)
    _, _, flight = _acts(itinerary, "flight")[0]
    flight["number"] = "ZZ9999"
    return task, _resubmit(calls, itinerary)


def restaurant_in_other_city(
    task: TravelTask, calls: list[ToolCall], db: Any
) -> tuple[Any, list[Any]]:
    itinerary = _itinerary(calls)
    world = world_of(db)
    d, j, meal = _acts(itinerary, "meal")[0]
    here = world.places[meal["place"]].city
    other = next(r for r in sorted(world.restaurants) if world.restaurants[r]["city"] != here)
    _swap_place(itinerary, d, meal, other, world.restaurants[other]["cost"])
    return task, _resubmit(calls, itinerary)


def repeated_restaurant(task: TravelTask, calls: list[ToolCall], db: Any) -> tuple[Any, list[Any]]:
    itinerary = _itinerary(calls)
    meals = _acts(itinerary, "meal")
    (_, _, first), (d, _, second) = meals[0], meals[1]
    _swap_place(itinerary, d, second, first["place"], first["cost"])
    return task, _resubmit(calls, itinerary)


def one_dollar_over_budget(
    task: TravelTask, calls: list[ToolCall], db: Any
) -> tuple[Any, list[Any]]:
    total = calls[-1].arguments["itinerary"]["total_cost"]
    return replace(task, budget=round(total - 1.0, 2)), calls


def hotel_never_looked_up(
    task: TravelTask, calls: list[ToolCall], db: Any
) -> tuple[Any, list[Any]]:
    # The hotels exist and the itinerary is unchanged; only the searches that showed them are gone.
    return task, [c for c in calls if c.name != "search_hotels"]


def missing_night(task: TravelTask, calls: list[ToolCall], db: Any) -> tuple[Any, list[Any]]:
    itinerary = _itinerary(calls)
    itinerary["days"][0]["accommodation"] = None
    return task, _resubmit(calls, itinerary)


def overlapping_activities(
    task: TravelTask, calls: list[ToolCall], db: Any
) -> tuple[Any, list[Any]]:
    itinerary = _itinerary(calls)
    d, j, visit = _acts(itinerary, "attraction")[0]
    before = itinerary["days"][d]["activities"][j - 1]
    visit["start"] = hhmm(parse_hhmm(before["end"]) - 10)  # starts while the ride is still on
    return task, _resubmit(calls, itinerary)


def attraction_after_closing(
    task: TravelTask, calls: list[ToolCall], db: Any
) -> tuple[Any, list[Any]]:
    itinerary = _itinerary(calls)
    world = world_of(db)
    d, _, visit = _acts(itinerary, "attraction")[0]
    begin, end = parse_hhmm(visit["start"]), parse_hhmm(visit["end"])
    city = world.places[visit["place"]].city
    used = {a["place"] for _, _, a in _acts(itinerary, "attraction")}
    # Same time slot, another attraction of the city that is closed then (a show that opens at
    # 18:00, say); the legs go there too, so the only lie is the opening hours.
    closed = next(
        a
        for a, doc in sorted(world.attractions.items())
        if doc["city"] == city
        and a not in used
        and (doc["close_min"] < end or doc["open_min"] > begin)
    )
    _swap_place(itinerary, d, visit, closed, world.attractions[closed]["price"])
    return task, _resubmit(calls, itinerary)


def mutants() -> list[Any]:
    from hiergym.testing import MALFORMED_JSON, NO_SUBMIT, Mutant

    return [
        Mutant("flight_time_shifted_30_min", "grounding", flight_time_shifted),
        Mutant("restaurant_in_other_city", "feasibility", restaurant_in_other_city),
        Mutant("repeated_restaurant", "feasibility", repeated_restaurant),
        Mutant("one_dollar_over_budget", "constraints", one_dollar_over_budget),
        Mutant("hotel_never_looked_up", "grounding", hotel_never_looked_up),
        Mutant("missing_night", "feasibility", missing_night),
        Mutant("overlapping_activities", "feasibility", overlapping_activities),
        Mutant("attraction_after_closing", "feasibility", attraction_after_closing),
        Mutant("invented_flight_number", "grounding", invented_flight_number),
        NO_SUBMIT,
        MALFORMED_JSON,
    ]
