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


# ---- issue 9, class C: process rewards are bounded and cannot be farmed ---------------------


def _distinct_searches(n):
    words = ["jacket", "boots", "lamp", "mug", "tent", "sofa", "drill", "scarf", "kettle", "desk"]
    return [
        f'{{"name": "search", "arguments": {{"query": "{words[i % len(words)]}", "page": {1 + i // len(words)}}}}}'
        for i in range(n)
    ]


def _episode_return(env, actions, seed=0):
    env.reset(seed=seed)
    total, info = 0.0, {}
    for a in actions:
        _, r, term, trunc, info = env.step(a)
        total += r
        if term or trunc:
            break
    return total, info


def test_padding_without_a_submission_never_ends_with_a_positive_return():
    # Before: every distinct answer paid +0.02 without bound, so 30 distinct searches and no
    # submission earned +0.6.
    env = ProcessReward(
        gym.make("hiergym/Shopping-v0", split="test", difficulty="easy", max_turns=30)
    )
    total, info = _episode_return(env, _distinct_searches(30))
    assert info["verdict"].first_failed == "format"
    assert total <= 1e-9


def test_the_process_return_of_an_episode_is_bounded_by_the_documented_budget():
    base = gym.make("hiergym/Shopping-v0", split="test", difficulty="easy", max_turns=40)
    env = ProcessReward(base)
    env.reset(seed=0)
    acts = oracle_actions(env)
    # Padding before the right answer: at most the budget above the outcome reward.
    total, info = _episode_return(env, [*_distinct_searches(30), *acts])
    outcome = info["verdict"].reward
    assert total - outcome <= env.budget + 1e-9
    assert env.budget == pytest.approx(0.1)  # 10% of the outcome range of a [0, 1] aggregator
    # Penalties are bounded too: 39 invalid calls cost at most the budget.
    total, info = _episode_return(env, ['{"name": "nope", "arguments": {}}'] * 39 + [acts[-1]])
    assert total - info["verdict"].reward >= -env.budget - 1e-9


def test_information_is_paid_only_for_turns_the_answer_cites():
    env = ProcessReward(gym.make("hiergym/Shopping-v0", split="test", difficulty="easy"))
    env.reset(seed=0)
    acts = oracle_actions(env)
    total, info = _episode_return(env, acts)
    paid = total - info["verdict"].reward
    cited = env.unwrapped.verdict.evidence
    settled = info["process_settlement"]
    assert settled <= 0.0
    # what remains is information from cited turns only, within the budget
    assert 0.0 <= paid <= env.budget + 1e-9
    if not cited:
        assert paid == pytest.approx(0.0)


def test_process_budget_scales_with_the_aggregators_range():
    env = ProcessReward(
        gym.make(
            "hiergym/Shopping-v0",
            split="test",
            difficulty="easy",
            aggregate="logsigmoid_conjunction",
        )
    )
    env.reset(seed=0)
    assert env.budget > 1.0  # logsigmoid_conjunction spans about 5 per level
