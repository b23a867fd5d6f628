"""PPA is a property of the circuit, not of how it is written: every harmless rewrite of the
reference keeps full PPA credit (and never "beats" it), while a clearly worse design still scores
below 1."""

from __future__ import annotations

import copy
import json
import random

import gymnasium as gym
import pytest

from hiergym.envs.rtl import attacks, oracle, ppa, tasks, toolchain, tools
from hiergym.envs.rtl.toolchain import Limits
from hiergym.envs.rtl.verifier import PPALevel
from hiergym.envs.rtl.verilog import rename_modules
from hiergym.envs.tools import ToolCall
from hiergym.rewards.levels import VerifyContext
from hiergym.testing import play

ENV_ID = "hiergym/RTL-v0"

# The defect's task first, then hard and medium problems of every kind (FSMs, memories,
# datapaths, combinational arithmetic).
TASKS = (
    "rtl-uart_tx-cpb4",
    "rtl-fifo-depth4",
    "rtl-traffic_light-g5-y2-r4-min2",
    "rtl-sequence_detector-pattern10010-l5",
    "rtl-alu-w8",
    "rtl-popcount-w16",
    "rtl-mod_counter-n60",
)


@pytest.fixture(scope="module")
def env():
    e = gym.make(ENV_ID, split="train", difficulty="easy")
    yield e
    e.close()


def task_of(env, task_id):
    return tasks.find_task(env.unwrapped.sandbox.db, task_id)


def verdict_of(env, task, code):
    return play(env, [ToolCall("submit", {"code": code})], options={"task": task}).verdict


def ppa_level(verdict):
    return next(lv for lv in verdict["levels"] if lv["name"] == "ppa")


def figures(report):
    return (report["cells"], report["area"], report["delay_ps"])


def twins_of(task):
    designs = dict(ppa.rewrites(task))
    designs["renamed_signals"] = attacks.renamed_signals(task)
    designs["double_negation"] = attacks.double_negation(task)
    return designs


@pytest.mark.parametrize("task_id", TASKS)
def test_equivalent_rewrites_synthesize_to_the_same_figures(env, task_id):
    """The reference inside a wrapper, with its outputs inverted twice or its ports declared in
    reverse order is the same circuit, so it has the same cells, area and delay (before the
    canonical flow: 147 cells / 287 ps against the reference's 142 / 187 on uart_tx-cpb4)."""
    task = task_of(env, task_id)
    reports = {
        name: toolchain.synthesize_design(task, code, Limits())
        for name, code in twins_of(task).items()
    }
    assert all(r["ok"] for r in reports.values()), reports
    ref = figures(reports.pop("reference"))
    assert {name: figures(r) for name, r in reports.items()} == dict.fromkeys(reports, ref)


@pytest.mark.parametrize("task_id", TASKS)
def test_every_twin_keeps_full_ppa_credit_and_does_not_beat_the_reference(env, task_id):
    task = task_of(env, task_id)
    for name, code in twins_of(task).items():
        verdict = verdict_of(env, task, code)
        ppa_result = ppa_level(verdict)
        assert verdict["reward"] == 1.0 and ppa_result["score"] == 1.0, (name, ppa_result)
        assert ppa_result["metrics"]["beats_reference"] is False, (name, ppa_result)
        assert "beats_reference" not in [f["code"] for f in ppa_result["findings"]], name


def _range(width):
    return f"[{width - 1}:0] " if width > 1 else ""


def duplicated_core(task):
    """Two copies of the reference, every output the AND of both: correct (both copies hold the
    same state from reset on) and about twice the area. Synthesis cannot merge the copies: each
    flip-flop's next state depends on its own output, so no two are structurally alike."""
    first, second = oracle.CORE, f"{oracle.CORE}_twin"

    ports = ",\n".join(f"    {p.direction} {_range(p.width)}{p.name}" for p in task.ports)
    outs = [p for p in task.ports if p.direction == "output"]
    wires = "".join(f"    wire {_range(p.width)}a_{p.name}, b_{p.name};\n" for p in outs)

    def inst(module, prefix):
        conns = ", ".join(
            f".{p.name}({prefix}_{p.name})" if p.direction == "output" else f".{p.name}({p.name})"
            for p in task.ports
        )
        return f"    {module} u_{prefix} ({conns});\n"

    body = "".join(f"    assign {p.name} = a_{p.name} & b_{p.name};\n" for p in outs)
    return (
        rename_modules(task.reference, {task.module: first})
        + "\n"
        + rename_modules(task.reference, {task.module: second})
        + f"\nmodule {task.module} (\n{ports}\n);\n{wires}"
        + inst(first, "a")
        + inst(second, "b")
        + body
        + "endmodule\n"
    )


@pytest.mark.parametrize("task_id", ["rtl-uart_tx-cpb4", "rtl-mod_counter-n60"])
def test_a_duplicated_design_is_correct_but_scores_below_one_at_ppa(env, task_id):
    task = task_of(env, task_id)
    verdict = verdict_of(env, task, duplicated_core(task))
    levels = {lv["name"]: lv for lv in verdict["levels"]}
    assert levels["formal"]["passed"] and levels["function"]["passed"], levels
    assert levels["ppa"]["score"] < 0.9 and not levels["ppa"]["passed"], levels["ppa"]
    assert "worse_than_target" in [f["code"] for f in levels["ppa"]["findings"]]
    assert verdict["reward"] < 1.0


# ---- the canonical form itself (no toolchain) ----------------------------------------------


def _netlist():
    """y = (a & b) | ~c, q <= y on clk: a small yosys JSON netlist."""
    return {
        "modules": {
            "TopModule": {
                "ports": {
                    "a": {"direction": "input", "bits": [2]},
                    "b": {"direction": "input", "bits": [3]},
                    "c": {"direction": "input", "bits": [4]},
                    "clk": {"direction": "input", "bits": [5]},
                    "q": {"direction": "output", "bits": [6]},
                },
                "cells": {
                    "$and$1": {
                        "type": "$_AND_",
                        "parameters": {},
                        "attributes": {"src": "x.v:3"},
                        "port_directions": {"A": "input", "B": "input", "Y": "output"},
                        "connections": {"A": [2], "B": [3], "Y": [7]},
                    },
                    "$not$2": {
                        "type": "$_NOT_",
                        "parameters": {},
                        "attributes": {},
                        "port_directions": {"A": "input", "Y": "output"},
                        "connections": {"A": [4], "Y": [8]},
                    },
                    "$or$3": {
                        "type": "$_OR_",
                        "parameters": {},
                        "attributes": {},
                        "port_directions": {"A": "input", "B": "input", "Y": "output"},
                        "connections": {"A": [7], "B": [8], "Y": [9]},
                    },
                    "$dff$4": {
                        "type": "$_DFF_P_",
                        "parameters": {},
                        "attributes": {},
                        "port_directions": {"C": "input", "D": "input", "Q": "output"},
                        "connections": {"C": [5], "D": [9], "Q": [6]},
                    },
                },
                "netnames": {},
            }
        }
    }


def _shuffled(netlist, seed):
    """The same circuit: cells in another order under other names, nets renumbered, the
    operands of the commutative gates swapped, attributes changed."""
    rng = random.Random(seed)
    net = copy.deepcopy(netlist)
    module = net["modules"]["TopModule"]
    ids = sorted(
        {b for c in module["cells"].values() for bs in c["connections"].values() for b in bs}
    )
    fresh = dict(zip(ids, rng.sample(range(100, 1000), len(ids)), strict=True))
    cells = list(module["cells"].values())
    rng.shuffle(cells)
    module["cells"] = {}
    for n, cell in enumerate(cells):
        cell["connections"] = {p: [fresh[b] for b in bs] for p, bs in cell["connections"].items()}
        if cell["type"] in ("$_AND_", "$_OR_") and rng.random() < 0.5:
            conns = cell["connections"]
            conns["A"], conns["B"] = conns["B"], conns["A"]
        cell["attributes"] = {"src": f"other.v:{n}"}
        module["cells"][f"$auto${rng.randrange(10**6)}"] = cell
    for port in module["ports"].values():
        port["bits"] = [fresh[b] for b in port["bits"]]
    module["ports"] = dict(sorted(module["ports"].items(), reverse=True))
    return net


def test_the_canonical_form_ignores_order_names_and_operand_order():
    base = json.dumps(ppa.canonical_netlist(_netlist(), "TopModule"), sort_keys=True)
    for seed in range(8):
        again = ppa.canonical_netlist(_shuffled(_netlist(), seed), "TopModule")
        assert json.dumps(again, sort_keys=True) == base


def test_the_canonical_form_keeps_the_circuit():
    out = ppa.canonical_netlist(_netlist(), "TopModule")["modules"]["TopModule"]
    assert sorted(c["type"] for c in out["cells"].values()) == [
        "$_AND_",
        "$_DFF_P_",
        "$_NOT_",
        "$_OR_",
    ]
    assert sorted(out["ports"]) == ["a", "b", "c", "clk", "q"]
    assert all(c["attributes"] == {} for c in out["cells"].values())
    # A different circuit (an operand moved from the AND to the OR) has another form.
    other = _netlist()
    cells = other["modules"]["TopModule"]["cells"]
    cells["$and$1"]["connections"]["B"] = [4]
    assert ppa.canonical_netlist(other, "TopModule") != ppa.canonical_netlist(
        _netlist(), "TopModule"
    )


def test_double_inversions_and_dead_cells_are_dropped():
    net = _netlist()
    cells = net["modules"]["TopModule"]["cells"]
    # q <= ~~y, and an inverter whose output nothing reads.
    cells["$dff$4"]["connections"]["D"] = [11]
    for name, a, y in (("$not$5", 9, 10), ("$not$6", 10, 11), ("$not$7", 2, 12)):
        cells[name] = {
            "type": "$_NOT_",
            "parameters": {},
            "attributes": {},
            "port_directions": {"A": "input", "Y": "output"},
            "connections": {"A": [a], "Y": [y]},
        }
    assert ppa.canonical_netlist(net, "TopModule") == ppa.canonical_netlist(_netlist(), "TopModule")


# ---- the reference's envelope ----------------------------------------------------------------


def _scored(env, area, delay, envelope=None, target=1.0):
    """The PPA level on a netlist report with these figures (the report's other levels are
    beside the point; the design and task are real, for the figures reported next to PPA)."""
    task = task_of(env, "rtl-uart_tx-cpb4")
    syn = {"ok": True, "area": area, "delay_ps": delay, "cells": 10, "depth": 3}
    syn["reference"] = {"area": 100.0, "delay_ps": 200.0, "cells": 12, "depth": 4}
    if envelope is not None:
        syn["reference_envelope"] = envelope
    ctx = VerifyContext(None, task, {"code": task.reference, "report": {"netlist": syn}})
    return PPALevel(env.unwrapped.sandbox, Limits(), target).check(ctx)


NOISY = {  # the reference's rewrites synthesized 10% apart in cost
    "best": {"area": 100.0, "delay_ps": 200.0, "cells": 12, "depth": 4},
    "worst": {"area": 110.0, "delay_ps": 220.0, "cells": 13, "depth": 4},
    "spread": 0.1,
}


def test_full_credit_at_the_worst_rewrite_beating_only_below_the_best(env):
    at_worst = _scored(env, 110.0, 220.0, NOISY)
    assert at_worst.score == 1.0 and at_worst.passed and not at_worst.metrics["beats_reference"]
    assert at_worst.metrics["reference_spread"] == 0.1
    assert "reference_spread" in [f.code for f in at_worst.findings]
    at_best = _scored(env, 100.0, 200.0, NOISY)
    assert at_best.score == 1.0 and not at_best.metrics["beats_reference"]
    clearly_better = _scored(env, 90.0, 180.0, NOISY)
    assert clearly_better.metrics["beats_reference"]
    assert "beats_reference" in [f.code for f in clearly_better.findings]
    worse = _scored(env, 150.0, 300.0, NOISY)
    assert worse.score < 1.0 and not worse.passed
    # Without an envelope (a cached report from before it), the reference alone is the bar.
    assert _scored(env, 110.0, 220.0).score < 1.0


def test_the_envelope_of_a_problem_is_recorded_and_flat(env):
    """With the canonical flow every rewrite of the reference synthesizes alike: the envelope
    is one point, the spread 0."""
    task = task_of(env, "rtl-uart_tx-cpb4")
    envelope = tools.calibrate(env.unwrapped.sandbox, task, Limits())
    assert envelope["ok"] and set(envelope["variants"]) == set(ppa.rewrites(task))
    assert envelope["spread"] == 0.0 and envelope["worst"] == envelope["best"]
    metrics = ppa_level(verdict_of(env, task, task.reference))["metrics"]
    assert metrics["reference_spread"] == 0.0 and metrics["cost_ratio_to_bar"] == 1.0
