"""Issue 10 (RTL): a problem's reference is checked and its proof budget calibrated when the
problem is imported (VerilogEval, RTLLM) or built (the built-in families); a problem whose
reference cannot be verified is refused there, with the reason in the import report, never by an
exception at verdict time. Problems in each benchmark's own layout."""

from __future__ import annotations

import json

import gymnasium as gym
import pytest

from hiergym.envs.rtl import importer, oracle, rtllm, tasks
from hiergym.envs.rtl.toolchain import Limits
from hiergym.envs.tools import ToolCall
from hiergym.errors import TaskError
from hiergym.testing import play

from . import fidelity_problems as fp
from . import rtllm_problems

# iverilog runs it; yosys refuses it (a loop bound that is not a constant): it cannot synthesise.
UNSYNTHESISABLE = fp.Problem(
    "Prob301_count_ones_loop",
    "out is the number n, counted up one by one in a loop.",
    """
module RefModule (input [3:0] n, output reg [7:0] out);
  integer i;
  always @(*) begin
    out = 8'd0;
    for (i = 0; i < n; i = i + 1) out = out + 8'd1;
  end
endmodule
""",
    ins=(("n", 4),),
    outs=(("out", 8),),
)


@pytest.fixture
def home(tmp_path):
    """A fresh folder of problems (an import record is keyed by the folder's path)."""
    return tmp_path


def test_a_verilog_eval_import_calibrates_and_refuses_what_it_cannot_verify(home, capsys):
    directory = fp.write(home / "ve", [fp.ASYNC_FSM, UNSYNTHESISABLE])
    assert importer.main([str(directory)]) == 1  # one problem refused
    record = json.loads(importer.record_path("verilog-eval", directory).read_text())
    good = record["problems"]["verilog-eval-Prob201_fsm_areset"]
    assert good["excluded"] is False
    assert good["compiles"] and good["passes_own_testbench"] and good["synthesises"]
    assert good["proves"] and good["formal_s"] >= Limits().formal_s
    assert good["simulate_s"] >= Limits().simulate_s
    bad = record["problems"]["verilog-eval-Prob301_count_ones_loop"]
    assert bad["excluded"] is True and bad["reason"]
    assert record["summary"] == {**record["summary"], "problems": 2, "served": 1}
    assert "1/2 problems verified" in capsys.readouterr().out
    env = gym.make("hiergym/RTL-v0", tasks=f"verilog-eval:{directory}")
    try:
        served = list(env.unwrapped.tasks)
        assert [t.task_id for t in served] == ["verilog-eval-Prob201_fsm_areset"]
        assert served[0].formal_s == good["formal_s"]  # the calibrated budgets are served
        assert served[0].simulate_s == good["simulate_s"]
    finally:
        env.close()


def test_an_rtllm_import_records_the_calibrated_budget(home):
    root = rtllm_problems.write(home / "rtllm", ["multi_4bit"])
    assert rtllm.main([str(root)]) == 0
    entry = json.loads(rtllm.record_path(root).read_text())["designs"]["rtllm-multi_4bit"]
    assert entry["excluded"] is False and entry["formal_s"] >= Limits().formal_s
    env = gym.make("hiergym/RTL-v0", tasks=f"rtllm:{root}")
    try:
        assert list(env.unwrapped.tasks)[0].formal_s == entry["formal_s"]
    finally:
        env.close()


def test_checking_a_reference_says_why_it_cannot_be_verified(home):
    directory = fp.write(home / "ve", [UNSYNTHESISABLE])
    (task,) = importer.load_directory(directory)
    entry = oracle.check_reference(task, Limits())
    assert entry["excluded"] and not (entry["compiles"] and entry["synthesises"])
    assert "synthes" in entry["reason"] or "elaborate" in entry["reason"]


def test_a_built_in_problem_is_refused_at_build_when_its_reference_is_broken():
    env = gym.make("hiergym/RTL-v0")
    try:
        good = tasks.find_task(env.unwrapped.sandbox.db, "rtl-mux2-w8")
    finally:
        env.close()
    broken = good.__class__(**{**good.__dict__, "reference": good.reference + "\nmodule ("})
    with pytest.raises(TaskError, match="rtl-mux2-w8"):
        oracle.prove(broken)


def test_every_built_in_problem_carries_its_calibrated_budget():
    env = gym.make("hiergym/RTL-v0")
    try:
        built = tasks.all_tasks(env.unwrapped.sandbox.db)
    finally:
        env.close()
    assert len(built) == 68
    assert all(t.formal_s is not None and t.formal_s >= Limits().formal_s for t in built)
    assert all(t.simulate_s is not None and t.simulate_s >= Limits().simulate_s for t in built)


def test_the_verdict_runs_under_the_problems_calibrated_budgets(tmp_path):
    """A problem whose own testbench or proofs take longer than the env's default limits (the
    budgets set when it was imported or built are larger) is still verified, not timed out."""
    tiny = {"simulate_s": 0.001, "formal_s": 0.001, "synthesize_s": 0.001}
    env = gym.make("hiergym/RTL-v0", limits=tiny)
    try:
        task = tasks.find_task(env.unwrapped.sandbox.db, "rtl-counter-w8")
        task = task.__class__(**{**task.__dict__, "simulate_s": 60.0, "formal_s": 60.0})
        code = task.reference + f"\n// {tmp_path}\n"
        env.unwrapped.reset(options={"task": task})
        out = play(env, [ToolCall("submit", {"code": code})], options={"task": task})
        found = {lv["name"]: lv for lv in out.verdict["levels"]}
        assert found["function"]["passed"], found["function"]
        assert found["formal"]["passed"], found["formal"]
        assert found["ppa"]["passed"], found["ppa"]  # the reference's synthesis too
    finally:
        env.close()


class _CachedReports:
    """A sandbox whose cache holds the same synthesis report for every design."""

    def __init__(self, report):
        self.report = report

    def lookup(self, name, arguments, scope=""):
        return dict(self.report)


def test_an_envelope_with_no_measurable_variant_is_a_failure_not_a_crash():
    """Every rewrite of the reference synthesizes with cells outside the library (RTLLM's
    multi_booth_8bit once raised IndexError in the verdict here): the envelope says so."""
    from hiergym.envs.rtl import data, tools

    task = data.generate_tasks()[0]
    report = {"ok": True, "cells": 3, "area": 1.0, "delay_ps": 5.0, "depth": 1}
    envelope = tools.calibrate(
        _CachedReports({**report, "unmapped_cells": ["$mul"]}), task, Limits()
    )
    assert envelope["ok"] is False and "unmapped" in envelope["messages"]
