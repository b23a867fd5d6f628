"""VerilogEval-format problems: their testbench as the function level, our other levels around it."""

from __future__ import annotations

import shutil
from pathlib import Path

import gymnasium as gym
import pytest

from hiergym.envs.rtl import importer
from hiergym.envs.tools import ToolCall
from hiergym.errors import TaskError
from hiergym.testing import oracle_actions, play

DATA = Path(__file__).parent / "data" / "verilog_eval"
SOURCE = f"verilog-eval:{DATA}"


@pytest.fixture(scope="module")
def env():
    e = gym.make("hiergym/RTL-v0", tasks=SOURCE)
    yield e
    e.close()


def task(env, name):
    return next(t for t in env.unwrapped.tasks if t.task_id == f"verilog-eval-{name}")


def submit(env, t, code):
    return play(env, [ToolCall("submit", {"code": code})], options={"task": t}).verdict


def test_problems_load_with_their_interface(env):
    ids = [t.task_id for t in env.unwrapped.tasks]
    assert ids == [
        "verilog-eval-Prob001_mux2to1",
        "verilog-eval-Prob002_dff8r",
        "verilog-eval-Prob003_count10",
    ]
    dff = task(env, "Prob002_dff8r")
    assert dff.kind == "seq" and dff.reset == "reset" and dff.reset_active == 1
    assert "module RefModule" not in dff.reference and "module TopModule" in dff.reference
    obs, _ = env.reset(options={"task": dff})
    assert "8 D flip-flops" in obs and "input  [7:0] d" in obs


def test_the_reference_reaches_one_on_every_problem(env):
    for t in env.unwrapped.tasks:
        env.reset(options={"task": t})
        out = play(env, oracle_actions(env), options={"task": t})
        assert out.verdict["reward"] == 1.0, (t.task_id, out.verdict)
        sim = next(lv for lv in out.verdict["levels"] if lv["name"] == "function")
        assert sim["metrics"]["samples"] > 100  # counted by the VerilogEval testbench


def test_a_wrong_design_fails_at_function_with_the_testbench_hints(env):
    t = task(env, "Prob003_count10")
    wrong = t.reference.replace("q == 9", "q == 10")
    verdict = submit(env, t, wrong)
    assert verdict["first_failed"] == "function"
    findings = next(lv for lv in verdict["levels"] if lv["name"] == "function")["findings"]
    assert any(f["code"] == "testbench_hint" and "mismatches" in f["message"] for f in findings)


def test_printing_the_result_line_does_not_pass(env):
    t = task(env, "Prob001_mux2to1")
    forged = t.reference.replace("sel ? b : a", "sel ? a : b").replace(
        "endmodule", '  initial $display("Mismatches: 0 in 108 samples");\nendmodule'
    )
    assert submit(env, t, forged)["first_failed"] == "function"


def test_standing_in_for_the_reference_or_the_testbench_fails(env):
    t = task(env, "Prob001_mux2to1")
    copy_ref = "module TopModule(input a, input b, input sel, output out);\n"
    copy_ref += "  RefModule r(.a(a), .b(b), .sel(sel), .out(out));\nendmodule\n"
    verdict = submit(env, t, copy_ref)
    assert verdict["first_failed"] == "syntax"  # there is no RefModule to bind to
    own_ref = t.reference + t.reference.replace("module TopModule", "module RefModule")
    assert submit(env, t, own_ref)["first_failed"] == "format"
    fake_stim = t.reference + "module stimulus_gen; endmodule\n"
    assert submit(env, t, fake_stim)["first_failed"] == "format"


def test_import_checks_a_directory(capsys):
    assert importer.main([str(DATA)]) == 0
    assert "3/3 problems verified" in capsys.readouterr().out


def test_broken_directories_and_sources_are_clear_errors(tmp_path):
    shutil.copy(DATA / "Prob001_mux2to1_prompt.txt", tmp_path)
    shutil.copy(DATA / "Prob001_mux2to1_ref.sv", tmp_path)
    with pytest.raises(TaskError, match=r"missing \['Prob001_mux2to1_test.sv'\]"):
        importer.load_directory(tmp_path)
    with pytest.raises(TaskError, match="no VerilogEval problems"):
        importer.load_directory(tmp_path / "nothing")
    with pytest.raises(TaskError, match="expected 'builtin' or 'verilog-eval:DIR'"):
        gym.make("hiergym/RTL-v0", tasks="vrilog-eval:x")
    with pytest.raises(TaskError, match="is not a directory"):
        gym.make("hiergym/RTL-v0", tasks=f"verilog-eval:{tmp_path}/missing")
