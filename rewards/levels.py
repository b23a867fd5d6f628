"""Levels, verdicts and the hierarchical verifier: domain-free machinery every domain reuses.

A :class:`Level` checks one concern of a trajectory and returns a :class:`LevelResult`
(score in [0, 1], passed, findings). A :class:`HierarchicalVerifier` runs its levels in order and
folds the results into one reward with an aggregator (see :mod:`hiergym.rewards.aggregate`).
A level that lacks its inputs (nothing parsed at the format level, say) raises :class:`SkipLevel`
and is recorded as skipped; any other exception is a bug and surfaces as :class:`VerifierError`.

Reward integrity lives here, once for every domain and aggregator: a level that can only mean
something for a valid answer (efficiency, PPA, quality, a response rubric) names the levels it
stands on in ``requires``. When any of them failed, the verifier does not run it: it is recorded
as not applicable (``skipped``, score 0, not passed, finding ``not_applicable``), so no aggregator,
gated or not, pays for it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from hiergym.errors import VerifierError


@dataclass(frozen=True)
class Finding:
    """One observation a level made: a stable ``code`` for tools, a ``message`` for people."""

    code: str
    message: str
    turn: int | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.turn is not None:
            d["turn"] = self.turn
        return d


@dataclass(frozen=True)
class LevelResult:
    """The outcome of one level; weight, difficulty and threshold ride along for aggregators."""

    name: str
    score: float
    passed: bool
    findings: tuple[Finding, ...] = ()
    skipped: bool = False
    metrics: Mapping[str, Any] = field(default_factory=dict)
    weight: float = 1.0
    difficulty: float = 1.0
    threshold: float = 1.0
    evidence: tuple[int, ...] = ()
    """Turns whose results this level cited (see :mod:`hiergym.envs.evidence`): what the answer
    was built on. Process rewards pay information only for cited turns."""

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "name": self.name,
            "score": self.score,
            "passed": self.passed,
            "findings": [f.to_dict() for f in self.findings],
        }
        if self.skipped:
            d["skipped"] = True
        if self.metrics:
            d["metrics"] = dict(self.metrics)
        if self.evidence:
            d["evidence"] = list(self.evidence)
        return d


@dataclass(frozen=True)
class Verdict:
    """Every level's result and the aggregated reward of one episode."""

    levels: tuple[LevelResult, ...]
    reward: float
    aggregate: str = "gated"

    @property
    def first_failed(self) -> str | None:
        return next((r.name for r in self.levels if not r.passed), None)

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.levels)

    @property
    def evidence(self) -> frozenset[int]:
        """Turns any level cited as the basis of the answer."""
        return frozenset(t for r in self.levels for t in r.evidence)

    def level(self, name: str) -> LevelResult:
        for r in self.levels:
            if r.name == name:
                return r
        raise KeyError(f"no level {name!r}; levels are {[r.name for r in self.levels]}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "reward": self.reward,
            "levels": [r.to_dict() for r in self.levels],
            "first_failed": self.first_failed,
        }


class SkipLevel(Exception):  # noqa: N818 - a control-flow signal, not an error
    """Raised by a level whose inputs are missing because an earlier level failed."""


@dataclass
class VerifyContext:
    """What levels see: the trajectory, the task, and a scratch dict earlier levels fill for later ones."""

    trajectory: Any
    task: Any
    scratch: dict[str, Any] = field(default_factory=dict)


class Level:
    """One concern of a trajectory. Subclasses set ``name`` and implement :meth:`check`."""

    name: str = "level"
    weight: float = 1.0
    difficulty: float | None = None  # None: its 1-based depth in the verifier
    threshold: float = 1.0
    requires: tuple[str, ...] = ()
    """Levels that must have passed for this one to mean anything; otherwise it is not applicable
    (score 0), whatever the aggregator. Every name must be an earlier level of the verifier."""
    _depth: int = 1  # set by the verifier that holds the level

    @property
    def effective_difficulty(self) -> float:
        return float(self._depth if self.difficulty is None else self.difficulty)

    def check(self, ctx: VerifyContext) -> LevelResult:
        raise NotImplementedError

    def result(
        self,
        score: float,
        findings: Sequence[Finding] = (),
        *,
        passed: bool | None = None,
        metrics: Mapping[str, Any] | None = None,
        evidence: Sequence[int] = (),
    ) -> LevelResult:
        """A result with ``passed`` defaulting to ``score >= threshold``."""
        score = float(score)
        return LevelResult(
            name=self.name,
            score=score,
            passed=score >= self.threshold - 1e-12 if passed is None else passed,
            findings=tuple(findings),
            metrics=dict(metrics or {}),
            weight=self.weight,
            difficulty=self.effective_difficulty,
            threshold=self.threshold,
            evidence=tuple(sorted(set(evidence))),
        )


Aggregator = Callable[..., float]


class HierarchicalVerifier:
    """An ordered list of levels and the aggregator that folds them into a reward."""

    def __init__(
        self, levels: Sequence[Level], aggregate: str | Aggregator = "gated", **params: Any
    ):
        from .aggregate import resolve

        if not levels:
            raise ValueError("a verifier needs at least one level")
        names = [lv.name for lv in levels]
        if len(set(names)) != len(names):
            raise ValueError(f"level names must be unique: {names}")
        self.levels = list(levels)
        for depth, level in enumerate(self.levels, 1):
            level._depth = depth
            unknown = [r for r in level.requires if r not in names[: depth - 1]]
            if unknown:
                raise ValueError(
                    f"level {level.name!r} requires {unknown}, which are not earlier levels of "
                    f"this verifier (levels in order: {names})"
                )
        self.aggregate_name, self.aggregate = resolve(aggregate, **params)

    @property
    def level_names(self) -> list[str]:
        return [lv.name for lv in self.levels]

    def verify(self, trajectory: Any, task: Any) -> Verdict:
        ctx = VerifyContext(trajectory, task)
        results: list[LevelResult] = []
        passed: dict[str, bool] = {}
        for level in self.levels:
            failed = [r for r in level.requires if not passed[r]]
            result = self._not_applicable(level, failed) if failed else self._run_level(level, ctx)
            passed[level.name] = result.passed
            results.append(result)
        return self.verdict(results, task)

    @staticmethod
    def _not_applicable(level: Level, failed: Sequence[str]) -> LevelResult:
        return LevelResult(
            level.name,
            0.0,
            False,
            (
                Finding(
                    "not_applicable",
                    f"not scored: it only means something for an answer that passes "
                    f"{', '.join(failed)}, which failed",
                ),
            ),
            skipped=True,
            weight=level.weight,
            difficulty=level.effective_difficulty,
            threshold=level.threshold,
        )

    def verdict(self, results: Sequence[LevelResult], task: Any) -> Verdict:
        reward = float(self.aggregate(list(results), task))
        if not math.isfinite(reward):
            raise VerifierError(f"aggregator {self.aggregate_name} returned {reward} for {results}")
        return Verdict(tuple(results), reward, self.aggregate_name)

    def _run_level(self, level: Level, ctx: VerifyContext) -> LevelResult:
        try:
            result = level.check(ctx)
        except SkipLevel as skip:
            result = LevelResult(
                level.name, 0.0, False, (Finding("skipped", str(skip)),), skipped=True
            )
        except VerifierError:
            raise
        except Exception as e:
            task_id = getattr(ctx.task, "task_id", "?")
            raise VerifierError(
                f"level {level.name!r} raised {type(e).__name__}: {e} (task {task_id}); "
                "this is a verifier bug, not a wrong answer"
            ) from e
        if not isinstance(result, LevelResult) or not (0.0 <= result.score <= 1.0):
            raise VerifierError(
                f"level {level.name!r} must return a LevelResult with score in [0, 1], got {result!r}"
            )
        config = (level.weight, level.effective_difficulty, level.threshold)
        if (result.weight, result.difficulty, result.threshold) != config:
            # a level that built its LevelResult by hand: carry its configuration along
            result = replace(result, weight=config[0], difficulty=config[1], threshold=config[2])
        return result
