"""One hiergym env serving one episode at a time to a trainer (shared by the adapters).

Trainers drive an episode as tool calls and read a reward at the end; they may also stop an
episode early (a completion budget, a turn cap, a model that stops calling tools). An
:class:`EpisodeSession` turns both into the env's own terms: a tool call is a step, and an
episode the trainer cut short is verified as truncated (``end="max_turns"``), exactly as if the
env had run out of turns, so it gets a verdict (and the reward the verdict says) rather than a
silent 0.0.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym

import hiergym  # noqa: F401 - registers the envs
from hiergym.envs.tools import ToolCall
from hiergym.rewards.levels import Verdict


class EpisodeSession:
    """A hiergym env plus the bookkeeping a trainer needs: the verdict, turns, process rewards.

    Args:
        env_id: any registered hiergym id.
        **make_kwargs: passed to ``gym.make`` (split, difficulty, aggregate, max_turns, ...).
    """

    def __init__(self, env_id: str, **make_kwargs: Any):
        self.env_id = env_id
        self.make_kwargs = dict(make_kwargs)
        self.env = gym.make(env_id, **make_kwargs)
        self.base = self.env.unwrapped
        self.level_names: list[str] = list(self.base.verifier.level_names)
        self.tool_schemas: list[dict[str, Any]] = self.base.toolbox.schemas()
        self.verdict: Verdict | None = None
        self.rewards: list[float] = []
        self.info: dict[str, Any] = {}
        self._episodes = 0

    @property
    def done(self) -> bool:
        trajectory = self.base.trajectory
        return trajectory is not None and trajectory.end is not None

    def reset(self, task_id: str | None = None, seed: int | None = None) -> str:
        """Start an episode on ``task_id`` (or on the task ``seed`` picks; without either, on the
        next seed of this session) and return the task prompt."""
        if task_id is None and seed is None:
            seed = self._episodes
        self._episodes += 1
        options = {"task_id": str(task_id)} if task_id is not None else None
        obs, info = self.env.reset(seed=None if seed is None else int(seed), options=options)
        self.verdict = None
        self.rewards = []
        self.info = info
        return obs

    @property
    def system_prompt(self) -> str:
        return self.base.system_prompt()

    def step(self, action: Any) -> str:
        """One agent action (raw text, an OpenAI assistant message or a ToolCall); returns the
        observation. Bad input is an observation, as in the env; after the end too."""
        if self.base.trajectory is None:
            self.reset()
        was_done = self.done
        obs, reward, terminated, truncated, info = self.env.step(action)
        if not was_done:
            self.rewards.append(float(reward))
            self.info = info
            if (terminated or truncated) and isinstance(info.get("verdict"), Verdict):
                self.verdict = info["verdict"]
        return obs

    def call(self, name: str, arguments: dict[str, Any]) -> str:
        """Run one tool call (the arguments as the model sent them; the env checks them)."""
        return self.step(ToolCall(name, dict(arguments)))

    def finish(self) -> Verdict:
        """The episode's verdict; an episode the trainer stopped early is verified as truncated."""
        if self.verdict is not None:
            return self.verdict
        trajectory = self.base.trajectory
        if trajectory is None:
            self.reset()
            trajectory = self.base.trajectory
        if trajectory.end is None:
            trajectory.end = "max_turns"
        verdict = self.base.verifier.verify(trajectory, self.base.task)
        self.base.verdict = verdict
        self.verdict = verdict
        return verdict

    def level_score(self, name: str) -> float:
        return float(self.finish().level(name).score)

    def close(self) -> None:
        self.env.close()
