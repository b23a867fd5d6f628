"""Issue 9 for RTL: one circuit for simulation, proof and synthesis; no pay for a wrong design under
any aggregator; transient toolchain results never cached; the RTL hack matrix."""

from __future__ import annotations

import gymnasium as gym
import pytest

from hiergym.envs.rtl import attacks, oracle, tasks, testbench, toolchain
from hiergym.envs.rtl.toolchain import Limits, RunResult
from hiergym.envs.tools import ToolCall
from hiergym.testing import AGGREGATE_NAMES, normalised_reward, play, run_hack_matrix

ENV_ID = "hiergym/RTL-v0"


@pytest.fixture(scope="module")
def env():
    e = gym.make(ENV_ID)
    yield e
    e.close()


def task_of(env, task_id):
    return tasks.find_task(env.unwrapped.sandbox.db, task_id)


def verdict_of(env, task, code):
    base = env.unwrapped
    out = play(env, [ToolCall("submit", {"code": code})], options={"task": task})
    return out.verdict, base.verdict


def level(verdict, name):
    return next(lv for lv in verdict["levels"] if lv["name"] == name)


def codes(verdict, name):
    return [f["code"] for f in level(verdict, name)["findings"]]


def worst_case(levels, task):
    return max(normalised_reward(agg, levels, task) for agg in AGGREGATE_NAMES)


# ---- class B: refused at syntax -------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "finding", "says"),
    [
        (attacks.x_split, "forbidden_construct", "case equality"),
        (attacks.undriven_select, "undriven_net", "driven by nothing"),
        (attacks.isunknown_split, "forbidden_construct", "$isunknown exists only in simulation"),
        (attacks.time_split, "forbidden_construct", "$time exists only in simulation"),
    ],
)
def test_designs_the_three_stages_read_differently_fail_at_syntax(env, make, finding, says):
    """Before: each simulated and proved as the reference while synthesis kept the constant
    branch (area 0, beats_reference, reward 1.0)."""
    task = task_of(env, "rtl-adder-w16")
    verdict, full = verdict_of(env, task, make(task))
    assert verdict["first_failed"] == "syntax" and codes(verdict, "syntax") == [finding]
    assert says in level(verdict, "syntax")["findings"][0]["message"]
    assert worst_case(full.levels, task) <= attacks.SYNTAX_CEILING + 1e-9


def test_an_undriven_net_is_found_by_yosys_check_not_a_pattern(env):
    """Whatever the expression around it: the net is read and nothing drives it."""
    task = task_of(env, "rtl-mux2-w8")
    code = (
        "module TopModule(input [7:0] a, input [7:0] b, input sel, output [7:0] y);\n"
        "    wire [7:0] spare;\n"
        "    assign y = sel ? b : (a | spare);\n"
        "endmodule\n"
    )
    report = toolchain.compile_design(task, code, Limits())
    assert not report["ok"] and report["code"] == "undriven_net"
    assert "'TopModule.spare'" in report["messages"]


def test_an_implicitly_declared_net_fails_at_syntax(env):
    task = task_of(env, "rtl-mux2-w8")
    code = (
        "module TopModule(input [7:0] a, input [7:0] b, input sel, output [7:0] y);\n"
        "    assign pick = sel;\n"
        "    assign y = pick ? b : a;\n"
        "endmodule\n"
    )
    verdict, _ = verdict_of(env, task, code)
    assert verdict["first_failed"] == "syntax" and codes(verdict, "syntax") == ["implicit_wire"]


def test_case_equality_is_refused_but_a_comment_about_it_is_not(env):
    task = task_of(env, "rtl-mux2-w8")
    code = task.reference.replace("endmodule", "    // never use === in a design\nendmodule")
    assert toolchain.compile_design(task, code, Limits())["ok"]


# ---- class B: power-on values and resets ---------------------------------------------------


@pytest.mark.parametrize("task_id", ["rtl-counter-w8", "rtl-counter-w16"])
def test_a_reset_that_clears_only_some_bits_is_not_proven(env, task_id):
    """Before: the bounded proof honoured `initial` and simulation reset only in its first half,
    so this counter passed every level. The proof now drops initial values."""
    task = task_of(env, task_id)
    width = next(p.width for p in task.ports if p.name == "q")
    code = attacks.partial_reset_counter(width)
    proof = toolchain.prove_equivalence(task, code, Limits())
    assert proof["status"] == "counterexample"
    verdict, full = verdict_of(env, task, code)
    assert verdict["first_failed"] in ("function", "formal")
    assert worst_case(full.levels, task) <= attacks.FORMAL_CEILING + 1e-9


def test_the_partial_reset_counter_fails_in_simulation_through_late_resets(env):
    """Before: no reset in the second half, so the high byte of a 16-bit counter (0 from
    `initial`, never reached while early resets kept the count low) never showed."""
    task = task_of(env, "rtl-counter-w16")
    report = toolchain.simulate_design(task, attacks.partial_reset_counter(16), Limits())
    assert report["status"] == "completed" and not report["ok"]
    first = report["mismatches"][0]["cycle"]
    assert first > task.samples - task.samples // testbench.LATE_RESET_SHARE - 1


def test_resets_come_at_random_points_through_the_whole_run(env):
    task = task_of(env, "rtl-counter-w8")
    rows = testbench.stimulus(task)
    k = [p.name for p in testbench.input_ports(task)].index("rst")
    resets = [i for i, r in enumerate(rows) if r[k] == task.reset_active]
    n = len(rows)
    assert resets[:2] == [0, 1]
    assert any(n // 4 < i < n // 2 for i in resets), "random resets in the first half"
    assert any(i > n - n // testbench.LATE_RESET_SHARE - 1 for i in resets), "late resets"
    gaps = [b - a for a, b in zip(resets, resets[1:], strict=False)]
    assert max(gaps) >= 2**8 / 0.75, "one stretch long enough to walk the counter's range"
    assert testbench.stimulus(task) == rows, "seeded: the same every time"


def test_a_reset_honoured_only_once_fails(env):
    task = task_of(env, "rtl-shift_register-w8")
    verdict, full = verdict_of(env, task, attacks.reset_once(task))
    assert verdict["first_failed"] == "function"
    assert worst_case(full.levels, task) <= attacks.FUNCTION_CEILING + 1e-9


# ---- class B: the netlist is proven --------------------------------------------------------


@pytest.mark.parametrize("task_id", ["rtl-adder-w4", "rtl-mux4-w8", "rtl-counter-w4"])
def test_the_synthesized_netlist_of_the_reference_is_proven(env, task_id):
    task = task_of(env, task_id)
    report = toolchain.synthesize_and_prove(task, task.reference, Limits())
    assert report["ok"] and report["netlist_proof"]["status"] == "proven"
    assert report["area"] > 0


def test_an_undecided_netlist_proof_is_decided_by_the_rule_and_cacheable(env):
    """ABC cannot decide the restructured 32-bit popcount netlist within its conflict budget (the
    same answer on every machine): the documented rule decides it by an extended simulation of
    the netlist, cacheable, and the oracle passes formal."""
    task = task_of(env, "rtl-popcount-w32")
    report = toolchain.synthesize_and_prove(task, task.reference, Limits())
    proof = report["netlist_proof"]
    assert proof["status"] in ("proven", "simulated")
    if proof["status"] == "simulated":
        assert proof["decided_by"] == "extended_simulation"
        assert proof["simulation"]["samples"] >= toolchain.EXTENDED_MIN_SAMPLES
    assert not toolchain.is_transient(report)
    verdict, _ = verdict_of(env, task, task.reference)
    assert verdict["reward"] == 1.0


def test_a_netlist_synthesis_made_differently_from_the_rtl_fails_formal(env):
    """An x select (no undriven net, no case equality): simulation takes the else branch (the
    reference); here synthesis may pick either. The formal level proves both circuits."""
    task = task_of(env, "rtl-adder-w4")
    body = (
        "    wire u = 1'bx;\n    reg [3:0] s; reg co;\n"
        "    always @(*) if (u) begin s = 4'd0; co = 1'b0; end\n"
        "                else begin s = core_sum; co = core_cout; end\n"
        "    assign sum = s; assign cout = co;\n"
    )
    verdict, full = verdict_of(env, task, oracle.wrap(task, body))
    assert level(verdict, "function")["passed"]
    assert verdict["first_failed"] == "formal"
    assert level(verdict, "ppa")["score"] == 0.0
    assert worst_case(full.levels, task) <= attacks.FORMAL_CEILING + 1e-9


def test_the_netlist_proof_catches_a_netlist_that_differs(env, monkeypatch):
    """The proof reads the netlist synthesis wrote, not the design: swap it for a wrong one."""
    task = task_of(env, "rtl-adder-w4")
    real = toolchain._synthesis_back

    def sabotaged(task, limits, wd, nonce, front, *, netlist):
        report = real(task, limits, wd, nonce, front, netlist=netlist)
        assert (wd.path / "netlist.v").read_text().strip()
        (wd.path / "netlist.v").write_text(attacks.constant_output(task))
        return report

    monkeypatch.setattr(toolchain, "_synthesis_back", sabotaged)
    report = toolchain.synthesize_and_prove(task, task.reference, Limits())
    assert report["netlist_proof"]["status"] == "counterexample"


# ---- class D: no pay for a wrong design ----------------------------------------------------


def test_a_constant_adder_earns_nothing_for_ppa_under_any_aggregator(env):
    """Before: 0.60 under weighted (PPA scored a constant's zero area)."""
    task = task_of(env, "rtl-adder-w16")
    verdict, full = verdict_of(env, task, attacks.constant_output(task))
    assert level(verdict, "ppa")["score"] == 0.0
    assert codes(verdict, "ppa") == ["not_applicable"]
    assert level(verdict, "function")["score"] == 0.0
    assert level(verdict, "function")["metrics"]["matching_share"] > 0
    assert worst_case(full.levels, task) <= attacks.FUNCTION_CEILING + 1e-9
    assert normalised_reward("weighted", full.levels, task) <= 0.4 + 1e-9


def test_a_sibling_problems_design_earns_no_partial_function_credit(env):
    """Before: a rising-edge detector on the any-edge problem matched 75% of samples and scored
    0.58 (gated) to 0.8 (logsigmoid)."""
    task = task_of(env, "rtl-edge_detector-kindany")
    other = task_of(env, "rtl-edge_detector-kindrising")
    verdict, full = verdict_of(env, task, other.reference)
    assert verdict["first_failed"] == "function" and level(verdict, "function")["score"] == 0.0
    assert worst_case(full.levels, task) <= 0.4 + 1e-9


# ---- transient results are not cached ------------------------------------------------------


def test_a_timeout_is_reported_but_not_cached_and_a_rerun_succeeds(env, monkeypatch, tmp_path):
    """A load spike must not become a permanent verdict: the first run times out (forced), the
    second, with the same code and limits, is computed again and passes."""
    task = task_of(env, "rtl-decoder-n2")
    code = task.reference + f"\n// {tmp_path}: a variant nothing has cached yet\n"
    real_run = toolchain.run
    forced = {"left": 1}

    def flaky(argv, cwd, timeout, limits):
        if argv[0] == "vvp" and forced["left"]:
            forced["left"] -= 1
            return RunResult(-9, "", "", True, timeout)
        return real_run(argv, cwd, timeout, limits)

    monkeypatch.setattr(toolchain, "run", flaky)
    base = env.unwrapped
    base.reset(options={"task": task, "max_turns": 4})
    obs, *_ = base.step(ToolCall("simulate", {"code": code}))
    assert "not cached" in obs and "timeout" in obs
    obs, *_ = base.step(ToolCall("simulate", {"code": code}))
    assert '"status": "completed"' in obs.replace("'", '"') or '"ok": true' in obs
    _, reward, *_ = base.step(ToolCall("submit", {"code": code}))
    assert reward == 1.0


def test_a_verdict_under_a_forced_timeout_is_recomputed_next_time(monkeypatch, tmp_path):
    # a tool cache of its own: verdict stages are cached by circuit (another source of the
    # reference's circuit, such as the reference with a comment, reuses an earlier test's proof)
    monkeypatch.setenv("HIERGYM_DB_URL", f"sqlite:///{tmp_path}/cache.sqlite")
    env = gym.make(ENV_ID)
    task = task_of(env, "rtl-decoder-n3")
    code = task.reference + f"\n// {tmp_path}: a variant for the verdict\n"
    real_run = toolchain.run
    forced = {"left": 1}

    def flaky(argv, cwd, timeout, limits):
        rtl_proof = "proof.ys" in argv and not (cwd / "netlist.v").exists()
        if argv[0] == "yosys" and rtl_proof and forced["left"]:
            forced["left"] -= 1
            return RunResult(-9, "", "", True, timeout)
        return real_run(argv, cwd, timeout, limits)

    monkeypatch.setattr(toolchain, "run", flaky)
    first, _ = verdict_of(env, task, code)
    # The open proof is decided by the documented rule (a correct design: passed, recorded) and,
    # being the outcome of a time limit, not cached: the next verdict proves it.
    assert codes(first, "formal") == ["decided_by_simulation"]
    second, _ = verdict_of(env, task, code)
    assert second["reward"] == 1.0 and codes(second, "formal") == []
    env.close()


# ---- the hack matrix -----------------------------------------------------------------------


def test_the_rtl_hack_matrix_holds_for_outcome_rewards():
    rows = check_hack_matrix_outcome(ENV_ID)
    names = {r.name for r in rows}
    assert {"x_split", "time_split", "partial_reset", "constant_output"} <= names
    assert {"renamed_signals", "reformatted", "fenced_with_prose", "double_negation"} <= names


def check_hack_matrix_outcome(env_id):
    """check_hack_matrix, outcome columns only (the +process columns are the wrapper's, in core)."""
    rows = run_hack_matrix(env_id, seeds=(0, 1))
    bad = [(r.kind, r.name, r.task_id, r.breaches(process=False)) for r in rows]
    bad = [b for b in bad if b[3]]
    assert not bad, bad
    return rows
