"""Mutated oracle plans, each with the verifier level it must fail at (see hiergym.testing).

Each mutant changes the oracle's submitted plan (or its calls, or the query) in one way a careless
or hallucinating agent would, and is caught by the level named for it: the shape (format), one of
TravelPlanner's commonsense checks, hiergym's grounding, or one of TravelPlanner's hard checks.
"""

from __future__ import annotations

import copy
import re
import sqlite3
from dataclasses import replace
from typing import Any

from hiergym.envs.tools import ToolCall

from .database import TravelPlannerDB, open_database
from .evaluate import get_valid_name_city, total_cost
from .oracle import readable
from .plan import day_cities, filled
from .tasks import TravelPlannerTask

Mutation = tuple[TravelPlannerTask, list[Any]]


def _plan(calls: list[ToolCall]) -> list[dict[str, Any]]:
    return copy.deepcopy(list(calls[-1].arguments["plan"]))


def _resubmit(calls: list[ToolCall], plan: list[dict[str, Any]]) -> list[Any]:
    return [*calls[:-1], ToolCall("submit", {"plan": plan})]


def _database(db: sqlite3.Connection) -> TravelPlannerDB:
    """The evaluator's view of the sandbox a connection reads (loaded once per file)."""
    return open_database(db.execute("PRAGMA database_list").fetchone()[2])


def _full_day(plan: list[dict[str, Any]]) -> dict[str, Any]:
    """The first day without travel (the oracle's plans have one in every city)."""
    return next(d for d in plan if not d["current_city"].startswith("from "))


def missing_day(task: TravelPlannerTask, calls: list[ToolCall], db: Any) -> Mutation:
    return task, _resubmit(calls, _plan(calls)[:-1])


def repeated_restaurant(task: TravelPlannerTask, calls: list[ToolCall], db: Any) -> Mutation:
    plan = _plan(calls)
    day = _full_day(plan)
    day["dinner"] = day["breakfast"]
    return task, _resubmit(calls, plan)


def invented_attraction(task: TravelPlannerTask, calls: list[ToolCall], db: Any) -> Mutation:
    plan = _plan(calls)
    day = _full_day(plan)
    day["attraction"] = f"Museum of Imaginary Things, {day['current_city']};"
    return task, _resubmit(calls, plan)


def _with_mode(text: str, mode: str, tp: TravelPlannerDB) -> str:
    """A driving leg's text in another mode, at that mode's cost (as get_distance showed it)."""
    _, _, rest = text.partition(",")
    out = mode + "," + rest
    route = re.search(r"from (.+?) to (.+?), duration", out)
    cost = tp.route_cost(route.group(1), route.group(2), mode.lower()) if route else None
    if cost is not None and "cost: " in out:
        out = out.rsplit("cost: ", 1)[0] + f"cost: {cost}"
    return out


def conflicting_transport(task: TravelPlannerTask, calls: list[ToolCall], db: Any) -> Mutation:
    # Self-driving out and a taxi back (or the reverse): TravelPlanner forbids mixing them. The
    # changed leg keeps its grounding (get_distance showed both modes' costs).
    plan = _plan(calls)
    first, last = plan[0], plan[-1]
    tp = _database(db)
    if first["transportation"].startswith("Self-driving"):
        last["transportation"] = _with_mode(last["transportation"], "Taxi", tp)
    else:
        first["transportation"] = _with_mode(first["transportation"], "Self-driving", tp)
    return task, _resubmit(calls, plan)


def accommodation_never_looked_up(
    task: TravelPlannerTask, calls: list[ToolCall], db: Any
) -> Mutation:
    # The accommodations exist and the plan is unchanged; only the searches that showed them go.
    return task, [c for c in calls if c.name != "search_accommodations"]


def restaurant_in_other_city(task: TravelPlannerTask, calls: list[ToolCall], db: Any) -> Mutation:
    # A real restaurant of a city off the trip: TravelPlanner's checks accept it (the name exists
    # in the city the plan writes, and a one-city day is checked letter by letter), grounding not.
    plan = _plan(calls)
    day = _full_day(plan)
    trip = {task.org, task.dest} | {c for d in plan for c in day_cities(d)}
    tp = _database(db)
    city = next(c for c in sorted(tp.restaurants) if c not in trip and c in tp.city_state)
    name = readable(tp.restaurants[city], city)[0]["name"]
    day["lunch"] = f"{name}, {city}"
    return task, _resubmit(calls, plan)


def one_dollar_over_budget(task: TravelPlannerTask, calls: list[ToolCall], db: Any) -> Mutation:
    cost = total_cost(task.record, calls[-1].arguments["plan"], _database(db))
    return replace(task, budget=cost - 1.0), calls


_OTHER_ROOM = {
    "Entire home/apt": "private room",
    "Private room": "entire room",
    "Shared room": "not shared room",
}


def room_type_violated(task: TravelPlannerTask, calls: list[ToolCall], db: Any) -> Mutation:
    plan = calls[-1].arguments["plan"]
    bed = next(d["accommodation"] for d in plan if filled(d["accommodation"]))
    room = _database(db).accommodation(*get_valid_name_city(bed))[0]["room_type"]
    return replace(task, room_type=_OTHER_ROOM[room]), calls


def mutants() -> list[Any]:
    from hiergym.testing import MALFORMED_JSON, NO_SUBMIT, Mutant

    return [
        NO_SUBMIT,
        MALFORMED_JSON,
        Mutant("missing_day", "format", missing_day),
        Mutant("repeated_restaurant", "commonsense", repeated_restaurant),
        Mutant("invented_attraction", "grounding", invented_attraction),  # no search shows it
        Mutant("conflicting_transport", "commonsense", conflicting_transport),
        Mutant("accommodation_never_looked_up", "grounding", accommodation_never_looked_up),
        Mutant("restaurant_in_other_city", "grounding", restaurant_in_other_city),
        Mutant("one_dollar_over_budget", "hard", one_dollar_over_budget),
        Mutant("room_type_violated", "hard", room_type_violated),
    ]
