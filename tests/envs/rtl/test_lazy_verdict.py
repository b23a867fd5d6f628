"""Issue 12 (RTL verdicts): levels run lazily in their order, so a design that fails a gate pays
only for the stages up to it (the later ones are not applicable, score 0, and never run), and a
verdict compiles the design once, reusing that result for the simulation."""

from __future__ import annotations

import gymnasium as gym
import pytest

from hiergym.envs.rtl import oracle, tasks, toolchain
from hiergym.envs.tools import ToolCall
from hiergym.testing import play


@pytest.fixture(scope="module")
def env():
    e = gym.make("hiergym/RTL-v0")
    yield e
    e.close()


def verdict_of(env, task, code):
    env.unwrapped.reset(options={"task": task})
    return play(env, [ToolCall("submit", {"code": code})], options={"task": task}).verdict


def levels(verdict):
    return {lv["name"]: lv for lv in verdict["levels"]}


def cached(env, task, name, code):
    scope = toolchain.scope(task, env.unwrapped.limits)
    return env.unwrapped.sandbox.lookup(name, {"code": code}, scope)


def test_a_design_failing_simulation_runs_no_proof_and_no_synthesis(env, tmp_path):
    task = tasks.find_task(env.unwrapped.sandbox.db, "rtl-counter-w8")
    code = oracle.inverted_output_bit(task) + f"\n// {tmp_path}\n"
    v = verdict_of(env, task, code)
    found = levels(v)
    assert v["first_failed"] == "function" and v["reward"] < 1.0
    for name in ("formal", "ppa"):
        assert found[name]["score"] == 0.0 and not found[name]["passed"]
        assert found[name]["findings"][0]["code"] == "not_applicable"
    assert cached(env, task, "simulate", code) is not None
    assert cached(env, task, "prove_equivalence", code) is None
    assert cached(env, task, "synthesize_and_prove", code) is None


def test_a_design_failing_syntax_is_not_simulated(env, tmp_path):
    task = tasks.find_task(env.unwrapped.sandbox.db, "rtl-counter-w8")
    code = task.reference.replace("endmodule", "  wire w = undeclared_net;\nendmodule", 1)
    code += f"\n// {tmp_path}\n"
    v = verdict_of(env, task, code)
    assert v["first_failed"] == "syntax"
    assert levels(v)["function"]["findings"][0]["code"] == "not_applicable"
    assert cached(env, task, "simulate", code) is None


def test_a_cold_verdict_compiles_the_design_once(env, tmp_path, monkeypatch):
    task = tasks.find_task(env.unwrapped.sandbox.db, "rtl-counter-w8")
    code = task.reference + f"\n// {tmp_path}: cold\n"
    calls = []
    real = toolchain.compile_design
    monkeypatch.setattr(
        toolchain, "compile_design", lambda *a, **k: calls.append(1) or real(*a, **k)
    )
    v = verdict_of(env, task, code)
    assert v["reward"] == 1.0
    assert len(calls) == 1
