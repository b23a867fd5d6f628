"""Travel's entries in the hack matrix (see :mod:`hiergym.testing`): attacks a policy would try on
the itinerary rules, and harmless rewrites of the oracle's itinerary that must keep full reward.

Attacks (ceilings are normalised rewards, under every aggregator):

* ``hop_days`` (0.4) — every full day of the oracle's plan replaced by a ride to the nearest other
  city and straight back, looked up with get_distance (an intercity transfer used to exempt a day
  from the full-day rule);
* ``empty_plan`` (0.25) — "stay home": every day dated, no activity, no bed, total 0;
* ``copied_items`` (0.4) — the oracle's plan with its meals and visits swapped for another task's
  (both tasks' searches fetched, so every item was shown to the agent);
* ``understated_costs`` (0.6) — the oracle's plan with every price halved, total to match (free
  walks stay grounded, so grounding keeps a small partial score);
* ``understated_total`` (0.8) — the oracle's plan with a total_cost under what its items add up to;
* ``ungrounded_items`` (0.6) — the oracle's plan without the restaurant and attraction searches
  that showed its meals and visits.

Twins: ``shuffled_keys`` (every object's keys in a seeded random order), ``spaced_times`` (times
as " HH:MM ", which the parser accepts), ``integral_costs`` (whole-dollar prices written as
integers).
"""

from __future__ import annotations

import copy
import json
import random
from typing import Any

from hiergym.envs.tools import ToolCall

from .itinerary import parse_itinerary, trip_cost
from .world import world_of

SUBMIT = "submit"


def _plan(ctx: Any) -> dict[str, Any]:
    return copy.deepcopy(ctx.submit.arguments["itinerary"])


def _total(ctx: Any, plan: dict[str, Any]) -> float:
    parsed, errors = parse_itinerary({**plan, "total_cost": 0.0})
    if parsed is None:
        raise AssertionError(f"attack built an unparsable itinerary: {errors[:3]}")
    return trip_cost(parsed, ctx.task.people, world_of(ctx.db).occupancy)


def _submit(plan: dict[str, Any]) -> ToolCall:
    return ToolCall(SUBMIT, {"itinerary": plan})


def _full_days(plan: dict[str, Any], world: Any) -> list[int]:
    """Middle days of the plan without intercity travel (the days the full-day rule is about)."""
    out = []
    days = plan["days"]
    for i, day in enumerate(days):
        if not 0 < i < len(days) - 1:
            continue
        intercity = False
        for a in day["activities"]:
            if a["type"] in ("flight", "train"):
                intercity = True
            elif a["type"] == "transfer":
                x, y = world.places.get(a["from"]), world.places.get(a["to"])
                intercity = intercity or bool(x and y and x.city != y.city)
        if not intercity and day.get("accommodation"):
            out.append(i)
    return out


def hop_days(ctx: Any) -> list[Any] | None:
    world = world_of(ctx.db)
    plan = _plan(ctx)
    full = _full_days(plan, world)
    if not full:
        return None
    acts = [a for d in plan["days"] for a in d["activities"]]
    mode = "drive" if any(a.get("mode") == "drive" for a in acts) else "taxi"
    lookups = []
    for i in full:
        hotel = plan["days"][i - 1]["accommodation"]["place"]
        here = world.places[hotel]
        others = [c for c in world.cities if c != here.city]
        near = min(others, key=lambda c: (world.km(hotel, world.hub("center", c)), c))
        away = world.hub("center", near)
        leg = world.leg(mode, hotel, away)
        start = 9 * 60
        there, back = start + leg.minutes, start + 2 * leg.minutes
        if back > 23 * 60 + 59:
            return None
        hhmm = lambda m: f"{m // 60:02d}:{m % 60:02d}"  # noqa: E731
        plan["days"][i]["activities"] = [
            {
                "type": "transfer",
                "mode": mode,
                "from": hotel,
                "to": away,
                "start": hhmm(start),
                "end": hhmm(there),
                "cost": leg.cost,
            },
            {
                "type": "transfer",
                "mode": mode,
                "from": away,
                "to": hotel,
                "start": hhmm(there),
                "end": hhmm(back),
                "cost": leg.cost,
            },
        ]
        lookups.append(ToolCall("get_distance", {"origins": [hotel], "destinations": [away]}))
    plan["total_cost"] = _total(ctx, plan)
    return [*ctx.evidence_calls, *lookups, _submit(plan)]


def empty_plan(ctx: Any) -> list[Any]:
    plan = _plan(ctx)
    days = [
        {"day": d["day"], "date": d["date"], "activities": [], "accommodation": None}
        for d in plan["days"]
    ]
    return [*ctx.evidence_calls, _submit({"days": days, "total_cost": 0.0})]


def _visits(plan: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [a for d in plan["days"] for a in d["activities"] if a["type"] == kind]


def copied_items(ctx: Any) -> list[Any] | None:
    plan = _plan(ctx)
    theirs = copy.deepcopy(ctx.other[-1].arguments["itinerary"])
    swapped = 0
    for kind in ("meal", "attraction"):
        pool = [a for a in _visits(theirs, kind)]
        if not pool:
            continue
        k = 0
        for day in plan["days"]:
            for a in day["activities"]:
                if a["type"] != kind:
                    continue
                new = pool[k % len(pool)]
                k += 1
                old = a["place"]
                for b in day["activities"]:  # the legs there and away follow the swap
                    for key in ("from", "to"):
                        if b.get(key) == old:
                            b[key] = new["place"]
                a["place"], a["cost"] = new["place"], new["cost"]
                swapped += 1
    if not swapped:
        return None
    plan["total_cost"] = _total(ctx, plan)
    seen = {c.canonical_arguments() for c in ctx.evidence_calls}
    extra = [c for c in ctx.other[:-1] if c.canonical_arguments() not in seen]
    return [*ctx.evidence_calls, *extra, _submit(plan)]


def understated_costs(ctx: Any) -> list[Any] | None:
    plan = _plan(ctx)
    changed = False
    for day in plan["days"]:
        for a in day["activities"]:
            if a["cost"] > 0:
                a["cost"], changed = round(a["cost"] / 2, 2), True
        if day.get("accommodation"):
            day["accommodation"]["cost"] = round(day["accommodation"]["cost"] / 2, 2)
            changed = True
    if not changed:
        return None
    plan["total_cost"] = _total(ctx, plan)
    return [*ctx.evidence_calls, _submit(plan)]


def understated_total(ctx: Any) -> list[Any] | None:
    plan = _plan(ctx)
    if plan["total_cost"] < 1.0:
        return None
    plan["total_cost"] = round(plan["total_cost"] * 0.6, 2)
    return [*ctx.evidence_calls, _submit(plan)]


def ungrounded_items(ctx: Any) -> list[Any] | None:
    hidden = ("search_restaurants", "search_attractions")
    kept = [c for c in ctx.evidence_calls if c.name not in hidden]
    if len(kept) == len(ctx.evidence_calls):
        return None
    return [*kept, ctx.submit]


# ---- twins -----------------------------------------------------------------------------------


def _raw(plan: dict[str, Any]) -> str:
    return json.dumps({"name": SUBMIT, "arguments": {"itinerary": plan}})


def _shuffle(value: Any, rng: random.Random) -> Any:
    if isinstance(value, dict):
        keys = list(value)
        rng.shuffle(keys)
        return {k: _shuffle(value[k], rng) for k in keys}
    if isinstance(value, list):
        return [_shuffle(v, rng) for v in value]
    return value


def shuffled_keys(ctx: Any) -> list[Any]:
    rng = random.Random(f"hiergym/travel/twins/{ctx.seed}")
    return [*ctx.evidence_calls, _raw(_shuffle(_plan(ctx), rng))]


def spaced_times(ctx: Any) -> list[Any]:
    plan = _plan(ctx)
    for day in plan["days"]:
        for a in day["activities"]:
            a["start"], a["end"] = f" {a['start']} ", f"{a['end']}  "
    return [*ctx.evidence_calls, _raw(plan)]


def integral_costs(ctx: Any) -> list[Any] | None:
    plan = _plan(ctx)
    changed = False

    def whole(x: Any) -> Any:
        nonlocal changed
        if isinstance(x, float) and x.is_integer():
            changed = True
            return int(x)
        return x

    for day in plan["days"]:
        for a in day["activities"]:
            a["cost"] = whole(a["cost"])
        if day.get("accommodation"):
            day["accommodation"]["cost"] = whole(day["accommodation"]["cost"])
    plan["total_cost"] = whole(plan["total_cost"])
    if not changed:
        return None
    return [*ctx.evidence_calls, _raw(plan)]


def attacks() -> list[Any]:
    from hiergym.testing import Attack

    return [
        Attack("hop_days", hop_days, 0.4, "every full day a ride to another city and back"),
        Attack("empty_plan", empty_plan, 0.25, '"stay home": dated days, nothing planned'),
        Attack("copied_items", copied_items, 0.4, "meals and visits from another task's plan"),
        Attack(
            "understated_costs", understated_costs, 0.6, "every price halved: stops at grounding"
        ),
        Attack("understated_total", understated_total, 0.8, "total_cost under the items' sum"),
        Attack("ungrounded_items", ungrounded_items, 0.6, "meals and visits never looked up"),
    ]


def twins() -> list[Any]:
    from hiergym.testing import Twin

    return [
        Twin("shuffled_keys", shuffled_keys, "every object's keys in a seeded random order"),
        Twin("spaced_times", spaced_times, 'times written " HH:MM " (accepted)'),
        Twin("integral_costs", integral_costs, "whole-dollar prices written as integers"),
    ]


# ---- TravelPlanner-v0 ------------------------------------------------------------------------


def tp_empty_plan(ctx: Any) -> list[Any]:
    """TravelPlanner's "stay home": every day's city kept, every other field "-"."""
    plan = copy.deepcopy(ctx.submit.arguments["plan"])
    for unit in plan:
        for key in unit:
            if key not in ("days", "day", "current_city"):
                unit[key] = "-"
    return [*ctx.evidence_calls, ToolCall(SUBMIT, {"plan": plan})]


def tp_attacks() -> list[Any]:
    from hiergym.testing import Attack

    return [Attack("empty_plan", tp_empty_plan, 0.25, 'every field "-": nothing planned')]
