"""The env API as a new user meets it: vector envs, per-step messages, TimeLimit, forks with their
wrappers, misspelled kwargs (issue 11)."""

from __future__ import annotations

import json

import gymnasium as gym
import pytest

from hiergym.envs.tools import ToolCall
from hiergym.testing import oracle_actions

ENV_ID = "hiergym/Shopping-v0"
SEARCH = '{"name": "search", "arguments": {"query": "jacket"}}'


def _single_run(seed, actions):
    env = gym.make(ENV_ID, split="test", difficulty="easy")
    obs, _ = env.reset(seed=seed)
    seen = [obs]
    for a in actions:
        obs, *_ = env.step(a)
        seen.append(obs)
    env.close()
    return seen


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_make_vec_observations_equal_the_single_env_ones(mode):
    envs = gym.make_vec(
        ENV_ID, num_envs=2, vectorization_mode=mode, split="test", difficulty="easy"
    )
    try:
        actions = [SEARCH, '{"name": "view_cart", "arguments": {}}']
        obs, _ = envs.reset(seed=[3, 4])
        got = [[o] for o in obs]
        for a in actions:
            obs, *_ = envs.step((a, a))
            for i, o in enumerate(obs):
                got[i].append(o)
    finally:
        envs.close()
    assert got[0] == _single_run(3, actions)
    assert got[1] == _single_run(4, actions)
    assert not any(set(o) == {"0"} for run in got for o in run)


def test_info_carries_new_messages_per_step_and_the_whole_chat_at_the_end(shopping):
    obs, info = shopping.reset(seed=0)
    assert [m["role"] for m in info["messages"]] == ["system", "user"]
    _, _, _, _, info = shopping.step(SEARCH)
    assert "messages" not in info  # the whole chat is not re-sent on every step
    assert [m["role"] for m in info["new_messages"]] == ["assistant", "tool"]
    acts = oracle_actions(shopping)
    for a in acts:
        *_, term, trunc, info = shopping.step(a)
    assert term and info["messages"] == shopping.unwrapped.messages
    assert len(info["messages"]) == 2 + 2 * (1 + len(acts))


def test_max_episode_steps_becomes_a_verified_turn_limit():
    env = gym.make(ENV_ID, max_episode_steps=2)
    assert env.unwrapped.max_turns == 2
    env.reset(seed=0)
    env.step(SEARCH)
    _, reward, term, trunc, info = env.step(SEARCH)
    assert trunc and not term
    assert info["verdict"].first_failed == "format"  # verified, not a silent TimeLimit cut


def test_a_fork_of_the_wrapped_env_keeps_its_wrappers():
    from hiergym.envs.core import fork_env

    env = gym.make(ENV_ID, process_reward=True)
    env.reset(seed=0)
    env.step(SEARCH)
    forked = fork_env(env)
    _, reward, *_, info = forked.step('{"name": "serch", "arguments": {}}')
    assert info["process"]["invalid_call"] == -1.0 and reward < 0
    assert len(env.unwrapped.trajectory.turns) == 1  # the original is untouched


def test_a_misspelled_kwarg_says_what_was_meant():
    with pytest.raises(TypeError, match="did you mean 'split'"):
        gym.make(ENV_ID, splt="test")


def test_max_turns_zero_is_refused_not_replaced():
    with pytest.raises(ValueError, match="max_turns must be at least 1"):
        gym.make(ENV_ID, max_turns=0)


def test_a_python_call_action_still_records_messages(shopping):
    shopping.reset(seed=0)
    *_, info = shopping.step(ToolCall("search", {"query": "lamp"}))
    call = info["new_messages"][0]["tool_calls"][0]
    assert json.loads(call["function"]["arguments"]) == {"query": "lamp"}
