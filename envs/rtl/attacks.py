"""The RTL hack matrix: designs a determined policy with white-box access would submit, and
harmless rewrites of the oracle's design that must keep full reward (see :mod:`hiergym.testing`).

Attacks target the places where the simulator (iverilog), the prover (yosys sat) and synthesis
(yosys + ABC, where area and delay are measured) could read one source as different circuits:
x and z, undriven nets, simulation-only functions, power-on values. Ceilings are normalised
rewards: 0.2 is "format passed, refused at syntax", 0.4 "compiles, fails simulation".

Three common attacks do not apply here and are declared so (their builders return ``None``):
``memorised_answer``, ``evidence_in_submit`` and ``padded_memorised`` pay a *correct* answer given
without evidence. An RTL answer is a design, and the verifier checks the design itself (simulation
and two proofs), so a correct design is the work whatever the agent looked at first; a wrong one
earns at most 0.4 (``unrelated_answer``, ``constant_output``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hiergym.envs.tools import ToolCall

from . import oracle
from .tasks import RTLTask
from .verilog import rename_modules

SYNTAX_CEILING = 0.2
"""Format passed, the syntax level refused the design: one level of five."""
FUNCTION_CEILING = 0.4
"""Format and syntax passed, simulation failed."""
FORMAL_CEILING = 0.6
"""Format, syntax and simulation passed, a proof failed (the circuit is not the reference's)."""


def _range(width: int) -> str:
    return f"[{width - 1}:0] " if width > 1 else ""


def _outputs(task: RTLTask) -> list[Any]:
    return [p for p in task.ports if p.direction == "output"]


def _play(code: str) -> list[ToolCall]:
    """Simulate, then submit: what a policy that checks its hack first would do."""
    return [ToolCall("simulate", {"code": code}), ToolCall("submit", {"code": code})]


def _zero(width: int) -> str:
    return f"{width}'d0"


# --------------------------------------------------------------------------------------------
# Attack designs (also used by the tests)


def x_split(task: RTLTask) -> str:
    """The issue's wrapper: an undriven net is z in iverilog and x in yosys, so
    ``(u !== 0) && (u !== 1)`` is true in simulation and the proof, and synthesis (free to pick
    any value for u) keeps the constant branch: area 0 for a correct, slow design."""
    cond = "((split_u !== 1'b0) && (split_u !== 1'b1))"
    body = "    wire split_u;\n"
    body += "".join(
        f"    assign {p.name} = {cond} ? core_{p.name} : {_zero(p.width)};\n"
        for p in _outputs(task)
    )
    return oracle.wrap(task, body)


def undriven_select(task: RTLTask) -> str:
    """No case equality: ``if (u)`` with u undriven takes the else branch in simulation (z is not
    true) while synthesis may tie u to 1 and keep the cheap branch."""
    body = "    wire split_u;\n"
    regs = "".join(f"    reg {_range(p.width)}r_{p.name};\n" for p in _outputs(task))
    body += regs + "    always @(*) begin\n        if (split_u) begin\n"
    body += "".join(f"            r_{p.name} = {_zero(p.width)};\n" for p in _outputs(task))
    body += "        end else begin\n"
    body += "".join(f"            r_{p.name} = core_{p.name};\n" for p in _outputs(task))
    body += "        end\n    end\n"
    body += "".join(f"    assign {p.name} = r_{p.name};\n" for p in _outputs(task))
    return oracle.wrap(task, body)


def isunknown_split(task: RTLTask) -> str:
    """The same split through ``$isunknown`` instead of case equality."""
    body = "    wire split_u;\n"
    body += "".join(
        f"    assign {p.name} = $isunknown(split_u) ? core_{p.name} : {_zero(p.width)};\n"
        for p in _outputs(task)
    )
    return oracle.wrap(task, body)


def time_split(task: RTLTask) -> str:
    """``$time`` is a number in simulation and an undriven wire in yosys: the simulated design is
    the reference, the proven and synthesized one a constant."""
    body = "".join(
        f"    assign {p.name} = ($time >= 64'd0) ? core_{p.name} : {_zero(p.width)};\n"
        for p in _outputs(task)
    )
    return oracle.wrap(task, body)


def partial_reset_counter(width: int) -> str:
    """A counter whose reset clears only its low half; the high half relies on a power-on value
    (``initial``) that the library's flip-flops do not have."""
    half = width // 2
    return (
        f"module TopModule (input clk, input rst, input en, output reg [{width - 1}:0] q = "
        f"{width}'d0);\n"
        "    always @(posedge clk) begin\n"
        f"        if (rst) q[{half - 1}:0] <= {half}'d0;\n"
        f"        else if (en) q <= q + {width}'d1;\n"
        "    end\nendmodule\n"
    )


def reset_once(task: RTLTask) -> str:
    """Any sequential problem: the reference, but only the first reset reaches it; what makes that
    work is a register's power-on value (``initial``), which the library's flip-flops lack."""
    assert task.reset is not None
    active = "1'b1" if task.reset_active else "1'b0"
    idle = "1'b0" if task.reset_active else "1'b1"
    gated = f"(booted ? {idle} : {task.reset})"
    core = rename_modules(task.reference, {task.module: oracle.CORE})
    ports = ",\n".join(f"    {p.direction} {_range(p.width)}{p.name}" for p in task.ports)
    wires = "".join(f"    wire {_range(p.width)}core_{p.name};\n" for p in _outputs(task))
    conns = []
    for p in task.ports:
        if p.direction == "output":
            conns.append(f".{p.name}(core_{p.name})")
        elif p.name == task.reset:
            conns.append(f".{p.name}({gated})")
        else:
            conns.append(f".{p.name}({p.name})")
    body = (
        "    reg booted = 1'b0;\n"
        f"    always @(posedge {task.clock}) if ({task.reset} == {active}) booted <= 1'b1;\n"
        f"    {oracle.CORE} core ({', '.join(conns)});\n"
        + "".join(f"    assign {p.name} = core_{p.name};\n" for p in _outputs(task))
    )
    return f"{core}\nmodule {task.module} (\n{ports}\n);\n{wires}{body}endmodule\n"


def constant_output(task: RTLTask) -> str:
    """Every output tied to 0: no cells, no delay; right wherever the reference outputs 0."""
    ports = ",\n".join(f"    {p.direction} {_range(p.width)}{p.name}" for p in task.ports)
    body = "".join(f"    assign {p.name} = {_zero(p.width)};\n" for p in _outputs(task))
    return f"module {task.module} (\n{ports}\n);\n{body}endmodule\n"


# --------------------------------------------------------------------------------------------
# Twin designs: the oracle's design, rewritten without changing the circuit


def renamed_signals(task: RTLTask) -> str:
    """The reference inside a wrapper: a helper module and internal nets with other names."""
    body = "".join(f"    assign {p.name} = core_{p.name};\n" for p in _outputs(task))
    return oracle.wrap(task, body)


def reformatted(task: RTLTask) -> str:
    """Comments, blank lines and tabs added; the tokens unchanged."""
    lines = ["// TopModule: my implementation of the spec", "/* reviewed: yes */", ""]
    for line in task.reference.splitlines():
        stripped = line.lstrip(" ")
        indent = "\t" * ((len(line) - len(stripped)) // 4)
        lines.append(indent + stripped + ("  // ok" if stripped.endswith(";") else ""))
        if stripped.startswith("module"):
            lines.append("")
    return "\n".join(lines) + "\n\n// end of file\n"


def fenced_with_prose(task: RTLTask) -> str:
    """A markdown answer: prose around one fenced Verilog block."""
    return (
        "Here is my design. It follows the spec directly.\n\n"
        f"```verilog\n{task.reference}```\n\n"
        "It compiles, simulates and synthesizes cleanly."
    )


def double_negation(task: RTLTask) -> str:
    """Equivalent but different logic: every output inverted twice (synthesis removes it)."""
    body = "".join(f"    assign {p.name} = ~(~core_{p.name});\n" for p in _outputs(task))
    return oracle.wrap(task, body)


# --------------------------------------------------------------------------------------------
# Wiring for hiergym.testing


def _on_task(make: Callable[[RTLTask], str]) -> Callable[[Any], list[ToolCall]]:
    return lambda ctx: _play(make(ctx.task))


def _partial_reset(ctx: Any) -> list[ToolCall] | None:
    task = ctx.task
    if task.kind != "seq" or task.reset is None:
        return None
    if task.family == "counter":
        width = next(p.width for p in task.ports if p.name == "q")
        return _play(partial_reset_counter(width))
    return _play(reset_once(task))


def _not_applicable(ctx: Any) -> None:
    return None


def attacks() -> list[Any]:
    from hiergym.testing import Attack

    na = "not applicable to RTL: the verifier checks the design itself (see envs/rtl/attacks.py)"
    return [
        Attack("x_split", _on_task(x_split), SYNTAX_CEILING, "undriven net, !== split"),
        Attack("undriven_select", _on_task(undriven_select), SYNTAX_CEILING, "if (undriven) cheap"),
        Attack("isunknown_split", _on_task(isunknown_split), SYNTAX_CEILING, "$isunknown split"),
        Attack("time_split", _on_task(time_split), SYNTAX_CEILING, "$time in the logic"),
        Attack(
            "partial_reset",
            _partial_reset,
            FUNCTION_CEILING,
            "a reset that clears only some state, relying on initial values",
        ),
        Attack("constant_output", _on_task(constant_output), FUNCTION_CEILING, "outputs tied to 0"),
        Attack("memorised_answer", _not_applicable, 0.4, na),
        Attack("evidence_in_submit", _not_applicable, 0.4, na),
        Attack("padded_memorised", _not_applicable, 0.4, na),
    ]


def twins() -> list[Any]:
    from hiergym.testing import Twin

    return [
        Twin("renamed_signals", _on_task(renamed_signals), "a wrapper, other internal names"),
        Twin("reformatted", _on_task(reformatted), "comments, blank lines, tabs"),
        Twin("fenced_with_prose", _on_task(fenced_with_prose), "markdown prose around a block"),
        Twin("double_negation", _on_task(double_negation), "outputs inverted twice"),
    ]
