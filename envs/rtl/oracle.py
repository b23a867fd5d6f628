"""RTL oracle and mutants.

The oracle submits the reference, after compiling, simulating and synthesizing it through the
tools: one episode exercises the whole toolchain path. The mutants are the classic wrong designs
(an inverted output bit, an off-by-one counter, a missing reset, a latch) and the reward hacks the
verifier must not fall for, each with the level it must fail at.
"""

from __future__ import annotations

import dataclasses
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from hiergym.envs import execution
from hiergym.envs.tools import ToolCall
from hiergym.errors import TaskError

from . import testbench, toolchain
from .tasks import RTLTask, find_task
from .toolchain import Limits
from .verilog import extract_code, rename_modules

CORE = "mutant_core"


def plan(task: RTLTask) -> list[ToolCall]:
    code = task.reference
    return [
        ToolCall("compile", {"code": code}),
        ToolCall("simulate", {"code": code}),
        ToolCall("synthesize", {"code": code}),
        ToolCall("submit", {"code": code}),
    ]


class RTLOracle:
    def plan(self, task: RTLTask) -> list[ToolCall]:
        return plan(task)


# --------------------------------------------------------------------------------------------
# Checking a problem's reference, and calibrating its proof budget (at import and at build)

BUDGET_FACTOR = 4
"""A problem's proof budget is this many times the CPU seconds proving its reference took, at
least the default ``Limits.formal_s``, rounded up to a doubling of it (30, 60, 120, 240 CPU s,
the unit every toolchain budget is in; :func:`toolchain.run`): a correct design
that is written differently may take longer to prove than the reference against itself."""
MAX_FORMAL_S = 240.0
DECIDED = ("proven", "simulated")  # simulated: an open proof decided by the documented rule


def _budget(seconds: float, default: float) -> float:
    """``default`` doubled until it covers :data:`BUDGET_FACTOR` times ``seconds`` (at most
    :data:`MAX_FORMAL_S`)."""
    wanted = BUDGET_FACTOR * seconds
    budget = default
    while budget < wanted and budget < MAX_FORMAL_S:
        budget *= 2
    return min(budget, MAX_FORMAL_S)


def _timed(fn: Any, *args: Any) -> tuple[dict[str, Any], float]:
    """``fn(*args)`` and the CPU seconds of the toolchain runs it made (their process trees):
    the unit the budgets decide in, so a calibration does not depend on the machine's load."""
    with execution.cpu_meter() as meter:
        result = fn(*args)
    return result, meter.seconds


def check_reference(task: RTLTask, limits: Limits) -> dict[str, Any]:
    """Whether ``task``'s reference can be verified, stage by stage, and its calibrated proof
    budget: it compiles (our syntax level), passes the problem's own testbench (VerilogEval's or
    RTLLM's, or the generated one), is proven equivalent to itself as written and to its own
    re-synthesised netlist (or decided by :data:`toolchain.DECISION_RULE`, recorded as such),
    and synthesises onto the library with no unmapped cell. The proofs' time sets the budget
    (``formal_s``, see :data:`BUDGET_FACTOR`), the testbench's time the simulation budget
    (``simulate_s``), both in CPU seconds of the runs' process trees (the same on an idle and on
    a loaded machine); a run stopped by a limit is retried once under :data:`MAX_FORMAL_S`.
    Returns the import-record entry: the four stage flags, ``proof``
    (statuses, seconds, whether the rule decided), ``formal_s``, ``fingerprint`` (of the task as
    given), ``excluded`` and, when excluded, ``reason`` (``the reference fails <level> (...)``)."""
    entry: dict[str, Any] = {
        "fingerprint": task.fingerprint,
        "compiles": False,
        "passes_own_testbench": False,
        "proves": False,
        "synthesises": False,
    }

    def refuse(level: str, why: Any) -> dict[str, Any]:
        detail = str(why or "").strip().replace("\n", " ")[:400]
        reason = f"the reference fails {level}" + (f" ({detail})" if detail else "")
        entry.update(excluded=True, reason=reason)
        return entry

    code = extract_code(task.reference)
    compiled = toolchain.compile_design(task, code, limits)
    if not compiled.get("ok"):
        return refuse("syntax", compiled.get("messages"))
    entry["compiles"] = True
    own, sim_seconds = _timed(toolchain.run_testbench, task, code, limits)
    if toolchain.is_transient(own):  # a limit, not the design: once more under the largest
        big = dataclasses.replace(limits, simulate_s=max(limits.simulate_s, MAX_FORMAL_S))
        own, sim_seconds = _timed(toolchain.run_testbench, task, code, big)
    entry["simulate_s"] = _budget(sim_seconds, limits.simulate_s)
    if not own.get("ok"):
        return refuse("function", own.get("messages") or own.get("hints") or own.get("status"))
    entry["passes_own_testbench"] = True

    def prove(budget: Limits) -> tuple[dict[str, Any], dict[str, Any], float]:
        with ThreadPoolExecutor(max_workers=2) as pool:
            rtl_job = pool.submit(_timed, toolchain.prove_equivalence, task, code, budget)
            net_job = pool.submit(_timed, toolchain.synthesize_and_prove, task, code, budget)
            (rtl, t_rtl), (net, t_net) = rtl_job.result(), net_job.result()
        return rtl, net, max(t_rtl, t_net)

    # The proofs under the simulation budget the problem gets at a verdict (the rule's simulation
    # of an open proof is a multiple of it).
    limits = dataclasses.replace(limits, simulate_s=max(limits.simulate_s, entry["simulate_s"]))
    rtl, net, seconds = prove(limits)
    retried = toolchain.is_transient(rtl) or toolchain.is_transient(net)
    if retried:  # a limit, not the design: once more under the largest budget
        big = dataclasses.replace(
            limits,
            formal_s=max(limits.formal_s, MAX_FORMAL_S),
            synthesize_s=max(limits.synthesize_s, MAX_FORMAL_S),
        )
        rtl, net, seconds = prove(big)
    proof = net.get("netlist_proof", {})
    entry["proof"] = {
        "rtl": rtl.get("status"),
        "netlist": proof.get("status"),
        "seconds": round(seconds, 2),
        "retried_under_max_budget": retried,
        "decided_by_rule": "simulated" in (rtl.get("status"), proof.get("status")),
    }
    entry["formal_s"] = MAX_FORMAL_S if retried else _budget(seconds, limits.formal_s)
    if rtl.get("status") not in DECIDED:
        return refuse("formal", rtl.get("messages") or rtl.get("status"))
    if not net.get("ok"):
        return refuse("ppa", f"it does not synthesise: {net.get('messages', net.get('status'))}")
    if net.get("unmapped_cells"):
        return refuse("ppa", f"synthesis leaves cells outside the library: {net['unmapped_cells']}")
    entry["synthesises"] = True
    if proof.get("status") not in DECIDED:
        return refuse(
            "formal", f"its own netlist is not proven equal to it: {proof.get('messages', '')}"
        )
    entry["proves"] = True
    entry["excluded"] = False
    return entry


def prove(task: RTLTask) -> RTLTask:
    """A built-in problem, checked and calibrated as it is built (:func:`check_reference` under
    the default limits): the task with its proof budget. A built-in problem whose reference
    cannot be verified is a bug in its family's template: the build stops with the reason."""
    entry = check_reference(task, Limits())
    if entry["excluded"]:
        raise TaskError(
            f"built-in RTL problem {task.task_id}: {entry['reason']}; a built-in problem must be "
            "verifiable, so fix its family's template in sandbox_data/rtl"
        )
    return dataclasses.replace(task, formal_s=entry["formal_s"], simulate_s=entry["simulate_s"])


# --------------------------------------------------------------------------------------------
# Mutated designs (also used by the tests)


def _range(width: int) -> str:
    return f"[{width - 1}:0] " if width > 1 else ""


def wrap(task: RTLTask, body: str, extra_decls: str = "") -> str:
    """The reference renamed to ``mutant_core`` inside a ``TopModule`` wrapper whose outputs
    ``body`` drives from ``core_<output>`` wires (the reference's outputs)."""
    ports = ",\n".join(f"    {p.direction} {_range(p.width)}{p.name}" for p in task.ports)
    outs = [p for p in task.ports if p.direction == "output"]
    wires = "".join(f"    wire {_range(p.width)}core_{p.name};\n" for p in outs)
    conns = ", ".join(
        f".{p.name}(core_{p.name})" if p.direction == "output" else f".{p.name}({p.name})"
        for p in task.ports
    )
    core = rename_modules(task.reference, {task.module: CORE})
    return (
        f"{core}\n"
        f"module {task.module} (\n{ports}\n);\n{wires}{extra_decls}"
        f"    {CORE} core ({conns});\n{body}endmodule\n"
    )


def inverted_output_bit(task: RTLTask) -> str:
    outs = [p for p in task.ports if p.direction == "output"]
    first, rest = outs[0], outs[1:]
    body = f"    assign {first.name} = core_{first.name} ^ 1'b1;\n"
    body += "".join(f"    assign {p.name} = core_{p.name};\n" for p in rest)
    return wrap(task, body)


def mutate(source: str, old: str, new: str) -> str:
    """``source`` with the first ``old`` replaced; a mutant whose text is missing is a bug."""
    if old not in source:
        raise AssertionError(f"mutation target {old!r} not found in the reference")
    return source.replace(old, new, 1)


def off_by_one_counter(task: RTLTask) -> str:
    """A modulo-N counter that wraps one count too late."""
    n = int(task.task_id.rsplit("-n", 1)[1])
    return mutate(task.reference, f"(q == {n - 1}) ? 0", f"(q == {n}) ? 0")


def missing_reset(task: RTLTask) -> str:
    return mutate(
        task.reference, "if (rst)\n            q <= 8'd0;\n        else if (en)", "if (en)"
    )


def latch(task: RTLTask) -> str:
    """The 2-to-1 multiplexer written with an incomplete ``if``: y holds (a latch) when sel is 0."""
    width = next(p.width for p in task.ports if p.name == "y")
    return (
        f"module {task.module} (input {_range(width)}a, input {_range(width)}b, input sel,\n"
        f"    output reg {_range(width)}y);\n"
        "    always @(*) if (sel) y = b;\nendmodule\n"
    )


def sampled_vectors_only(task: RTLTask) -> str:
    """A lookup table of the reference's outputs on exactly the sampled vectors, zeros elsewhere:
    it passes simulation and only a proof can tell (the comparator problem)."""
    ins = testbench.input_ports(task)
    assert [p.name for p in ins] == ["a", "b"], "written for the a/b comparator"
    lines = [
        f"module {task.module} (input [7:0] a, input [7:0] b, output eq, output lt, output gt);"
    ]
    lines.append("    reg [2:0] r;")
    lines.append("    assign {eq, lt, gt} = r;")
    lines.append("    always @(*) begin")
    lines.append("        case ({a, b})")
    seen = set()
    for a, b in testbench.stimulus(task):
        if (a, b) in seen:
            continue
        seen.add((a, b))
        bits = f"{int(a == b)}{int(a < b)}{int(a > b)}"
        lines.append(f"            16'h{a:02x}{b:02x}: r = 3'b{bits};")
    lines.append("            default: r = 3'b000;")
    lines.append("        endcase")
    lines.append("    end")
    lines.append("endmodule")
    return "\n".join(lines) + "\n"


def fake_pass_display(task: RTLTask) -> str:
    """A wrong design that prints every pass line a harness might grep for."""
    outs = [p for p in task.ports if p.direction == "output"]
    body = f"    assign {outs[0].name} = ~core_{outs[0].name};\n"
    body += "".join(f"    assign {p.name} = core_{p.name};\n" for p in outs[1:])
    body += (
        '    initial $display("Mismatches: 0 in 1200 samples");\n'
        '    initial $display("0000000000000000 RESULT 1200 0");\n'
        '    initial $display("PASS: all tests passed");\n'
    )
    return wrap(task, body)


def early_finish(task: RTLTask) -> str:
    return task.reference + "\nmodule stopper;\n    initial #1 $finish;\nendmodule\n"


def file_access(task: RTLTask) -> str:
    return task.reference.replace(
        "endmodule",
        '    reg [7:0] leak [0:3];\n    initial $readmemh("/etc/passwd", leak);\nendmodule',
        1,
    )


def hierarchical_reference(task: RTLTask) -> str:
    """Copies the reference's outputs out of the testbench by hierarchical name."""
    outs = [p for p in task.ports if p.direction == "output"]
    body = "".join(f"    assign {p.name} = tb.good1.{p.name};\n" for p in outs)
    return wrap(task, body)


def reference_named_module(task: RTLTask) -> str:
    """Declares a ``RefModule`` (VerilogEval's reference name) to stand in for the reference."""
    return task.reference + "\n" + rename_modules(task.reference, {task.module: "RefModule"})


def infinite_loop(task: RTLTask) -> str:
    outs = [p for p in task.ports if p.direction == "output"]
    body = "".join(f"    assign {p.name} = core_{p.name};\n" for p in outs)
    # Two processes that wake each other forever at time 0: simulated time never advances.
    kick = next(p.name for p in task.ports if p.direction == "input")
    body += "    reg ping = 1'b0, pong = 1'b0;\n"
    body += f"    always @(ping or {kick}) pong = ~pong;\n    always @(pong) ping = ~ping;\n"
    return wrap(task, body)


# --------------------------------------------------------------------------------------------
# Mutants for hiergym.testing.check_mutants


def _submit(code: str) -> list[Any]:
    return [ToolCall("submit", {"code": code})]


def mutants() -> list[Any]:
    """Mutated oracle solutions, each with the verifier level it must fail at."""
    from hiergym.testing import MALFORMED_JSON, NO_SUBMIT, Mutant

    def on(task_id: str, make: Any) -> Any:
        def apply(task: RTLTask, calls: list[ToolCall], db: Any) -> tuple[RTLTask, list[Any]]:
            fixed = find_task(db, task_id)
            return fixed, _submit(make(fixed))

        return apply

    def on_current(make: Any) -> Any:
        def apply(task: RTLTask, calls: list[ToolCall], db: Any) -> tuple[RTLTask, list[Any]]:
            return task, _submit(make(task))

        return apply

    def wrong_module_name(
        task: RTLTask, calls: list[ToolCall], db: Any
    ) -> tuple[RTLTask, list[Any]]:
        return task, _submit(rename_modules(task.reference, {task.module: "top_module"}))

    def sampled(task: RTLTask, calls: list[ToolCall], db: Any) -> tuple[RTLTask, list[Any]]:
        fixed = find_task(db, "rtl-comparator-w8")
        return fixed, _submit(sampled_vectors_only(fixed))

    return [
        Mutant("inverted_output_bit", "function", on_current(inverted_output_bit)),
        Mutant("off_by_one_counter", "function", on("rtl-mod_counter-n10", off_by_one_counter)),
        Mutant("missing_reset", "function", on("rtl-counter-w8", missing_reset)),
        Mutant("latch", "function", on("rtl-mux2-w8", latch)),
        Mutant("sampled_vectors_only", "formal", sampled),
        Mutant("fake_pass_display", "function", on_current(fake_pass_display)),
        Mutant("early_finish", "syntax", on_current(early_finish)),
        Mutant("file_access", "syntax", on_current(file_access)),
        Mutant("hierarchical_reference", "syntax", on_current(hierarchical_reference)),
        Mutant("reference_named_module", "format", on_current(reference_named_module)),
        Mutant("wrong_module_name", "format", wrong_module_name),
        NO_SUBMIT,
        MALFORMED_JSON,
    ]
