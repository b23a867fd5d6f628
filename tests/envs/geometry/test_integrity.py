"""Reward integrity of the Geometry verifier (issue 9, classes D and E): no level pays for work that
was not done, under any aggregator."""

from __future__ import annotations

import json

import gymnasium as gym
import pytest

from hiergym.envs.geometry.units import AnswerError, parse_answer
from hiergym.envs.tools import MAX_CALLS_PER_ACTION, ToolCall
from hiergym.testing import AGGREGATE_NAMES, normalised_reward, oracle_actions, play

ENV_ID = "hiergym/Geometry-v0"


@pytest.fixture(scope="module")
def envs():
    made = {d: gym.make(ENV_ID, split="train", difficulty=d) for d in ("easy", "medium", "hard")}
    yield made
    for env in made.values():
        env.close()


def first(env, family: str, answer: object = None):
    base = env.unwrapped
    task = next(
        t for t in base.tasks if t.family == family and (answer is None or t.answer == answer)
    )
    base.reset(options={"task": task})
    return task, oracle_actions(base)


def episode(env, task, actions):
    out = play(env, actions, options={"task": task, "max_turns": max(1, len(actions))})
    assert out.verdict is not None
    return out


def level(out, name: str) -> dict:
    return next(lv for lv in out.verdict["levels"] if lv["name"] == name)


def not_compared(out) -> bool:
    precision = level(out, "precision")
    return precision["score"] == 0.0 and [f["code"] for f in precision["findings"]] == [
        "not_compared"
    ]


def worst(out, task) -> float:
    """The largest normalised reward of this episode under any aggregator."""
    levels = out.verdict["levels"]
    from hiergym.rewards.levels import Finding, LevelResult

    results = [
        LevelResult(
            lv["name"],
            lv["score"],
            lv["passed"],
            tuple(Finding(f["code"], f["message"]) for f in lv["findings"]),
            skipped=lv.get("skipped", False),
            difficulty=i + 1,
        )
        for i, lv in enumerate(levels)
    ]
    return max(normalised_reward(a, results, task) for a in AGGREGATE_NAMES)


@pytest.mark.parametrize(
    ("difficulty", "family"),
    [
        ("easy", "distance_angle"),
        ("easy", "spatial_fit"),
        ("medium", "pose_estimation"),
        ("hard", "pose_estimation"),
    ],
)
def test_evidence_fetched_in_the_submitting_action_does_not_ground(envs, difficulty, family):
    """A memorised answer plus its evidence calls in one action scored 1.0."""
    env = envs[difficulty]
    task, calls = first(env, family)
    assert len(calls) <= MAX_CALLS_PER_ACTION
    one_action = json.dumps([{"name": c.name, "arguments": dict(c.arguments)} for c in calls])
    out = episode(env, task, [one_action])
    assert out.terminated
    assert not level(out, "grounding")["passed"]
    assert any(f["code"] == "in_submit" for f in level(out, "grounding")["findings"])
    assert worst(out, task) <= 0.4


@pytest.mark.parametrize("difficulty", ["easy", "medium", "hard"])
@pytest.mark.parametrize("answer", ["yes", "no"])
def test_a_blind_yes_or_no_is_not_paid(envs, difficulty, answer):
    """A yes/no with no tool call scored 0.75 when it happened to be right."""
    env = envs[difficulty]
    task, _ = first(env, "spatial_fit", answer == "yes")
    out = episode(env, task, [ToolCall("submit", {"answer": answer})])
    assert not_compared(out), "a guess is not compared with the truth"
    assert worst(out, task) <= 0.25 + 1e-9


@pytest.mark.parametrize("difficulty", ["medium", "hard"])
def test_a_yes_or_no_needs_all_the_evidence_that_decides_it(envs, difficulty):
    """Part of the evidence (the sizes, not the positions) cannot decide a yes/no: no grounding."""
    env = envs[difficulty]
    task, calls = first(env, "spatial_fit", True)
    sizes = next(c for c in calls if c.name == "list_objects")
    out = episode(env, task, [sizes, ToolCall("submit", {"answer": "yes"})])
    assert level(out, "grounding")["score"] == 0.0
    assert not_compared(out)
    # with all of its evidence the same answer is fully paid
    full = episode(env, task, calls)
    assert full.verdict["reward"] == 1.0


def test_padding_with_repeated_cheap_calls_buys_no_tool_use(envs):
    """tool_use was the share of valid calls: 0.41 -> 0.95 by repeating list_objects."""
    env = envs["medium"]
    task, calls = first(env, "distance_angle")
    bad = [ToolCall("detekt", {"scene": task.scene_id})] * 3
    careless = episode(env, task, [*bad, *calls])
    cheap = ToolCall("list_objects", {"scene": task.scene_id})
    padded = episode(env, task, [*bad, *[cheap] * 30, *calls])
    before, after = level(careless, "tool_use"), level(padded, "tool_use")
    assert after["score"] <= before["score"] + 1e-12
    assert not after["passed"]
    # repeating the useful calls themselves earns nothing either
    repeated = episode(env, task, [*bad, *calls[:-1], *calls[:-1], *calls[:-1], calls[-1]])
    assert level(repeated, "tool_use")["score"] <= before["score"] + 1e-12


def test_tool_use_is_zero_without_useful_calls(envs):
    env = envs["easy"]
    task, calls = first(env, "area_volume")
    out = episode(env, task, calls[-1:])
    assert level(out, "tool_use")["score"] == 0.0


def test_an_unparsable_answer_earns_nothing_under_any_aggregator(envs):
    """Class D: the oracle's work with a broken answer scored 0.25 under weighted."""
    env = envs["easy"]
    task, calls = first(env, "distance_angle")
    out = episode(env, task, [*calls[:-1], ToolCall("submit", {"answer": "twelve", "unit": "m"})])
    assert level(out, "format")["passed"] is False
    for name in ("grounding", "precision", "tool_use"):
        assert level(out, name)["skipped"], name
    assert worst(out, task) == 0.0


def test_grounding_cites_the_turns_it_used(envs):
    env = envs["easy"]
    task, calls = first(env, "distance_angle")
    out = episode(env, task, calls)
    cited = level(out, "grounding").get("evidence", [])
    depth_turns = [i for i, c in enumerate(calls) if c.name == "depth_at"]
    assert cited and set(depth_turns) <= set(cited)
    assert max(cited) < len(calls) - 1, "the submitting turn is never cited"


def test_a_correct_value_with_its_evidence_still_scores_one(envs):
    for difficulty, env in envs.items():
        for family in ("point_transform", "distance_angle", "pose_estimation", "spatial_fit"):
            task, calls = first(env, family)
            assert episode(env, task, calls).verdict["reward"] == 1.0, (difficulty, family)


@pytest.mark.parametrize("value", [10**400, -(10**400), 10**309], ids=["1e400", "-1e400", "1e309"])
def test_numbers_beyond_the_float_range_are_a_format_failure(value):
    for kind, unit in (("length", "m"), ("angle", "rad"), ("volume", "L")):
        with pytest.raises(AnswerError):
            parse_answer(kind, value, unit)
    with pytest.raises(AnswerError):
        parse_answer("point", [value, 0, 0], "m")


def test_a_finite_number_that_overflows_in_its_unit_is_a_format_failure():
    with pytest.raises(AnswerError):
        parse_answer("angle", 1e308, "rad")


@pytest.mark.parametrize("difficulty", ["easy", "medium", "hard"])
@pytest.mark.parametrize("family", ["distance_angle", "point_transform", "spatial_fit"])
def test_a_wrong_answer_built_on_full_evidence_earns_at_most_the_ceiling(envs, difficulty, family):
    """Another task's answer of the same type after this task's measurements scored 0.75 under
    gated and more under weighted: grounding and tool_use paid whatever the answer said."""
    env = envs[difficulty]
    task, calls = first(env, family)
    base = env.unwrapped
    other = next(
        t
        for t in base.tasks
        if t.answer_type == task.answer_type
        and t.frame == task.frame
        and t.task_id != task.task_id
        and t.answer != task.answer
    )
    base.reset(options={"task": other})
    theirs = oracle_actions(base)[-1]
    out = episode(env, task, [*calls[:-1], theirs])
    assert out.verdict["reward"] < 1.0
    assert any(f["code"] == "contradicts" for f in level(out, "grounding")["findings"])
    assert worst(out, task) <= 0.4


def test_a_near_miss_keeps_some_partial_credit_but_stays_under_the_ceiling(envs):
    env = envs["easy"]
    task, calls = first(env, "distance_angle")
    metres = calls[-1].arguments["answer"]
    near = ToolCall("submit", {"answer": metres * 1.05, "unit": "m"})
    out = episode(env, task, [*calls[:-1], near])
    assert 0.0 < level(out, "precision")["score"] < 1.0
    assert worst(out, task) <= 0.4
