"""FailureReplay: re-serve tasks the agent failed (DeepTravel's replay of hard cases) in training."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import gymnasium as gym
import numpy as np


class FailureReplay(gym.Wrapper):
    """On ``reset()``, with probability ``replay_prob`` serve a task from the buffer of failed ones.

    An episode fails when its verdict did not pass every level (or its reward is below
    ``success_threshold`` if given). A failed task enters the buffer (oldest evicted past
    ``capacity``); a replayed task that is then solved leaves it. ``info["replayed"]`` says whether
    the task came from the buffer. Explicit ``options`` (a task or task id) bypass the replay.
    Sampling uses its own seeded generator, so a run is reproducible.
    """

    def __init__(
        self,
        env: gym.Env,
        replay_prob: float = 0.5,
        capacity: int = 1000,
        success_threshold: float | None = None,
        seed: int = 0,
    ):
        super().__init__(env)
        if not 0.0 <= replay_prob <= 1.0:
            raise ValueError(f"replay_prob must be in [0, 1], got {replay_prob}")
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, got {capacity}")
        self.replay_prob = replay_prob
        self.capacity = capacity
        self.success_threshold = success_threshold
        self.rng = np.random.default_rng(seed)
        self.buffer: OrderedDict[str, Any] = OrderedDict()
        self.replayed = False

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        options = dict(options or {})
        self.replayed = False
        if (
            "task" not in options
            and "task_id" not in options
            and self.buffer
            and self.rng.random() < self.replay_prob
        ):
            keys = list(self.buffer)
            options["task"] = self.buffer[keys[int(self.rng.integers(len(keys)))]]
            self.replayed = True
        obs, info = self.env.reset(seed=seed, options=options)
        info["replayed"] = self.replayed
        return obs, info

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        verdict = info.get("verdict")
        if verdict is not None:
            task = self.env.unwrapped.task
            failed = (
                reward < self.success_threshold
                if self.success_threshold is not None
                else not verdict.passed
            )
            if failed:
                self.buffer[task.task_id] = task
                self.buffer.move_to_end(task.task_id)
                while len(self.buffer) > self.capacity:
                    self.buffer.popitem(last=False)
            else:
                self.buffer.pop(task.task_id, None)
        info["replayed"] = self.replayed
        return obs, reward, terminated, truncated, info
