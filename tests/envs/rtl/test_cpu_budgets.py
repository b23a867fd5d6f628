"""Issue 10: RTL budgets are CPU seconds of each run's whole process tree, so whether a correct
design reaches 1.0 (and whether an import accepts a correct reference) does not depend on what
else the machine runs. The wall clock is a backstop: a run it stops within its CPU budget means an
overloaded machine, retried once, then raised (a tool error to the agent, a VerifierError at a
verdict, an error at import), never a timeout, a 0 reward or a refused reference.

A loaded machine is modelled deterministically: the wall clock (``time.perf_counter``) jumps
1,000 s at every reading, while the CPU the runs use is what it is. Nothing asserts wall time."""

from __future__ import annotations

import itertools
import time

import gymnasium as gym
import pytest

from hiergym.envs import execution
from hiergym.envs.rtl import importer, oracle, toolchain
from hiergym.envs.rtl.toolchain import Limits
from hiergym.envs.tools import ToolCall
from hiergym.errors import SandboxError, VerifierError

from . import fidelity_problems as fp

pytestmark = pytest.mark.skipif(
    bool(toolchain.missing_programs()), reason="needs iverilog, yosys and prlimit"
)


@pytest.fixture(scope="module")
def directory(tmp_path_factory):
    return fp.write(tmp_path_factory.mktemp("cpu-budgets"), [fp.ASYNC_FSM])


@pytest.fixture(scope="module")
def fsm(directory):
    return importer.load_problem(directory, fp.ASYNC_FSM.name, "test", "medium")


@pytest.fixture
def loaded_clock(monkeypatch):
    """A machine so loaded that 1,000 wall seconds pass between any two readings of the clock."""
    ticks = itertools.count(0.0, 1000.0)
    monkeypatch.setattr(time, "perf_counter", lambda: next(ticks))


def overloaded(argv, cwd, limits, **kwargs):
    """What execution.run reports when the backstop stopped a run within its CPU budget."""
    return execution.RunResult(-9, "", "", False, limits.wall_s, 0.01, True)


def test_a_stage_budget_is_cpu_seconds_of_the_tree_with_a_wall_clock_backstop():
    limits = toolchain.process_limits(20.0, Limits())
    assert limits.tree_cpu_s == 20.0
    assert limits.wall_s >= toolchain.WALL_BACKSTOP_FACTOR * 20.0
    assert limits.rlimits()["RLIMIT_CPU"][0] == 21  # a process's limit follows the CPU budget


def test_a_run_that_only_waits_is_not_a_timeout(tmp_path):
    result = toolchain.run(["sh", "-c", "sleep 1; echo ok"], tmp_path, 0.25, Limits())
    assert result.returncode == 0 and result.stdout.strip() == "ok"
    assert not result.timed_out


def test_an_overloaded_run_is_retried_once_then_raised(tmp_path, monkeypatch):
    calls = []

    def once_overloaded(argv, cwd, limits, **kwargs):
        calls.append(argv)
        if len(calls) == 1:
            return overloaded(argv, cwd, limits)
        return execution.RunResult(0, "fine", "", False, 1.0, 0.01)

    monkeypatch.setattr(toolchain.execution, "run", once_overloaded)
    assert toolchain.run(["true"], tmp_path, 1.0, Limits()).stdout == "fine"
    assert len(calls) == 2

    calls.clear()
    monkeypatch.setattr(
        toolchain.execution, "run", lambda *a, **k: (calls.append(a), overloaded(*a, **k))[1]
    )
    with pytest.raises(toolchain.MachineOverloaded, match="overloaded") as raised:
        toolchain.run(["yosys", "-s", "x.ys"], tmp_path, 1.0, Limits())
    assert isinstance(raised.value, SandboxError)
    assert len(calls) == 2


def test_an_overloaded_machine_never_refuses_a_correct_reference(fsm, monkeypatch):
    monkeypatch.setattr(toolchain.execution, "run", overloaded)
    with pytest.raises(toolchain.MachineOverloaded):
        oracle.check_reference(fsm, Limits())


def test_an_overloaded_verdict_raises_and_a_tool_call_is_an_error_observation(
    directory, fsm, monkeypatch, tmp_path
):
    monkeypatch.setenv("HIERGYM_HOME", str(tmp_path / "home"))  # nothing cached to reuse
    env = gym.make("hiergym/RTL-v0", tasks=f"verilog-eval:{directory}")
    try:
        env.reset(seed=0)
        monkeypatch.setattr(toolchain.execution, "run", overloaded)
        obs, *_ = env.step(ToolCall("compile", {"code": fsm.reference}))
        assert obs.startswith("error") and "overloaded" in obs
        with pytest.raises(VerifierError, match="overloaded"):
            env.step(ToolCall("submit", {"code": fsm.reference}))
    finally:
        env.close()


def test_synthesis_stages_share_a_cpu_budget_not_the_wall_clock(fsm, loaded_clock):
    """Synthesis runs in two yosys processes; the second gets what the first left of the CPU
    budget (before: of the wall-clock budget, so on this machine it was always out of time)."""
    report = toolchain.synthesize_design(fsm, fsm.reference, Limits())
    assert report["ok"], report
    assert not toolchain.is_transient(report)


def test_proof_stages_share_a_cpu_budget_not_the_wall_clock(fsm, loaded_clock, monkeypatch):
    """Each later stage of a proof gets the CPU budget less the CPU seconds the earlier stages
    used (at most that; ABC's unbounded proof half of it): the accounting, not the wall clock."""
    runs = []
    real_run = toolchain.run

    def spy(argv, cwd, timeout, limits):
        result = real_run(argv, cwd, timeout, limits)
        runs.append((timeout, result.cpu_s))
        return result

    monkeypatch.setattr(toolchain, "run", spy)
    limits = Limits()
    proof = toolchain.prove_equivalence(fsm, fsm.reference, limits)
    assert proof["status"] == "proven", proof
    start = next(i for i, (timeout, _) in enumerate(runs) if timeout == limits.formal_s)
    assert len(runs) > start + 1  # the proof's first yosys run, then ABC (and the bounded proof)
    for j in range(start + 1, len(runs)):
        left = max(1.0, limits.formal_s - sum(cpu for _, cpu in runs[start:j]))
        assert left / 2 - 1e-6 <= runs[j][0] <= left + 1e-6, (j, runs)


def test_a_calibration_is_in_cpu_seconds(fsm, loaded_clock):
    """The import check's budgets come from the CPU its runs used: the same on an idle and on a
    loaded machine (before: the wall seconds, here 1,000 per reading, so every budget was the
    largest)."""
    entry = oracle.check_reference(fsm, Limits())
    assert not entry["excluded"], entry
    assert entry["formal_s"] == Limits().formal_s
    assert entry["simulate_s"] == Limits().simulate_s
    assert 0 < entry["proof"]["seconds"] < Limits().formal_s
