"""The sandboxed toolchain: iverilog/vvp for compilation and simulation, yosys (with ABC) for
synthesis and formal equivalence.

Every run happens in a fresh temp dir, in a subprocess with a wall-clock timeout and, through
``prlimit``, CPU-time, address-space (RLIMIT_AS), file-size and process-count limits; its output is
read back capped. Each stage is a pure function of (task, code, limits) returning a JSON-able dict,
so the sandbox's ToolCache can key it by a hash of the source, the problem and the toolchain version
(see :func:`scope`). Nothing here ever raises on a bad design: failures are data.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import math
import os
import re
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from hiergym.errors import SandboxError, ToolError, did_you_mean
from hiergym.sandbox_data import source_dir

from . import testbench, verilog

RUNNER_VERSION = "rtl-runner-9"
"""Bump when a stage's output for the same inputs changes meaning: it is part of every cache key."""
LIBERTY_NAME = "hiergym_generic.lib"
REQUIRED_PROGRAMS = ("iverilog", "vvp", "yosys", "yosys-abc", "prlimit")
RESERVED_MODULE_NAMES = frozenset({"RefModule", "tb", "stimulus_gen"})
"""Names of the modules a testbench brings; a design that declares one is trying to stand in for
the reference or the harness (the format level refuses it). Every ``hg_*`` name is reserved too."""
MAX_MESSAGE_CHARS = 3000
MAX_LOG_CHARS = 1500


class ToolchainMissing(SandboxError):
    """iverilog, vvp, yosys, yosys-abc or prlimit is not installed."""


@dataclass(frozen=True)
class Limits:
    """Resource limits of one toolchain run; part of the cache key (a timeout is a result)."""

    compile_s: float = 10.0
    simulate_s: float = 20.0
    formal_s: float = 30.0
    synthesize_s: float = 30.0
    memory_mb: int = 2048
    file_mb: int = 16
    processes: int = 256

    def key(self) -> str:
        return ",".join(f"{k}={v}" for k, v in asdict(self).items())


def limits_from(value: Limits | dict[str, Any] | None) -> Limits:
    """Limits from an env argument: a :class:`Limits`, a dict of some of its fields, or None."""
    if value is None:
        return Limits()
    if isinstance(value, Limits):
        return value
    known = {f.name for f in fields(Limits)}
    unknown = sorted(set(value) - known)
    if unknown:
        raise ValueError(
            f"unknown limits {unknown}{did_you_mean(unknown[0], known)}; "
            f"the fields are {sorted(known)}"
        )
    return Limits(**value)


@dataclass(frozen=True)
class RunResult:
    returncode: int
    stdout: str
    stderr: str
    timed_out: bool
    seconds: float

    @property
    def output(self) -> str:
        return (self.stdout + "\n" + self.stderr).strip()


def missing_programs() -> list[str]:
    return [p for p in REQUIRED_PROGRAMS if shutil.which(p) is None]


def require_toolchain() -> None:
    """Raise :class:`ToolchainMissing` with install instructions if a program is missing."""
    missing = missing_programs()
    if missing:
        raise ToolchainMissing(
            f"hiergym/RTL-v0 needs iverilog (with vvp), yosys (with yosys-abc) and prlimit on PATH; "
            f"missing: {', '.join(missing)}. Install them with "
            "`sudo apt-get install iverilog yosys util-linux` (Debian/Ubuntu), "
            "`brew install icarus-verilog yosys` (macOS, no prlimit: Linux only), "
            "or run scripts/install-system-deps.sh from the hiergym repository"
        )


@functools.lru_cache(maxsize=1)
def toolchain_version() -> str:
    """``iverilog x / yosys y / runner``: the toolchain part of every cache key."""
    require_toolchain()
    iv = subprocess.run(["iverilog", "-V"], capture_output=True, text=True, timeout=30)
    ys = subprocess.run(["yosys", "-V"], capture_output=True, text=True, timeout=30)
    iv_line = next((ln for ln in (iv.stdout + iv.stderr).splitlines() if "version" in ln), "?")
    return f"{iv_line.strip()} / {ys.stdout.strip()} / {RUNNER_VERSION}"


def liberty_path() -> Path:
    return source_dir("rtl") / LIBERTY_NAME


@functools.lru_cache(maxsize=1)
def library_cells() -> frozenset[str]:
    """The names of the cells the shipped liberty file defines."""
    text = liberty_path().read_text()
    return frozenset(re.findall(r"\bcell\s*\(\s*\"?(\w+)\"?\s*\)", text))


def scope(task: Any, limits: Limits) -> str:
    """What a toolchain result depends on besides the code: the problem, the limits, the tools."""
    return hashlib.sha256(
        f"{task.fingerprint}|{limits.key()}|{toolchain_version()}".encode()
    ).hexdigest()[:32]


# --------------------------------------------------------------------------------------------
# Running one program


def _read_capped(path: Path, limit: int) -> str:
    try:
        with open(path, "rb") as f:
            data = f.read(limit + 1)
    except FileNotFoundError:
        return ""
    text = data[:limit].decode("utf-8", errors="replace")
    return text + ("\n... [output truncated]" if len(data) > limit else "")


def run(argv: Sequence[str], cwd: Path, timeout: float, limits: Limits) -> RunResult:
    """Run ``argv`` in ``cwd`` under the limits; stdout and stderr go to files, read back capped.

    The process gets its own session so a timeout kills it with every child (yosys runs ABC as
    one). ``prlimit`` sets the limits before exec, which is safe from any thread (unlike a
    ``preexec_fn``).
    """
    cpu = max(1, math.ceil(timeout) + 1)
    wrapped = [
        "prlimit",
        f"--as={limits.memory_mb * 1024 * 1024}",
        f"--cpu={cpu}",
        f"--fsize={limits.file_mb * 1024 * 1024}",
        f"--nproc={limits.processes}",
        "--core=0",
        "--",
        *argv,
    ]
    out_path, err_path = cwd / ".stdout", cwd / ".stderr"
    start = time.perf_counter()
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        proc = subprocess.Popen(
            wrapped,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            start_new_session=True,
            # TMPDIR: yosys puts ABC's files there and a killed run cannot clean up after itself;
            # inside the run's directory they go with it.
            env={
                "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                "LC_ALL": "C",
                "HOME": str(cwd),
                "TMPDIR": str(cwd),
            },
        )
        timed_out = False
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            _kill_group(proc)
    elapsed = time.perf_counter() - start
    cap = 64_000
    returncode = proc.returncode
    if returncode is not None and returncode in (-signal.SIGXCPU, 128 + signal.SIGXCPU):
        timed_out = True  # the CPU limit hit before the wall clock
    return RunResult(
        returncode, _read_capped(out_path, cap), _read_capped(err_path, cap), timed_out, elapsed
    )


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):  # it may have exited meanwhile
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


class Workdir:
    """A fresh temp dir for one run, removed afterwards; files go in by name only."""

    def __init__(self) -> None:
        self.path = Path(tempfile.mkdtemp(prefix="hiergym-rtl-"))

    def write(self, name: str, text: str) -> str:
        (self.path / name).write_text(text)
        return name

    def __enter__(self) -> Workdir:
        return self

    def __exit__(self, *exc: object) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


def _scrub(text: str, nonce: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    """Tool output fit for the agent: no nonce (it would make answers differ between runs), no
    temp-dir path, capped."""
    if nonce:
        text = text.replace(nonce, "N")
    text = re.sub(r"/tmp/hiergym-rtl-[A-Za-z0-9_]+/", "", text)
    text = re.sub(r"(?:/tmp/)?yosys-abc-[A-Za-z0-9_]+", "<abc>", text)
    if len(text) > limit:
        text = text[:limit] + "\n... [truncated]"
    return text.strip()


# --------------------------------------------------------------------------------------------
# Stage 1: format + compile


def check_format(task: Any, code: str) -> dict[str, Any] | None:
    """``None`` if ``code`` declares the required module with the required ports, else a failure
    report (category "format")."""
    try:
        verilog.check_size(code)
        module = verilog.parse_module(code, task.module)
    except ToolError as e:
        return {"ok": False, "category": "format", "messages": str(e)}
    reserved = [
        n for n in verilog.module_names(code) if n in RESERVED_MODULE_NAMES or n.startswith("hg_")
    ]
    if reserved:
        return {
            "ok": False,
            "category": "format",
            "code": "reserved_module_name",
            "messages": f"module name(s) {sorted(set(reserved))} are reserved for the testbench and "
            "the reference; rename them",
        }
    problems = verilog.interface_problems(module, task.ports)
    if problems:
        return {
            "ok": False,
            "category": "format",
            "code": "interface",
            "messages": f"module {task.module} does not have the required interface: "
            + "; ".join(problems),
        }
    return None


_PORT_WIDTH_WARNING = re.compile(r"[Pp]ort \d+ \((\w+)\) of \w+ expects (\d+) bits?, got (\d+)")


def _classify_compile(result: RunResult) -> str:
    text = result.output
    if result.timed_out:
        return "timeout"
    if "syntax error" in text or "Syntax error" in text:
        return "syntax"
    if "sorry:" in text:
        return "unsupported"
    return "elaboration"


def compile_design(task: Any, code: str, limits: Limits) -> dict[str, Any]:
    """Format, the static scan, then iverilog on the design alone with an interface harness.

    The harness instantiates the required module with wires of the required widths, so a wrong
    width is an error here, and a design that names anything outside itself (the testbench, the
    reference) fails to elaborate: there is nothing else in this compilation to bind to.
    """
    code = verilog.extract_code(code)
    failed = check_format(task, code)
    if failed is not None:
        return failed
    forbidden = verilog.scan_forbidden(code)
    if forbidden:
        return {
            "ok": False,
            "category": "unsupported",
            "code": "forbidden_construct",
            "messages": "; ".join(f"line {f.line}: {f.message}" for f in forbidden)
            + ". Designs may use only synthesizable Verilog, console output and "
            + ", ".join(sorted(verilog.ALLOWED_SYSTEM_FUNCTIONS)),
        }
    nonce = secrets.token_hex(8)
    harness = f"hg_iface_{nonce}"
    with Workdir() as wd:
        wd.write("design.v", code)
        wd.write("harness.v", testbench.interface_harness(task, harness))
        result = run(
            [
                "iverilog",
                "-g2012",
                "-Wall",
                "-Wno-timescale",
                "-o",
                "design.vvp",
                "-s",
                harness,
                "design.v",
                "harness.v",
            ],
            wd.path,
            limits.compile_s,
            limits,
        )
    messages = _scrub(result.output, nonce)
    warnings = len(re.findall(r"\bwarning\b", result.output, re.I))
    if result.returncode != 0 or result.timed_out:
        return {
            "ok": False,
            "category": _classify_compile(result),
            "messages": messages or f"iverilog exited with status {result.returncode}",
            "warnings": warnings,
        }
    widths = _PORT_WIDTH_WARNING.findall(result.output)
    if widths:
        return {
            "ok": False,
            "category": "elaboration",
            "code": "interface",
            # iverilog: "Port 1 (a) of TopModule expects 4 bits, got 8." -> the design has 4.
            "messages": "; ".join(
                f"port {p!r} must be {want} bits wide, the design declares {have}"
                for p, have, want in widths
            ),
            "warnings": warnings,
        }
    return {"ok": True, "category": "ok", "messages": messages, "warnings": warnings}


# --------------------------------------------------------------------------------------------
# Stage 2: simulation against the reference


def simulate_design(task: Any, code: str, limits: Limits) -> dict[str, Any]:
    """Compile, then simulate the design next to the reference under the generated testbench."""
    compiled = compile_design(task, code, limits)
    if not compiled["ok"]:
        return {"ok": False, "status": "compile_failed", "compile": compiled}
    return run_testbench(task, verilog.extract_code(code), limits)


def run_testbench(task: Any, code: str, limits: Limits) -> dict[str, Any]:
    """Simulate ``code`` next to the reference, without the static checks of compilation (the
    tests call it directly to show the result channel holds even then)."""
    nonce = secrets.token_hex(8)
    bench = testbench.build(task, nonce)
    with Workdir() as wd:
        for name, text in bench.files.items():
            wd.write(name, text)
        wd.write("design.v", code)
        built = run(
            [
                "iverilog",
                "-g2012",
                "-Wall",
                "-Winfloop",
                "-Wno-timescale",
                "-o",
                "sim.vvp",
                "-s",
                bench.top,
                *bench.sources,
                "design.v",
            ],
            wd.path,
            limits.compile_s,
            limits,
        )
        if built.returncode != 0 or built.timed_out:
            return {
                "ok": False,
                "status": "testbench_compile_failed",
                "messages": _scrub(built.output, nonce),
            }
        ran = run(["vvp", "-n", "sim.vvp"], wd.path, limits.simulate_s, limits)
        result_text = (
            _read_capped(wd.path / bench.result_file, 256_000) if bench.result_file else ""
        )
    report = bench.parse(ran.stdout, result_text)
    report["log"] = _scrub(bench.console(ran.stdout), nonce, MAX_LOG_CHARS)
    if ran.timed_out:
        report.update(ok=False, status="timeout", score=0.0)
        report["messages"] = (
            f"the simulation did not finish within {limits.simulate_s:g} s: the design loops "
            "forever (a combinational loop or an always block without an event control)"
        )
    elif report["status"] == "no_result":
        crashed = ran.returncode not in (0, None)
        report["messages"] = (
            f"the simulation ended without a result (vvp exit status {ran.returncode}"
            f"{', killed by a resource limit' if crashed and ran.returncode < 0 else ''}): "
            "the design stopped the simulation early or exhausted a resource"
        )
    return report


# --------------------------------------------------------------------------------------------
# Stage 3: formal equivalence with yosys


# yosys runs a design's `initial $display` while reading it, into the same log: every marker the
# verdict is read from carries the run's nonce, which the design cannot know, and the figures are
# read only from the log after the marker that opens their stage.


def _marker(nonce: str, stage: str) -> str:
    return f"HGSTAGE_{nonce} {stage}"


def _stage_of_error(log: str, nonce: str) -> tuple[str, str]:
    """(last stage marker before the error, the error lines)."""
    stage = "read"
    for m in re.finditer(rf"HGSTAGE_{nonce} (\w+)", log):
        stage = m.group(1)
    errors = [ln.strip() for ln in log.splitlines() if "ERROR" in ln]
    return stage, "\n".join(errors[:8])


def _section(log: str, nonce: str, stage: str) -> str:
    """The log after the (last) marker of ``stage``; empty if the run never got there."""
    marker = _marker(nonce, stage)
    return log.rsplit(marker, 1)[1] if marker in log else ""


_SAT_ROW = re.compile(r"^\s*(\d+\s+)?\\(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s*$")


def _counterexample(log: str) -> list[dict[str, Any]]:
    """Rows of yosys sat's model table: step (None for combinational), signal, value (hex)."""
    rows = []
    table = log.split("Signal Name", 1)
    if len(table) < 2:
        return rows
    for line in table[1].splitlines()[2:]:
        m = _SAT_ROW.match(line)
        if not m:
            if rows:
                break
            continue
        step = int(m.group(1)) if m.group(1) else None
        rows.append({"step": step, "signal": m.group(2), "hex": m.group(4)})
    return rows[:200]


def prove_equivalence(task: Any, code: str, limits: Limits) -> dict[str, Any]:
    """Prove the design equivalent to the reference with a SAT miter in yosys.

    Combinational problems: a full proof over every input. Sequential problems: bounded
    equivalence from reset over ``task.formal_depth`` cycles (reset asserted in the first, any
    inputs after), registers starting undefined, the reference's undefined outputs ignored (as in
    simulation). The result's ``status`` is ``proven``, ``counterexample``, ``inconclusive``
    (timeout, or a construct the prover cannot model: never a pass), ``not_synthesizable`` or
    ``not_combinational`` (a latch or register in a combinational problem).
    """
    code = verilog.extract_code(code)
    nonce = secrets.token_hex(8)
    ref_name = f"hg_ref_{nonce}"
    reference = testbench.renamed_reference(task, ref_name, nonce)
    seq = task.kind == "seq"
    depth = int(task.formal_depth) if seq else 0
    lines = [
        f"log {_marker(nonce, 'read')}",
        "read_verilog -sv design.v",
        f"hierarchy -check -top {task.module}",
        f"setattr -mod -unset top {task.module}",  # else the next hierarchy purges the reference
        f"log {_marker(nonce, 'reference')}",
        "read_verilog -sv reference.v",
        f"log {_marker(nonce, 'prepare')}",
        "hierarchy -check",
        "proc",
        "flatten",
        "memory",
        "opt_clean",
    ]
    if not seq:
        lines += [
            f"log {_marker(nonce, 'state')}",
            f"select -assert-none {task.module}/t:$*dff* {task.module}/t:$*latch*",
        ]
    else:
        lines += ["async2sync", "dffunmap", "opt_clean"]
    lines += [
        f"log {_marker(nonce, 'miter')}",
        f"miter -equiv -flatten -make_outputs -ignore_gold_x {ref_name} {task.module} hg_miter",
        "hierarchy -top hg_miter",
        f"log {_marker(nonce, 'prove')}",
    ]
    sat = "sat -prove trigger 0 -set-def-inputs -enable_undef -show-ports"
    if seq:
        sat += f" -seq {depth} -set-init-undef"
        if task.reset:
            sat += f" -set-at 1 in_{task.reset} {task.reset_active}"
    lines += [sat + " hg_miter", f"log {_marker(nonce, 'done')}"]
    method = f"bounded equivalence from reset over {depth} cycles" if seq else "SAT miter"
    with Workdir() as wd:
        wd.write("design.v", code)
        wd.write("reference.v", reference)
        wd.write("script.ys", "\n".join(lines) + "\n")
        result = run(["yosys", "-Q", "-T", "-s", "script.ys"], wd.path, limits.formal_s, limits)
    log = result.output
    base: dict[str, Any] = {"method": method, "depth": depth}
    if result.timed_out:
        return {
            **base,
            "status": "inconclusive",
            "messages": f"the proof did not finish within {limits.formal_s:g} s",
        }
    stage, errors = _stage_of_error(log, nonce)
    # Only the sat pass writes between these two markers (the design printed long before).
    proof = _section(log, nonce, "prove").split(_marker(nonce, "done"), 1)[0]
    finished = stage == "done" and result.returncode == 0
    if finished and "SAT proof finished - no model found: SUCCESS!" in proof:
        return {**base, "status": "proven", "messages": ""}
    if finished and "model found: FAIL!" in proof:
        return {
            **base,
            "status": "counterexample",
            "counterexample": _counterexample(proof),
            "messages": "the design and the reference differ on the inputs shown",
        }
    errors = _scrub(errors or log[-800:], nonce)
    if stage == "read":
        return {**base, "status": "not_synthesizable", "messages": errors}
    if stage == "state":
        return {
            **base,
            "status": "not_combinational",
            "messages": "the design holds state (a latch, register or memory) but the problem is "
            "combinational: every output must be a function of the current inputs alone",
        }
    return {
        **base,
        "status": "inconclusive",
        "messages": f"the prover stopped at stage {stage!r}: {errors}",
    }


# --------------------------------------------------------------------------------------------
# Stage 4: synthesis (PPA)

_AREA = re.compile(r"Chip area for module '\\?[^']+':\s*([0-9.]+)")
_CELLS = re.compile(r"Number of cells:\s*(\d+)")
_ABC_DELAY = re.compile(r"Delay\s*=\s*([0-9.]+)\s*ps")
_ABC_LEVELS = re.compile(r"\blev\s*=\s*(\d+)")
_CELL_LINE = re.compile(r"^\s{5,}(\S+)\s+(\d+)\s*$")


def synthesize_design(task: Any, code: str, limits: Limits) -> dict[str, Any]:
    """Synthesize with yosys, map flip-flops and logic to the shipped liberty library with ABC,
    and report cell count, area (``stat -liberty``), delay (ABC ``stime``) and logic depth."""
    code = verilog.extract_code(code)
    nonce = secrets.token_hex(8)
    lib = liberty_path()
    abc_script = "+strash;dc2;&get -n;&dch -f;&nf;&put;topo;print_stats;stime -p"
    script = "\n".join(
        [
            f"log {_marker(nonce, 'read')}",
            "read_verilog -sv design.v",
            f"hierarchy -check -top {task.module}",
            f"log {_marker(nonce, 'synth')}",
            f"synth -top {task.module} -flatten",
            f"dfflibmap -liberty {lib}",
            f"log {_marker(nonce, 'abc')}",
            f'abc -liberty {lib} -script "{abc_script}"',
            "opt_clean",
            f"log {_marker(nonce, 'stat')}",
            f"stat -liberty {lib}",
        ]
    )
    with Workdir() as wd:
        wd.write("design.v", code)
        wd.write("script.ys", script + "\n")
        result = run(["yosys", "-Q", "-T", "-s", "script.ys"], wd.path, limits.synthesize_s, limits)
    log = result.output
    if result.timed_out:
        return {
            "ok": False,
            "status": "timeout",
            "messages": f"synthesis did not finish within {limits.synthesize_s:g} s",
        }
    stat = _section(log, nonce, "stat")
    if result.returncode != 0 or "Number of cells" not in stat:
        stage, errors = _stage_of_error(log, nonce)
        return {
            "ok": False,
            "status": "not_synthesizable" if stage in ("read", "synth") else "failed",
            "messages": _scrub(errors or log[-800:], ""),
        }
    area = _AREA.findall(stat)  # stat prints no area line for a design with no cells at all
    cells: dict[str, int] = {}
    for line in stat.split("Number of cells:", 1)[-1].splitlines()[1:]:
        m = _CELL_LINE.match(line)
        if m:
            cells[m.group(1)] = int(m.group(2))
        elif line.strip() and cells:
            break
    n_cells = _CELLS.findall(stat)
    abc = _section(log, nonce, "abc").split(_marker(nonce, "stat"), 1)[0]
    delays = _ABC_DELAY.findall(abc)
    levels = _ABC_LEVELS.findall(abc)
    # Anything but a library cell has no area or delay in the library: an internal cell ABC left
    # unmapped, or a module instance that survived flattening.
    unmapped = sorted(c for c in cells if c not in library_cells())
    return {
        "ok": True,
        "status": "ok",
        "cells": int(n_cells[-1]) if n_cells else sum(cells.values()),
        "area": round(float(area[-1]), 4) if area else 0.0,
        "delay_ps": round(float(delays[-1]), 2) if delays else 0.0,
        "depth": int(levels[-1]) if levels else 0,
        "sequential_cells": sum(n for c, n in cells.items() if c.startswith(("DFF", "DLH"))),
        "cell_types": cells,
        "unmapped_cells": unmapped,
    }
