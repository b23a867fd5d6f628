"""RTLLM designs in RTLLM's own layout: import, their own testbench made safe, our other levels."""

from __future__ import annotations

import json
import shutil

import gymnasium as gym
import pytest

from hiergym.envs.rtl import rtllm
from hiergym.envs.tools import ToolCall
from hiergym.errors import TaskError
from hiergym.testing import oracle_actions, play

from . import rtllm_problems


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return rtllm_problems.write(tmp_path_factory.mktemp("rtllm"))


@pytest.fixture(scope="module")
def env(root):
    e = gym.make("hiergym/RTL-v0", tasks=f"rtllm:{root}")
    yield e
    e.close()


def task(env, name):
    return next(t for t in env.unwrapped.tasks if t.family == name)


def submit(env, t, code):
    return play(env, [ToolCall("submit", {"code": code})], options={"task": t}).verdict


def level(verdict, name):
    return next(lv for lv in verdict["levels"] if lv["name"] == name)


def test_designs_load_with_the_interface_and_clocking_of_their_reference(env):
    assert sorted(t.family for t in env.unwrapped.tasks) == sorted(rtllm_problems.DESIGNS)
    adder = task(env, "adder_param")
    assert adder.module == "adder_param" and adder.kind == "comb"
    assert [(p.name, p.width) for p in adder.ports] == [
        ("a", 8),
        ("b", 8),
        ("cin", 1),
        ("sum", 8),
        ("cout", 1),
    ]
    assert "module adder_param" in adder.reference and "verified_" not in adder.reference
    assert [(p.name, p.width) for p in task(env, "mux_ifdef").ports][:2] == [("a", 8), ("b", 8)]
    fsm = task(env, "fsm_async")
    assert (fsm.kind, fsm.clock, fsm.reset, fsm.reset_active) == ("seq", "clk", "rst_n", 0)
    ram = task(env, "ram_small")
    assert json.loads(ram.testbench)["files"] == {"expected.txt": "a\n5\n3\nc\n"}
    obs, _ = env.reset(options={"task": adder})
    assert "module adder_param (" in obs and "parameterised ripple adder" in obs


def test_every_reference_reaches_one_through_its_own_testbench(env):
    for t in env.unwrapped.tasks:
        env.reset(options={"task": t})
        out = play(env, oracle_actions(env), options={"task": t})
        assert out.verdict["reward"] == 1.0, (t.task_id, out.verdict)
        ppa = level(out.verdict, "ppa")["metrics"]
        assert ppa["beats_reference"] is False and ppa["cost_ratio"] == pytest.approx(1, abs=0.02)


def test_a_wrong_design_fails_at_function_on_rtllms_testbench(env):
    t = task(env, "multi_4bit")
    wrong = t.reference.replace("assign P = A * B;", "assign P = A * B + (A == 4'd15);")
    verdict = submit(env, t, wrong)
    assert verdict["first_failed"] == "function"
    assert not level(verdict, "function")["passed"]


def test_a_design_printing_the_pass_line_itself_is_not_read(env):
    t = task(env, "adder_param")
    forged = t.reference.replace(
        "assign {cout, sum} = a + b + cin;",
        'assign {cout, sum} = a - b;\n    initial $display("===========Your Design Passed'
        '===========");',
    )
    verdict = submit(env, t, forged)
    assert verdict["first_failed"] == "function", verdict
    assert verdict["reward"] <= 0.4  # format and syntax only


def test_the_testbench_is_renamed_stamped_and_dump_free():
    source = rtllm_problems.DESIGNS["adder_param"]["testbench.v"]
    safe = rtllm.safe_testbench(source, "testbench", "abc123")
    assert "module hg_tb_abc123" in safe and "module testbench" not in safe
    assert '"abc123 ===========Your Design Passed===========' in safe
    assert "$dump" not in safe
    assert "adder_param uut" in safe  # the design keeps its name
    assert '"===========Test completed' in safe  # the failure line is not stamped


def test_import_reports_every_stage_and_excludes_broken_designs(tmp_path):
    root = rtllm_problems.write(tmp_path / "rtllm", ["multi_4bit", "mux_ifdef"])
    broken = root / "Small" / "mux_ifdef" / "verified_mux_ifdef.v"
    broken.write_text(broken.read_text().replace("sel ? b : a", "sel ? a : b"))
    shutil.copytree(root / "Small" / "multi_4bit", root / "Small" / "no_testbench")
    (root / "Small" / "no_testbench" / "testbench.v").unlink()
    assert rtllm.main([str(root)]) == 0
    record = json.loads(rtllm.record_path(root).read_text())
    designs = record["designs"]
    assert designs["rtllm-multi_4bit"] == {
        **designs["rtllm-multi_4bit"],
        "loads": True,
        "compiles": True,
        "passes_own_testbench": True,
        "proves": True,
        "synthesises": True,
        "excluded": False,
    }
    mux = designs["rtllm-mux_ifdef"]
    assert mux["compiles"] and not mux["passes_own_testbench"] and mux["excluded"]
    assert "fails function" in mux["reason"]
    assert designs["rtllm-no_testbench"]["excluded"]
    assert "missing testbench.v" in designs["rtllm-no_testbench"]["reason"]
    assert record["summary"]["served"] == 1 and record["summary"]["designs"] == 3
    served = gym.make("hiergym/RTL-v0", tasks=f"rtllm:{root}")
    try:
        assert [t.task_id for t in served.unwrapped.tasks] == ["rtllm-multi_4bit"]
    finally:
        served.close()


def test_bad_sources_are_task_errors(tmp_path):
    with pytest.raises(TaskError, match="no RTLLM designs"):
        rtllm.load_directory(tmp_path)
    with pytest.raises(TaskError, match="not a directory"):
        gym.make("hiergym/RTL-v0", tasks=f"rtllm:{tmp_path / 'nothing'}")


def test_the_cli_knows_the_rtllm_importer():
    from hiergym.cli import IMPORTERS

    assert IMPORTERS["rtllm"] == "hiergym.envs.rtl.rtllm:main"


def test_ppa_reports_power_next_to_area_and_delay(env):
    t = task(env, "multi_4bit")
    env.reset(options={"task": t})
    verdict = play(env, oracle_actions(env), options={"task": t}).verdict
    ppa = level(verdict, "ppa")["metrics"]
    assert ppa["power_uw"] > 0 and ppa["reference_power_uw"] == pytest.approx(ppa["power_uw"])
    assert ppa["power_ratio"] == pytest.approx(1.0) and ppa["beats_reference_ppa"] is False


def test_toggles_are_counted_per_bit_from_the_waveform():
    from hiergym.envs.rtl import power

    vcd = (
        "$scope module hg_dut $end\n$var wire 1 ! clk $end\n$var wire 3 # q [2:0] $end\n"
        "$upscope $end\n$enddefinitions $end\n#0\n0!\nb000 #\n#5\n1!\nb101 #\n#10\n0!\nb100 #\n"
    )
    assert power.toggles(vcd) == {"clk": [2], "q": [2, 0, 1]}


def test_the_bench_report_counts_designs_that_beat_the_reference():
    from hiergym.benchmarks import report

    def row(flag):
        metrics = {} if flag is None else {"beats_reference_ppa": flag}
        return {"verdict": {"levels": [{"name": "ppa", "passed": True, "metrics": metrics}]}}

    assert report._beats_reference([row(True), row(False), row(True)]) == 2
    assert report._beats_reference([row(None)]) is None
