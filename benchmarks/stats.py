"""Statistics for benchmark reports: Wilson intervals for rates, task-clustered bootstrap for means,
and paired differences between runs.

* A rate (success, a level's pass rate, a binary reward) gets the Wilson score interval, so 18/18 is
  [0.82, 1.00], not [1, 1]. With several trials per task the trials of one task are not independent
  draws: the interval uses the number of *tasks* as its sample size (conservative when trials
  agree, which is when it matters).
* A mean of continuous values (rewards) gets a percentile bootstrap that resamples tasks (clusters)
  with all their trials, not episodes; a sample whose values are all equal, in [0, 1], gets the
  Wilson interval of that mean (a bounded variable varies at most as a Bernoulli one does).
* Every bootstrap is seeded, so a report is reproducible.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence

import numpy as np

# the normal quantile scipy.stats.norm.ppf computes, without scipy.stats' import (about 1 s of
# CPU, serial in every bench and report)
from scipy.special import ndtri


def wilson_ci(p: float, n: float, confidence: float = 0.95) -> tuple[float, float]:
    """The Wilson score interval of a proportion ``p`` observed over ``n`` draws."""
    if n <= 0:
        return (float("nan"), float("nan"))
    z = float(ndtri(1 - (1 - confidence) / 2))
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(max(p * (1 - p) / n + z * z / (4 * n * n), 0.0)) / denom
    # clamped so rounding never puts an end on the wrong side of p (or outside [0, 1])
    return (max(0.0, min(p, centre - half)), min(1.0, max(p, centre + half)))


def _is_binary(x: np.ndarray) -> bool:
    return bool(np.all((x == 0.0) | (x == 1.0)))


def rate_ci(
    values: Sequence[float],
    clusters: Sequence[Hashable] | None = None,
    *,
    confidence: float = 0.95,
    n_boot: int = 2000,
    seed: int = 0,
) -> tuple[float, float]:
    """A CI of the mean of ``values`` (one per episode); ``clusters`` names each episode's task."""
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        return (float("nan"), float("nan"))
    groups = _groups(clusters, x.size)
    n_tasks = len(groups)
    mean = float(x.mean())
    if _is_binary(x) or (np.all(x == x[0]) and 0.0 <= x[0] <= 1.0):
        return wilson_ci(mean, n_tasks, confidence)
    if np.all(x == x[0]):
        return (float(x[0]), float(x[0]))
    sums = np.array([x[g].sum() for g in groups])
    sizes = np.array([len(g) for g in groups], dtype=float)
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, n_tasks, size=(n_boot, n_tasks))
    means = sums[picks].sum(axis=1) / sizes[picks].sum(axis=1)
    lo, hi = np.quantile(means, [(1 - confidence) / 2, 1 - (1 - confidence) / 2])
    return (float(lo), float(hi))


def _groups(clusters: Sequence[Hashable] | None, n: int) -> list[list[int]]:
    if clusters is None:
        return [[i] for i in range(n)]
    if len(clusters) != n:
        raise ValueError(f"{len(clusters)} cluster labels for {n} values")
    index: dict[Hashable, list[int]] = {}
    for i, c in enumerate(clusters):
        index.setdefault(c, []).append(i)
    return list(index.values())


def paired_difference(
    a: Sequence[float],
    b: Sequence[float],
    *,
    confidence: float = 0.95,
    n_boot: int = 2000,
    seed: int = 0,
) -> dict[str, float]:
    """Mean of ``b - a`` over paired tasks (one value per task in each run) with a bootstrap CI
    that resamples tasks."""
    x = np.asarray(b, dtype=float) - np.asarray(a, dtype=float)
    if x.size == 0:
        return {"mean": float("nan"), "ci95": [float("nan"), float("nan")], "n": 0}
    if np.all(x == x[0]):
        lo = hi = float(x[0])
    else:
        rng = np.random.default_rng(seed)
        means = x[rng.integers(0, x.size, size=(n_boot, x.size))].mean(axis=1)
        lo, hi = (
            float(v) for v in np.quantile(means, [(1 - confidence) / 2, 1 - (1 - confidence) / 2])
        )
    return {"mean": float(x.mean()), "ci95": [lo, hi], "n": int(x.size)}


def bootstrap_ci(
    values: Sequence[float], *, confidence: float = 0.95, n_boot: int = 2000, seed: int = 0
) -> tuple[float, float]:
    """The CI of a mean of independent values (see :func:`rate_ci`; kept for callers)."""
    return rate_ci(values, confidence=confidence, n_boot=n_boot, seed=seed)
