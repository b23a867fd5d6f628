from __future__ import annotations

import gymnasium as gym

from hiergym.envs import FailureReplay
from hiergym.envs.tools import ToolCall
from hiergym.testing import oracle_actions


def fail_episode(env):
    return env.step(ToolCall("submit", {"product_id": "B0NOSUCH00", "options": {}, "message": "x"}))


def test_failed_tasks_come_back_until_solved():
    env = FailureReplay(gym.make("hiergym/Shopping-v0", split="train"), replay_prob=1.0, seed=0)
    _, info = env.reset(seed=0)
    failed_id = info["task_id"]
    assert info["replayed"] is False
    fail_episode(env)
    assert list(env.buffer) == [failed_id]
    _, info = env.reset(seed=99)  # another seed, but the failed task is replayed
    assert info["replayed"] and info["task_id"] == failed_id
    for call in oracle_actions(env):
        *_, info = env.step(call)
    assert info["verdict"].passed and not env.buffer
    _, info = env.reset(seed=99)
    assert not info["replayed"]


def test_replay_probability_zero_and_capacity():
    env = FailureReplay(gym.make("hiergym/Shopping-v0", split="train"), replay_prob=0.0, capacity=2)
    ids = []
    for seed in range(3):
        _, info = env.reset(seed=seed)
        ids.append(info["task_id"])
        fail_episode(env)
        assert not info["replayed"]
    assert list(env.buffer) == ids[1:]  # oldest evicted
