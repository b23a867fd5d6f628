"""The RTL env on real iverilog and yosys: levels, reward hacks, tools, cache, determinism."""

from __future__ import annotations

import dataclasses
import json

import gymnasium as gym
import pytest

from hiergym.envs.rtl import oracle, tasks, toolchain
from hiergym.envs.rtl.toolchain import Limits
from hiergym.envs.rtl.verifier import PPALevel
from hiergym.envs.tools import ToolCall
from hiergym.rewards.levels import VerifyContext
from hiergym.testing import oracle_actions, play

from .designs import trapdoor_comparator

ENV_ID = "hiergym/RTL-v0"


@pytest.fixture(scope="module")
def env():
    e = gym.make(ENV_ID, split="train", difficulty="easy")
    yield e
    e.close()


def task_of(env, task_id):
    return tasks.find_task(env.unwrapped.sandbox.db, task_id)


def submit(env, task, code, **options):
    """Play one submission of ``code`` for ``task``; the verdict as a dict."""
    out = play(env, [ToolCall("submit", {"code": code})], options={"task": task, **options})
    return out.verdict


def level(verdict, name):
    return next(lv for lv in verdict["levels"] if lv["name"] == name)


def codes(verdict, name):
    return [f["code"] for f in level(verdict, name)["findings"]]


# ---- the oracle and the toolchain path ----------------------------------------------------


def test_oracle_reaches_one_through_every_tool(env):
    env.reset(seed=0)
    out = play(env, oracle_actions(env), seed=0)
    assert out.verdict["reward"] == 1.0 and out.terminated
    compiled, simulated, synthesized = (json.loads(o) for o in out.observations[1:4])
    assert compiled["ok"] and compiled["category"] == "ok"
    assert simulated["ok"] and simulated["samples"] >= 1000 and simulated["score"] == 1.0
    assert synthesized["area"] > 0 and synthesized["cells"] > 0 and "reference" in synthesized
    assert level(out.verdict, "formal")["metrics"]["status"] == "proven"


def test_the_oracle_reaches_one_on_every_problem(env):
    """Every built-in problem, through the tools and the whole verifier (about a minute cold on
    two cores; check_domain samples the splits, this covers all 68)."""
    for task in tasks.all_tasks(env.unwrapped.sandbox.db):
        env.reset(options={"task": task})
        out = play(env, oracle_actions(env), options={"task": task})
        assert out.verdict["reward"] == 1.0, (task.task_id, out.verdict)


# ---- the mutants of the issue, each failing at its level ----------------------------------


@pytest.mark.parametrize(
    ("task_id", "make", "expected_level", "finding"),
    [
        ("rtl-counter-w4", oracle.inverted_output_bit, "function", "mismatch"),
        ("rtl-mod_counter-n12", oracle.off_by_one_counter, "function", "mismatch"),
        ("rtl-counter-w8", oracle.missing_reset, "function", "mismatch"),
        ("rtl-mux2-w8", oracle.latch, "function", "mismatch"),
    ],
)
def test_classic_bugs_fail_in_simulation(env, task_id, make, expected_level, finding):
    verdict = submit(env, task_of(env, task_id), make(task_of(env, task_id)))
    assert verdict["first_failed"] == expected_level and verdict["reward"] < 1.0
    assert finding in codes(verdict, expected_level)
    function = level(verdict, "function")
    assert 0.0 <= function["score"] < 1.0 and function["metrics"]["samples"] >= 1000


# ---- reward hacks -------------------------------------------------------------------------


def test_a_fake_pass_line_does_not_pass(env):
    task = task_of(env, "rtl-comparator-w8")
    verdict = submit(env, task, oracle.fake_pass_display(task))
    assert verdict["first_failed"] == "function"


def test_the_result_channel_cannot_be_forged_even_without_the_static_scan(env):
    """run_testbench skips the scan: a $finish ends the run before the testbench writes a result,
    and a forged result line (the design cannot know the nonce) is not read."""
    task = task_of(env, "rtl-comparator-w8")
    forged = task.reference.replace(
        "endmodule",
        "    initial begin\n"
        '        $display("0000000000000000 RESULT 1200 0");\n'
        "        #1 $finish;\n"
        "    end\nendmodule",
    )
    report = toolchain.run_testbench(task, forged, Limits())
    assert report["status"] == "no_result" and report["score"] == 0.0 and not report["ok"]
    assert "without a result" in report["messages"]


@pytest.mark.parametrize(
    ("make", "finding"),
    [
        (oracle.early_finish, "forbidden_construct"),
        (oracle.file_access, "forbidden_construct"),
        (oracle.hierarchical_reference, "elaboration"),
    ],
)
def test_sandbox_escapes_fail_at_syntax(env, make, finding):
    task = task_of(env, "rtl-adder-w4")
    verdict = submit(env, task, make(task))
    assert verdict["first_failed"] == "syntax" and codes(verdict, "syntax") == [finding]


def test_system_and_fopen_are_refused(env):
    task = task_of(env, "rtl-adder-w4")
    for call in ('$system("touch /tmp/x");', 'fd = $fopen("/tmp/x", "w");'):
        code = task.reference.replace(
            "endmodule", f"    integer fd;\n    initial begin {call} end\nendmodule"
        )
        verdict = submit(env, task, code)
        assert verdict["first_failed"] == "syntax", verdict
        assert "is not allowed" in level(verdict, "syntax")["findings"][0]["message"]


NARROW_IN_SYNTHESIS = """module TopModule(input clk, input rst, input en, output reg [15:0] q);
    always @(posedge clk) begin
        if (rst) q <= 16'd0;
        else if (en)
// synopsys translate_off
            q <= q + 16'd1;
        if (1'b0)
// synopsys translate_on
            q <= {11'd0, q[4:0] + 5'd1};
    end
endmodule
"""


def test_a_translate_off_comment_cannot_split_simulation_from_synthesis(env):
    """iverilog simulates a correct 16-bit counter; yosys (prover and synthesis) skipped it and saw
    a 5-bit one, right for the 20 cycles of the bounded proof. It passed every level and "beat"
    the reference by a factor of three before the scan refused synthesis pragmas."""
    task = task_of(env, "rtl-counter-w16")
    verdict = submit(env, task, NARROW_IN_SYNTHESIS)
    assert verdict["first_failed"] == "syntax" and verdict["reward"] < 1.0
    assert codes(verdict, "syntax") == ["forbidden_construct"]
    assert "translate_off" in level(verdict, "syntax")["findings"][0]["message"]


def _boxed_adder(attribute):
    return f"""(* {attribute} *)
module Helper(input [15:0] a, input [15:0] b, input cin, output [16:0] s);
    assign s = a + b + cin;
endmodule
module TopModule(input [15:0] a, input [15:0] b, input cin, output [15:0] sum, output cout);
    Helper h(.a(a), .b(b), .cin(cin), .s({{cout, sum}}));
endmodule
"""


def test_an_attribute_cannot_hide_logic_from_synthesis(env):
    """A `(* whitebox *)` helper is simulated and proven in full, but synthesis keeps it as an
    empty box: it passed every level with area 0, delay 0 and beats_reference."""
    task = task_of(env, "rtl-adder-w16")
    verdict = submit(env, task, _boxed_adder("whitebox"))
    assert verdict["first_failed"] == "syntax" and codes(verdict, "syntax") == [
        "forbidden_construct"
    ]
    assert "attributes" in level(verdict, "syntax")["findings"][0]["message"]


@pytest.mark.parametrize("attribute", ["whitebox", "blackbox"])
def test_cells_outside_the_library_fail_ppa(env, attribute):
    """Past the scan (called directly), the netlist still holds a `Helper` cell the library does
    not know: its area and delay are unknown, so the PPA level fails instead of counting 0."""
    task = task_of(env, "rtl-adder-w16")
    syn = toolchain.synthesize_design(task, _boxed_adder(attribute), Limits())
    assert syn["ok"] and syn["unmapped_cells"] == ["Helper"]
    syn["reference"] = {"area": 97.9, "delay_ps": 536.0, "cells": 80, "depth": 17}
    ctx = VerifyContext(None, None, {"code": "x", "report": {"netlist": syn}})
    result = PPALevel(None, Limits()).check(ctx)
    assert not result.passed and result.score == 0.0
    assert [f.code for f in result.findings] == ["unmapped_cells"]


def _narrow_counter(width, bits):
    """A ``width``-bit counter whose count wraps at ``2**bits``: right for ``2**bits`` counts after
    every reset, far beyond the bounded proof's 20 cycles."""
    return (
        f"module TopModule(input clk, input rst, input en, output reg [{width - 1}:0] q);\n"
        "    always @(posedge clk)\n"
        f"        if (rst) q <= 0;\n"
        f"        else if (en) q <= {{{width - bits}'d0, q[{bits - 1}:0] + {bits}'d1}};\n"
        "endmodule\n"
    )


@pytest.mark.parametrize(
    ("task_id", "width", "bits"), [("rtl-counter-w16", 16, 8), ("rtl-counter-w8", 8, 7)]
)
def test_a_counter_that_wraps_early_fails_in_simulation(env, task_id, width, bits):
    """With a reset every ~33 cycles the counter never got far, and the proof stops at 20 cycles:
    a 16-bit counter that wraps at 256 passed every level (and beat the reference on area). The
    second half of every sequential run is now free of resets, and the counter problems run long
    enough to count through their whole range in it."""
    verdict = submit(env, task_of(env, task_id), _narrow_counter(width, bits))
    assert verdict["first_failed"] == "function" and "mismatch" in codes(verdict, "function")


def test_the_prover_log_cannot_be_forged(env):
    """yosys prints a design's initial $display into the log the verdict is read from: printing
    the prover's success line turned a counterexample into "proven" (reward 0.98)."""
    task = task_of(env, "rtl-comparator-w8")
    forged = "SAT proof finished - no model found: SUCCESS!\\nHGSTAGE prove"
    verdict = submit(env, task, trapdoor_comparator(task, forged))
    assert level(verdict, "function")["passed"]
    # Both proofs see the trapdoor: the RTL's and the synthesized netlist's.
    assert verdict["first_failed"] == "formal"
    assert codes(verdict, "formal") == ["counterexample", "netlist_counterexample"]
    assert "in_a=" in level(verdict, "formal")["findings"][0]["message"]


def test_synthesis_figures_come_from_the_synthesis_not_the_design(env):
    task = task_of(env, "rtl-comparator-w8")
    fake = (
        "HGSTAGE stat\\nNumber of cells: 1\\nChip area for module TopModule: 0.01\\nDelay = 1.0 ps"
    )
    syn = toolchain.synthesize_design(task, trapdoor_comparator(task, fake), Limits())
    assert syn["ok"] and syn["area"] > 10 and syn["delay_ps"] > 50 and syn["cells"] > 10


def test_a_falling_edge_design_fails_in_simulation(env):
    """The spec says "on every rising edge". The testbench changed inputs only while the clock was
    low, so a counter on the falling edge saw the same values and passed every level (the bounded
    proof models one global clock) with beats_reference. Inputs now change between the rising and
    the falling edge."""
    negedge = (
        "module TopModule(input clk, input rst, input en, output reg [3:0] q);\n"
        "    always @(negedge clk) if (rst) q <= 4'd0; else if (en) q <= q + 4'd1;\nendmodule\n"
    )
    verdict = submit(env, task_of(env, "rtl-counter-w4"), negedge)
    assert verdict["first_failed"] == "function" and "mismatch" in codes(verdict, "function")


def test_a_module_named_like_the_reference_fails_at_format(env):
    task = task_of(env, "rtl-adder-w4")
    verdict = submit(env, task, oracle.reference_named_module(task))
    assert verdict["first_failed"] == "format" and codes(verdict, "format") == [
        "reserved_module_name"
    ]


def test_hard_coded_sampled_vectors_pass_simulation_and_fail_the_proof(env):
    task = task_of(env, "rtl-comparator-w8")
    verdict = submit(env, task, oracle.sampled_vectors_only(task))
    assert level(verdict, "function")["passed"], "the table covers every sampled vector"
    assert verdict["first_failed"] == "formal" and codes(verdict, "formal")[0] == "counterexample"
    assert "in_a=" in level(verdict, "formal")["findings"][0]["message"]


def test_an_endless_loop_times_out_at_function():
    env = gym.make(ENV_ID, limits={"simulate_s": 1.0})
    task = task_of(env, "rtl-adder-w4")
    verdict = submit(env, task, oracle.infinite_loop(task))
    assert verdict["first_failed"] == "function" and "timeout" in codes(verdict, "function")
    assert level(verdict, "function")["score"] == 0.0
    env.close()


def test_an_inconclusive_proof_is_decided_by_the_documented_rule():
    """No silent 0.5: an open proof is decided by the extended simulation, and says so. (The
    problem's calibrated budget is a floor under the env's limits, so it is cleared here to make
    the proof run out of time.)"""
    env = gym.make(ENV_ID, limits={"formal_s": 0.01})
    task = dataclasses.replace(task_of(env, "rtl-counter-w4"), formal_s=None)
    verdict = submit(env, task, task.reference)
    formal = level(verdict, "formal")
    assert formal["passed"] and formal["score"] == 1.0
    assert codes(verdict, "formal") == ["decided_by_simulation", "netlist_decided_by_simulation"]
    wrong = submit(env, task, oracle.inverted_output_bit(task))
    assert wrong["reward"] < 1.0
    env.close()


# ---- compile classification and bad input ------------------------------------------------


def test_compile_failures_are_classified(env):
    task = task_of(env, "rtl-adder-w4")
    limits = Limits()
    syntax = toolchain.compile_design(task, task.reference.replace(";", "", 1), limits)
    assert syntax["category"] == "syntax" and "design.v" in syntax["messages"]
    unknown = task.reference.replace("assign {cout, sum} = a + b + cin;", "Adder u(a, b);")
    assert toolchain.compile_design(task, unknown, limits)["category"] == "elaboration"
    narrow = task.reference.replace("output [3:0] sum", "output [2:0] sum")
    report = toolchain.compile_design(task, narrow, limits)
    assert report["category"] == "format" and "4 bits wide" in report["messages"]
    wide_param = "module TopModule #(parameter W = 3) (input [3:0] a, b, input cin,\n"
    wide_param += (
        "    output [W-1:0] sum, output cout);\n  assign {cout, sum} = a + b + cin;\nendmodule\n"
    )
    report = toolchain.compile_design(task, wide_param, limits)
    # The front-end elaborates parameters: a parameterised width is checked at format already.
    assert report["category"] == "format" and "must be 4 bits wide, not 3" in report["messages"]
    refused = toolchain.compile_design(task, oracle.early_finish(task), limits)
    assert refused["category"] == "unsupported" and refused["code"] == "forbidden_construct"
    slow = toolchain.compile_design(task, task.reference, Limits(compile_s=0.001))
    assert slow["category"] == "timeout" and not slow["ok"]


def test_bad_actions_are_observations_and_the_episode_goes_on(env):
    env.reset(seed=1)
    for action, expected in [
        ('{"name": "simulate", "arguments": {"code": 42}}', "code must be string"),
        ('{"name": "simulat", "arguments": {"code": "x"}}', "did you mean 'simulate'"),
        ("{not json", "not valid JSON"),
    ]:
        obs, reward, terminated, truncated, _ = env.step(action)
        assert obs.startswith("error:") and expected in obs and not terminated
    obs, *_ = env.step(ToolCall("compile", {"code": "module top; endmodule"}))
    assert json.loads(obs)["category"] == "format"
    obs, *_ = env.step(ToolCall("compile", {"code": "x" * 70_000}))
    assert "the cap is 64,000" in json.loads(obs)["messages"]


def test_code_that_is_not_valid_unicode_is_a_format_error(env):
    """JSON can carry a lone surrogate ("\\ud800"), which no file can hold: the tools reported an
    internal failure and submit raised a VerifierError out of env.step. Core now refuses such a
    value before any tool sees it; a submit carrying one is no submission (format fails)."""
    task = task_of(env, "rtl-adder-w4")
    code = task.reference.replace("endmodule", "// \ud800\nendmodule")
    env.reset(options={"task": task})
    for name in ("compile", "simulate", "synthesize"):
        obs, *_ = env.step(ToolCall(name, {"code": code}))
        assert "not valid Unicode" in obs and "internally" not in obs, (name, obs)
    verdict = submit(env, task, code, max_turns=1)
    assert verdict["first_failed"] == "format" and codes(verdict, "format") == ["no_submission"]


def test_tool_temp_files_stay_in_the_run_directory(tmp_path):
    """yosys puts ABC's files in $TMPDIR (default /tmp) and removes them itself, unless the run is
    killed at its timeout: /tmp filled with yosys-abc-* directories. Every run now gets its own
    directory as TMPDIR, removed with it."""
    result = toolchain.run(["sh", "-c", 'echo "$TMPDIR"'], tmp_path, 10.0, Limits())
    assert result.stdout.strip() == str(tmp_path)
    scrubbed = toolchain._scrub("ERROR in /tmp/hiergym-rtl-x1/yosys-abc-a1B2c3/input.blif", "")
    assert scrubbed == "ERROR in <abc>/input.blif"


def test_missing_tools_make_gym_make_fail_with_install_instructions(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(toolchain.ToolchainMissing, match="apt-get install iverilog yosys"):
        gym.make(ENV_ID)


# ---- PPA ----------------------------------------------------------------------------------


def _ppa(area, delay, target=1.0):
    syn = {"ok": True, "area": area, "delay_ps": delay, "cells": 10, "depth": 3}
    syn["reference"] = {"area": 100.0, "delay_ps": 200.0, "cells": 12, "depth": 4}
    ctx = VerifyContext(None, None, {"code": "x", "report": {"netlist": syn}})
    return PPALevel(None, Limits(), target).check(ctx)


def test_ppa_rewards_improvement_continuously():
    at_reference = _ppa(100.0, 200.0)
    assert at_reference.score == 1.0 and at_reference.passed
    assert not at_reference.metrics["beats_reference"]
    better = _ppa(80.0, 150.0)
    assert better.score == 1.0 and better.metrics["beats_reference"]
    assert [f.code for f in better.findings] == ["beats_reference"]
    within_noise = _ppa(99.5, 199.0)  # equivalent netlists differ by ABC's ~1% noise
    assert within_noise.score == 1.0 and not within_noise.metrics["beats_reference"]
    worse, much_worse = _ppa(150.0, 300.0), _ppa(300.0, 600.0)
    assert 0 < much_worse.score < worse.score < 1.0 and not worse.passed
    # Asking for a 20% improvement: the reference no longer earns full marks, better designs earn more.
    assert _ppa(100.0, 200.0, 0.8).score < _ppa(80.0, 150.0, 0.8).score <= 1.0


def test_a_ppa_target_below_one_asks_for_an_improvement():
    env = gym.make(ENV_ID, ppa_target=0.9)
    env.reset(seed=0)
    verdict = play(env, oracle_actions(env), seed=0).verdict
    ppa = level(verdict, "ppa")
    assert ppa["score"] == pytest.approx(0.9 * 1.02) and codes(verdict, "ppa") == [
        "worse_than_target"
    ]
    assert verdict["first_failed"] == "ppa" and verdict["reward"] < 1.0
    with pytest.raises(ValueError, match="unknown limits \\['simulate'\\]; did you mean"):
        gym.make(ENV_ID, limits={"simulate": 3})


def test_synthesize_reports_ppa_next_to_the_reference(env):
    task = task_of(env, "rtl-counter-w8")
    env.reset(options={"task": task})
    obs, *_ = env.step(ToolCall("synthesize", {"code": task.reference}))
    report = json.loads(obs)
    assert report["ok"] and report["sequential_cells"] == 8 and report["delay_ps"] > 0
    assert report["reference"]["area"] == report["area"] and report["depth"] > 0


def test_a_design_without_cells_synthesizes_to_zero_area(env):
    task = task_of(env, "rtl-shift_register-w4")
    constant = "module TopModule(input clk, input rst, input en, input din, output [3:0] q);\n"
    constant += "  assign q = 4'd0;\nendmodule\n"
    report = toolchain.synthesize_design(task, constant, Limits())
    assert report["ok"] and report["cells"] == 0 and report["area"] == 0.0
    assert report["delay_ps"] == 0.0


# ---- cache and determinism ----------------------------------------------------------------


def test_repeated_calls_and_the_verdict_reuse_the_cache(env, tmp_path):
    base = env.unwrapped
    task = task_of(env, "rtl-decoder-n3")
    code = task.reference + f"\n// {tmp_path}: a variant nothing has cached yet\n"
    base.reset(options={"task": task, "max_turns": 10})
    base.step(ToolCall("simulate", {"code": code}))
    computed = base.sandbox.stats["computed"]
    base.step(ToolCall("simulate", {"code": code}))
    assert base.sandbox.stats["computed"] == computed, "a repeat must not rerun the toolchain"
    base.step(ToolCall("synthesize", {"code": code}))
    after_tools = base.sandbox.stats["computed"]
    _, reward, *_ = base.step(ToolCall("submit", {"code": code}))
    # Computed: submit itself, compile, the RTL proof and the netlist proof (which synthesizes
    # again: PPA is measured on the netlist it proves); simulate came from the cache.
    assert base.sandbox.stats["computed"] - after_tools == 4 and reward == 1.0
    cache = base.sandbox.cache
    scope = toolchain.scope(task, base.limits)
    key = base.sandbox.key(ToolCall("simulate", {"code": code}), scope)
    assert cache.get(key)["ok"], "the persistent ToolCache holds it for other processes"
    proof = base.sandbox.lookup("prove_equivalence", {"code": code}, scope)
    assert proof["status"] == "proven"
    assert base.sandbox.lookup("prove_equivalence", {"code": code + " "}, scope) is None


def test_task_round_trips_through_json(env):
    task = env.unwrapped.tasks.tasks[0]
    assert tasks.RTLTask.from_json(task.to_json()) == task
