"""Reward wrappers: the outcome reward from the verdict, and per-turn process rewards.

Both subclass ``gym.Wrapper`` (not ``RewardWrapper``) because they read ``info``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import gymnasium as gym

from .aggregate import resolve
from .levels import Verdict

TurnCheck = Callable[[Any, Any], float]
"""``check(turn, trajectory) -> reward`` for one turn; the trajectory already holds the turn."""


class HierarchicalReward(gym.Wrapper):
    """Outcome reward: the episode's verdict folded by ``aggregate`` (0.0 on non-final steps).

    ``info["verdict"]`` is replaced by a verdict whose ``reward`` is this wrapper's reward, so
    what a logger reads is what the agent was paid.
    """

    def __init__(
        self, env: gym.Env, aggregate: str | Callable[..., float] = "gated", **params: Any
    ):
        super().__init__(env)
        self.aggregate_name, self.aggregate = resolve(aggregate, **params)

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        verdict = info.get("verdict")
        if isinstance(verdict, Verdict):
            task = getattr(self.env.unwrapped, "task", None)
            reward = float(self.aggregate(list(verdict.levels), task))
            info["verdict"] = Verdict(verdict.levels, reward, self.aggregate_name)
        else:
            reward = 0.0
        return obs, reward, terminated, truncated, info


def invalid_call(turn: Any, trajectory: Any) -> float:
    """-1 per call that failed (unparsable, unknown tool, bad arguments, tool error)."""
    return -float(len(turn.errors))


def repeated_call(turn: Any, trajectory: Any) -> float:
    """-1 per call identical (tool and canonical arguments) to an earlier call of the episode,
    an earlier one in the same action included."""
    seen = {(c.name, c.canonical_arguments()) for t in trajectory.turns[:-1] for c in t.calls}
    repeats = 0
    for c in turn.calls:
        key = (c.name, c.canonical_arguments())
        repeats += key in seen
        seen.add(key)
    return -float(repeats)


def new_information(turn: Any, trajectory: Any) -> float:
    """+1 per successful call whose answer the agent had not seen before in this episode (an answer
    repeated within one action counts once)."""
    seen = {r.content for t in trajectory.turns[:-1] for r in t.results if r.ok}
    new = 0
    for r in turn.results:
        if r.ok and r.content not in seen:
            new += 1
            seen.add(r.content)
    return float(new)


DEFAULT_CHECKS: dict[str, tuple[TurnCheck, float]] = {
    "invalid_call": (invalid_call, 0.1),
    "repeated_call": (repeated_call, 0.05),
    "new_information": (new_information, 0.02),
}


class ProcessReward(gym.Wrapper):
    """Adds ``sum_k weight_k * check_k(turn, trajectory)`` to every step's reward.

    Checks default to :data:`DEFAULT_CHECKS` plus the domain's ``turn_checks()`` (each a
    ``(name, check, weight)``). ``info["process"]`` holds the per-check values of the step.
    """

    def __init__(
        self,
        env: gym.Env,
        checks: dict[str, tuple[TurnCheck, float]] | None = None,
        domain_checks: bool = True,
    ):
        super().__init__(env)
        self.checks = dict(DEFAULT_CHECKS if checks is None else checks)
        if domain_checks:
            extra: Sequence[tuple[str, TurnCheck, float]] = env.unwrapped.turn_checks()
            for name, fn, weight in extra:
                self.checks[name] = (fn, weight)

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        before = self._turns()
        obs, reward, terminated, truncated, info = self.env.step(action)
        trajectory = self.env.unwrapped.trajectory
        values: dict[str, float] = {}
        # Only a step that added a turn is scored: one after the episode ended adds none, and
        # scoring the last turn again would pay (or charge) it twice.
        if trajectory is not None and len(trajectory.turns) > before:
            turn = trajectory.turns[-1]
            values = {name: fn(turn, trajectory) for name, (fn, _) in self.checks.items()}
            reward = float(reward) + sum(self.checks[n][1] * v for n, v in values.items())
        info["process"] = values
        return obs, reward, terminated, truncated, info

    def _turns(self) -> int:
        trajectory = self.env.unwrapped.trajectory
        return len(trajectory.turns) if trajectory is not None else 0
