"""RTLLM (hkust-zhiyao/RTLLM, v1.1 and v2.0) designs as hiergym RTL tasks, in RTLLM's own layout.

An RTLLM checkout holds one folder per design, anywhere below its root (``Arithmetic/Adder/
adder_8bit/``), each with ``design_description.txt`` (the spec, naming the module), ``testbench.v``
(a testbench that instantiates the design by name and prints ``===========Your Design
Passed===========``; RTLLM's ``auto_run.py`` counts a design as passing when its output contains
``Pass`` or ``pass`` and the simulation ends within its timeout), ``verified_<name>.v`` (the
reference) and sometimes data files that the testbench reads (``reference.dat``, ``tdata.txt``).

``gym.make("hiergym/RTL-v0", tasks="rtllm:DIR")`` serves them: the module name is the one the
testbench instantiates (the description's "Module name:" line is wrong for two designs), the
reference's top module (``verified_x``, or the one module nothing else instantiates) is renamed
to it, and the interface, clocks and resets come from the reference (see
:func:`hiergym.envs.rtl.importer.infer_clocking`). The function level runs RTLLM's own testbench,
made as safe as VerilogEval's (:func:`bench`): its modules are renamed to names no design can
know, every string that would count as a pass line is stamped with a per-run nonce (a design that
prints "Passed" is not read), and waveform dumps are removed. The formal and PPA levels are ours,
against the reference, with power next to area and delay (:mod:`hiergym.envs.rtl.power`).

``hiergym data import rtllm DIR`` (:func:`main`) runs every reference through the whole pipeline
and records, per design, whether it passes its own testbench, compiles, synthesises and proves;
designs that do not are excluded from ``tasks="rtllm:DIR"`` with the reason (the record lives
under ``HIERGYM_HOME``), so a broken design is refused at import, never at verdict time.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hiergym.errors import TaskError, ToolError

from . import problem, verilog
from .problem import DEFAULT_FORMAL_DEPTH, RTLTask, infer_clocking
from .testbench import pass_text, rtllm_bench, safe_testbench

__all__ = ["bench", "load_designs", "load_directory", "main", "pass_text", "safe_testbench"]
bench = rtllm_bench

PREFIX = "rtllm:"
DESCRIPTION = "design_description.txt"
TESTBENCH = "testbench.v"
MAX_DATA_FILE_BYTES = 1 << 20
_SKIPPED_FILES = {DESCRIPTION, TESTBENCH, "makefile", "Makefile"}
_MODULE_LINE = re.compile(r"Module name:\s*([A-Za-z_][\w$]*)")


@dataclass
class Design:
    """One design folder as read, before it becomes a task."""

    name: str
    folder: Path
    task: RTLTask | None = None
    problems: list[str] = field(default_factory=list)


def design_folders(root: Path) -> list[Path]:
    """Every folder below ``root`` with a design description, sorted by path; RTLLM's own
    generated-design folders (``_chatgpt4`` ...) are skipped."""
    found = []
    for desc in root.rglob(DESCRIPTION):
        rel = desc.parent.relative_to(root)
        if any(part.startswith((".", "_")) for part in rel.parts):
            continue
        found.append(desc.parent)
    return sorted(found, key=lambda p: str(p.relative_to(root)))


def _reference_file(folder: Path) -> Path | None:
    refs = sorted(folder.glob("verified_*.v"))
    return refs[0] if len(refs) == 1 else None


def _design_module(testbench: str, description: str) -> str | None:
    """The module the testbench instantiates and does not declare itself; the description's
    "Module name:" breaks a tie."""
    declared = set(verilog.module_names(testbench))
    used = [m for m in verilog.instantiated_modules(testbench) if m not in declared]
    named = _MODULE_LINE.search(description)
    if len(used) == 1:
        return used[0]
    if named and named.group(1) in used:
        return named.group(1)
    return None


def _reference_top(reference: str, name: str) -> str | None:
    names = verilog.module_names(reference)
    for candidate in (name, f"verified_{name}"):
        if candidate in names:
            return candidate
    used = set(verilog.instantiated_modules(reference))
    tops = [n for n in names if n not in used]
    return tops[0] if len(tops) == 1 else None


def _testbench_top(testbench: str) -> str | None:
    names = verilog.module_names(testbench)
    used = set(verilog.instantiated_modules(testbench))
    tops = [n for n in names if n not in used]
    return tops[0] if len(tops) == 1 else None


def _data_files(folder: Path, reference: Path) -> dict[str, str]:
    files = {}
    for path in sorted(folder.iterdir()):
        if path.name in _SKIPPED_FILES or path == reference or not path.is_file():
            continue
        if path.suffix in (".v", ".sv") or path.stat().st_size > MAX_DATA_FILE_BYTES:
            continue
        try:
            files[path.name] = path.read_text()
        except UnicodeDecodeError:
            continue
    return files


def load_design(folder: Path, split: str = "test", difficulty: str = "medium") -> Design:
    """One design folder; a design that cannot be served has ``task=None`` and its problems."""
    design = Design(folder.name, folder)
    reference_path = _reference_file(folder)
    missing = [n for n in (DESCRIPTION, TESTBENCH) if not (folder / n).is_file()]
    if reference_path is None:
        missing.append("verified_<name>.v (exactly one)")
    if missing:
        design.problems.append(f"missing {', '.join(missing)}")
        return design
    description = (folder / DESCRIPTION).read_text(errors="replace")
    tb = (folder / TESTBENCH).read_text(errors="replace")
    reference = reference_path.read_text(errors="replace")
    if not any(kind == "string" and pass_text(tb[a:b]) for kind, a, b in verilog._literals(tb)):
        design.problems.append("the testbench prints no line containing 'Pass' or 'pass'")
    module = _design_module(tb, description)
    tb_top = _testbench_top(tb)
    if module is None:
        design.problems.append("cannot tell which module the testbench tests")
    if tb_top is None:
        design.problems.append("the testbench has no single top module")
    top = _reference_top(reference, module) if module else None
    if module and top is None:
        design.problems.append(f"cannot find the reference's top module in {reference_path.name}")
    if design.problems:
        return design
    assert module is not None and top is not None and tb_top is not None
    try:
        ports = verilog.parse_module(reference, top).ports
    except ToolError as e:
        design.problems.append(f"the reference's interface cannot be read: {e}")
        return design
    unknown = [p.name for p in ports if p.width <= 0]
    if unknown:
        design.problems.append(f"reference ports without a constant width: {unknown}")
        return design
    renamed = verilog.rename_modules(reference, {top: module}) if top != module else reference
    kind, clock, reset, active = infer_clocking(renamed, module, ports)
    bench = {"testbench": tb, "top": tb_top, "files": _data_files(folder, reference_path)}
    design.task = RTLTask(
        task_id=f"rtllm-{folder.name}",
        split=split,
        difficulty=difficulty,
        family=folder.name,
        kind=kind,
        spec=description.strip(),
        ports=ports,
        reference=renamed,
        module=module,
        clock=clock,
        reset=reset,
        reset_active=active,
        formal_depth=DEFAULT_FORMAL_DEPTH,
        testbench=json.dumps(bench, sort_keys=True),
        source="rtllm",
    )
    return design


def load_designs(root: Path, split: str = "test", difficulty: str = "medium") -> list[Design]:
    folders = design_folders(root)
    if not folders:
        raise TaskError(f"no RTLLM designs ({DESCRIPTION} in a design folder) under {root}")
    return [load_design(f, split, difficulty) for f in folders]


# --------------------------------------------------------------------------------------------
# The import record: which designs' references pass the whole pipeline


def record_path(root: Path) -> Path:
    """Where ``hiergym data import rtllm ROOT`` records its result, under ``HIERGYM_HOME``."""
    return problem.record_path("rtllm", root)


def load_directory(root: Path, split: str = "test", difficulty: str = "medium") -> list[RTLTask]:
    """The designs under ``root`` that can be served: those that load, minus those the import
    record (when there is one for this exact content) refused, each with the proof budget the
    import calibrated."""
    designs = load_designs(root, split, difficulty)
    loaded = [d.task for d in designs if d.task is not None]
    tasks = problem.apply_record("rtllm", root, loaded)
    if not tasks:
        raise TaskError(f"none of the RTLLM designs under {root} can be served")
    return tasks


# --------------------------------------------------------------------------------------------
# hiergym data import rtllm DIR

STAGES = ("compiles", "passes_own_testbench", "proves", "synthesises")


def check_directory(root: Path) -> dict[str, Any]:
    """Check every design's reference and calibrate its proof budget
    (:func:`hiergym.envs.rtl.oracle.check_reference`, reached through the env); designs that
    fail a stage are excluded (with the reason) from then on."""
    import gymnasium as gym

    designs = load_designs(root)
    report: dict[str, Any] = {"directory": str(root), "designs": {}}
    path = record_path(root)
    if path.is_file():
        path.unlink()  # a fresh import judges every design again
    servable = [d for d in designs if d.task is not None]
    for d in designs:
        if d.task is None:
            report["designs"][f"rtllm-{d.name}"] = {
                "loads": False,
                "excluded": True,
                "reason": "; ".join(d.problems),
            }
    if servable:
        env = gym.make("hiergym/RTL-v0", tasks=f"{PREFIX}{root}")
        try:
            for d in servable:
                task = d.task
                assert task is not None
                entry = env.unwrapped.check_reference(task)
                report["designs"][task.task_id] = {"loads": True, **entry}
        finally:
            env.close()
    entries = report["designs"].values()
    report["summary"] = {
        "designs": len(designs),
        "load": sum(1 for e in entries if e["loads"]),
        **{stage: sum(1 for e in entries if e.get(stage)) for stage in STAGES},
        "served": sum(1 for e in entries if not e["excluded"]),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, sort_keys=True))
    report["record"] = str(path)
    return report


def main(argv: Sequence[str] | None = None) -> int:
    """``hiergym data import rtllm DIR``: check an RTLLM checkout, record and print the report."""
    parser = argparse.ArgumentParser(prog="hiergym data import rtllm")
    parser.add_argument("directory", type=Path, help="an RTLLM checkout (or any design folder)")
    args = parser.parse_args(argv)
    try:
        report = check_directory(args.directory)
    except TaskError as e:
        print(f"hiergym: {e}", file=sys.stderr)
        return 2
    print(json.dumps(report, indent=2))
    s = report["summary"]
    print(
        f"{s['served']}/{s['designs']} RTLLM designs verified ({s['load']} load, "
        f"{s['passes_own_testbench']} pass their own testbench, {s['compiles']} compile, "
        f"{s['proves']} prove, {s['synthesises']} synthesise); the others are excluded. "
        f'Use them with gym.make("hiergym/RTL-v0", tasks="{PREFIX}{args.directory}")'
    )
    return 0
