"""A Lagrangian constrained reward (Constrained RLHF, Moskovitz et al. 2023) over verdict levels.

The policy maximises an *objective* (the aggregate of the verdict, or one level's score) subject to
per-level constraints ``E[s_k] >= t_k`` (a level's expected score at least its threshold). The
constrained problem is solved by its Lagrangian: each episode pays

    r = objective + sum_k lambda_k * (s_k - t_k)

and after each episode every multiplier takes a projected gradient step on the dual,

    lambda_k <- clip(lambda_k + lr * (t_k - s_k), 0, max_multiplier),

so a constraint that is violated on average gains weight and one that holds loses it (down to 0,
where it stops shaping the reward). Process rewards paid by a wrapper inside this one pass through: only the outcome part of the
final step is replaced. The state (the multipliers and the number of updates) lives in
the wrapper: :meth:`LagrangianReward.state_dict` / :meth:`load_state_dict` save and restore it with a
training checkpoint, :meth:`reset_multipliers` starts over. The multipliers are *not* reset by
``env.reset()``: they adapt across episodes, which is the point.

``info["lagrangian"]`` carries, on the final step, the objective, each constraint's score and
slack, the multipliers used for this episode's reward and the ones after the update.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import gymnasium as gym

from .levels import Verdict


class LagrangianReward(gym.Wrapper):
    """Reward = objective + sum_k lambda_k (s_k - t_k), multipliers updated after each episode.

    ``thresholds`` maps level names to ``t_k`` in [0, 1]; ``objective`` is ``"aggregate"`` (the
    verdict's reward) or a level name; ``lr`` the dual step size; ``initial`` the starting
    multiplier(s); ``max_multiplier`` bounds them (so the reward stays bounded:
    ``|r - objective| <= max_multiplier * len(thresholds)``).
    """

    def __init__(
        self,
        env: gym.Env,
        thresholds: Mapping[str, float],
        *,
        objective: str = "aggregate",
        lr: float = 0.1,
        initial: float | Mapping[str, float] = 0.0,
        max_multiplier: float = 10.0,
    ):
        super().__init__(env)
        if not thresholds:
            raise ValueError("LagrangianReward needs at least one level threshold")
        levels = [lv.name for lv in env.unwrapped.verifier.levels]
        unknown = [k for k in [*thresholds, objective] if k != "aggregate" and k not in levels]
        if unknown:
            raise ValueError(f"unknown levels {unknown}; the env's levels are {levels}")
        for name, t in thresholds.items():
            if not 0.0 <= float(t) <= 1.0:
                raise ValueError(f"threshold of {name} must be in [0, 1], got {t}")
        if lr <= 0 or max_multiplier <= 0:
            raise ValueError("lr and max_multiplier must be positive")
        self.thresholds = {k: float(v) for k, v in thresholds.items()}
        self.objective = objective
        self.lr = float(lr)
        self.max_multiplier = float(max_multiplier)
        self._initial = (
            {k: float(initial.get(k, 0.0)) for k in self.thresholds}
            if isinstance(initial, Mapping)
            else dict.fromkeys(self.thresholds, float(initial))
        )
        self.reset_multipliers()

    def reset_multipliers(self) -> None:
        """Start the multipliers over from their initial values."""
        self.multipliers = {k: self._clip(v) for k, v in self._initial.items()}
        self.updates = 0

    def _clip(self, value: float) -> float:
        return min(max(value, 0.0), self.max_multiplier)

    def state_dict(self) -> dict[str, Any]:
        return {"multipliers": dict(self.multipliers), "updates": self.updates}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        missing = set(self.thresholds) - set(state["multipliers"])
        if missing:
            raise ValueError(f"the state has no multiplier for {sorted(missing)}")
        self.multipliers = {k: self._clip(float(state["multipliers"][k])) for k in self.thresholds}
        self.updates = int(state.get("updates", 0))

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        verdict = info.get("verdict")
        if not isinstance(verdict, Verdict):
            return obs, reward, terminated, truncated, info  # not the final step: as it is
        scores = {r.name: float(r.score) for r in verdict.levels}
        objective = (
            float(verdict.reward) if self.objective == "aggregate" else scores[self.objective]
        )
        used = dict(self.multipliers)
        slack = {k: scores[k] - t for k, t in self.thresholds.items()}
        # The outcome part of the step's reward is replaced; what wrappers inside added (process
        # rewards) is kept.
        shaped = float(reward) - float(verdict.reward) + objective
        shaped += sum(used[k] * slack[k] for k in self.thresholds)
        self.multipliers = {k: self._clip(used[k] - self.lr * slack[k]) for k in self.thresholds}
        self.updates += 1
        info["lagrangian"] = {
            "objective": objective,
            "scores": {k: scores[k] for k in self.thresholds},
            "slack": slack,
            "multipliers": used,
            "multipliers_after": dict(self.multipliers),
            "reward": shaped,
        }
        return obs, shaped, terminated, truncated, info
