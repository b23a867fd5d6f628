"""RTL tasks: one per problem (a spec, the module interface, a reference implementation).

Built-in problems come from sandbox_data/rtl/ (see :mod:`hiergym.envs.rtl.data`); VerilogEval-format
problems come from a directory (``tasks="verilog-eval:DIR"``, see :mod:`hiergym.envs.rtl.importer`).
The record itself, :class:`RTLTask`, lives in :mod:`~hiergym.envs.rtl.problem` (every source of
problems builds it); it is re-exported here.
"""

from __future__ import annotations

from typing import Any

from hiergym.envs.core import TaskSet, load_task_table

from .problem import REQUIRED_MODULE, RTLTask

__all__ = ["REQUIRED_MODULE", "RTLTask", "all_tasks", "find_task", "load_tasks", "render_prompt"]


def render_prompt(task: RTLTask) -> str:
    clocking = (
        f" It is clocked on the rising edge of {task.clock}"
        + (
            f"; {task.reset} is a synchronous, active-{'high' if task.reset_active else 'low'} reset."
            if task.reset
            else "."
        )
        if task.clock
        else " It is purely combinational: no clock, no state."
    )
    return (
        f"Task ({task.difficulty}, {task.kind}): {task.spec}\n\n"
        f"Implement it in synthesizable Verilog as a module with exactly this interface:\n\n"
        f"{task.interface()}\n\n"
        f"{clocking.strip()}\n"
        "Tools: compile(code) runs the compiler; simulate(code) compares your design with a hidden "
        "reference on at least 1,000 samples and shows the first mismatches; synthesize(code) reports "
        "cells, area and delay next to the reference's. Each takes the complete Verilog source. "
        "Finish with submit(code). Your submission is scored by format, compilation, simulation, "
        "formal equivalence with the reference, and area/delay against the reference. File and "
        "simulation-control system tasks ($fopen, $readmemh, $finish, ...) and `include are refused."
    )


def load_tasks(db: Any, db_key: str, split: str, difficulty: str) -> TaskSet:
    """The built-in task set of one split and difficulty, read once per process."""
    return load_task_table(db, db_key, split, difficulty, RTLTask.from_json)


def all_tasks(db: Any) -> list[RTLTask]:
    rows = db.execute("SELECT payload FROM tasks ORDER BY task_id").fetchall()
    return [RTLTask.from_json(r[0]) for r in rows]


def find_task(db: Any, task_id: str) -> RTLTask:
    row = db.execute("SELECT payload FROM tasks WHERE task_id = ?", (task_id,)).fetchone()
    if row is None:
        raise KeyError(task_id)
    return RTLTask.from_json(row[0])
