"""VerilogEval (NVlabs, spec-to-RTL v2) problems as hiergym RTL tasks.

A VerilogEval problem directory holds, per problem ``ProbNNN_name``: ``ProbNNN_name_prompt.txt``
(the spec; the answer is a module ``TopModule``), ``ProbNNN_name_ref.sv`` (the reference, module
``RefModule``) and ``ProbNNN_name_test.sv`` (a testbench ``tb`` that instantiates both and prints
``Mismatches: N in M samples``). ``gym.make("hiergym/RTL-v0", tasks="verilog-eval:DIR")`` serves
them: the function level runs their own testbench (its result line stamped with a per-run nonce,
its modules renamed so no design can stand in for them), and the format, syntax, formal and PPA
levels are ours, against ``RefModule``.

``hiergym data import verilog-eval DIR`` (:func:`main`) checks a directory: every problem parses,
and every reference compiles, passes its own testbench, is proven against its own re-synthesised
netlist (which calibrates the problem's proof budget) and synthesises; the record under
``HIERGYM_HOME`` then refuses the problems that do not, with the reason, and serves the others
with their budget.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hiergym.errors import TaskError

from . import problem, rtllm
from .problem import DEFAULT_FORMAL_DEPTH, REQUIRED_MODULE, RTLTask, infer_clocking
from .testbench import VE_RESULT_LITERAL
from .verilog import module_names, parse_module, rename_modules

PREFIX = "verilog-eval:"
KIND = "verilog-eval"
REFERENCE_MODULE = "RefModule"
RESET_NAMES = {"reset": 1, "rst": 1, "areset": 1, "resetn": 0, "aresetn": 0, "rst_n": 0}


__all__ = ["infer_clocking", "load_directory", "load_problem", "main", "parse_source"]


@dataclass(frozen=True)
class TaskSource:
    """A directory of imported problems and the benchmark layout it is in."""

    kind: str  # "verilog-eval" | "rtllm"
    path: Path


def parse_source(spec: str) -> TaskSource | None:
    """The source of a ``tasks="verilog-eval:DIR"`` or ``tasks="rtllm:DIR"`` argument; ``None``
    for the built-ins."""
    if spec in ("", "builtin"):
        return None
    for prefix in (PREFIX, rtllm.PREFIX):
        if spec.startswith(prefix):
            path = Path(spec[len(prefix) :]).expanduser()
            if not path.is_dir():
                raise TaskError(f"{spec!r}: {path} is not a directory")
            return TaskSource(prefix[:-1], path)
    raise TaskError(
        f"unknown task source {spec!r}; expected 'builtin' or '{PREFIX}DIR' (a VerilogEval "
        f"spec-to-RTL problem directory) or '{rtllm.PREFIX}DIR' (an RTLLM checkout)"
    )


def load_problem(directory: Path, name: str, split: str, difficulty: str) -> RTLTask:
    """One problem ``name`` (``ProbNNN_name``) of a VerilogEval directory."""
    files = {
        kind: directory / f"{name}_{kind}.{ext}"
        for kind, ext in (("prompt", "txt"), ("ref", "sv"), ("test", "sv"))
    }
    missing = [str(p.name) for p in files.values() if not p.is_file()]
    if missing:
        raise TaskError(f"VerilogEval problem {name}: missing {missing}")
    prompt, ref, test = (files[k].read_text() for k in ("prompt", "ref", "test"))
    try:
        module = parse_module(ref, REFERENCE_MODULE)
    except Exception as e:  # a ToolError from the parser: the problem, not the agent, is broken
        raise TaskError(f"VerilogEval problem {name}: {e}") from e
    if any(p.width <= 0 for p in module.ports):
        raise TaskError(f"VerilogEval problem {name}: every RefModule port needs a constant width")
    test_modules = module_names(test)
    if "tb" not in test_modules or VE_RESULT_LITERAL not in test:
        raise TaskError(
            f"VerilogEval problem {name}: the testbench must declare module tb and print "
            "'Mismatches: N in M samples'"
        )
    clash = set(test_modules) & {REQUIRED_MODULE, REFERENCE_MODULE}
    if clash:
        raise TaskError(f"VerilogEval problem {name}: the testbench declares {sorted(clash)}")
    names = {p.name for p in module.ports}
    reference = rename_modules(ref, {REFERENCE_MODULE: REQUIRED_MODULE})
    kind, clock, reset, active = infer_clocking(reference, REQUIRED_MODULE, module.ports)
    known = next((r for r in RESET_NAMES if r in names), None)
    if known is not None:  # VerilogEval's own reset names keep their documented polarity
        reset, active = known, RESET_NAMES[known]
    return RTLTask(
        task_id=f"verilog-eval-{name}",
        split=split,
        difficulty=difficulty,
        family=name,
        kind=kind,
        spec=prompt.strip(),
        ports=module.ports,
        reference=reference,
        clock=clock,
        reset=reset if kind == "seq" else None,
        reset_active=active if kind == "seq" else 1,
        formal_depth=DEFAULT_FORMAL_DEPTH,
        testbench=test,
        source="verilog-eval",
    )


def problem_names(directory: Path) -> list[str]:
    return sorted(p.name[: -len("_prompt.txt")] for p in directory.glob("*_prompt.txt"))


def load_directory(
    directory: Path | TaskSource, split: str = "test", difficulty: str = "medium"
) -> list[RTLTask]:
    """Every problem of a VerilogEval directory, or every servable design of an RTLLM checkout
    (split and difficulty are labels only), as the import record left them: the problems
    ``hiergym data import`` refused are dropped, the others carry their calibrated proof budget
    (:func:`~hiergym.envs.rtl.problem.apply_record`)."""
    if isinstance(directory, TaskSource):
        if directory.kind == "rtllm":
            return rtllm.load_directory(directory.path, split, difficulty)
        directory = directory.path
    names = problem_names(directory)
    if not names:
        raise TaskError(f"no VerilogEval problems (*_prompt.txt) in {directory}")
    loaded = [load_problem(directory, n, split, difficulty) for n in names]
    tasks = problem.apply_record(KIND, directory, loaded)
    if not tasks:
        raise TaskError(f"none of the VerilogEval problems in {directory} can be served")
    return tasks


def record_path(kind: str, directory: Path) -> Path:
    """Where ``hiergym data import KIND DIR`` records its result (see :mod:`.problem`)."""
    return problem.record_path(kind, directory)


STAGES = ("compiles", "passes_own_testbench", "proves", "synthesises")


def check_directory(directory: Path) -> dict[str, Any]:
    """Check every problem's reference and calibrate its proof budget
    (:func:`hiergym.envs.rtl.oracle.check_reference`, reached through the env: it compiles,
    passes the problem's own testbench, is proven against its own re-synthesised netlist or
    decided by the documented rule, and synthesises onto the library), and record the result
    under ``HIERGYM_HOME``: from then on ``tasks="verilog-eval:DIR"`` serves the problems that
    passed, each with its budget, and leaves out the others with the reason in the record."""
    import gymnasium as gym

    path = record_path(KIND, directory)
    if path.is_file():
        path.unlink()  # a fresh import judges every problem again
    env = gym.make("hiergym/RTL-v0", tasks=f"{PREFIX}{directory}")
    report: dict[str, Any] = {"directory": str(directory), "problems": {}}
    try:
        for task in env.unwrapped.tasks:
            report["problems"][task.task_id] = env.unwrapped.check_reference(task)
    finally:
        env.close()
    entries = report["problems"].values()
    report["summary"] = {
        "problems": len(entries),
        **{stage: sum(1 for e in entries if e.get(stage)) for stage in STAGES},
        "served": sum(1 for e in entries if not e["excluded"]),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, sort_keys=True))
    report["record"] = str(path)
    return report


def main(argv: Sequence[str] | None = None) -> int:
    """``hiergym data import verilog-eval DIR``: check a directory and print the report as JSON."""
    parser = argparse.ArgumentParser(prog="hiergym data import verilog-eval")
    parser.add_argument("directory", type=Path, help="a VerilogEval spec-to-RTL problem directory")
    args = parser.parse_args(argv)
    try:
        report = check_directory(args.directory)
    except TaskError as e:
        print(f"hiergym: {e}", file=sys.stderr)
        return 2
    print(json.dumps(report, indent=2))
    s = report["summary"]
    print(
        f"{s['served']}/{s['problems']} problems verified ({s['compiles']} compile, "
        f"{s['passes_own_testbench']} pass their own testbench, {s['proves']} prove, "
        f"{s['synthesises']} synthesise); the others are excluded (reasons above). Use them with "
        f'gym.make("hiergym/RTL-v0", tasks="{PREFIX}{args.directory}")'
    )
    return 0 if s["served"] == s["problems"] else 1
