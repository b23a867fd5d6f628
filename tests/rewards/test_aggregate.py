from __future__ import annotations

import math

import pytest

from hiergym.rewards.aggregate import (
    AGGREGATORS,
    constrained,
    difficulty_scaled,
    gated,
    logsigmoid_conjunction,
    product,
    resolve,
    tiered,
    weighted,
)
from hiergym.rewards.levels import LevelResult


def levels(*spec):
    """(score, passed) pairs -> LevelResults with difficulty = depth and threshold 0.75."""
    return [
        LevelResult(f"l{i}", s, p, difficulty=i + 1, threshold=0.75, weight=float(i + 1))
        for i, (s, p) in enumerate(spec)
    ]


ALL_PASS = levels((1, True), (1, True), (1, True), (1, True))
MID_FAIL = levels((1, True), (0.9, True), (0.4, False), (0.8, True))


def test_every_aggregator_gives_the_oracle_full_marks():
    for name, fn in AGGREGATORS.items():
        if name == "logsigmoid_conjunction":
            continue
        assert fn(ALL_PASS) == pytest.approx(1.0), name


def test_gated():
    # level 4 is after a failed level: it does not count
    assert gated(MID_FAIL) == pytest.approx((1 + 0.9 + 0.4) / 4)


def test_tiered():
    # two leading levels passed, plus the first failing level's partial score
    assert tiered(MID_FAIL) == pytest.approx((2 + 0.4) / 4)


def test_product():
    assert product(MID_FAIL) == pytest.approx(1 * 0.9 * 0.4 * 0.8)


def test_weighted_uses_level_weights_or_overrides():
    assert weighted(MID_FAIL) == pytest.approx((1 * 1 + 2 * 0.9 + 3 * 0.4 + 4 * 0.8) / 10)
    assert weighted(MID_FAIL, weights={"l0": 0, "l1": 0, "l2": 1, "l3": 1}) == pytest.approx(
        (0.4 + 0.8) / 2
    )


def test_logsigmoid_conjunction():
    expected = sum(-math.log1p(math.exp(-(s - 0.5) / 0.1)) for s in (1, 0.9, 0.4, 0.8))
    assert logsigmoid_conjunction(MID_FAIL) == pytest.approx(expected)
    assert logsigmoid_conjunction(ALL_PASS) > logsigmoid_conjunction(MID_FAIL)
    assert logsigmoid_conjunction(ALL_PASS) < 0


def test_difficulty_scaled():
    assert difficulty_scaled(MID_FAIL) == pytest.approx(
        (1 * 1 + 2 * 0.9 + 3 * 0.4) / (1 + 2 + 3 + 4)
    )


def test_constrained_uses_thresholds_not_pass_flags():
    assert constrained(MID_FAIL) == pytest.approx((1 + 0.9 + 0.4) / 4)
    # with a 0.95 threshold on l1 the chain stops there
    assert constrained(MID_FAIL, thresholds={"l1": 0.95}) == pytest.approx((1 + 0.9) / 4)


def test_resolve_by_name_with_params_and_unknown_names():
    name, fn = resolve("weighted", weights={"l0": 1, "l1": 0, "l2": 0, "l3": 0})
    assert name == "weighted" and fn(MID_FAIL) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="did you mean 'gated'"):
        resolve("gatd")


def test_weighted_rejects_weights_that_sum_to_zero():
    with pytest.raises(ValueError, match="positive sum"):
        weighted(MID_FAIL, weights={"l0": 0, "l1": 0, "l2": 0, "l3": 0})
