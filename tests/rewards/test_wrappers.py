from __future__ import annotations

import gymnasium as gym
import pytest

from hiergym.rewards import HierarchicalReward, ProcessReward
from hiergym.testing import oracle_actions, play


def wrong_option_actions(env):
    actions = oracle_actions(env)
    return actions


def test_aggregator_is_a_make_kwarg_and_the_verdict_reports_it():
    env = gym.make("hiergym/Shopping-v0", split="test", difficulty="easy", aggregate="product")
    env.reset(seed=0)
    acts = oracle_actions(env)
    # three wasted invalid calls lower only the process level
    out = play(env, ['{"name": "nope", "arguments": {}}'] * 3 + acts, seed=0)
    levels = {lv["name"]: lv["score"] for lv in out.verdict["levels"]}
    assert out.rewards[-1] == pytest.approx(
        levels["format"] * levels["product"] * levels["process"] * levels["response"]
    )
    assert env.unwrapped.verdict.aggregate == "product"


def test_hierarchical_reward_can_rewrap_with_another_aggregator():
    env = gym.make("hiergym/Shopping-v0", split="test", difficulty="easy")
    wrapped = HierarchicalReward(env, "tiered")
    wrapped.reset(seed=1)
    acts = oracle_actions(wrapped)
    sub = acts[-1]
    bad = type(sub)("submit", {**sub.arguments, "product_id": "B0NOSUCH00"})
    out = play(wrapped, [*acts[:-1], bad], seed=1)
    assert out.verdict["first_failed"] == "format"
    assert out.rewards[-1] == 0.0  # tiered: no level passed, format scored 0


def test_process_reward_pays_per_turn():
    env = ProcessReward(gym.make("hiergym/Shopping-v0", split="test", difficulty="easy"))
    env.reset(seed=0)
    search = '{"name": "search", "arguments": {"query": "jacket"}}'
    _, r1, *_, i1 = env.step(search)
    _, r2, *_, i2 = env.step(search)
    _, r3, *_, i3 = env.step('{"name": "serch", "arguments": {}}')
    assert i1["process"] == {"invalid_call": 0.0, "repeated_call": 0.0, "new_information": 1.0}
    assert i2["process"]["repeated_call"] == -1.0 and i2["process"]["new_information"] == 0.0
    assert i3["process"]["invalid_call"] == -1.0
    assert r1 > 0 > r2 and r3 < 0


def test_process_reward_through_make():
    env = gym.make("hiergym/Shopping-v0", process_reward=True)
    env.reset(seed=0)
    *_, info = env.step('{"name": "view_cart", "arguments": {}}')
    assert "process" in info


def test_process_reward_counts_duplicates_within_one_action():
    # Eight copies of one call in one action once paid new_information eight times and were never
    # "repeated": a farmable bonus.
    env = ProcessReward(gym.make("hiergym/Shopping-v0", split="test", difficulty="easy"))
    env.reset(seed=0)
    call = '<tool_call>{"name": "search", "arguments": {"query": "jacket"}}</tool_call>'
    _, reward, *_, info = env.step(call * 8)
    assert info["process"] == {"invalid_call": 0.0, "repeated_call": -7.0, "new_information": 1.0}
    assert reward < 0


def test_process_reward_pays_each_turn_once():
    # Steps after the episode ended add no turn; they must not re-score the final turn.
    env = ProcessReward(gym.make("hiergym/Shopping-v0", split="test", difficulty="easy"))
    env.reset(seed=0)
    acts = oracle_actions(env)
    for a in acts:
        *_, info = env.step(a)
    assert info["process"]
    for _ in range(3):
        _, reward, terminated, _, info = env.step('{"name": "nope", "arguments": {}}')
        assert terminated and reward == 0.0 and info["process"] == {}
