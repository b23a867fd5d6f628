"""Problem generator: sandbox_data/rtl/ families (templates, specs, variants) -> SQLite task table.

A family is one reference template (the module ``TopModule``) and one spec template; its variants
set parameters (widths, patterns, durations). ``${expr}`` in either template is replaced by the
value of ``expr``, a small arithmetic expression over the variant's parameters (``W-1``,
``2**N``, ``clog2(W+1)``). Ports are read from the rendered reference, so the interface shown to
the agent is the reference's own. Splits are per family (train, dev and test share no family).
"""

from __future__ import annotations

import ast
import json
import math
import operator
import re
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from hiergym.envs.sandbox import Progress, build_database
from hiergym.errors import TaskError
from hiergym.sandbox_data import source_dir

from .problem import REQUIRED_MODULE, RTLTask
from .verilog import parse_module

GENERATOR_VERSION = "rtl-4"  # rtl-4: every problem checked, its budgets calibrated at build
SPLITS = ("train", "dev", "test")
DIFFICULTIES = ("easy", "medium", "hard")
DEFAULT_FORMAL_DEPTH = 20
DEFAULT_SAMPLES = 1200
SCHEMA = """
CREATE TABLE tasks (task_id TEXT PRIMARY KEY, split TEXT NOT NULL, difficulty TEXT NOT NULL,
                    family TEXT NOT NULL, payload TEXT NOT NULL);
CREATE INDEX tasks_by_split ON tasks (split, difficulty);
"""

_PLACEHOLDER = re.compile(r"\$\{([^}]*)\}")
_OPS: dict[type, Any] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
    ast.USub: operator.neg,
}


def clog2(n: int) -> int:
    """Bits to index ``n`` things (Verilog's $clog2): ceil(log2(n)), 0 for n <= 1."""
    return 0 if n <= 1 else math.ceil(math.log2(n))


def evaluate(expr: str, params: dict[str, Any]) -> Any:
    """The value of a template expression: integers, parameter names, + - * // % **, clog2()."""

    def ev(node: ast.AST) -> Any:
        if isinstance(node, ast.Expression):
            return ev(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, int | str):
            return node.value
        if isinstance(node, ast.Name):
            if node.id not in params:
                raise TaskError(f"template expression {expr!r} uses unknown parameter {node.id!r}")
            return params[node.id]
        if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
            return _OPS[type(node.op)](ev(node.left), ev(node.right))
        if isinstance(node, ast.UnaryOp) and type(node.op) in _OPS:
            return _OPS[type(node.op)](ev(node.operand))
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "clog2"
            and len(node.args) == 1
        ):
            return clog2(ev(node.args[0]))
        raise TaskError(f"unsupported template expression {expr!r}")

    return ev(ast.parse(expr.strip(), mode="eval"))


def render(template: str, params: dict[str, Any]) -> str:
    return _PLACEHOLDER.sub(lambda m: str(evaluate(m.group(1), params)), template)


def load_families() -> list[dict[str, Any]]:
    return json.loads((source_dir("rtl") / "families.json").read_text())["families"]


def _slug(params: dict[str, Any]) -> str:
    parts = [
        f"{k.lower()}{v}"
        for k, v in params.items()
        if isinstance(v, int) or (isinstance(v, str) and re.fullmatch(r"[A-Za-z0-9]{1,12}", v))
    ]
    return "-".join(parts)


def generate_tasks(root: Path | None = None) -> list[RTLTask]:
    """Every built-in task, family by family, variant by variant."""
    root = root or source_dir("rtl")
    tasks: list[RTLTask] = []
    for fam in load_families():
        template = (root / "templates" / fam["template"]).read_text()
        for variant in fam["variants"]:
            params = {k: v for k, v in variant.items() if k != "difficulty"}
            reference = render(template, params)
            module = parse_module(reference, REQUIRED_MODULE)
            seq = fam["kind"] == "seq"
            task = RTLTask(
                task_id=f"rtl-{fam['family']}-{_slug(params)}",
                split=fam["split"],
                difficulty=variant["difficulty"],
                family=fam["family"],
                kind=fam["kind"],
                spec=render(fam["spec"], params),
                ports=module.ports,
                reference=reference,
                clock="clk" if seq else None,
                reset="rst" if seq else None,
                stimulus=json.dumps(fam.get("stimulus", {}), sort_keys=True),
                samples=int(evaluate(str(fam.get("cycles", DEFAULT_SAMPLES)), params)),
                formal_depth=int(fam.get("formal_depth", DEFAULT_FORMAL_DEPTH)),
            )
            if any(p.width <= 0 for p in task.ports):
                raise TaskError(f"{task.task_id}: every reference port needs a constant width")
            if task.split not in SPLITS or task.difficulty not in DIFFICULTIES:
                raise TaskError(f"{task.task_id}: bad split or difficulty")
            tasks.append(task)
    ids = [t.task_id for t in tasks]
    if len(set(ids)) != len(ids):
        raise TaskError(f"duplicate task ids: {sorted(i for i in ids if ids.count(i) > 1)}")
    return tasks


def build(
    conn: sqlite3.Connection, progress: Progress, prove: Callable[[RTLTask], RTLTask] | None
) -> None:
    """The task table: every built-in problem, each checked and calibrated by ``prove`` (the
    oracle's: its reference compiles, passes the generated testbench, is proven against its own
    re-synthesised netlist, which sets its proof budget, and synthesises; a problem that does
    not stops the build with the reason). Two at a time: the toolchain runs are subprocesses.
    ``prove=None``: an empty table (the sandbox of imported problems, which bring their own)."""
    conn.executescript(SCHEMA)
    if prove is None:
        conn.commit()
        return
    tasks = generate_tasks()
    advance = progress("rtl: problems (checked, proof budget calibrated)", total=len(tasks))

    def one(task: RTLTask) -> RTLTask:
        proven = prove(task)
        advance(1)
        return proven

    with ThreadPoolExecutor(max_workers=2) as pool:
        proven = list(pool.map(one, tasks))
    for t in proven:
        conn.execute(
            "INSERT INTO tasks VALUES (?,?,?,?,?)",
            (t.task_id, t.split, t.difficulty, t.family, t.to_json()),
        )
    conn.commit()


def database_path(prove: Callable[[RTLTask], RTLTask] | None) -> Path:
    """The built-in sandbox, built on first use with ``prove`` (the env hands down the oracle's,
    as in every domain: see :mod:`hiergym.envs.building`); ``prove=None``: the sandbox of
    imported problems (``tasks="verilog-eval:DIR"`` / ``"rtllm:DIR"``), with no built-in
    problem, so serving an import never waits for the built-ins to be calibrated."""
    version = GENERATOR_VERSION if prove is not None else f"{GENERATOR_VERSION}+imports"
    return build_database(
        "rtl", source_dir("rtl"), lambda conn, progress: build(conn, progress, prove), version
    )
