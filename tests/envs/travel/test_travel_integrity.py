"""Travel's reward integrity (issue 9): the hop-days hole, answers that do not exist, numeric edge
values, and the hack matrix of hiergym/Travel-v0."""

from __future__ import annotations

import copy
import json

import gymnasium as gym
import pytest

from hiergym.envs.tools import ToolCall
from hiergym.envs.travel import attacks
from hiergym.envs.travel.itinerary import MAX_COST, parse_itinerary
from hiergym.envs.travel.world import world_of
from hiergym.testing import (
    AGGREGATE_NAMES,
    AttackContext,
    normalised_reward,
    oracle_actions,
    play,
    run_hack_matrix,
)

ENV_ID = "hiergym/Travel-v0"
TRAVEL_ATTACKS = [a.name for a in attacks.attacks()]
TRAVEL_TWINS = [t.name for t in attacks.twins()]


@pytest.fixture(scope="module")
def base():
    env = gym.make(ENV_ID, split="test", difficulty="hard")
    yield env.unwrapped
    env.close()


def _ctx(base, seed, task=None):
    base.reset(seed=seed, options={"task": task} if task else None)
    task = base.task
    calls = oracle_actions(base)
    return AttackContext(base, task, calls, calls, seed)


def _verdict(base, ctx, actions):
    out = play(base, actions, options={"task": ctx.task, "max_turns": len(actions)})
    assert out.verdict is not None
    return out.verdict, base.verdict


def _level(verdict, name):
    return next(lv for lv in verdict["levels"] if lv["name"] == name)


def _max_normalised(levels, task):
    return max(normalised_reward(agg, levels, task) for agg in AGGREGATE_NAMES)


def test_hop_days_fail_feasibility_and_earn_at_most_a_wrong_answer(base):
    """A ride to another city and back used to exempt a day from the full-day rule."""
    hopped = 0
    for seed in range(6):
        ctx = _ctx(base, seed)
        actions = attacks.hop_days(ctx)
        if actions is None:
            continue
        hopped += 1
        verdict, v = _verdict(base, ctx, actions)
        codes = {f["code"] for f in _level(verdict, "feasibility")["findings"]}
        assert verdict["first_failed"] == "feasibility", verdict
        assert {"pointless_hop", "incomplete_day"} <= codes, codes
        assert _max_normalised(v.levels, ctx.task) <= 0.4 + 1e-9
    assert hopped >= 3


def _travel_day_meal(base):
    """A task, its oracle calls, and a middle day of its plan that moves between two cities and
    has a meal (one whose whole window the traveller spends in a city of the trip)."""
    world = world_of(base.sandbox.db)
    for task in base.tasks:
        if task.visiting_city_number < 2:
            continue
        base.reset(seed=0, options={"task": task})
        calls = oracle_actions(base)
        days = calls[-1].arguments["itinerary"]["days"]
        for i in range(1, len(days) - 1):
            woke = world.places[days[i - 1]["accommodation"]["place"]].city
            slept = world.places[days[i]["accommodation"]["place"]].city
            meals = [a for a in days[i]["activities"] if a["type"] == "meal"]
            if woke != slept and meals:
                return task, calls, i, meals[-1]
    raise AssertionError("no oracle plan has a meal on a day that moves between cities")


def test_a_travel_day_owes_the_meals_it_spends_in_a_city(base):
    """A travel day is exempt only for the hours of the journey: a meal whose whole window lies
    before the departure or after the arrival is still owed."""
    task, calls, i, meal = _travel_day_meal(base)
    plan = copy.deepcopy(calls[-1].arguments["itinerary"])
    plan["days"][i]["activities"].remove(meal)
    actions = [*calls[:-1], ToolCall("submit", {"itinerary": plan})]
    out = play(base, actions, options={"task": task, "max_turns": len(actions)})
    findings = _level(out.verdict, "feasibility")["findings"]
    assert any(
        f["code"] == "incomplete_day"
        and f"day {i + 1} " in f["message"]
        and meal["meal"] in f["message"]
        for f in findings
    ), findings


def test_an_empty_plan_grounds_nothing_and_earns_no_more_than_an_empty_answer(base):
    """ "Stay home" used to get 0.8 under weighted: 0 items counted as all grounded, and the
    constraints and quality passed at cost 0."""
    for seed in (0, 1):
        ctx = _ctx(base, seed)
        verdict, v = _verdict(base, ctx, attacks.empty_plan(ctx))
        for name in ("grounding", "constraints", "quality"):
            level = _level(verdict, name)
            assert level["score"] == 0.0 and not level["passed"], level
        assert _max_normalised(v.levels, ctx.task) <= 0.25 + 1e-9


def test_grounding_of_no_items_is_not_all_grounded(base):
    from hiergym.envs.travel.verifier import GroundingLevel
    from hiergym.rewards.levels import VerifyContext

    ctx = _ctx(base, 0)
    plan = attacks.empty_plan(ctx)[-1].arguments["itinerary"]
    parsed, _ = parse_itinerary(plan)
    base.reset(seed=0)
    vctx = VerifyContext(base.trajectory, ctx.task, {"itinerary": parsed})
    result = GroundingLevel().check(vctx)
    assert result.score == 0.0 and not result.passed
    assert [f.code for f in result.findings] == ["nothing_to_ground"]


def test_later_levels_are_not_applicable_when_the_answer_fails(base):
    from hiergym.envs.travel.verifier import build_verifier

    levels = {lv.name: lv for lv in build_verifier(base.sandbox.db).levels}
    assert set(levels["grounding"].requires) == {"feasibility"}
    assert set(levels["constraints"].requires) == {"feasibility", "grounding"}
    assert set(levels["quality"].requires) == {"feasibility", "grounding", "constraints"}


@pytest.mark.parametrize("value", [10**400, -(10**400), 10**30, 1e308, -1e308, 2**63])
def test_huge_numbers_in_any_cost_are_a_format_failure_not_a_crash(base, value):
    ctx = _ctx(base, 0)
    plan = copy.deepcopy(ctx.submit.arguments["itinerary"])
    spots = [
        lambda p: p.__setitem__("total_cost", value),
        lambda p: p["days"][0]["activities"][0].__setitem__("cost", value),
        lambda p: p["days"][0]["accommodation"].__setitem__("cost", value),
        lambda p: p["days"][0].__setitem__("day", value),
    ]
    for spot in spots:
        p = copy.deepcopy(plan)
        spot(p)
        parsed, errors = parse_itinerary(p)  # the verifier's own parser, whatever core lets by
        assert parsed is None and errors, errors
        raw = json.dumps({"name": "submit", "arguments": {"itinerary": p}})
        verdict, _ = _verdict(base, ctx, [*ctx.evidence_calls, raw])
        assert verdict["first_failed"] == "format", verdict


def test_costs_at_the_cap_add_up_to_a_finite_verdict(base):
    """Every cost at the largest value the schema accepts, on the most activities it accepts."""
    ctx = _ctx(base, 0)
    plan = copy.deepcopy(ctx.submit.arguments["itinerary"])
    for day in plan["days"]:
        day["activities"] = (day["activities"] * 40)[:40]
        for a in day["activities"]:
            a["cost"] = MAX_COST
        if day["accommodation"]:
            day["accommodation"]["cost"] = MAX_COST
    plan["total_cost"] = MAX_COST
    verdict, v = _verdict(base, ctx, [*ctx.evidence_calls, ToolCall("submit", {"itinerary": plan})])
    assert verdict["first_failed"] == "feasibility"
    for agg in AGGREGATE_NAMES:
        assert 0.0 <= normalised_reward(agg, v.levels, ctx.task) <= 1.0


def test_travel_hack_matrix_holds_on_the_outcome_reward():
    """Every attack (common and Travel's own) stays under its ceiling and every twin keeps full
    reward, under every aggregator (outcome reward; the process columns are the wrapper's)."""
    skip = {"oversized"}  # a >4,300-digit integer crashes core's parser (the lead's, issue 9 A)
    rows = run_hack_matrix(ENV_ID, seeds=(0, 1))
    names = {r.name for r in rows}
    assert set(TRAVEL_ATTACKS + TRAVEL_TWINS) <= names, names
    bad = [
        (r.name, r.seed, r.breaches(process=False), r.error, r.rewards)
        for r in rows
        if r.name not in skip and r.breaches(process=False)
    ]
    assert not bad, bad
