"""Issue 12 (RTL verdict of a circuit never seen): the cheaper paths give the answers of the
sandboxed, full ones.

* The canonical form of a small front netlist is computed in the verifier's process; a larger one
  (or one that breaks it there) in a sandboxed Python process. Both give the same
  ``canonical.json``, so the same synthesis report and netlist proof, on passing and failing
  designs.
* A sequential proof builds ABC's AIG alone first; the x-aware miter and the bounded proof are
  built in a second run only when pdr does not prove it (ABC sweeps the miter before pdr)."""

from __future__ import annotations

import json
import sys
from collections import Counter

import pytest

from hiergym.envs.rtl import oracle, ppa, toolchain, tools
from hiergym.envs.rtl.toolchain import Limits

from .designs import task_of, trapdoor_comparator

DESIGNS = {
    "counter_reference": ("rtl-counter-w8", lambda t: t.reference),
    "adder_reference": ("rtl-adder-w4", lambda t: t.reference),
    "comparator_trapdoor": ("rtl-comparator-w8", trapdoor_comparator),
    "counter_inverted_bit": ("rtl-counter-w8", oracle.inverted_output_bit),
}


def _counting_runs(monkeypatch):
    """Count the toolchain's runs by what they run (program, or the script a program is given)."""
    runs: Counter[str] = Counter()
    real = toolchain.run

    def counted(argv, *a, **k):
        named = [x for x in argv if x.endswith((".ys", ".py"))]
        runs[f"{argv[0].rsplit('/', 1)[-1]} {named[0] if named else ''}".strip()] += 1
        return real(argv, *a, **k)

    monkeypatch.setattr(toolchain, "run", counted)
    return runs


@pytest.mark.parametrize("name", sorted(DESIGNS))
def test_the_canonical_form_in_process_equals_the_sandboxed_one(env, name, monkeypatch):
    task_id, make = DESIGNS[name]
    task = task_of(env, task_id)
    code = make(task)
    budget = tools.task_limits(task, Limits())
    runs = _counting_runs(monkeypatch)
    here = toolchain.synthesize_and_prove(task, code, budget)
    assert not any(k.endswith("canonical.py") for k in runs), dict(runs)

    monkeypatch.setattr(ppa, "IN_PROCESS_MAX_BYTES", -1)  # every netlist goes to the sandbox
    runs.clear()
    sandboxed = toolchain.synthesize_and_prove(task, code, budget)
    assert runs[f"{sys.executable.rsplit('/', 1)[-1]} canonical.py"] == 1, dict(runs)

    assert here == sandboxed
    assert here["ok"] and here["netlist_proof"]["status"] in ("proven", "counterexample")
    proven = here["netlist_proof"]["status"] == "proven"
    assert proven == name.endswith("_reference")


def _register_chain(stages):
    """A chain of ``stages`` 8-bit registers with an adder and a shift each: a front netlist of
    about 3 kB a stage."""
    return (
        "module TopModule(input clk, input [7:0] a, input [7:0] b, output [7:0] y);\n"
        f"  reg [7:0] r [0:{stages}];\n  integer i;\n"
        "  always @(posedge clk) begin\n    r[0] <= a ^ b;\n"
        f"    for (i = 1; i <= {stages}; i = i + 1) r[i] <= (r[i-1] + a) ^ (r[i-1] >> 1);\n"
        f"  end\n  assign y = r[{stages}];\nendmodule\n"
    )


def test_a_large_netlist_is_canonicalised_in_the_sandbox_with_the_same_result(env, monkeypatch):
    task = task_of(env, "rtl-counter-w8")
    code = _register_chain(40)  # a front netlist of ~120 kB
    runs = _counting_runs(monkeypatch)
    sandboxed = toolchain.synthesize_design(task, code, Limits())
    assert runs[f"{sys.executable.rsplit('/', 1)[-1]} canonical.py"] == 1, dict(runs)

    monkeypatch.setattr(ppa, "IN_PROCESS_MAX_BYTES", 10**7)
    runs.clear()
    here = toolchain.synthesize_design(task, code, Limits())
    assert not any(k.endswith("canonical.py") for k in runs), dict(runs)
    assert here == sandboxed and here["ok"] and here["sequential_cells"] >= 8 * 41


def test_a_netlist_the_canonical_form_does_not_model_passes_as_it_is_on_both_paths(tmp_path):
    text = json.dumps({"modules": {"TopModule": {"cells": {}}, "Other": {"cells": {}}}})
    result, note = ppa.canonical_text(text, "TopModule")
    assert result == text
    assert note.startswith("hiergym canonical form not applied: NotCanonical")
    front, out = tmp_path / "front.json", tmp_path / "out.json"
    front.write_text(text)
    assert ppa.main([str(front), str(out), "TopModule"]) == 0
    assert out.read_text() == text


def test_a_sequential_design_pdr_proves_needs_no_bounded_proof(env, monkeypatch):
    task = task_of(env, "rtl-counter-w8")
    runs = _counting_runs(monkeypatch)
    proof = toolchain.prove_equivalence(task, task.reference + "\n// pdr\n", Limits())
    assert proof["status"] == "proven"
    assert runs["yosys proof.ys"] == 1 and runs["yosys-abc"] == 1
    assert runs["yosys sat.ys"] == 0


def test_the_bounded_proof_still_decides_what_pdr_does_not_prove(env, monkeypatch):
    """An output bit inverted: pdr refutes it from its all-zero start (which proves nothing about
    power-on x), so the x-aware miter is built and the bounded proof finds the counterexample."""
    task = task_of(env, "rtl-counter-w8")
    runs = _counting_runs(monkeypatch)
    proof = toolchain.prove_equivalence(task, oracle.inverted_output_bit(task), Limits())
    assert runs["yosys sat.ys"] == 1
    assert proof["status"] == "counterexample"
    assert proof["counterexample"], proof
    assert proof["depth"] == int(task.formal_depth)
