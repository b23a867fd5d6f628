"""Travel speed: tool calls/s per tool (cached and not), tool vs the raw SQL it wraps, verdicts/s
for a 5-day itinerary (the same trajectory again and again, and fresh copies of it, as new episodes
are), oracle planning time per task; the same for hiergym/TravelPlanner-v0 when TravelPlanner's
data folder is present.

Targets (issue 3): >= 10,000 search calls/s with the cache warm, a tool call <= 3x its raw SQL,
>= 5,000 verdicts/s for a 5-day itinerary.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from types import SimpleNamespace
from typing import Any

import gymnasium as gym

import hiergym  # noqa: F401
from hiergym.envs.core import Trajectory, Turn
from hiergym.envs.tools import ToolCall
from hiergym.envs.travel.oracle import plan
from hiergym.envs.travel.tools import hhmm_sql
from hiergym.testing import oracle_actions

from . import per_call_ms, rate

CALLS = {
    "search_flights": {"origin": "Boston", "destination": "Chicago", "date": "2024-03-12"},
    "search_trains": {"origin": "New York", "destination": "Philadelphia", "date": "2024-03-12"},
    "search_hotels": {"city": "Chicago", "room_type": "Private room", "sort": "price"},
    "search_attractions": {"city": "Chicago", "sort": "price"},
    "search_restaurants": {"city": "Chicago", "cuisine": "Italian"},
    "get_distance": {
        "origins": ["CENTER-ORD", "H-ORD-004"],
        "destinations": ["AIRPORT-ORD", "R-ORD-010", "A-ORD-003"],
    },
}
RAW_SQL = {  # the query each tool runs (its time formatting included), with the same page size
    "search_flights": (
        f"SELECT number, {hhmm_sql('dep_min')}, {hhmm_sql('arr_min')}, price, seats, "
        "count(*) OVER () FROM flights WHERE origin = ? AND destination = ? AND date = ? "
        "ORDER BY dep_min, number LIMIT 10 OFFSET 0",
        ("Boston", "Chicago", "2024-03-12"),
    ),
    "search_hotels": (
        "SELECT id, name, room_type, price, min_nights, max_occupancy, rating, "
        "coalesce(nullif(house_rules, ''), 'none'), count(*) OVER () FROM hotels "
        "WHERE city = ? AND room_type = ? ORDER BY price, id LIMIT 10 OFFSET 0",
        ("Chicago", "Private room"),
    ),
    "search_restaurants": (
        f"SELECT r.id, r.name, r.cuisines, r.cost, r.rating, {hhmm_sql('r.open_min')}, "
        f"{hhmm_sql('r.close_min')}, count(*) OVER () "
        "FROM restaurant_cuisines c JOIN restaurants r ON r.id = c.restaurant_id "
        "WHERE c.city = ? AND c.cuisine = ? ORDER BY r.cost, r.id LIMIT 10 OFFSET 0",
        ("Chicago", "Italian"),
    ),
}


def run() -> dict[str, float]:
    env = gym.make("hiergym/Travel-v0", split="test", difficulty="hard")
    base = env.unwrapped
    db = base.sandbox.db
    state = SimpleNamespace(db=db, memory={})
    figures: dict[str, float] = {}
    for name, args in CALLS.items():
        tool = base.toolbox[name]
        call = ToolCall(name, args)
        figures[f"{name}_calls_per_s_uncached"] = rate(lambda t=tool, a=args: t.fn(state, **a))
        figures[f"{name}_calls_per_s_cached"] = rate(
            lambda t=tool, c=call: base.sandbox.call(t, c, lambda: t.fn(state, **c.arguments))
        )
    for name, (sql, params) in RAW_SQL.items():
        raw_ms = per_call_ms(lambda s=sql, p=params: db.execute(s, p).fetchall())
        tool_ms = 1000.0 / figures[f"{name}_calls_per_s_uncached"]
        cached_ms = 1000.0 / figures[f"{name}_calls_per_s_cached"]
        figures[f"{name}_raw_sql_ms"] = raw_ms
        figures[f"{name}_tool_over_raw_ratio"] = tool_ms / raw_ms
        figures[f"{name}_cached_over_raw_ratio"] = cached_ms / raw_ms

    base.reset(seed=0, options={"max_turns": 10**9})
    action = ToolCall("search_hotels", CALLS["search_hotels"])
    figures["env_steps_per_s"] = rate(lambda: base.step(action))

    # Verdicts on a 5-day itinerary (the first 5-day task of the set).
    task = next(t for t in base.tasks if t.days == 5)
    base.reset(seed=0, options={"task": task})
    for call in oracle_actions(base):
        base.step(call)
    assert base.verdict is not None and base.verdict.reward == 1.0
    trajectory = base.trajectory
    figures["verdicts_per_s_5_day"] = rate(lambda: base.verifier.verify(trajectory, task))
    figures["verdicts_per_s_5_day_fresh"] = fresh_rate(base.verifier, trajectory, task)

    tasks = list(base.tasks)
    start = time.perf_counter()
    for t in tasks:
        plan(base.sandbox, t)
    figures["oracle_plan_ms_per_task"] = (time.perf_counter() - start) * 1000 / len(tasks)
    env.close()
    figures.update(travelplanner())
    return {k: round(v, 4) for k, v in figures.items()}


def fresh_copy(trajectory: Trajectory) -> Trajectory:
    """The trajectory with new call, result and submission objects (as a new episode has), so no
    per-object memo from an earlier verdict applies."""
    copy = Trajectory(trajectory.task, end=trajectory.end)
    for turn in trajectory.turns:
        calls = tuple(ToolCall(c.name, _clone(c.arguments), c.id) for c in turn.calls)
        results = tuple(replace(r, data=_clone(r.data)) for r in turn.results)
        copy.turns.append(Turn(turn.index, turn.action, calls, results))
    copy.submission = copy.turns[-1].calls[-1]
    return copy


def _clone(value: Any) -> Any:
    return json.loads(json.dumps(value))


def fresh_rate(verifier: Any, trajectory: Trajectory, task: Any, batches: int = 5) -> float:
    """Verdicts/s, each on a fresh copy of ``trajectory`` (copies made outside the timing, 200 at
    a time, so the heap stays the size of a few hundred episodes)."""
    done, elapsed = 0, 0.0
    for _ in range(batches):
        copies = [fresh_copy(trajectory) for _ in range(200)]
        start = time.perf_counter()
        for t in copies:
            verifier.verify(t, task)
        elapsed += time.perf_counter() - start
        done += len(copies)
    return done / elapsed


def travelplanner() -> dict[str, float]:
    """hiergym/TravelPlanner-v0 over TravelPlanner's database, when its data folder is here."""
    from hiergym.envs.travel.travelplanner.env import TravelPlannerEnv
    from hiergym.envs.travel.travelplanner.oracle import plan as tp_plan

    if TravelPlannerEnv.missing_data():
        return {}
    env = gym.make("hiergym/TravelPlanner-v0", split="train", difficulty="hard")
    base = env.unwrapped
    figures: dict[str, float] = {}
    for name, args in {
        "search_restaurants": {"city": "Myrtle Beach"},
        "search_accommodations": {"city": "Myrtle Beach"},
        "get_distance": {"origin": "Detroit", "destination": "Norfolk"},
    }.items():
        tool = base.toolbox[name]
        figures[f"travelplanner_{name}_calls_per_s_uncached"] = rate(
            lambda t=tool, a=args: t.fn(base.sandbox, **a)
        )
    task = next(t for t in base.tasks if t.days == 5)
    base.reset(seed=0, options={"task": task})
    for call in oracle_actions(base):
        base.step(call)
    assert base.verdict is not None and base.verdict.reward == 1.0
    trajectory = base.trajectory
    figures["travelplanner_verdicts_per_s_5_day"] = rate(
        lambda: base.verifier.verify(trajectory, task)
    )
    figures["travelplanner_verdicts_per_s_5_day_fresh"] = fresh_rate(
        base.verifier, trajectory, task
    )
    tasks = list(base.tasks)
    start = time.perf_counter()
    for t in tasks:
        tp_plan(base.sandbox, t)
    figures["travelplanner_oracle_plan_ms_per_query"] = (
        (time.perf_counter() - start) * 1000 / len(tasks)
    )
    env.close()
    return figures
