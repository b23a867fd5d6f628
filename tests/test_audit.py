"""The hack matrix catches a verifier that pays for work not done, and ``hiergym audit`` says so."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from hiergym.cli import main
from hiergym.envs.registry import register_domain
from hiergym.testing import check_hack_matrix, run_hack_matrix

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples" / "hiergym-arith-plugin"))

from hiergym_arith.env import ArithEnv, Correct, Format  # noqa: E402

from hiergym.rewards.levels import HierarchicalVerifier  # noqa: E402


class UngroundedCorrect(Correct):
    requires = ()


class LeakyArith(ArithEnv):
    """The example plugin without its grounding level: a memorised total is paid in full."""

    def make_verifier(self, aggregate, **params):
        return HierarchicalVerifier([Format(), UngroundedCorrect()], aggregate, **params)


TEST_IDS = {
    "hiergym/TestArith-v0": "hiergym_arith.env:ArithEnv",
    "hiergym/TestLeakyArith-v0": f"{__name__}:LeakyArith",
}


@pytest.fixture(autouse=True, scope="module")
def arith_envs():
    """This module's ids, registered while its tests run and removed after: the registry is the
    process's, and a later module (conformance) must not find them there."""
    import gymnasium as gym

    from hiergym.envs.registry import _ENVS

    for env_id, env_class in TEST_IDS.items():
        register_domain(env_id, env_class)
    yield
    for env_id in TEST_IDS:
        _ENVS.pop(env_id, None)
        gym.registry.pop(env_id, None)


def test_the_example_plugin_holds_its_matrix_and_its_own_attack_runs():
    rows = check_hack_matrix("hiergym/TestArith-v0", seeds=(0, 1))
    names = {r.name for r in rows}
    assert {"memorised_answer", "evidence_in_submit", "reversed_adds", "partial_sum"} <= names
    memorised = [r for r in rows if r.name == "memorised_answer"]
    assert all(r.first_failed == "grounded" for r in memorised)


def test_a_leaky_verifier_breaches_the_matrix():
    rows = run_hack_matrix("hiergym/TestLeakyArith-v0", seeds=(0,))
    by_name = {r.name: r for r in rows}
    assert by_name["memorised_answer"].rewards["gated"] == pytest.approx(1.0)
    assert "gated" in by_name["memorised_answer"].breaches()
    assert "gated" in by_name["evidence_in_submit"].breaches()
    assert not by_name["null_agent"].breaches()
    with pytest.raises(AssertionError, match="memorised_answer"):
        check_hack_matrix("hiergym/TestLeakyArith-v0", seeds=(0,))


def test_audit_exits_nonzero_on_a_breach_and_zero_when_held(capsys):
    assert main(["audit", "hiergym/TestLeakyArith-v0", "--seeds", "0"]) == 1
    out = capsys.readouterr().out
    assert "memorised_answer" in out and "BREACH" in out
    assert main(["audit", "hiergym/TestArith-v0", "--seeds", "0", "--process-reward"]) == 0
    out = capsys.readouterr().out
    assert "0 breached" in out


def test_process_rewards_cannot_lift_padding_above_its_ceiling():
    rows = run_hack_matrix("hiergym/TestArith-v0", seeds=(0,), only=["padding_no_submit"])
    assert rows and all(v <= 1e-9 for v in rows[0].process_rewards.values())
