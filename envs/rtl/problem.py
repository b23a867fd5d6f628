"""The record of one RTL problem (:class:`RTLTask`) and what is read from its reference alone.

Every source of problems (the built-in families in :mod:`~hiergym.envs.rtl.data`, VerilogEval in
:mod:`~hiergym.envs.rtl.importer`, RTLLM in :mod:`~hiergym.envs.rtl.rtllm`) builds the same
record, so it lives below all of them: a task carries everything the toolchain needs, so a result
is a pure function of (task, code) and :attr:`RTLTask.fingerprint` can key the cache.
:func:`infer_clocking` reads a reference's clock and reset, whatever they are named.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from . import verilog
from .verilog import Port

REQUIRED_MODULE = "TopModule"
DEFAULT_FORMAL_DEPTH = 20


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
    formal_s: float | None = None
    """The problem's proof budget in CPU seconds of each run's process tree, calibrated when it
    was imported or built (its reference proven against its own re-synthesised netlist, see
    :func:`hiergym.envs.rtl.oracle.check_reference`); ``None``: the env's ``Limits.formal_s``."""
    simulate_s: float | None = None
    """The problem's simulation budget in CPU seconds (its own testbench's time, calibrated the same
    way); ``None``: the env's ``Limits.simulate_s``."""

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


_RESET_NAME = re.compile(r"^(?:[a-z]?(?:rst|reset)(?:_?n|_?b)?|a?reset_?n?|clr|clear)$", re.I)
_CLOCK_NAME = re.compile(r"^(?:clk|clock|ck)(?:_?\w*)?$|^\w*_(?:clk|clock)$", re.I)


def _reset_level(name: str) -> int:
    """Active level of a reset by its name: ``rst_n``, ``resetn``, ``arstn``, ``rst_b``, ``rstb`` are low."""
    low = name.lower()
    return 0 if low.endswith(("n", "b")) else 1


def infer_clocking(
    reference: str, module: str, ports: tuple[Port, ...]
) -> tuple[str, str | None, str | None, int]:
    """``(kind, clock, reset, reset_active)`` of a reference, read from the design itself: the
    clocks are the inputs its always blocks are edge-triggered on that are not resets (so
    ``clock``, ``CLK``, ``clk_in`` and ``wclk`` are clocks), falling back to clock-like names;
    the reset is the first reset-named input (``rst``, ``reset``, ``rst_n``, ``areset``, ...),
    active low when its name ends in ``n`` or ``b``. A design with no clock is combinational."""
    inputs = [p.name for p in ports if p.direction == "input" and p.width == 1]
    edges = [n for n in verilog.edge_signals(reference) if n in inputs]
    resets = [n for n in inputs if _RESET_NAME.match(n)]
    clocks = [n for n in edges if n not in resets]
    if not clocks:
        clocks = [n for n in inputs if _CLOCK_NAME.match(n) and n not in resets]
    if not clocks:
        return "comb", None, None, 1
    reset = resets[0] if resets else None
    return "seq", clocks[0], reset, _reset_level(reset) if reset else 1


# --------------------------------------------------------------------------------------------
# Import records: what `hiergym data import verilog-eval|rtllm DIR` found, per problem


def record_path(kind: str, root: Path) -> Path:
    """Where ``hiergym data import KIND ROOT`` records its result, under ``HIERGYM_HOME``."""
    from hiergym.envs.sandbox import hiergym_home

    key = hashlib.sha256(str(Path(root).resolve()).encode()).hexdigest()[:16]
    return hiergym_home() / "imports" / f"{kind}-{key}.json"


def apply_record(kind: str, root: Path, tasks: Iterable[RTLTask]) -> list[RTLTask]:
    """``tasks`` as the import record of ``root`` left them: a problem it refused is dropped, a
    problem it checked gets its calibrated proof budget. Only entries recorded for this exact
    content (the task's fingerprint before calibration) count; with no record, ``tasks`` as
    they are (uncalibrated: ``hiergym data import`` checks and calibrates them)."""
    path = record_path(kind, root)
    entries: dict[str, Any] = {}
    if path.is_file():
        record = json.loads(path.read_text())
        entries = record.get("problems") or record.get("designs") or {}
    out = []
    for task in tasks:
        entry = entries.get(task.task_id)
        if entry is None or entry.get("fingerprint") != task.fingerprint:
            out.append(task)
        elif not entry.get("excluded"):
            budgets = {k: entry.get(k) for k in ("formal_s", "simulate_s")}
            out.append(dataclasses.replace(task, **budgets))
    return out
