"""Hand-written designs the RTL tests submit (beside the oracle's mutants)."""

from __future__ import annotations

from hiergym.envs.rtl import tasks, testbench


def task_of(env, task_id: str):
    """The built-in RTL task ``task_id`` of ``env``'s sandbox."""
    return tasks.find_task(env.unwrapped.sandbox.db, task_id)


def trapdoor_comparator(task, display: str | None = None) -> str:
    """An 8-bit comparator wrong on one input pair the stimulus never draws: it passes simulation
    and fails both proofs. With ``display``, it also prints that text while yosys reads it (yosys
    runs initial $display at elaboration, into the log it is judged by)."""
    sampled = {tuple(r) for r in testbench.stimulus(task)}
    a, b = next((a, b) for a in range(256) for b in range(256) if (a, b) not in sampled)
    shown = f'    initial $display("{display}");\n' if display is not None else ""
    return (
        "module TopModule(input [7:0] a, input [7:0] b, output eq, output lt, output gt);\n"
        f"    wire trap = (a == 8'd{a}) && (b == 8'd{b});\n"
        "    assign eq = (a == b) ^ trap;\n    assign lt = (a < b) & ~trap;\n"
        "    assign gt = (a > b) & ~trap;\n"
        f"{shown}endmodule\n"
    )
