"""Aggregators: pure functions ``(results, task, **params) -> float`` that fold level results.

Notation: levels ``i = 1..n`` in verifier order, score ``s_i`` in [0, 1], ``p_i`` = 1 if level ``i``
passed else 0, weight ``w_i``, difficulty ``d_i`` (default: the level's 1-based depth), threshold
``t_i``. Pick one by name: ``HierarchicalReward(env, aggregate="product")`` or
``gym.make(id, aggregate="product")``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .levels import LevelResult


def gated(results: Sequence[LevelResult], task: Any = None) -> float:
    """R = (1/n) * sum_i s_i * prod_{j<i} p_j — a level counts only if every earlier level passed."""
    total, open_gate = 0.0, True
    for r in results:
        if not open_gate:
            break
        total += r.score
        open_gate = r.passed
    return total / len(results)


def tiered(results: Sequence[LevelResult], task: Any = None) -> float:
    """R = (k + s_{k+1}) / n, k = number of leading levels passed (s_{n+1} = 0)."""
    for k, r in enumerate(results):
        if not r.passed:
            return (k + r.score) / len(results)
    return 1.0


def product(results: Sequence[LevelResult], task: Any = None) -> float:
    """R = prod_i s_i — an AND of every level."""
    return math.prod(r.score for r in results)


def weighted(
    results: Sequence[LevelResult], task: Any = None, weights: Mapping[str, float] | None = None
) -> float:
    """R = sum_i w_i s_i / sum_i w_i; ``weights`` by level name override the levels' own."""
    ws = [(weights or {}).get(r.name, r.weight) for r in results]
    if sum(ws) <= 0:
        raise ValueError(
            f"weighted needs weights with a positive sum, got {dict(zip([r.name for r in results], ws, strict=True))}"
        )
    return sum(w * r.score for w, r in zip(ws, results, strict=True)) / sum(ws)


def logsigmoid_conjunction(
    results: Sequence[LevelResult],
    task: Any = None,
    reference: float | Mapping[str, float] = 0.5,
    temperature: float = 0.1,
) -> float:
    """R = sum_i log sigma((s_i - ref_i) / T) <= 0 — a smooth "good on every level".

    Every term is close to 0 only when ``s_i`` is well above ``ref_i``; one bad level dominates the
    sum, so this is a differentiable conjunction (0 is the best reward, not 1).
    """

    def log_sigmoid(x: float) -> float:
        return -math.log1p(math.exp(-x)) if x > -30 else x

    refs = reference if isinstance(reference, Mapping) else {}
    default = reference if not isinstance(reference, Mapping) else 0.5
    return sum(log_sigmoid((r.score - refs.get(r.name, default)) / temperature) for r in results)


def difficulty_scaled(
    results: Sequence[LevelResult],
    task: Any = None,
    difficulties: Mapping[str, float] | None = None,
) -> float:
    """R = sum_i d_i s_i prod_{j<i} p_j / sum_i d_i — gated, harder (deeper) sub-goals weigh more."""
    ds = [(difficulties or {}).get(r.name, r.difficulty) for r in results]
    total, open_gate = 0.0, True
    for d, r in zip(ds, results, strict=True):
        if not open_gate:
            break
        total += d * r.score
        open_gate = r.passed
    return total / sum(ds)


def constrained(
    results: Sequence[LevelResult], task: Any = None, thresholds: Mapping[str, float] | None = None
) -> float:
    """R = (1/n) * sum_{i<=k} s_i, k = first level with s_k < t_k (else n).

    Each level must clear its threshold ``t_i`` (``thresholds`` by name, else the level's own) before
    the next contributes; the first level that misses still adds its partial score.
    """
    total = 0.0
    for r in results:
        total += r.score
        if r.score < (thresholds or {}).get(r.name, r.threshold) - 1e-12:
            break
    return total / len(results)


def reward_range(
    aggregate: Callable[..., float], results: Sequence[LevelResult], task: Any = None
) -> tuple[float, float]:
    """(lowest, highest) reward ``aggregate`` can give levels like ``results``: every level failed
    at score 0, and every level passed at score 1. Process-reward budgets and the hack matrix's
    normalised rewards are fractions of this range."""
    from dataclasses import replace

    low = float(aggregate([replace(r, score=0.0, passed=False) for r in results], task))
    high = float(aggregate([replace(r, score=1.0, passed=True) for r in results], task))
    return low, high


AGGREGATORS: dict[str, Callable[..., float]] = {
    f.__name__: f
    for f in (
        gated,
        tiered,
        product,
        weighted,
        logsigmoid_conjunction,
        difficulty_scaled,
        constrained,
    )
}


def resolve(
    aggregate: str | Callable[..., float], **params: Any
) -> tuple[str, Callable[..., float]]:
    """(name, function) of an aggregator given by name or as a function, with its params bound."""
    if callable(aggregate):
        name = getattr(aggregate, "__name__", "custom")
        fn = aggregate
    else:
        if aggregate not in AGGREGATORS:
            from hiergym.errors import did_you_mean

            raise ValueError(
                f"unknown aggregator {aggregate!r}{did_you_mean(aggregate, AGGREGATORS)}; "
                f"choose one of {sorted(AGGREGATORS)} or pass a function (results, task) -> float"
            )
        name, fn = aggregate, AGGREGATORS[aggregate]
    return name, functools.partial(fn, **params) if params else fn
