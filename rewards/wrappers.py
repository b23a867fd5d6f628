"""Reward wrappers: the outcome reward from the verdict, and per-turn process rewards.

Both subclass ``gym.Wrapper`` (not ``RewardWrapper``) because they read ``info``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import gymnasium as gym

from .aggregate import resolve, reward_range
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


DEFAULT_BUDGET_FRACTION = 0.1
"""ProcessReward's default bound on the process part of a return, as a fraction of the outcome
reward's range."""


class ProcessReward(gym.Wrapper):
    """Per-turn process rewards on top of the outcome reward: bounded, and unfarmable by design.

    Each step that adds a turn pays ``range * sum_k weight_k * check_k(turn, trajectory)`` with the
    checks of :data:`DEFAULT_CHECKS` plus the domain's ``turn_checks()`` (each ``(name, check,
    weight)``), where ``range`` is the outcome reward's range under the env's aggregator (1 for
    gated, tiered, product, weighted, difficulty_scaled and constrained; about 5 per level for
    logsigmoid_conjunction), so weights are fractions of that range.

    **Bounds.** With ``budget = budget_fraction * range`` (``budget_fraction`` defaults to 0.1):

    * positive process rewards (information) paid in an episode sum to at most ``budget``;
    * negative ones (invalid and repeated calls, domain penalties) to at least ``-budget``;
    * at the episode's end the positive part is **settled**: it is kept only for turns whose
      results the verdict cites as evidence of the answer (``Verdict.evidence``, filled by the
      domain's grounding levels), and only when the episode ended with a valid submission (a
      submit call whose first level, format, passed). The final step carries the difference
      (``info["process_settlement"]``, never positive).

    So the process part of an episode's return lies in ``[-budget, +budget]``; padding, repeated
    calls and results the answer never used earn nothing; an episode without a valid submission
    ends with a process return of at most 0 (and an outcome reward of 0).

    ``info["process"]`` holds the raw per-check values of the step, ``info["process_reward"]``
    what this wrapper added to the step's reward (settlement included).
    """

    def __init__(
        self,
        env: gym.Env,
        checks: dict[str, tuple[TurnCheck, float]] | None = None,
        domain_checks: bool = True,
        budget_fraction: float = DEFAULT_BUDGET_FRACTION,
    ):
        super().__init__(env)
        if not 0.0 <= budget_fraction <= 1.0:
            raise ValueError(f"budget_fraction must be in [0, 1], got {budget_fraction}")
        self.budget_fraction = float(budget_fraction)
        self.checks = dict(DEFAULT_CHECKS if checks is None else checks)
        if domain_checks:
            extra: Sequence[tuple[str, TurnCheck, float]] = env.unwrapped.turn_checks()
            for name, fn, weight in extra:
                self.checks[name] = (fn, weight)
        self.range = 1.0
        self._reset_episode()

    @property
    def budget(self) -> float:
        """The most (and, negated, the least) the process part of one episode's return can be."""
        return self.budget_fraction * self.range

    def _reset_episode(self) -> None:
        self._positive: dict[int, float] = {}  # turn index -> information paid for it
        self._negative = 0.0

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        obs, info = self.env.reset(**kwargs)
        self.range = outcome_range(self.env, getattr(self.env.unwrapped, "task", None))
        self._reset_episode()
        return obs, info

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        before = self._turns()
        obs, reward, terminated, truncated, info = self.env.step(action)
        trajectory = self.env.unwrapped.trajectory
        values: dict[str, float] = {}
        paid = 0.0
        # Only a step that added a turn is scored: one after the episode ended adds none, and
        # scoring the last turn again would pay (or charge) it twice.
        if trajectory is not None and len(trajectory.turns) > before:
            turn = trajectory.turns[-1]
            values = {name: fn(turn, trajectory) for name, (fn, _) in self.checks.items()}
            terms = [self.range * self.checks[n][1] * v for n, v in values.items()]
            gain = sum(t for t in terms if t > 0)
            loss = sum(t for t in terms if t < 0)
            gain = min(gain, max(0.0, self.budget - sum(self._positive.values())))
            loss = max(loss, min(0.0, -self.budget - self._negative))
            if gain:
                self._positive[turn.index] = gain
            self._negative += loss
            paid = gain + loss
            if terminated or truncated:
                settlement = self._settle(trajectory)
                info["process_settlement"] = settlement
                paid += settlement
        reward = float(reward) + paid
        info["process"] = values
        info["process_reward"] = paid
        return obs, reward, terminated, truncated, info

    def _settle(self, trajectory: Any) -> float:
        verdict = getattr(self.env.unwrapped, "verdict", None)
        valid = (
            trajectory.submission is not None
            and verdict is not None
            and bool(verdict.levels)
            and verdict.levels[0].passed
        )
        cited = verdict.evidence if valid else frozenset()
        keep = sum(v for t, v in self._positive.items() if t in cited)
        return keep - sum(self._positive.values())

    def _turns(self) -> int:
        trajectory = self.env.unwrapped.trajectory
        return len(trajectory.turns) if trajectory is not None else 0


def outcome_range(env: gym.Env, task: Any = None) -> float:
    """The outcome reward's range for ``env``: its aggregator on every level passed at 1 minus on
    every level failed at 0 (the innermost :class:`HierarchicalReward` decides, else the verifier)."""
    from .levels import LevelResult

    aggregate = None
    layer = env
    while isinstance(layer, gym.Wrapper):
        if isinstance(layer, HierarchicalReward):
            aggregate = layer.aggregate
        layer = layer.env
    verifier = getattr(env.unwrapped, "verifier", None)
    if verifier is None:
        return 1.0
    aggregate = aggregate or verifier.aggregate

    levels = [
        LevelResult(
            lv.name,
            1.0,
            True,
            weight=lv.weight,
            difficulty=lv.effective_difficulty,
            threshold=lv.threshold,
        )
        for lv in verifier.levels
    ]
    low, high = reward_range(aggregate, levels, task)
    span = high - low
    return span if span > 0 else 1.0
