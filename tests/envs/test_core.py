"""ToolEnv behaviour, exercised through the Shopping env."""

from __future__ import annotations

import json

import gymnasium as gym
import pytest

from hiergym.envs.tools import ToolCall
from hiergym.testing import oracle_actions, play


def test_reset_is_a_pure_function_of_split_difficulty_and_seed(shopping):
    obs1, info1 = shopping.reset(seed=5)
    other = gym.make("hiergym/Shopping-v0", split="test", difficulty="medium")
    obs2, info2 = other.reset(seed=5)
    assert obs1 == obs2 and info1["task_id"] == info2["task_id"]
    assert info1["messages"][0]["role"] == "system" and info1["messages"][1]["content"] == obs1
    assert {t["function"]["name"] for t in info1["tools"]} == {
        "search",
        "view_product",
        "select_options",
        "add_to_cart",
        "view_cart",
        "submit",
    }


def test_task_can_be_chosen_by_id(shopping):
    _, info = shopping.reset(seed=1)
    _, again = shopping.reset(options={"task_id": info["task_id"]})
    assert again["task_id"] == info["task_id"]


@pytest.mark.parametrize(
    ("action", "fragment", "kind"),
    [
        ("find me a jacket", "not valid JSON", "parse_error"),
        (
            '{"name": "serch", "arguments": {"query": "x"}}',
            "did you mean 'search'?",
            "unknown_tool",
        ),
        (
            '{"name": "search", "arguments": {"query": 3}}',
            "query must be string, got integer 3",
            "invalid_arguments",
        ),
        (
            '{"name": "search", "arguments": {}}',
            "missing required argument 'query'",
            "invalid_arguments",
        ),
        (
            '{"name": "view_product", "arguments": {"product_id": "nope"}}',
            "no product with id 'nope'",
            "tool_error",
        ),
        (
            '{"name": "search", "arguments": {"query": "x", "page": 0}}',
            "page must be between 1 and 50",
            "tool_error",
        ),
        ("x" * 40_000, "the cap is", "oversized"),
        # Python actions can hold what JSON cannot: non-string keys once crashed step().
        (
            {"name": "search", "arguments": {"query": "x", 1: 2}},
            "unexpected argument '1'",
            "invalid_arguments",
        ),
        (
            ToolCall("select_options", {"product_id": "B0", "options": {"size": "M", 1: "x"}}),
            "no product with id 'B0'",
            "tool_error",
        ),
        (
            ToolCall("search", {"query": object()}),
            "not JSON",
            "parse_error",
        ),
    ],
)
def test_bad_actions_are_observations_and_recorded(shopping, action, fragment, kind):
    shopping.reset(seed=0)
    obs, reward, terminated, truncated, info = shopping.step(action)
    assert obs.startswith("error:") and fragment in obs
    assert (reward, terminated, truncated) == (0.0, False, False)
    turn = shopping.unwrapped.trajectory.turns[-1]
    assert turn.results[0].error == kind
    assert shopping.unwrapped.trajectory.n_invalid == 1
    assert shopping.observation_space.contains(obs)


def test_invalid_calls_count_against_the_agent(shopping):
    shopping.reset(seed=2)
    actions = oracle_actions(shopping)
    clean = play(shopping, actions, seed=2)
    noisy = play(shopping, ['{"name": "serch", "arguments": {}}'] * 3 + actions, seed=2)
    assert clean.verdict["reward"] == 1.0
    process = next(lv for lv in noisy.verdict["levels"] if lv["name"] == "process")
    assert process["metrics"]["invalid"] == 3 and process["score"] < 1.0
    assert noisy.verdict["reward"] < 1.0


def test_truncation_is_verified(shopping):
    out = play(
        shopping, ['{"name": "view_cart", "arguments": {}}'] * 3, seed=0, options={"max_turns": 3}
    )
    assert out.truncated and not out.terminated
    assert out.verdict["first_failed"] == "format"
    assert out.verdict["levels"][0]["findings"][0]["code"] == "no_submission"


def test_several_calls_per_action_and_openai_messages(shopping):
    shopping.reset(seed=0)
    action = (
        '<tool_call>{"name": "search", "arguments": {"query": "jacket"}}</tool_call>'
        '<tool_call>{"name": "view_cart", "arguments": {}}</tool_call>'
    )
    obs, *_, info = shopping.step(action)
    assert obs.startswith("[search#0]") and "[view_cart#1]" in obs
    messages = shopping.unwrapped.messages
    roles = [m["role"] for m in messages]
    assert roles == ["system", "user", "assistant", "tool", "tool"]
    assert info["new_messages"] == messages[2:]
    assistant = messages[2]
    assert [c["function"]["name"] for c in assistant["tool_calls"]] == ["search", "view_cart"]
    assert json.loads(assistant["tool_calls"][0]["function"]["arguments"]) == {"query": "jacket"}
    assert messages[3]["tool_call_id"] == assistant["tool_calls"][0]["id"]


def test_fork_is_independent(shopping):
    shopping.reset(seed=4)
    actions = oracle_actions(shopping)
    for a in actions[:2]:
        shopping.step(a)
    base = shopping.unwrapped
    fork = base.fork()
    assert fork.trajectory.turns == base.trajectory.turns
    for a in actions[2:]:
        fork.step(a)
    assert fork.verdict is not None and fork.verdict.reward == 1.0
    assert len(base.trajectory.turns) == 2 and base.verdict is None
    assert "cart" in fork.state.memory and "cart" not in base.state.memory
    # the original goes on undisturbed and reaches the same verdict
    for a in actions[2:]:
        shopping.step(a)
    assert base.verdict.to_dict() == fork.verdict.to_dict()


def test_step_after_the_end_says_so(shopping):
    shopping.reset(seed=0)
    for a in oracle_actions(shopping):
        shopping.step(a)
    obs, reward, terminated, _, _ = shopping.step(ToolCall("view_cart", {}))
    assert "episode is over" in obs and reward == 0.0 and terminated


def test_non_ascii_is_escaped_into_the_observation_space(shopping):
    shopping.reset(seed=0)
    action = json.dumps({"name": "view_product", "arguments": {"product_id": "caf\u00e9\u2603"}})
    obs, *_ = shopping.step(action)
    assert shopping.observation_space.contains(obs)
    assert "\\xe9" in obs or "\\u00e9" in obs


def test_unknown_split_difficulty_and_aggregator_are_clear():
    from hiergym.errors import TaskError

    with pytest.raises(TaskError, match="did you mean 'test'"):
        gym.make("hiergym/Shopping-v0", split="tset")
    with pytest.raises(TaskError, match="expected one of"):
        gym.make("hiergym/Shopping-v0", difficulty="insane")
    with pytest.raises(ValueError, match="unknown aggregator"):
        gym.make("hiergym/Shopping-v0", aggregate="nope")
