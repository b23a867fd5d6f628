"""RTL tasks: one per problem (a spec, the module interface, a reference implementation).

Built-in problems come from sandbox_data/rtl/ (see :mod:`hiergym.envs.rtl.data`); VerilogEval-format
problems come from a directory (``tasks="verilog-eval:DIR"``, see :mod:`hiergym.envs.rtl.importer`).
A task carries everything the toolchain needs, so a result is a pure function of (task, code) and
:attr:`RTLTask.fingerprint` can key the cache.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Any

from hiergym.envs.core import TaskSet, load_task_table

from .verilog import Port

REQUIRED_MODULE = "TopModule"


@dataclass(frozen=True)
class RTLTask:
    task_id: str
    split: str
    difficulty: str
    family: str
    kind: str  # "comb" | "seq"
    spec: str
    ports: tuple[Port, ...]
    reference: str
    """The reference implementation; its top module is named :attr:`module`."""
    module: str = REQUIRED_MODULE
    clock: str | None = None
    reset: str | None = None
    reset_active: int = 1
    stimulus: str = "{}"
    """Per-input stimulus hints as canonical JSON (see sandbox_data/rtl/families.json)."""
    samples: int = 1000
    formal_depth: int = 20
    testbench: str | None = None
    """A VerilogEval testbench (module ``tb``); ``None``: the verifier generates one."""
    source: str = "builtin"

    @property
    def fingerprint(self) -> str:
        """A hash of everything that decides a toolchain result for this task."""
        return hashlib.sha256(self.to_json().encode()).hexdigest()[:24]

    def interface(self) -> str:
        """The module header the agent must implement."""
        width = max((len(f"[{p.width - 1}:0]") for p in self.ports if p.width > 1), default=0)
        lines = []
        for p in self.ports:
            rng = f"[{p.width - 1}:0]" if p.width > 1 else ""
            lines.append(f"    {p.direction:<6} {rng:<{width}} {p.name}".rstrip())
        return f"module {self.module} (\n" + ",\n".join(lines) + "\n);"

    def to_json(self) -> str:
        d = asdict(self)
        d["ports"] = [p.to_dict() for p in self.ports]
        return json.dumps(d, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> RTLTask:
        d = json.loads(text)
        d["ports"] = tuple(Port(**p) for p in d["ports"])
        return cls(**d)


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
