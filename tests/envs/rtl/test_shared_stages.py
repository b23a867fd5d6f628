"""Issue 12 (RTL verdict speed): the stages that read only a function of the source are kept under
a hash of what they read, so another source of an already verified circuit reuses them:

* synthesis after the canonical netlist, and the netlist's proof, under the canonical netlist's
  hash (``synthesize_canonical``, ``synthesize_and_prove_canonical``);
* the proof engines on the design as written, under the hash of the design as yosys reads it
  (``prove_equivalence_elaborated``); the decision rule's simulation always reads the source.

The shared path must give the verdict the plain path gives, on passing and failing designs."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from hiergym.envs.rtl import oracle, toolchain, tools
from hiergym.envs.rtl.toolchain import Limits
from hiergym.envs.tools import ToolCall
from hiergym.testing import play

from .designs import task_of, trapdoor_comparator


class DictMemo:
    """A :data:`toolchain.Memo` in a dict, counting what it computed; hands out JSON copies, as
    the sandbox's cache does."""

    def __init__(self):
        self.store: dict[tuple[str, str], str] = {}
        self.computed: Counter[str] = Counter()

    def __call__(self, name, args, compute):
        key = (name, json.dumps(args, sort_keys=True))
        if key not in self.store:
            self.computed[name] += 1
            self.store[key] = json.dumps(compute())
        return json.loads(self.store[key])


def test_another_source_of_a_circuit_reuses_synthesis_and_the_proof_engines(env, tmp_path):
    task = task_of(env, "rtl-counter-w8")
    limits = Limits()
    memo = DictMemo()
    first = task.reference + f"\n// {tmp_path} first\n"
    trailing = task.reference + f"\n// {tmp_path} another comment\n"
    leading = f"// {tmp_path}: a line above moves every source position\n" + task.reference

    for code in (first, trailing, leading):
        toolchain.synthesize_and_prove(task, code, limits, memo)
        toolchain.prove_equivalence(task, code, limits, memo)
    # One synthesis for the circuit; the RTL proof again only for the source yosys reads
    # differently (its positions are in the names of what it elaborates).
    assert memo.computed == Counter(
        {"synthesize_and_prove_canonical": 1, "prove_equivalence_elaborated": 2}
    )

    for code in (trailing, leading):
        shared_net = toolchain.synthesize_and_prove(task, code, limits, memo)
        plain_net = toolchain.synthesize_and_prove(task, code, limits)
        assert shared_net == plain_net
        assert shared_net["ok"] and shared_net["netlist_proof"]["status"] == "proven"
        shared_rtl = toolchain.prove_equivalence(task, code, limits, memo)
        plain_rtl = toolchain.prove_equivalence(task, code, limits)
        assert shared_rtl == plain_rtl and shared_rtl["status"] == "proven"

    toolchain.synthesize_design(task, first, limits, memo)
    toolchain.synthesize_design(task, leading, limits, memo)
    assert memo.computed["synthesize_canonical"] == 1
    assert toolchain.synthesize_design(task, leading, limits, memo) == (
        toolchain.synthesize_design(task, leading, limits)
    )


def test_a_different_circuit_is_not_answered_from_another_circuits_entry(env, tmp_path):
    task = task_of(env, "rtl-counter-w8")
    limits = Limits()
    memo = DictMemo()
    good = task.reference + f"\n// {tmp_path}\n"
    wrong = oracle.inverted_output_bit(task) + f"\n// {tmp_path}\n"
    assert toolchain.synthesize_and_prove(task, good, limits, memo)["netlist_proof"]["status"] == (
        "proven"
    )
    assert toolchain.prove_equivalence(task, good, limits, memo)["status"] == "proven"
    assert toolchain.synthesize_and_prove(task, wrong, limits, memo)["netlist_proof"]["status"] == (
        "counterexample"
    )
    assert toolchain.prove_equivalence(task, wrong, limits, memo)["status"] == "counterexample"
    assert memo.computed == Counter(
        {"synthesize_and_prove_canonical": 2, "prove_equivalence_elaborated": 2}
    )


_X_SELECT = (  # simulation takes the else branch, synthesis may pick either: fails formal
    "    wire u = 1'bx;\n    reg [3:0] s; reg co;\n"
    "    always @(*) if (u) begin s = 4'd0; co = 1'b0; end\n"
    "                else begin s = core_sum; co = core_cout; end\n"
    "    assign sum = s; assign cout = co;\n"
)

DESIGNS = {
    "counter_reference": ("rtl-counter-w8", lambda t: t.reference),
    "adder_reference": ("rtl-adder-w4", lambda t: t.reference),
    "comparator_trapdoor": ("rtl-comparator-w8", trapdoor_comparator),
    "adder_x_select": ("rtl-adder-w4", lambda t: oracle.wrap(t, _X_SELECT)),
    "counter_inverted_bit": ("rtl-counter-w8", oracle.inverted_output_bit),
}


def _verdict(env, task, code):
    env.unwrapped.reset(options={"task": task})
    verdict = play(env, [ToolCall("submit", {"code": code})], options={"task": task}).verdict
    return [
        {
            "name": lv["name"],
            "score": lv["score"],
            "passed": lv["passed"],
            "findings": [(f["code"], f["message"]) for f in lv["findings"]],
            "metrics": lv.get("metrics", {}),
        }
        for lv in verdict["levels"]
    ], verdict["reward"]


@pytest.mark.parametrize("name", sorted(DESIGNS))
def test_a_verdict_through_the_shared_stages_equals_the_plain_verdict(
    env, name, tmp_path, monkeypatch
):
    task_id, make = DESIGNS[name]
    task = task_of(env, task_id)
    code = make(task)
    # A source of this circuit verified first (its stages now in the cache), then another.
    _verdict(env, task, code + f"\n// {tmp_path} first\n")
    runs = Counter()
    for stage in ("_synthesis_back", "_miter_proof"):
        real = getattr(toolchain, stage)
        monkeypatch.setattr(
            toolchain,
            stage,
            lambda *a, _real=real, _stage=stage, **k: runs.update([_stage]) or _real(*a, **k),
        )
    shared, shared_reward = _verdict(env, task, code + f"\n// {tmp_path} shared\n")
    assert not runs, f"the second source of the circuit ran {dict(runs)} again"

    monkeypatch.setattr(tools, "sandbox_memo", lambda sandbox, scope: toolchain.no_memo)
    plain, plain_reward = _verdict(env, task, code + f"\n// {tmp_path} plain\n")
    if name != "counter_inverted_bit":  # fails simulation: no proof or synthesis runs at all
        assert runs["_miter_proof"] >= 2 and runs["_synthesis_back"] >= 1
    assert shared == plain
    assert shared_reward == plain_reward
    assert (shared_reward == 1.0) == name.endswith("_reference")
