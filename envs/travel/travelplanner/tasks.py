"""TravelPlanner queries as tasks: records read from a JSONL file and checked against the sandbox.

A record has TravelPlanner's fields: ``org``, ``dest``, ``days``, ``visiting_city_number``,
``date``, ``people_number``, ``local_constraint``, ``budget``, ``query``, ``level`` (its Hugging
Face release stores ``date`` and ``local_constraint`` as Python literals; both forms are read).
``level`` is the difficulty; the split is a hash of (org, dest), as in hiergym/Travel-v0, so the
splits never share a trip. A task's id is the file's stem and the record's line number.
"""

from __future__ import annotations

import ast
import functools
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hiergym.envs.core import TaskSet
from hiergym.errors import SandboxError, TaskError, did_you_mean
from hiergym.sandbox_data import source_dir

from ..clock import parse_date
from ..rules import HOUSE_RULES, ROOM_TYPE_RULES, TRANSPORT_RULES
from ..tasks import constraint_phrases, destination_phrase, people_phrase, split_of
from .database import TravelPlannerDB
from .importer import IMPORT_HINT, REQUIRED, registered_import, registry_path  # noqa: F401

LEVELS = ("easy", "medium", "hard")
HOUSE_RULE_VALUES = tuple(HOUSE_RULES)
MAX_DAYS = 14
DATA_DIR_VARIABLE = "HIERGYM_TRAVELPLANNER_DIR"


def default_queries() -> Path:
    """The queries shipped with hiergym, generated from TravelPlanner's database and each proven
    solvable by the oracle (see queries.py)."""
    return source_dir("travel") / "travelplanner_queries.jsonl"


def _checkout_data_dir() -> Path | None:
    """``shared/data/travelplanner`` beside a source checkout of hiergym (a developer's clone,
    where the package folders sit beside pyproject.toml); never looked for in an installed wheel."""
    root = Path(__file__).resolve().parents[3]
    if not (root / "pyproject.toml").is_file() or not (root / "envs" / "core.py").is_file():
        return None
    found = root.parent / "shared" / "data" / "travelplanner"
    return found if found.is_dir() else None


def default_data_dir() -> Path | None:
    """The data folder ``gym.make`` uses without ``data_dir``: ``$HIERGYM_TRAVELPLANNER_DIR``,
    else the folder of the import recorded under HIERGYM_HOME, else (in a source checkout only)
    ``shared/data/travelplanner`` beside it; None when there is none."""
    configured = os.environ.get(DATA_DIR_VARIABLE)
    if configured:
        return Path(configured).expanduser()
    record = registered_import()
    if record is not None and Path(record["source"]).is_dir():
        return Path(record["source"])
    return _checkout_data_dir()


def default_database() -> Path | None:
    """The recorded import's database when its source folder is gone (it needs no re-import)."""
    if os.environ.get(DATA_DIR_VARIABLE):
        return None
    record = registered_import()
    if record is not None and Path(record["database"]).is_file():
        return Path(record["database"])
    return None


def missing_data() -> str | None:
    """Why ``gym.make("hiergym/TravelPlanner-v0")`` with no data_dir cannot work here, or None."""
    folder = default_data_dir()
    if folder is not None and folder.is_dir():
        return None
    if folder is None and default_database() is not None:
        return None
    return f"needs data: {IMPORT_HINT}"


def missing_data_message(data_dir: Path | None) -> str:
    where = (
        f"no TravelPlanner data directory at {data_dir}"
        if data_dir
        else ("no TravelPlanner data imported")
    )
    return (
        f"{where}; run `{IMPORT_HINT}` once (DIR holds TravelPlanner's "
        f"{', '.join(REQUIRED.values())}), or pass data_dir=DIR to gym.make, or set "
        f"{DATA_DIR_VARIABLE}"
    )


@dataclass(frozen=True)
class TravelPlannerTask:
    task_id: str
    split: str
    difficulty: str
    org: str
    dest: str  # a city when visiting_city_number is 1, else a state
    days: int
    visiting_city_number: int
    dates: tuple[str, ...]
    people: int
    budget: float
    query: str
    house_rule: str | None = None
    cuisines: tuple[str, ...] = ()
    room_type: str | None = None
    transportation: str | None = None

    @functools.cached_property
    def record(self) -> dict[str, Any]:
        """The query in the normalized form TravelPlanner's checks read (see evaluate.py)."""
        return {
            "org": self.org,
            "dest": self.dest,
            "days": self.days,
            "visiting_city_number": self.visiting_city_number,
            "date": list(self.dates),
            "people_number": self.people,
            "local_constraint": {
                "house rule": self.house_rule,
                "cuisine": list(self.cuisines) or None,
                "room type": self.room_type,
                "transportation": self.transportation,
            },
            "budget": self.budget,
            "query": self.query,
            "level": self.difficulty,
        }

    def to_record(self) -> dict[str, Any]:
        """The record as a JSONL line holds it (budget an integer when it is one, like TravelPlanner's)."""
        record = dict(self.record)
        if float(self.budget).is_integer():
            record["budget"] = int(self.budget)
        return record


def _literal(value: Any, field: str) -> Any:
    if isinstance(value, str) and value.strip()[:1] in ("[", "{"):
        try:
            return ast.literal_eval(value)
        except (ValueError, SyntaxError) as e:
            raise ValueError(f"{field} is not a list or dict literal: {value[:80]!r}") from e
    return value


def _integer(record: dict[str, Any], field: str, lo: int, hi: int, default: Any = None) -> int:
    value = record.get(field, default)
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise ValueError(f"{field} must be an integer from {lo} to {hi}, got {value!r}")
    return value


def _choice(value: Any, field: str, choices: tuple[str, ...]) -> str | None:
    if value is None:
        return None
    if value not in choices:
        raise ValueError(
            f"local_constraint[{field!r}] must be one of {list(choices)} or None, got {value!r}"
        )
    return value


def task_from_record(record: Any, task_id: str, db: TravelPlannerDB) -> TravelPlannerTask:
    """A task from one query record; ValueError says which field is wrong and what it must be."""
    if not isinstance(record, dict):
        raise ValueError(f"a query must be a JSON object, got {type(record).__name__}")
    missing = [
        f
        for f in ("org", "dest", "days", "date", "people_number", "budget", "query", "level")
        if f not in record
    ]
    if missing:
        raise ValueError(f"missing field(s) {missing}")
    days = _integer(record, "days", 1, MAX_DAYS)
    k = _integer(record, "visiting_city_number", 1, days, default=1)
    people = _integer(record, "people_number", 1, 100)
    org, dest = record["org"], record["dest"]
    if org not in db.city_state:
        raise ValueError(
            f"org {org!r} is not a city of the sandbox{did_you_mean(str(org), db.city_state)}"
        )
    places = db.city_state if k == 1 else set(db.city_state.values())
    if dest not in places:
        kind = "city" if k == 1 else "state (visiting more than one city)"
        raise ValueError(
            f"dest {dest!r} is not a {kind} of the sandbox{did_you_mean(str(dest), places)}"
        )
    dates = _literal(record["date"], "date")
    if not isinstance(dates, list) or len(dates) != days or any(parse_date(d) != d for d in dates):
        raise ValueError(f"date must list {days} dates as YYYY-MM-DD, got {record['date']!r}")
    budget = record["budget"]
    if isinstance(budget, bool) or not isinstance(budget, int | float) or not 0 < budget < 1e9:
        raise ValueError(f"budget must be a positive number, got {budget!r}")
    level = record["level"]
    if level not in LEVELS:
        raise ValueError(f"level must be one of {list(LEVELS)}, got {level!r}")
    if not isinstance(record["query"], str):
        raise ValueError("query must be the request as text")
    lc = _literal(record.get("local_constraint") or {}, "local_constraint")
    if not isinstance(lc, dict):
        raise ValueError(f"local_constraint must be an object, got {lc!r}")
    cuisines = lc.get("cuisine") or []
    if not isinstance(cuisines, list) or not all(isinstance(c, str) for c in cuisines):
        raise ValueError(
            f"local_constraint['cuisine'] must be a list of names or None, got {cuisines!r}"
        )
    return TravelPlannerTask(
        task_id=task_id,
        split=split_of(org, dest),
        difficulty=level,
        org=org,
        dest=dest,
        days=days,
        visiting_city_number=k,
        dates=tuple(dates),
        people=people,
        budget=float(budget),
        query=record["query"],
        house_rule=_choice(lc.get("house rule"), "house rule", HOUSE_RULE_VALUES),
        cuisines=tuple(cuisines),
        room_type=_choice(lc.get("room type"), "room type", tuple(ROOM_TYPE_RULES)),
        transportation=_choice(lc.get("transportation"), "transportation", TRANSPORT_RULES),
    )


def read_queries(path: Path, db: TravelPlannerDB) -> tuple[TravelPlannerTask, ...]:
    """Every query of a JSONL file as a task; a bad record is a TaskError naming its line."""
    try:
        stat = path.stat()
    except OSError as e:
        raise TaskError(f"cannot read TravelPlanner queries at {path}: {e.strerror}") from None
    return _read(str(path), stat.st_mtime_ns, stat.st_size, db)


@functools.lru_cache(maxsize=16)
def _read(
    path: str, mtime_ns: int, size: int, db: TravelPlannerDB
) -> tuple[TravelPlannerTask, ...]:
    tasks = []
    stem = Path(path).stem
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                tasks.append(task_from_record(record, f"{stem}:{n}", db))
            except (ValueError, TypeError) as e:  # JSONDecodeError is a ValueError
                raise TaskError(f"{path} line {n}: {e}") from None
    if not tasks:
        raise TaskError(
            f"{path} holds no queries; expected one TravelPlanner query record per line"
        )
    return tuple(tasks)


def load_tasks(path: Path, db: TravelPlannerDB, split: str, difficulty: str) -> TaskSet:
    """The queries of one split and level, or a TaskError that says how the file divides."""
    tasks = read_queries(path, db)
    chosen = [t for t in tasks if t.split == split and t.difficulty == difficulty]
    if not chosen:
        cells = sorted({(t.split, t.difficulty) for t in tasks})
        raise TaskError(
            f"{path} has no {difficulty} query in split {split!r} (splits hash the (org, dest) "
            f"pair); it has {', '.join(f'{s}/{d}' for s, d in cells)}"
        )
    return TaskSet(chosen, split, difficulty)


def describe_constraints(task: TravelPlannerTask) -> str:
    phrases = constraint_phrases(
        task.room_type, task.house_rule, task.cuisines, task.transportation
    )
    return "; ".join(phrases) or "none beyond the budget"


PLAN_HELP = """\
Use the tools to find real options, then call submit with {"plan": [DAY, ...]}: one DAY per day of
the trip, in TravelPlanner's format (every value a string, "-" when there is nothing):
  {"days": 1, "current_city": "from A to B" (a travel day) or "B",
   "transportation": "Flight Number: F123, from A to B, Departure Time: HH:MM, Arrival Time: HH:MM"
       or "Self-driving, from A to B, duration: D, distance: K, cost: C" or "Taxi, from A to B, ..." or "-",
   "breakfast": "Name, City", "attraction": "Name, City;Name, City;", "lunch": "Name, City",
   "dinner": "Name, City", "accommodation": "Name, City"}
Rules (TravelPlanner's): the trip leaves the origin on day 1 and returns on the last day; it visits
the requested number of cities (in the requested state when there are several) and never returns
to a city it left; a day without travel has breakfast, lunch, dinner and an attraction; every night
but the last has an accommodation in the city where you sleep, for at least its minimum nights;
never repeat a restaurant or an attraction; do not mix self-driving with flights or taxis. Cost:
flights and meals x people, taxis x ceil(people/4), self-driving x ceil(people/5), rooms x
ceil(people / maximum occupancy) per night; stay within the budget and every constraint. Name only
flights, routes and places a tool showed you, spelled exactly as shown."""


def render_prompt(task: TravelPlannerTask) -> str:
    where = destination_phrase(task.dest, task.visiting_city_number)
    return (
        f"{task.query}\n\nTrip: {task.org} -> {where}, {task.days} days "
        f"({task.dates[0]} to {task.dates[-1]}), {people_phrase(task.people)}, budget ${task.budget:,.0f}; "
        f"constraints: {describe_constraints(task)}.\n\n{PLAN_HELP}"
    )


def check_data_dir(data_dir: Path | None) -> None:
    if data_dir is None or not data_dir.is_dir():
        raise SandboxError(missing_data_message(data_dir))
