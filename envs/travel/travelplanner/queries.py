"""The TravelPlanner queries hiergym ships, drawn from TravelPlanner's database the way its
benchmark is built (Xie et al., 2024, section 3.2), each kept only once the oracle solves it
through the tools and the verifier passes that plan on every level.

* easy — one person, the budget only;
* medium — 2 to 8 people, the budget and one constraint (cuisine, room type or house rule);
* hard — 2 to 8 people, the budget and three constraints (transportation joins the pool).

3-day trips visit one city; 5- and 7-day trips visit 2 and 3 cities of a state. The budget is the
oracle plan's cost (TravelPlanner's formula) with a margin, rounded up to $100. Regenerate the
shipped file with ``python -m hiergym.envs.travel.travelplanner.queries [DATA_DIR] [OUT]``.
"""

from __future__ import annotations

import json
import math
import random
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from hiergym.envs.sandbox import Sandbox

from ..recorder import prove
from ..rules import HOUSE_RULES, ROOM_TYPE_RULES, TRANSPORT_RULES
from ..tasks import destination_phrase
from .database import TravelPlannerDB, open_database
from .evaluate import total_cost
from .importer import import_travelplanner
from .oracle import plan
from .tasks import LEVELS, TravelPlannerTask, default_data_dir, default_queries, task_from_record
from .tools import TOOLBOX
from .verifier import build_verifier

PER_CELL = {"train": 8, "dev": 4, "test": 4}
CITIES_FOR_DAYS = {3: 1, 5: 2, 7: 3}
BUDGET_MARGIN = {"easy": 1.3, "medium": 1.2, "hard": 1.1}
CUISINES = ("American", "Chinese", "French", "Indian", "Italian", "Mediterranean", "Mexican")
MAX_ORACLE_CALLS = 45  # leaves an agent room below the env's 60 turns
MAX_DRAWS = 20_000
SEED = "hiergym/travelplanner/queries"


def _ordinal(day: int) -> str:
    suffix = "th" if 10 <= day % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")
    return f"March {day}{suffix}"


def _draw(rng: random.Random, db: TravelPlannerDB, level: str) -> TravelPlannerTask | None:
    days = rng.choice(tuple(CITIES_FOR_DAYS))
    k = CITIES_FOR_DAYS[days]
    served = sorted(
        set(db.accommodations) & set(db.restaurants) & set(db.attractions) & set(db.city_state)
    )
    if k == 1:
        dest = rng.choice(served)
        origins = [
            c
            for c in sorted(db.city_state)
            if db.routes.get((c, dest)) and db.routes.get((dest, c))
        ]
    else:
        states = sorted({db.city_state[c] for c in served})
        dest = rng.choice(states)
        members = [c for c in served if db.city_state[c] == dest]
        if len(members) < k:
            return None
        origins = [
            c
            for c in sorted(db.city_state)
            if db.city_state[c] != dest and any(db.routes.get((c, m)) for m in members)
        ]
    if not origins:
        return None
    org = rng.choice(origins)
    start = rng.randint(1, 31 - days + 1)
    people = 1 if level == "easy" else rng.randint(2, 8)
    pool = ["cuisine", "room type", "house rule"] + (["transportation"] if level == "hard" else [])
    chosen = {"easy": [], "medium": rng.sample(pool, 1), "hard": rng.sample(pool, 3)}[level]
    record = {  # a query record as TravelPlanner writes one; the loader checks it
        "org": org,
        "dest": dest,
        "days": days,
        "visiting_city_number": k,
        "date": [f"2022-03-{start + i:02d}" for i in range(days)],
        "people_number": people,
        "local_constraint": {
            "house rule": rng.choice(sorted(HOUSE_RULES)) if "house rule" in chosen else None,
            "cuisine": (
                sorted(rng.sample(CUISINES, rng.randint(1, 2))) if "cuisine" in chosen else None
            ),
            "room type": rng.choice(sorted(ROOM_TYPE_RULES)) if "room type" in chosen else None,
            "transportation": (rng.choice(TRANSPORT_RULES) if "transportation" in chosen else None),
        },
        "budget": 1,  # set from the oracle's plan
        "query": "",
        "level": level,
    }
    return task_from_record(record, "", db)


def query_text(rng: random.Random, task: TravelPlannerTask) -> str:
    """The request in words, as TravelPlanner's annotators phrase one."""
    where = destination_phrase(task.dest, task.visiting_city_number)
    who = "me" if task.people == 1 else f"a group of {task.people}"
    first, last = int(task.dates[0][-2:]), int(task.dates[-1][-2:])
    template = rng.choice(
        (
            "Could you create a {days}-day travel plan for {who}, departing from {org} to {where} "
            "from {first} to {last}, 2022, with a budget of ${budget:,}?",
            "Please plan a trip for {who} from {org} to {where} spanning {days} days, from {first} "
            "to {last}, 2022. The budget is ${budget:,}.",
            "I need a {days}-day itinerary for {who} starting in {org} and heading to {where}, "
            "{first} to {last}, 2022, keeping the total within ${budget:,}.",
        )
    )
    text = template.format(
        days=task.days,
        who=who,
        org=task.org,
        where=where,
        first=_ordinal(first),
        last=_ordinal(last),
        budget=int(task.budget),
    )
    wishes = []
    if task.room_type:
        article = (
            "not a shared room" if task.room_type == "not shared room" else f"a {task.room_type}"
        )
        wishes.append(f"We need {article} for accommodation.")
    if task.house_rule:
        wishes.append(f"Our accommodation must allow {task.house_rule}.")
    if task.cuisines:
        wishes.append(f"We would like to try {' and '.join(task.cuisines)} cuisine.")
    if task.transportation:
        wishes.append(
            "We prefer not to fly."
            if task.transportation == "no flight"
            else "We won't self-drive."
        )
    return " ".join([text, *wishes])


def generate(
    sandbox: Any, db: TravelPlannerDB, per_cell: dict[str, int] = PER_CELL
) -> list[TravelPlannerTask]:
    """Queries for every split and level, each proven solvable (see the module docstring)."""
    rng = random.Random(SEED)
    lengths = tuple(CITIES_FOR_DAYS)
    need = {  # each cell's queries spread over 3, 5 and 7 days, as in TravelPlanner
        (s, lv, d): n // len(lengths) + (i < n % len(lengths))
        for s, n in per_cell.items()
        for lv in LEVELS
        for i, d in enumerate(lengths)
    }
    verifier = build_verifier(db)
    made: list[TravelPlannerTask] = []
    for _ in range(MAX_DRAWS):
        if not any(need.values()):
            return made
        level = rng.choice(LEVELS)
        draft = _draw(rng, db, level)
        if draft is None or not need[(draft.split, level, draft.days)]:
            continue
        found = plan(sandbox, draft, budget=False)  # the budget comes from the plan
        if found is None or len(found.calls) > MAX_ORACLE_CALLS:
            continue
        cost = total_cost(draft.record, found.plan, db)
        budget = float(math.ceil(cost * BUDGET_MARGIN[level] / 100) * 100)
        task = replace(draft, budget=budget)
        task = replace(task, query=query_text(rng, task), task_id=f"draft-{len(made)}")
        prove(found.calls, sandbox, TOOLBOX, verifier, task)
        made.append(task)
        need[(task.split, level, task.days)] -= 1
    raise RuntimeError(
        f"travelplanner: could not draw enough solvable queries; still needed {[k for k, v in need.items() if v]}"
    )


def write_jsonl(tasks: Sequence[TravelPlannerTask], path: Path) -> None:
    lines = [json.dumps(t.to_record()) for t in tasks]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    data_dir = Path(args[0]) if args else default_data_dir()
    if data_dir is None:
        print("usage: python -m hiergym.envs.travel.travelplanner.queries DATA_DIR [OUT]")
        return 2
    out = Path(args[1]) if len(args) > 1 else default_queries()
    path = import_travelplanner(data_dir)
    tasks = generate(Sandbox("travelplanner", path), open_database(path))
    write_jsonl(tasks, out)
    print(f"travelplanner: {len(tasks)} queries -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
