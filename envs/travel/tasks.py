"""Travel tasks, TravelPlanner-style: origin, destination city or region, 3/5/7 days, dates, people,
budget, hard constraints and soft preferences.

* 3 days: one destination city; 5 days: 2 cities of a region; 7 days: 3 cities of a region.
* easy: budget only (1.5x the oracle's cost); medium: one hard constraint (room type, house rule or
  a cuisine), budget 1.3x; hard: two to four constraints (transport exclusions too), budget 1.15x,
  and preferences (hotel and restaurant ratings, two attractions a day).

Splits are disjoint by (origin, destination). Every task is proven feasible when the sandbox is
built: the oracle plans it through the tools and the verifier must pass that plan on every hard
level, or the build fails (an oracle/verifier disagreement is a bug, never a silently dropped task).
The prover comes from env.py (``oracle.prove``) through ``hiergym.envs.building.prove_tasks``: this
module never imports the oracle or the verifier.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import random
import sqlite3
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from types import SimpleNamespace
from typing import Any

from hiergym.envs.building import Cell, Prover, prove_tasks
from hiergym.envs.core import TaskSet, load_task_table
from hiergym.envs.sandbox import Progress

from .clock import N_DATES, add_days, all_dates
from .data import load_sources
from .rules import HOUSE_RULES, ROOM_TYPE_RULES
from .world import World

DIFFICULTIES = ("easy", "medium", "hard")
TASKS_PER_SPLIT = {"train": 30, "dev": 12, "test": 12}
BUDGET_FACTOR = {"easy": 1.5, "medium": 1.3, "hard": 1.15}
CITIES_FOR_DAYS = {3: 1, 5: 2, 7: 3}
MAX_DRAWS_PER_TASK = 200


@dataclass(frozen=True)
class TravelTask:
    task_id: str
    split: str
    difficulty: str
    origin: str
    destination: str  # a city, or a region (state) when visiting_city_number > 1
    visiting_city_number: int
    days: int
    start_date: str
    people: int
    budget: float
    room_type: str | None = None
    house_rule: str | None = None
    cuisines: tuple[str, ...] = ()
    transport: str | None = None
    min_hotel_rating: float | None = None
    min_restaurant_rating: float | None = None
    attractions_per_day: int = 1
    oracle_cost: float = 0.0
    oracle_calls: int = 0

    @property
    def end_date(self) -> str:
        return add_days(self.start_date, self.days - 1)

    @property
    def is_region(self) -> bool:
        return self.visiting_city_number > 1

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> TravelTask:
        d = json.loads(text)
        d["cuisines"] = tuple(d["cuisines"])
        return cls(**d)

    @property
    def local_constraint(self) -> dict[str, Any]:
        """The hard constraints in TravelPlanner's ``local_constraint`` form."""
        return {
            "house rule": self.house_rule,
            "cuisine": list(self.cuisines) or None,
            "room type": self.room_type,
            "transportation": self.transport,
        }


def split_of(origin: str, destination: str) -> str:
    """train/dev/test by a hash of the (origin, destination) pair: splits never share a trip."""
    bucket = int(hashlib.sha256(f"{origin}->{destination}".encode()).hexdigest()[:8], 16) % 20
    return "train" if bucket < 14 else "dev" if bucket < 17 else "test"


def destination_phrase(destination: str, cities: int) -> str:
    """ "Chicago", or "2 cities in Texas" for a trip through several cities of a region."""
    return destination if cities == 1 else f"{cities} cities in {destination}"


def people_phrase(people: int) -> str:
    return "1 person" if people == 1 else f"{people} people"


def constraint_phrases(
    room_type: str | None, house_rule: str | None, cuisines: tuple[str, ...], transport: str | None
) -> list[str]:
    """The hard constraints in words (the fields of TravelPlanner's ``local_constraint``)."""
    needs = []
    if room_type:
        needs.append(f"the room type must be: {room_type}")
    if house_rule:
        needs.append(f"every place we stay must allow {house_rule}")
    if cuisines:
        needs.append(f"we want to eat {', '.join(cuisines)} food at least once each")
    if transport:
        needs.append(f"transportation: {transport}")
    return needs


def describe(task: TravelTask) -> str:
    """The request in words, as a traveller would write it."""
    where = destination_phrase(task.destination, task.visiting_city_number)
    who = people_phrase(task.people)
    parts = [
        f"Plan a {task.days}-day trip for {who} from {task.origin} to {where}, "
        f"from {task.start_date} to {task.end_date}, with a budget of ${task.budget:,.2f}."
    ]
    needs = constraint_phrases(task.room_type, task.house_rule, task.cuisines, task.transport)
    if needs:
        parts.append("Hard constraints: " + "; ".join(needs) + ".")
    prefs = []
    if task.min_hotel_rating:
        prefs.append(f"accommodation rated at least {task.min_hotel_rating}")
    if task.min_restaurant_rating:
        prefs.append(f"restaurants rated at least {task.min_restaurant_rating}")
    if task.attractions_per_day > 1:
        prefs.append(f"{task.attractions_per_day} attractions on each day that owes one")
    if prefs:
        parts.append("Preferences: " + "; ".join(prefs) + ".")
    return " ".join(parts)


ITINERARY_HELP = """\
Use the tools to find real options, then call submit with {"itinerary": {...}}:
{"days": [{"day": 1, "date": "YYYY-MM-DD", "activities": [ACTIVITY, ...],
           "accommodation": {"place": "H-...", "cost": NIGHTLY_PRICE} or null}, ...],
 "total_cost": TOTAL_FOR_THE_GROUP}
ACTIVITY is one of (times "HH:MM", in order, never overlapping; cost = the unit price quoted):
  {"type": "flight"|"train", "number": "...", "from": CITY, "to": CITY, "start": DEPART, "end": ARRIVE, "cost": PRICE_PER_PERSON}
  {"type": "transfer", "mode": "walk"|"taxi"|"drive", "from": PLACE_ID, "to": PLACE_ID, "start": ..., "end": ..., "cost": COST_PER_VEHICLE}
  {"type": "meal", "meal": "breakfast"|"lunch"|"dinner", "place": "R-...", "start": ..., "end": ..., "cost": AVERAGE_COST}
  {"type": "attraction", "place": "A-...", "start": ..., "end": ..., "cost": TICKET_PRICE}
Rules: the trip starts at CENTER-<origin code> on day 1 and ends in the origin city on the last day;
you are wherever your last activity left you, so move between places with transfers (each at
least as long as get_distance says); a bed every night but the last (end each such day at it);
visit places within opening hours (breakfast starts 06:00-11:00, lunch 11:00-15:30, dinner
17:00-22:30; a meal lasts at least 20 min, a visit at least half its typical duration, up to
60 min); away from home, every meal whose whole window you spend in a city of the trip (not
between cities) is owed, and so is an attraction if you are there from 10:00 to 17:00: a full
day has breakfast, lunch, dinner and an attraction, a travel day what lies before its first
departure and after its last arrival (only a ride the route needs counts: never go to a city
and back); never repeat a restaurant or attraction; respect minimum nights; drive only if every intercity leg is driven (your own car); only use flights, trains,
places, prices and travel times that a tool returned to you. Total = flights/trains/meals/tickets
x people + taxis x ceil(people/4) + car costs x ceil(people/5) + nightly price x rooms
(ceil(people / max occupancy))."""


def render_prompt(task: TravelTask) -> str:
    return f"{describe(task)}\n\n{ITINERARY_HELP}"


# --------------------------------------------------------------------------------------------
# Generation


def _draw(rng: random.Random, world: Any, split: str, difficulty: str) -> TravelTask | None:
    days = rng.choice((3, 5, 7))
    k = CITIES_FOR_DAYS[days]
    cities = sorted(world.cities)
    if k == 1:
        destination = rng.choice(cities)
        origin = rng.choice([c for c in cities if c != destination])
    else:
        regions = sorted(r for r, members in world.regions.items() if len(members) >= k)
        destination = rng.choice(regions)
        origin = rng.choice([c for c in cities if world.cities[c].region != destination])
    if split_of(origin, destination) != split:
        return None
    start = all_dates()[rng.randrange(0, N_DATES - days + 1)]
    people = rng.choice((1, 2) if difficulty == "easy" else (1, 2, 2, 3, 4, 5, 6))
    task = TravelTask(
        task_id="",
        split=split,
        difficulty=difficulty,
        origin=origin,
        destination=destination,
        visiting_city_number=k,
        days=days,
        start_date=start,
        people=people,
        budget=1e9,
    )
    if difficulty == "easy":
        return task
    cuisines = load_sources()[1]["cuisines"]
    kinds = ["room_type", "house_rule", "cuisines"]
    chosen = (
        [rng.choice(kinds)]
        if difficulty == "medium"
        else rng.sample(kinds, rng.randint(2, 3)) + (["transport"] if rng.random() < 0.5 else [])
    )
    changes: dict[str, Any] = {}
    if "room_type" in chosen:
        changes["room_type"] = rng.choice(sorted(ROOM_TYPE_RULES))
    if "house_rule" in chosen:
        changes["house_rule"] = rng.choice(sorted(HOUSE_RULES))
    if "cuisines" in chosen:
        changes["cuisines"] = tuple(
            sorted(rng.sample(cuisines, 1 if difficulty == "medium" else 2))
        )
    if "transport" in chosen:
        changes["transport"] = rng.choice(("no flight", "no self-driving"))
    if difficulty == "hard":
        changes["min_hotel_rating"] = rng.choice((None, 3.5, 4.0))
        changes["min_restaurant_rating"] = rng.choice((None, 3.5, 4.0))
        changes["attractions_per_day"] = rng.choice((1, 2))
    return replace(task, **changes)


def priced(draft: TravelTask, cost: float, calls: int) -> TravelTask:
    """The task a draft becomes once the oracle planned it: the budget is the difficulty's factor
    times the oracle's cheapest cost, rounded up to a dollar."""
    return replace(
        draft,
        budget=float(math.ceil(cost * BUDGET_FACTOR[draft.difficulty])),
        oracle_cost=cost,
        oracle_calls=calls,
    )


def generate_tasks(conn: sqlite3.Connection, progress: Progress, *, prove: Prover) -> None:
    """Draw tasks per split and difficulty; keep, in order, those ``prove`` (the oracle's prover,
    handed down by env.py) plans and the verifier passes, until each cell has
    ``TASKS_PER_SPLIT[split]``; at most ``MAX_DRAWS_PER_TASK`` draws per task wanted."""
    world = World(conn)
    state = SimpleNamespace(db=conn, memory={})

    def candidates(cell: Cell) -> Iterator[TravelTask]:
        rng = random.Random(f"hiergym/travel/tasks/{cell.split}/{cell.difficulty}")
        for _ in range(MAX_DRAWS_PER_TASK * cell.want):
            draft = _draw(rng, world, cell.split, cell.difficulty)
            if draft is not None:
                task_id = f"travel-{cell.split}-{cell.difficulty}-{cell.kept:04d}"
                yield replace(draft, task_id=task_id)

    kept = prove_tasks(
        candidates,
        functools.partial(prove, state),
        domain="travel",
        want=TASKS_PER_SPLIT,
        difficulties=DIFFICULTIES,
        progress=progress,
    )
    conn.executemany(
        "INSERT INTO tasks VALUES (?,?,?,?)",
        [(t.task_id, t.split, t.difficulty, t.to_json()) for t in kept],
    )


def load_tasks(db: Any, db_key: str, split: str, difficulty: str) -> TaskSet:
    """The task set of one split and difficulty, read once per process."""
    return load_task_table(db, db_key, split, difficulty, TravelTask.from_json)
