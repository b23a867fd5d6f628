from __future__ import annotations

import pytest

from hiergym.errors import VerifierError
from hiergym.rewards.levels import Finding, HierarchicalVerifier, Level, SkipLevel


class Const(Level):
    def __init__(self, name, score, threshold=1.0):
        self.name, self.score, self.threshold = name, score, threshold

    def check(self, ctx):
        return self.result(self.score, [Finding("f", "msg")] if self.score < 1 else [])


class Broken(Level):
    name = "broken"

    def check(self, ctx):
        raise KeyError("oops")


class NeedsInput(Level):
    name = "needs"

    def check(self, ctx):
        raise SkipLevel("nothing parsed")


def test_verdict_dict_and_first_failed():
    v = HierarchicalVerifier([Const("a", 1.0), Const("b", 0.5), Const("c", 1.0)]).verify(None, None)
    d = v.to_dict()
    assert d["first_failed"] == "b"
    assert [lv["passed"] for lv in d["levels"]] == [True, False, True]
    assert d["levels"][1]["findings"] == [{"code": "f", "message": "msg"}]
    assert d["reward"] == pytest.approx(1.5 / 3)


def test_a_raising_level_is_a_verifier_error_not_a_zero():
    with pytest.raises(VerifierError, match="level 'broken' raised KeyError"):
        HierarchicalVerifier([Const("a", 1.0), Broken()]).verify(None, None)


def test_skipped_levels_are_recorded():
    v = HierarchicalVerifier([Const("a", 0.0), NeedsInput()]).verify(None, None)
    assert v.levels[1].skipped and v.levels[1].findings[0].message == "nothing parsed"


def test_out_of_range_scores_are_rejected():
    with pytest.raises(VerifierError, match="score in \\[0, 1\\]"):
        HierarchicalVerifier([Const("a", 1.5)]).verify(None, None)


def test_threshold_decides_passed():
    v = HierarchicalVerifier([Const("q", 0.8, threshold=0.75)]).verify(None, None)
    assert v.passed and v.levels[0].threshold == 0.75


class Efficiency(Const):
    """A level that passes for any trajectory, valid answer or not (a tool-call count, PPA)."""

    requires = ("answer",)


@pytest.mark.parametrize("aggregate", ["gated", "tiered", "weighted", "product", "constrained"])
def test_a_level_whose_answer_failed_is_not_applicable_under_every_aggregator(aggregate):
    levels = [Const("format", 1.0), Const("answer", 0.0), Efficiency("efficiency", 1.0)]
    v = HierarchicalVerifier(levels, aggregate).verify(None, None)
    eff = v.level("efficiency")
    assert (eff.score, eff.passed, eff.skipped) == (0.0, False, True)
    assert eff.findings[0].code == "not_applicable" and "answer" in eff.findings[0].message
    assert v.reward <= 1 / 3 + 1e-9
    ok = HierarchicalVerifier(
        [Const("format", 1.0), Const("answer", 1.0), Efficiency("efficiency", 1.0)], aggregate
    ).verify(None, None)
    assert ok.reward == pytest.approx(1.0) and ok.level("efficiency").passed


def test_requires_must_name_an_earlier_level():
    with pytest.raises(ValueError, match="not earlier levels"):
        HierarchicalVerifier([Efficiency("efficiency", 1.0), Const("answer", 1.0)])
