"""The sandboxed toolchain: iverilog/vvp for compilation and simulation, yosys (with ABC) for
synthesis and formal equivalence.

Every run happens in a fresh temp dir, through the shared execution layer
(:mod:`hiergym.envs.execution`): a subprocess with a CPU-time budget for its whole process tree
(yosys starts yosys-abc and Python), address-space, file-size and process-count limits, a
wall-clock backstop and a machine-wide cap on concurrent runs; its output is read back capped.
Every budget is in CPU seconds, so a verdict does not depend on the machine's load (see
:func:`run`). Each stage is a pure function of (task, code, limits) returning a JSON-able dict,
so the sandbox's ToolCache can key it by a hash of the source, the problem and the toolchain version
(see :func:`scope`). Nothing here ever raises on a bad design: failures are data.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import re
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from hiergym.envs import execution
from hiergym.errors import SandboxError, ToolError, did_you_mean
from hiergym.sandbox_data import source_dir

from . import ppa, testbench, verilog

RUNNER_VERSION = "rtl-runner-15"  # 15: ABC sweeps a sequential miter before pdr
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


class MachineOverloaded(SandboxError):
    """A toolchain run hit its wall-clock backstop twice within its CPU budget: the machine, not
    the design, was too slow, so the run says nothing about the design. Raised, never a verdict:
    a tool call shows it as an error, a verdict raises it as a VerifierError, an import stops."""


@dataclass(frozen=True)
class Limits:
    """Resource limits of one toolchain run; part of the cache key. A run that hits a limit is
    reported but never cached (see :func:`is_transient`): a load spike is not a verdict.

    The ``*_s`` budgets are CPU seconds of the run's whole process tree (a stage of several
    runs shares its budget: each gets what the earlier ones left), so they decide the same way
    on an idle and on a loaded machine; the wall clock is only a backstop
    (:data:`WALL_BACKSTOP_FACTOR`)."""

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
    return f"{iv_line.strip()} / {ys.stdout.strip()} / {RUNNER_VERSION}+{ppa.CANONICAL_VERSION}"


def liberty_path() -> Path:
    return source_dir("rtl") / LIBERTY_NAME


LATCH_MAP = """module \\$_DLATCH_P_ (input E, input D, output Q);
  DLH_X1 _TECHMAP_REPLACE_ (.D(D), .G(E), .Q(Q));
endmodule
module \\$_DLATCH_N_ (input E, input D, output Q);
  wire en;
  INV_X1 inv (.A(E), .Y(en));
  DLH_X1 _TECHMAP_REPLACE_ (.D(D), .G(en), .Q(Q));
endmodule
"""
"""yosys's latches on the library's DLH_X1 (``dfflibmap`` maps flip-flops only)."""


def _aldff_map() -> str:
    """yosys's async-load flip-flops (``$_ALDFF_*``, ``$_ALDFFE_*``: a register loaded from a
    signal, not a constant, while an asynchronous control is active, as in ``if (reset) q <= a``
    under ``posedge reset``) on cells the library has, since it has no async-load cell: a latch
    holds the loaded value, a plain flop the clocked one, and a flop with asynchronous set (one
    per clock and load signal, shared) remembers whether a load came after the last clock edge;
    a multiplexer picks. The same behaviour at every instant, not only at clock edges."""
    out = []
    for c in "PN":
        for ld in "PN":
            for e in ("", "P", "N"):
                name = f"$_ALDFF{'E' if e else ''}_{c}{ld}{e}_"
                enable = "input E, " if e else ""
                if e:
                    hold, take = ("Q", "D") if e == "P" else ("D", "Q")
                    d = f"  \\$_MUX_ hg_en (.A({hold}), .B({take}), .S(E), .Y(hg_d));\n"
                else:
                    d = "  assign hg_d = D;\n"
                out.append(
                    f"module \\{name} (input C, input L, input AD, input D, {enable}output Q);\n"
                    "  wire hg_loaded, hg_held, hg_stored, hg_d;\n"
                    f"  (* hg_aldff_loaded *) \\$_DFF_{c}{ld}1_ hg_load "
                    "(.C(C), .R(L), .D(1'b0), .Q(hg_loaded));\n"
                    f"  \\$_DLATCH_{ld}_ hg_hold (.E(L), .D(AD), .Q(hg_held));\n"
                    f"  \\$_DFF_{c}_ hg_store (.C(C), .D(hg_d), .Q(hg_stored));\n"
                    "  \\$_MUX_ hg_out (.A(hg_stored), .B(hg_held), .S(hg_loaded), .Y(Q));\n"
                    f"{d}endmodule\n"
                )
    return "".join(out)


ALDFF_MAP = _aldff_map()


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


_read_capped = execution.read_capped
"""The file, or its head and tail around a truncation mark (see :func:`execution.read_capped`)."""
RunResult = execution.RunResult


class Workdir(execution.Workdir):
    """A fresh temp dir for one run (``hiergym-rtl-*``), removed afterwards."""

    def __init__(self) -> None:
        super().__init__("hiergym-rtl-")


WALL_BACKSTOP_FACTOR = 10.0
WALL_BACKSTOP_MIN_S = 60.0
"""A run's wall-clock backstop: this many times its CPU budget, at least ``WALL_BACKSTOP_MIN_S``
(a run that got less than a tenth of a core all along); its hit is an overloaded machine."""


def process_limits(budget: float, limits: Limits) -> execution.Limits:
    """One toolchain run's limits in the shared execution layer's terms: ``budget`` CPU seconds
    for the whole process tree (each process's ``RLIMIT_CPU`` just past it), a wall-clock
    backstop, the address space, file size and process count of ``limits``, no core dumps,
    64 kB of stdout and of stderr read back, the run's dir as HOME and TMPDIR."""
    return execution.Limits(
        wall_s=max(WALL_BACKSTOP_MIN_S, WALL_BACKSTOP_FACTOR * budget),
        tree_cpu_s=budget,
        memory_bytes=limits.memory_mb * execution.MiB,
        file_bytes=limits.file_mb * execution.MiB,
        processes=limits.processes,
        core_bytes=0,
        output_bytes=64_000,
        private_tmp=True,  # yosys puts ABC's files in TMPDIR; a killed run cannot clean up
    )


def run(argv: Sequence[str], cwd: Path, timeout: float, limits: Limits) -> RunResult:
    """Run ``argv`` in ``cwd`` under the limits, ``timeout`` CPU seconds for its process tree
    (:func:`execution.run`: its own session, killed with every child at a limit, one of the
    machine's process slots); stdout and stderr go to files, read back capped. A run stopped
    by the wall-clock backstop within its CPU budget is run once more, then
    :class:`MachineOverloaded` is raised: a verdict must not depend on the machine's load."""
    bounds = process_limits(timeout, limits)
    for _ in range(2):
        result = execution.run(argv, cwd, bounds, env={"LC_ALL": "C"})
        if not result.overloaded:
            return result
    backstop = bounds.wall_s
    raise MachineOverloaded(
        f"the machine is overloaded: {Path(argv[0]).name} used {result.cpu_s:.2f} of its "
        f"{timeout:g} CPU seconds but ran past its wall-clock backstop ({backstop:g} s), twice, "
        "so its result would say nothing about the design; run fewer jobs at once (e.g. lower "
        f"{execution.MAX_PROCESSES_ENV}) and try again"
    )


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


_PORT_WIDTH_WARNING = re.compile(
    r"^harness\.v:\d+: warning: [Pp]ort \d+ \((\w+)\) of (\w+) expects (\d+) bits?, got (\d+)",
    re.M,
)
"""iverilog's width warning for a port of the harness's instance of the required module (a
width warning about an instance inside the design is the design's business, not its interface)."""


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
        failed = {
            "ok": False,
            "category": _classify_compile(result),
            "messages": messages or f"iverilog exited with status {result.returncode}",
            "warnings": warnings,
        }
        return _transient(failed) if _machine_failure(result) else failed
    widths = [
        (port, have, want)
        for port, module, have, want in _PORT_WIDTH_WARNING.findall(result.output)
        if module == task.module
    ]
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
    implicit = sorted(set(_IMPLICIT_WIRE.findall(result.output)))
    if implicit:
        return {
            "ok": False,
            "category": "elaboration",
            "code": "implicit_wire",
            "messages": "implicitly declared net(s) "
            + ", ".join(repr(n) for n in implicit)
            + ": declare every wire (`wire name;`); an undeclared name is a 1-bit net that "
            "nothing may drive, which simulation and synthesis read differently",
            "warnings": warnings,
        }
    lint = lint_design(task, code, limits)
    if lint is not None:
        return {**lint, "warnings": warnings}
    return {"ok": True, "category": "ok", "messages": messages, "warnings": warnings}


_IMPLICIT_WIRE = re.compile(r"warning: implicit definition of wire '([^']+)'")
_UNDRIVEN = re.compile(r"Warning: Wire (\S+)(?: \[\d+\])? is used but has no driver")
_CONFLICT = re.compile(r"Warning: multiple conflicting drivers for (\S+?):?\s")


_ALWAYS_COMB = re.compile(r"\balways_(?:comb|latch)\b")


def for_yosys(code: str) -> str:
    """``code`` as yosys reads it: ``always_comb`` / ``always_latch`` become ``always @*``.

    yosys refuses a latch inferred in an ``always_comb`` block (an error, not a warning), while
    iverilog and VerilogEval's references treat the block as ``always @*``: an intended latch
    (VerilogEval has several) would be a correct design that no stage but simulation accepts.
    The keyword cannot be an identifier, so replacing it anywhere is safe."""
    return _ALWAYS_COMB.sub("always @*", code)


def lint_design(task: Any, code: str, limits: Limits) -> dict[str, Any] | None:
    """yosys's own ``check`` on the elaborated design: ``None`` when clean, else a failure report.

    Refused: nets that are read but driven by nothing (``z`` in iverilog, ``x`` in the prover and
    a free constant in synthesis, so the three stages would see three circuits) and nets with
    conflicting drivers. Only the ``check`` pass's own output (``tee -o``) is read: a design
    printing during elaboration cannot push the warnings out of the captured log.
    """
    with Workdir() as wd:
        wd.write("design.v", for_yosys(code))
        wd.write(
            "lint.ys",
            "read_verilog -sv design.v\n"
            f"hierarchy -check -top {task.module}\n"
            "proc\n"
            "tee -q -o check.log check\n",
        )
        result = run(
            ["yosys", "-Q", "-T", "-q", "-s", "lint.ys"], wd.path, limits.compile_s, limits
        )
        report = _read_capped(wd.path / "check.log", 64_000)
    if result.timed_out:
        return _transient(
            {
                "ok": False,
                "category": "timeout",
                "messages": f"yosys did not read the design within {limits.compile_s:g} CPU s",
            }
        )
    if result.returncode != 0 or "CHECK pass" not in report:
        return {
            "ok": False,
            "category": "elaboration",
            "code": "synthesis_front_end",
            "messages": "yosys cannot elaborate the design: "
            + _scrub("\n".join(ln for ln in result.output.splitlines() if "ERROR" in ln)[:800], ""),
        }
    undriven = sorted(set(_UNDRIVEN.findall(report)))
    conflicts = sorted(set(_CONFLICT.findall(report)))
    if undriven or conflicts:
        parts = []
        if undriven:
            parts.append(
                "net(s) read but driven by nothing: "
                + ", ".join(_net_name(n) for n in undriven[:8])
                + " (an undriven net is z in simulation, x in the proof and any constant in "
                "synthesis; drive every net you read)"
            )
        if conflicts:
            parts.append(
                "net(s) with conflicting drivers: " + ", ".join(_net_name(n) for n in conflicts[:8])
            )
        return {
            "ok": False,
            "category": "elaboration",
            "code": "undriven_net" if undriven else "multiple_drivers",
            "messages": "; ".join(parts),
        }
    return None


def _net_name(name: str) -> str:
    """``TopModule.\\u`` -> ``'TopModule.u'``."""
    return repr(name.replace("\\", ""))


def _machine_failure(result: RunResult) -> bool:
    """A run that a timeout or a signal ended: its outcome may depend on the machine's load."""
    return result.timed_out or (result.returncode is not None and result.returncode < 0)


def _transient(report: dict[str, Any]) -> dict[str, Any]:
    """Mark a result that says more about the machine than about the design (a timeout, a run
    killed by a signal): it is returned but never cached, so a load spike cannot become a
    permanent verdict."""
    return {**report, TRANSIENT: True}


TRANSIENT = "transient"
"""The key that marks a result :func:`is_transient`; callers must not cache such a result."""


def is_transient(report: Any) -> bool:
    if not isinstance(report, dict):
        return False
    if report.get(TRANSIENT):
        return True
    return any(is_transient(v) for v in report.values() if isinstance(v, dict))


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
            failed = {
                "ok": False,
                "status": "testbench_compile_failed",
                "messages": _scrub(built.output, nonce),
            }
            return _transient(failed) if _machine_failure(built) else failed
        ran = run(["vvp", "-n", "sim.vvp"], wd.path, limits.simulate_s, limits)
        result_text = (
            _read_capped(wd.path / bench.result_file, 256_000) if bench.result_file else ""
        )
    report = bench.parse(ran.stdout, result_text)
    report["log"] = _scrub(bench.console(ran.stdout), nonce, MAX_LOG_CHARS)
    if _machine_failure(ran):
        report[TRANSIENT] = True
    if ran.timed_out:
        report.update(ok=False, status="timeout", score=0.0)
        report["messages"] = (
            f"the simulation did not finish within {limits.simulate_s:g} CPU s: the design loops "
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


_STAT_CELL = re.compile(r"^\s+(\$\w+)\s+(\d+)\s*$", re.M)


def reference_shape(task: Any) -> dict[str, Any]:
    """What the prover needs to know of the reference: the input ports that clock its
    registers (any name: ``clk``, ``clock``, ``clk_in``, two of them) and how many latches it
    holds. Read by yosys from the elaborated reference, once per problem and process."""
    return _shape(task.reference, task.module, tuple(p.name for p in task.ports))


def reference_clocks(reference: str, module: str, ports: Sequence[str]) -> list[str]:
    """The input ports that clock a register of ``module`` in ``reference`` (sorted; empty for
    a combinational circuit or a latch), whatever they are named."""
    return list(_shape(reference, module, tuple(ports))["clocks"])


@functools.lru_cache(maxsize=512)
def _shape(reference: str, module: str, ports: tuple[str, ...]) -> dict[str, Any]:
    require_toolchain()
    with Workdir() as wd:
        wd.write("ref.v", for_yosys(reference))
        wd.write(
            "shape.ys",
            "read_verilog -sv ref.v\n"
            f"hierarchy -check -top {module}\n"
            "proc\nflatten\nopt_clean\n"
            # the memories as yosys collects them, for their address inputs (saved and loaded
            # back, so what follows sees the design as it was)
            "design -save hg_shape\nopt_expr -mux_undef\nopt_clean\nmemory_collect\n"
            "write_json memories.json\n"
            "design -load hg_shape\n"
            "memory\nopt_clean\n"
            "tee -q -o clocks.txt select -list t:* %ci:+[CLK] t:* %d i:* %i\n"
            "tee -q -o stat.txt stat\n",
        )
        result = run(["yosys", "-Q", "-T", "-q", "-s", "shape.ys"], wd.path, 60.0, Limits())
        clocks_text = _read_capped(wd.path / "clocks.txt", 64_000)
        stat = _read_capped(wd.path / "stat.txt", 64_000)
        memories = wd.path / "memories.json"
        ranges = _address_ranges(memories.read_text(), module) if memories.is_file() else {}
    if result.returncode != 0:
        return {"ok": False, "clocks": [], "latches": 0, "flip_flops": 0, "address_ranges": {}}
    names = set(ports)
    clocks = [
        ln.split("/", 1)[1].lstrip("\\")
        for ln in clocks_text.splitlines()
        if "/" in ln and ln.split("/", 1)[1].lstrip("\\") in names
    ]
    cells = {name: int(n) for name, n in _STAT_CELL.findall(stat)}
    latches = sum(n for c, n in cells.items() if "latch" in c)
    flops = sum(n for c, n in cells.items() if "dff" in c or c in ("$ff", "$sr"))
    return {
        "ok": True,
        "clocks": sorted(clocks),
        "latches": latches,
        "flip_flops": flops,
        "address_ranges": ranges,
    }


def memory_address_ranges(task: Any) -> dict[str, tuple[int, int]]:
    """``{input: (first word, words)}``: the inputs of the reference that address one of its
    memories directly (the whole port is a read or write address) and can name more words than
    the memory has (RTLLM's RAM: 12 words, an 8-bit address).

    Such an access is undefined behaviour that a benchmark's testbench never exercises: the
    simulator drops an out-of-range write and reads x, synthesis may alias the address onto a
    word. Every check of the design against the reference therefore assumes these inputs stay
    within the memory's words (:data:`ADDRESS_ASSUMPTION`)."""
    found = _text_address_ranges(task.reference, tuple(task.ports))
    found.update(reference_shape(task).get("address_ranges", {}))
    return found


_MEMORY_DECL = re.compile(r"\breg\b[^;]*?\b(\w+)\s*\[\s*(\d+)\s*:\s*(\d+)\s*\]\s*;")


def _text_address_ranges(reference: str, ports: tuple[Any, ...]) -> dict[str, tuple[int, int]]:
    """Memories yosys turns into plain registers (one with an async reset, as RTLLM's RAM) have
    no memory cell to read: their declarations (``reg [7:0] RAM [11:0];``) and the inputs that
    index them whole (``RAM[write_addr]``) are read from the reference's text."""
    text = verilog.strip_comments(reference)
    found: dict[str, tuple[int, int]] = {}
    for m in _MEMORY_DECL.finditer(text):
        name, a, b = m.group(1), int(m.group(2)), int(m.group(3))
        first, words = min(a, b), abs(a - b) + 1
        for p in ports:
            if p.direction != "input" or first + words >= (1 << p.width):
                continue
            if re.search(rf"\b{re.escape(name)}\s*\[\s*{re.escape(p.name)}\s*\]", text):
                found[p.name] = (first, words)
    return found


ADDRESS_ASSUMPTION = (
    "an input that addresses a memory of the reference directly is assumed to stay within the "
    "memory's words (an access past them is undefined: simulation drops the write and reads x, "
    "synthesis may alias it onto a word): the proofs see such an input clamped into range and the "
    "rule's stimulus draws it in range"
)


def _param(value: Any) -> int:
    """A parameter of yosys's JSON: an int, or a string of binary digits."""
    if isinstance(value, int):
        return value
    text = str(value).strip()
    return int(text, 2) if text and set(text) <= {"0", "1"} else 0


def _address_ranges(text: str, module: str) -> dict[str, tuple[int, int]]:
    try:
        mod = json.loads(text)["modules"][module]
    except (ValueError, KeyError):
        return {}
    inputs = {
        tuple(p["bits"]): name
        for name, p in mod.get("ports", {}).items()
        if p.get("direction") == "input"
    }
    found: dict[str, tuple[int, int]] = {}
    for cell in mod.get("cells", {}).values():
        if cell.get("type") != "$mem_v2":
            continue
        par, conn = cell.get("parameters", {}), cell.get("connections", {})
        size, offset, abits = (_param(par.get(k)) for k in ("SIZE", "OFFSET", "ABITS"))
        if abits <= 0 or size <= 0:
            continue
        for kind in ("RD", "WR"):
            bits = conn.get(f"{kind}_ADDR", [])
            for k in range(_param(par.get(f"{kind}_PORTS"))):
                port = tuple(bits[k * abits : (k + 1) * abits])
                name = inputs.get(port)
                if name is not None and offset + size < (1 << len(port)):
                    found[name] = (offset, size)
                    continue
                # an address input narrower than ABITS, zero-extended
                for width in range(1, abits):
                    if port[width:] and all(b == "0" for b in port[width:]):
                        name = inputs.get(port[:width])
                        if name is not None and offset + size < (1 << width):
                            found[name] = (offset, size)
                        break
    return found


def prove_equivalence(
    task: Any, code: str, limits: Limits, memo: Memo | None = None
) -> dict[str, Any]:
    """Prove the design equivalent to the reference; decide an open proof by the rule.

    The engines, in order (see :func:`_miter_proof`): yosys's SAT miter after merging the
    structure the two circuits share (a full proof for combinational problems; for sequential
    ones bounded equivalence from reset over ``task.formal_depth`` cycles, registers starting
    undefined, the reference's undefined outputs ignored, as in simulation), then ABC (``iprove``
    for combinational miters, ``pdr`` for sequential ones: an unbounded proof from reset). The
    design's ``initial`` values are removed first (flip-flops have no power-on value); async
    resets become sync ones (``async2sync``); a problem with several clocks, or a latch, is
    proven on a global-clock model (``clk2fflogic``) in which every clock is a free input.

    When neither engine decides, :data:`DECISION_RULE` does (:func:`decide_open`). ``status`` is
    ``proven``, ``simulated`` (decided by the rule), ``counterexample``, ``not_synthesizable``,
    ``not_combinational`` (state in a problem whose reference has none) or ``inconclusive``
    (the rule's own simulation gave no result: never a pass).

    ``memo`` (the sandbox's cache): the engines see only the design as yosys reads it, so their
    answer is kept under a hash of that (:func:`elaborated_digest`: the RTLIL after
    ``read_verilog`` and ``hierarchy``, every name and source position in it) and of whether the
    source has x constants (``prove_equivalence_elaborated``): another source text that yosys
    reads as the same design (other comments, say) reuses it. The rule's simulation, which
    reads the source itself, always runs on the source.
    """
    code = verilog.extract_code(code)
    nonce = secrets.token_hex(8)
    read = ["read_verilog -sv design.v"]
    with Workdir() as wd:
        wd.write("design.v", for_yosys(code))

        def engines() -> dict[str, Any]:
            return _miter_proof(task, wd, nonce, read, limits, check_state=True)

        digest = elaborated_digest(task, wd, limits) if memo is not None else None
        if memo is None or digest is None:
            proof = engines()
        else:
            no_x = not has_undefined_constants(for_yosys(code))
            proof = memo("prove_equivalence_elaborated", {"rtlil": digest, "no_x": no_x}, engines)
    return decide_open(task, proof, code, limits)


def elaborated_digest(task: Any, wd: Workdir, limits: Limits) -> str | None:
    """sha256 of ``design.v`` in ``wd`` as yosys reads it (``read_verilog -sv``, ``hierarchy
    -check -top``, written with ``write_rtlil``: every module, cell, wire, process, attribute and
    name, source positions included); ``None`` when yosys does not read it (the proof then runs
    and reports why)."""
    wd.write(
        "elaborate.ys",
        "read_verilog -sv design.v\n"
        f"hierarchy -check -top {task.module}\n"
        "write_rtlil elaborated.il\n",
    )
    result = run(
        ["yosys", "-Q", "-T", "-q", "-s", "elaborate.ys"], wd.path, limits.compile_s, limits
    )
    path = wd.path / "elaborated.il"
    if result.returncode != 0 or result.timed_out or not path.exists():
        return None
    return hashlib.sha256(path.read_bytes()).hexdigest()


DECISION_RULE = (
    "a proof that neither engine decides within the problem's budget (CPU seconds) is decided "
    "by an extended simulation of the same circuit next to the reference: {factor}x the "
    "problem's samples "
    "(at least {minimum}) of fresh seeded random and corner-case stimulus the agent's tools never "
    "show, resets at random points; every sample must match (then status 'simulated', recorded "
    "in the finding), one mismatch is a counterexample; " + ADDRESS_ASSUMPTION
)
EXTENDED_FACTOR = 16
EXTENDED_MIN_SAMPLES = 16_000


def decide_open(task: Any, proof: dict[str, Any], code: str, limits: Limits) -> dict[str, Any]:
    """``proof``, or, when it is ``inconclusive``, the verdict of :data:`DECISION_RULE` on
    ``code`` (the design, or the netlist's simulation model). A proof that was open because of a
    time limit stays transient (never cached: a rerun retries the proof), whatever the rule says."""
    if proof.get("status") != "inconclusive":
        return proof
    sim = extended_simulation(task, code, limits)
    rule = DECISION_RULE.format(factor=EXTENDED_FACTOR, minimum=EXTENDED_MIN_SAMPLES)
    decided = {
        **proof,
        "open_reason": proof.get("messages", ""),
        "decided_by": "extended_simulation",
        "rule": rule,
        "simulation": {k: sim.get(k) for k in ("status", "samples", "matching", "mismatches")},
    }
    if sim.get("ok"):
        decided["status"] = "simulated"
        decided["messages"] = (
            f"no engine decided the proof ({proof.get('messages', '')}); decided by the rule: "
            f"{sim['samples']} extended samples all match the reference"
        )
    elif sim.get("status") == "completed":
        decided["status"] = "counterexample"
        shown = sim.get("mismatches", [])[:3]
        decided["counterexample"] = []
        decided["messages"] = (
            f"no engine decided the proof; the rule's extended simulation found "
            f"{sim['samples'] - sim['matching']} mismatching samples of {sim['samples']}: "
            + "; ".join(
                f"{m['signal']} expected {m['expected']} got {m['got']} (inputs {m['inputs']})"
                for m in shown
            )
        )
    else:
        decided["messages"] = (
            f"no engine decided the proof, and the rule's simulation gave no result: "
            f"{sim.get('messages', sim.get('status'))}"
        )
    if is_transient(sim):
        decided[TRANSIENT] = True
    return decided


def extended_simulation(task: Any, code: str, limits: Limits) -> dict[str, Any]:
    """The rule's simulation: the generated testbench (whatever bench the problem brings), with
    :data:`EXTENDED_FACTOR` times the samples and a seed of its own.

    Its budget is :data:`EXTENDED_FACTOR` times the problem's simulation budget (its calibrated
    ``simulate_s`` at a verdict: it simulates that many times the samples), at least 4 times the
    proof budget. Before, it was 4 times the proof budget alone (120 s): the rule's simulation of
    a netlist, gate by gate, is far slower than the problem's own RTL simulation (RTLLM's pe:
    0.6 s for its reference, 122 s for its netlist under load), so it ran out and gave no result."""
    samples = max(EXTENDED_MIN_SAMPLES, EXTENDED_FACTOR * int(task.samples))
    hints = json.loads(task.stimulus or "{}")
    for name, (first, words) in memory_address_ranges(task).items():  # ADDRESS_ASSUMPTION
        hints[name] = {"values": list(range(first, first + words))}
    extended = dataclasses.replace(
        task,
        testbench=None,
        samples=samples,
        task_id=f"{task.task_id}/extended",
        stimulus=json.dumps(hints, sort_keys=True),
    )
    budget = dataclasses.replace(
        limits, simulate_s=max(EXTENDED_FACTOR * limits.simulate_s, 4 * limits.formal_s)
    )
    return run_testbench(extended, code, budget)


def _miter_proof(
    task: Any,
    wd: Workdir,
    nonce: str,
    read_design: list[str],
    limits: Limits,
    *,
    check_state: bool,
    abc: bool = False,
) -> dict[str, Any]:
    """The miter of the design (read by ``read_design``) and the reference, proven by yosys's SAT
    solver (bounded for sequential problems) and then, if that does not decide, by ABC on an AIG
    of the miter. With ``abc`` (combinational problems whose circuits have no x, such as a
    netlist and its RTL) ABC alone proves it (fast on structurally different circuits).

    Both engines see the miter after ``opt -fast``, which merges the structure the design shares
    with the reference (the reference submitted as itself is proven by structural hashing alone,
    whatever its width). ABC's sequential engine (``pdr``) starts every register at zero and holds
    the reset in the first cycle, whose outputs it ignores; it finds unbounded proofs of
    equivalence from reset; the x-aware bounded proof of yosys covers every power-on state.
    """
    ref_name = f"hg_ref_{nonce}"
    wd.write("reference.v", for_yosys(testbench.renamed_reference(task, ref_name, nonce)))
    shape = reference_shape(task)
    stateful = task.kind == "seq" or shape["latches"] > 0
    # Several clocks (or a latch): every clock a free input of a global-clock model, so a design
    # that clocks a register on the wrong one differs. One clock: the clock is the time step.
    global_clock = len(shape["clocks"]) > 1 or shape["latches"] > 0
    abc = abc and not stateful
    seq = stateful
    depth = int(task.formal_depth) * (2 if global_clock else 1) if seq else 0
    lines = [
        f"log {_marker(nonce, 'read')}",
        *read_design,
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
        # No power-on values: what `initial` sets in the design is as undefined as in silicon.
        f"setattr -unset init {task.module}/w:*",
    ]
    if not stateful and check_state:
        lines += [
            f"log {_marker(nonce, 'state')}",
            f"select -assert-none {task.module}/t:$*dff* {task.module}/t:$*latch*",
        ]
    elif seq:
        lines += ["clk2fflogic" if global_clock else "async2sync", "dffunmap", "opt_clean"]
    # ABC's miter has one output (the trigger) and no x: the caller made sure the reference has
    # none, and -ignore_gold_x must go (outside an x-aware solver, its x tests fold to "every gold
    # bit is x" and the trigger to a constant 0: everything would be "proven").
    options = "" if abc else " -make_outputs -ignore_gold_x"
    no_x = not has_undefined_constants(task.reference) and not has_undefined_constants(
        (wd.path / "design.v").read_text() if (wd.path / "design.v").exists() else ""
    )
    aiger = abc or seq or no_x
    gold, gate = ref_name, task.module
    ranges = memory_address_ranges(task) if seq else {}
    if ranges:  # ADDRESS_ASSUMPTION: both circuits see the address inputs clamped into range
        wd.write("hg_clamp.v", _clamp_wrappers(task, ranges, ref_name))
        lines += ["read_verilog -sv hg_clamp.v", "hierarchy", "proc", "flatten"]
        gold, gate = "hg_clamped_gold", "hg_clamped_gate"
    lines += [f"log {_marker(nonce, 'miter')}"]
    xaware = [f"miter -equiv -flatten{options} {gold} {gate} hg_miter"]
    plain: list[str] = []
    if aiger and not abc:
        # The AIG for ABC, from a plain miter (no x-aware miter outside yosys: x constants become
        # free inputs, so a proof holds for every value of them).
        if seq:
            wd.write("hg_first.v", _first_cycle_wrapper(task, global_clock))
        plain = [f"miter -equiv -flatten {gold} {gate} hg_plain", *_aiger_lines(seq)]
    xaware += [
        "hierarchy -top hg_miter",
        # Merges the structure both circuits share (identical logic proves at once); only without
        # x constants, whose meaning opt_expr may settle (an x select picked as one branch).
        "opt -fast" if no_x else "opt_clean",
        f"log {_marker(nonce, 'prove')}",
    ]
    sat_lines: list[str] = []
    if abc:
        xaware += [
            "flatten",
            "techmap",
            "opt -fast",
            "aigmap",
            "opt_clean",
            "write_aiger miter.aig",
        ]
    else:
        sat = "sat -prove trigger 0 -set-def-inputs -enable_undef -show-ports"
        if seq:
            sat += f" -seq {depth} -set-init-undef"
            if task.reset:
                sat += f" -set-at 1 in_{task.reset} {task.reset_active}"
                if global_clock:
                    sat += f" -set-at 2 in_{task.reset} {task.reset_active}"
        sat_lines = [f"tee -o sat.log {sat} hg_miter"]
    if seq:
        # ABC's unbounded proof first (fast on wide state), on the plain miter's AIG alone; the
        # x-aware miter and the bounded proof on it only when pdr does not decide (a second run
        # that reads both circuits again: most designs that get here are proven by pdr).
        sat_lines = [*lines, *xaware, *sat_lines, f"log {_marker(nonce, 'done')}"]
        lines += [*plain, f"log {_marker(nonce, 'done')}"]
    else:
        if plain:
            xaware[1:1] = [plain[0], "design -save hg_all", *plain[1:], "design -load hg_all"]
        lines += [*xaware, *sat_lines, f"log {_marker(nonce, 'done')}"]
        sat_lines = []
    if abc:
        method = "combinational equivalence (ABC) of the miter"
    elif seq:
        method = f"ABC pdr from reset, then bounded equivalence from reset over {depth} cycles"
        if global_clock:
            method += " (global-clock model: clocks are free inputs)"
    else:
        method = "SAT miter, then ABC" if aiger else "SAT miter"
    base: dict[str, Any] = {"method": method, "depth": depth}
    spent = [0.0]  # CPU seconds of the proof's runs so far: its stages share one CPU budget

    def left() -> float:
        return max(1.0, limits.formal_s - spent[0])

    def timed_out() -> dict[str, Any]:
        return _transient(
            {
                **base,
                "status": "inconclusive",
                "messages": f"the proof did not finish within {limits.formal_s:g} CPU s",
            }
        )

    wd.write("proof.ys", "\n".join(lines) + "\n")
    result = run(["yosys", "-Q", "-T", "-s", "proof.ys"], wd.path, limits.formal_s, limits)
    spent[0] += result.cpu_s
    log = result.output
    if result.timed_out:
        return timed_out()
    stage, errors = _stage_of_error(log, nonce)
    finished = stage == "done" and result.returncode == 0
    proof = _read_capped(wd.path / "sat.log", 256_000)
    if finished and not seq and not abc:
        if "SAT proof finished - no model found: SUCCESS!" in proof:
            return {**base, "status": "proven", "messages": ""}
        if "model found: FAIL!" in proof:
            return {
                **base,
                "status": "counterexample",
                "counterexample": _counterexample(proof),
                "messages": "the design and the reference differ on the inputs shown",
            }
    abc_note = ""
    if finished and aiger:
        engine = f"zero; {ABC_SWEEP}; pdr -T {max(1, int(left() / 2))}" if seq else ABC_PROVE
        checked = run(
            ["yosys-abc", "-c", f"read_aiger miter.aig; strash; {engine}"],
            wd.path,
            left() / (2 if seq else 1),
            limits,
        )
        spent[0] += checked.cpu_s
        out = checked.output
        if seq:
            proven, refuted = "Property proved" in out, "was asserted in frame" in out
        else:
            verdicts = re.findall(r"\b(UNSATISFIABLE|SATISFIABLE|UNDECIDED)\b", out)
            proven, refuted = verdicts == ["UNSATISFIABLE"], verdicts == ["SATISFIABLE"]
        if checked.returncode == 0 and proven:
            return {**base, "status": "proven", "messages": ""}
        if checked.returncode == 0 and refuted and not seq:
            # No x anywhere (the caller's or no_x's condition): ABC's model is a real one.
            return {
                **base,
                "status": "counterexample",
                "counterexample": [],
                "messages": "the circuits differ on some input",
            }
        # pdr's counterexample starts from all-zero registers: a reference whose outputs depend
        # on a register it never resets (x in simulation) can differ there from a correct
        # design, so it refutes nothing; the bounded x-aware proof decides.
        abc_note = (
            "ABC pdr found no proof"
            + (" (its all-zero start is not power-on x)" if refuted else "")
            if seq
            else "the equivalence checker gave no verdict: " + _scrub(out[-300:], nonce)
        )
        if _machine_failure(checked) and not seq:
            return _transient({**base, "status": "inconclusive", "messages": abc_note})
        if not seq:
            return {**base, "status": "inconclusive", "messages": abc_note}
    if finished and sat_lines:
        wd.write("sat.ys", "\n".join(sat_lines) + "\n")
        result = run(["yosys", "-Q", "-T", "-s", "sat.ys"], wd.path, left(), limits)
        if result.timed_out:
            failed = timed_out()
            failed["messages"] = f"{abc_note}; the bounded proof {failed['messages'][10:]}"
            return failed
        log = result.output
        stage, errors = _stage_of_error(log, nonce)
        proof = _read_capped(wd.path / "sat.log", 256_000)
        if stage == "done" and "SAT proof finished - no model found: SUCCESS!" in proof:
            return {**base, "status": "proven", "messages": ""}
        if stage == "done" and "model found: FAIL!" in proof:
            return {
                **base,
                "status": "counterexample",
                "counterexample": _counterexample(proof),
                "messages": "the design and the reference differ on the inputs shown",
            }
    errors = _scrub(errors or log[-800:], nonce)
    if _machine_failure(result):
        return _transient(
            {**base, "status": "inconclusive", "messages": f"the prover was stopped: {errors}"}
        )
    if stage == "read":
        return {**base, "status": "not_synthesizable", "messages": errors}
    if stage == "state":
        return {
            **base,
            "status": "not_combinational",
            "messages": "the design holds state (a latch, register or memory) but the reference "
            "does not: every output must be a function of the current inputs alone",
        }
    return {
        **base,
        "status": "inconclusive",
        "messages": f"the prover stopped at stage {stage!r}: {errors}",
    }


def _clamp_wrappers(task: Any, ranges: dict[str, tuple[int, int]], ref_name: str) -> str:
    """Modules ``hg_clamped_gold`` (the reference) and ``hg_clamped_gate`` (the design) with the
    problem's ports, whose address inputs (``ranges``) reach the circuit clamped into the
    memory's words (an address past them becomes the first word)."""
    decls = ",\n".join(f"  {p.direction} {_range(p.width)}{p.name}" for p in task.ports)
    wires, conns = [], []
    for p in task.ports:
        if p.name in ranges:
            first, words = ranges[p.name]
            w = p.width
            wires.append(
                f"  wire {_range(w)}hg_c_{p.name} = ({p.name} >= {w}'d{first} && "
                f"{p.name} < {w}'d{first + words}) ? {p.name} : {w}'d{first};\n"
            )
            conns.append(f".{p.name}(hg_c_{p.name})")
        else:
            conns.append(f".{p.name}({p.name})")
    body = "".join(wires)
    return "".join(
        f"module {name} (\n{decls}\n);\n{body}  {inner} hg_inner ({', '.join(conns)});\nendmodule\n"
        for name, inner in (("hg_clamped_gold", ref_name), ("hg_clamped_gate", task.module))
    )


def _first_cycle_wrapper(task: Any, global_clock: bool) -> str:
    """A module around ``hg_miter`` that holds the reset in the first cycle (two steps of a
    global-clock model) and ignores the trigger there: ABC's AIG starts from all-zero registers."""
    ins = [p for p in task.ports if p.direction == "input"]
    steps = 2 if global_clock else 1
    decls = "".join(f"  input {_range(p.width)}in_{p.name},\n" for p in ins)
    conns = []
    for p in ins:
        if p.name == task.reset:
            level = "1'b1" if task.reset_active else "1'b0"
            conns.append(f".in_{p.name}(hg_first ? {level} : in_{p.name})")
        else:
            conns.append(f".in_{p.name}(in_{p.name})")
    return (
        f"module hg_first_cycle (\n  input hg_step,\n{decls}  output trigger\n);\n"
        f"  reg [1:0] hg_count = 2'd0;\n"
        f"  wire hg_first = hg_count < 2'd{steps};\n"
        "  always @(posedge hg_step) if (hg_first) hg_count <= hg_count + 2'd1;\n"
        "  wire hg_trigger;\n"
        f"  hg_plain hg_m ({', '.join(conns)}, .trigger(hg_trigger));\n"
        "  assign trigger = hg_trigger & ~hg_first;\n"
        "endmodule\n"
    )


def _range(width: int) -> str:
    return f"[{width - 1}:0] " if width > 1 else ""


def _aiger_lines(seq: bool) -> list[str]:
    """yosys commands that write ``miter.aig`` for ABC from the plain miter ``hg_plain``."""
    if seq:
        # Every flip-flop steps every frame (the time step is the clock, as in the bounded
        # proof); the wrapper holds the reset in the first cycle and ignores its outputs.
        top = ["read_verilog -sv hg_first.v", "hierarchy -top hg_first_cycle", "proc"]
    else:
        top = ["hierarchy -top hg_plain"]
    return top + [
        "flatten",
        "setattr -unset init w:*",  # ABC starts every register at zero (`zero`)
        "setundef -anyseq",
        "opt -fast",
        "techmap",
        "opt -fast",
        "dffunmap",
        "aigmap",
        "opt_clean",
        "setundef -undriven -anyseq",
        "write_aiger miter.aig",
    ]


ABC_PROVE = "iprove -N 3 -M 20000"
"""ABC's equivalence check under a conflict budget, not a clock: on a netlist it cannot decide (a
32-bit popcount restructured by ABC) it answers UNDECIDED in about a second, the same on every
machine, so the answer can be cached."""

ABC_SWEEP = "scorr"
"""Before ``pdr``: ABC's sequential sweep (registers and nodes merged where k-step induction
from the all-zero start proves them equal; it keeps the miter's output from reset, so pdr's answer
is the same). A design whose registers track the reference's leaves a miter with no state, which
pdr proves at once (the 8-bit counter against itself: pdr 70 ms -> 10 ms)."""

_X_LITERAL = re.compile(r"'[sS]?[bBoOhHdD]\s*[0-9a-fA-F_xXzZ?]*[xXzZ?]|'[xXzZ]")
"""A Verilog constant with an x, z or ? digit: the circuit has undefined values somewhere."""


def has_undefined_constants(code: str) -> bool:
    return _X_LITERAL.search(verilog.strip_comments(code)) is not None


# --------------------------------------------------------------------------------------------
# Stage 4: synthesis (PPA)

_AREA = re.compile(r"Chip area for module '\\?[^']+':\s*([0-9.]+)")
_CELLS = re.compile(r"Number of cells:\s*(\d+)")
_ABC_DELAY = re.compile(r"Delay\s*=\s*([0-9.]+)\s*ps")
_ABC_LEVELS = re.compile(r"\blev\s*=\s*(\d+)")
_CELL_LINE = re.compile(r"^\s{5,}(\S+)\s+(\d+)\s*$")


Memo = Callable[[str, dict[str, Any], Callable[[], dict[str, Any]]], dict[str, Any]]
"""``memo(name, args, compute)``: ``compute()``, or what an earlier call with the same name and
args returned (the sandbox's cache; a transient result is never kept)."""


def no_memo(
    name: str, args: dict[str, Any], compute: Callable[[], dict[str, Any]]
) -> dict[str, Any]:
    return compute()


def synthesize_design(
    task: Any, code: str, limits: Limits, memo: Memo | None = None
) -> dict[str, Any]:
    """Synthesize with yosys, map flip-flops and logic to the shipped liberty library with ABC,
    and report cell count, area (``stat -liberty``), delay (ABC ``stime``) and logic depth.

    ``memo`` (the sandbox's cache): the flow after the canonical netlist (:mod:`ppa`) is a
    function of that netlist alone (a fresh yosys reads nothing else), so it is kept under the
    netlist's hash (``synthesize_canonical``): a design that elaborates to a circuit already
    synthesized for this problem (the reference with other comments, names or order, a
    rewrite of it) pays only for reading and canonicalising it."""
    nonce = secrets.token_hex(8)
    with Workdir() as wd:
        front = _synthesis_front(task, code, limits, wd, nonce)
        if "canonical" not in front:
            return front
        return (memo or no_memo)(
            "synthesize_canonical",
            {"canonical": front["canonical"]},
            lambda: _synthesis_back(task, limits, wd, nonce, front, netlist=False),
        )


def synthesize_and_prove(
    task: Any, code: str, limits: Limits, memo: Memo | None = None
) -> dict[str, Any]:
    """:func:`synthesize_design`, then a proof that the **synthesized netlist** (the cells whose
    area and delay are reported) is equivalent to the reference: the same miter as
    :func:`prove_equivalence`, on the netlist read back with the library's cell functions.

    The simulator, the RTL prover and synthesis can read one source differently (x and z, an
    undriven net, an initial value); this proof is what makes the figures belong to the circuit
    that was proven. Combinational problems whose reference and netlist have no x constants use
    ABC's equivalence checker (the SAT miter alone takes minutes on a 32-bit popcount netlist);
    the others use the SAT miter, bounded from reset for sequential problems. The report is the
    synthesis report with ``netlist_proof`` (``status`` as in :func:`prove_equivalence`).

    ``memo``: synthesis after the canonical netlist and the netlist's proof are a function of
    that netlist and the problem, kept under its hash (``synthesize_and_prove_canonical``; see
    :func:`synthesize_design`).
    """
    nonce = secrets.token_hex(8)
    with Workdir() as wd:
        front = _synthesis_front(task, code, limits, wd, nonce)
        if "canonical" not in front:
            return _with_unsynthesizable_proof(front)
        return (memo or no_memo)(
            "synthesize_and_prove_canonical",
            {"canonical": front["canonical"]},
            lambda: _synthesize_and_prove_back(task, limits, wd, nonce, front),
        )


def _with_unsynthesizable_proof(report: dict[str, Any]) -> dict[str, Any]:
    return {
        **report,
        "netlist_proof": {
            "status": "not_synthesizable",
            "method": "none",
            "depth": 0,
            "messages": "the design does not synthesize",
        },
    }


def _synthesize_and_prove_back(
    task: Any, limits: Limits, wd: Workdir, nonce: str, front: dict[str, Any]
) -> dict[str, Any]:
    report = _synthesis_back(task, limits, wd, nonce, front, netlist=True)
    if not report.get("ok"):
        return _with_unsynthesizable_proof(report)
    netlist = _read_capped(wd.path / "netlist.v", 8_000_000)
    abc = (
        task.kind == "comb"
        and not has_undefined_constants(task.reference)
        and not has_undefined_constants(netlist)
    )
    read = [f"read_liberty -ignore_miss_func {liberty_path()}", "read_verilog netlist.v"]
    proof = _miter_proof(task, wd, nonce, read, limits, check_state=False, abc=abc)
    if proof.get("status") == "inconclusive":
        model = netlist_model(task, wd, limits)
        if model is not None:
            proof = decide_open(task, proof, model, limits)
    return {**report, "netlist_proof": proof}


def netlist_model(task: Any, wd: Workdir, limits: Limits) -> str | None:
    """The netlist in ``wd`` as plain Verilog a simulator reads: the library cells flattened into
    the logic their liberty functions give (the same reading the netlist proof makes)."""
    wd.write(
        "model.ys",
        f"read_liberty -ignore_miss_func {liberty_path()}\n"
        "read_verilog netlist.v\n"
        f"hierarchy -check -top {task.module}\n"
        "flatten\nopt_clean\n"
        "write_verilog -noattr netlist_model.v\n",
    )
    result = run(
        ["yosys", "-Q", "-T", "-q", "-s", "model.ys"], wd.path, limits.synthesize_s, limits
    )
    if result.returncode != 0:
        return None
    return _read_capped(wd.path / "netlist_model.v", 8_000_000)


def _synthesis_front(
    task: Any, code: str, limits: Limits, wd: Workdir, nonce: str
) -> dict[str, Any]:
    """Read and elaborate the design and write its canonical netlist (``canonical.json``, see
    :mod:`ppa`) in ``wd``: ``{"canonical": its sha256, "log": ..., "cpu_s": its CPU seconds}``, or
    the failure report."""
    code = verilog.extract_code(code)
    script = "\n".join(
        [
            f"log {_marker(nonce, 'read')}",
            "read_verilog -sv design.v",
            f"hierarchy -check -top {task.module}",
            f"log {_marker(nonce, 'synth')}",
            # `synth -flatten`, with the flattened netlist put in a canonical order and naming
            # between its first passes and the rest (see ppa.py), so the figures are the
            # circuit's, not those of the order it was written in. The rest runs in a fresh
            # yosys (:func:`_synthesis_back`: its names and hash order must not depend on what
            # this one read), so it is a function of canonical.json alone.
            *ppa.FRONT_PASSES,
            "write_json front.json",
        ]
    )
    wd.write("design.v", for_yosys(code))
    wd.write("script.ys", script + "\n")
    result = run(["yosys", "-Q", "-T", "-s", "script.ys"], wd.path, limits.synthesize_s, limits)
    if result.timed_out:
        return _synthesis_timeout(limits)
    if result.returncode != 0 or not (wd.path / "front.json").exists():
        return _synthesis_failed(result, result.output, nonce)
    log, cpu_s = result.output, result.cpu_s
    failed, note, seconds = _canonicalise(task, wd, limits, limits.synthesize_s - cpu_s, log, nonce)
    if failed is not None:
        return failed
    digest = hashlib.sha256((wd.path / "canonical.json").read_bytes()).hexdigest()
    return {"canonical": digest, "log": log + "\n" + note, "cpu_s": cpu_s + seconds}


def _canonicalise(
    task: Any, wd: Workdir, limits: Limits, budget: float, log: str, nonce: str
) -> tuple[dict[str, Any] | None, str, float]:
    """``front.json`` in ``wd`` put in canonical form (:func:`ppa.canonical_text`) as
    ``canonical.json``: ``(None, its note for the log, CPU seconds)``, or the failure report.

    A netlist of at most :data:`ppa.IN_PROCESS_MAX_BYTES` is canonicalised in this process (a
    few ms of pure Python over data yosys wrote, its work bounded by the size and
    :data:`ppa.WORK_BUDGET`, where a Python process spends 30-40 ms CPU starting and importing
    ``json``); a larger one, or one that breaks the canonical form here, in a Python process
    under the synthesis limits and what the front left of their budget, which reports how it
    failed."""
    front = wd.path / "front.json"
    if front.stat().st_size <= ppa.IN_PROCESS_MAX_BYTES:
        started = time.thread_time()
        try:
            text, note = ppa.canonical_text(front.read_text(), task.module)
        except Exception:  # noqa: BLE001 - the sandboxed run below reports it
            pass
        else:
            (wd.path / "canonical.json").write_text(text)
            return None, note, time.thread_time() - started
    if budget <= 0:
        return _synthesis_timeout(limits), "", 0.0
    wd.write("canonical.py", Path(ppa.__file__).read_text())
    argv = [sys.executable, "-I", "-S", "canonical.py", "front.json", "canonical.json"]
    result = run([*argv, task.module], wd.path, budget, limits)
    if result.timed_out:
        return _synthesis_timeout(limits), "", result.cpu_s
    if result.returncode != 0 or not (wd.path / "canonical.json").exists():
        stopped = f"ERROR: the canonical form stopped (exit status {result.returncode})"
        return _synthesis_failed(result, f"{log}\n{result.output}\n{stopped}", nonce), "", 0.0
    return None, result.output, result.cpu_s


def _synthesis_timeout(limits: Limits) -> dict[str, Any]:
    return _transient(
        {
            "ok": False,
            "status": "timeout",
            "messages": f"synthesis did not finish within {limits.synthesize_s:g} CPU s",
        }
    )


def _synthesis_failed(result: RunResult, log: str, nonce: str) -> dict[str, Any]:
    stage, errors = _stage_of_error(log, nonce)
    failed = {
        "ok": False,
        "status": "not_synthesizable" if stage in ("read", "synth") else "failed",
        "messages": _scrub(errors or log[-800:], ""),
    }
    return _transient(failed) if _machine_failure(result) else failed


def _synthesis_back(
    task: Any, limits: Limits, wd: Workdir, nonce: str, front: dict[str, Any], *, netlist: bool
) -> dict[str, Any]:
    """The rest of the flow on ``canonical.json`` in a fresh yosys: mapping on the library and
    the figures (with ``netlist``, the mapped netlist in ``netlist.v``), within what is left of
    the synthesis budget."""
    lib = liberty_path()
    abc_script = "+strash;dc2;&get -n;&dch -f;&nf;&put;topo;print_stats;stime -p"
    back = "\n".join(
        [
            "read_json canonical.json",
            f"hierarchy -top {task.module}",
            *ppa.BACK_PASSES,
            # Async-load flops onto library cells (a no-op for designs without one), their
            # load-tracking flops shared per clock and load signal.
            "techmap -map aldff_map.v",
            "opt_merge a:hg_aldff_loaded",
            f"dfflibmap -liberty {lib}",
            "techmap -map latch_map.v",
            f"log {_marker(nonce, 'abc')}",
            f'abc -liberty {lib} -script "{abc_script}"',
            "opt_clean",
            f"log {_marker(nonce, 'stat')}",
            f"tee -q -o stat.log stat -liberty {lib}",
            *(["write_verilog -noattr netlist.v"] if netlist else []),
        ]
    )
    wd.write("latch_map.v", LATCH_MAP)
    wd.write("aldff_map.v", ALDFF_MAP)
    wd.write("back.ys", back + "\n")
    left = limits.synthesize_s - front["cpu_s"]  # the CPU budget the front left
    if left <= 0:
        return _synthesis_timeout(limits)
    result = run(["yosys", "-Q", "-T", "-s", "back.ys"], wd.path, left, limits)
    log = front["log"] + "\n" + result.output
    if result.timed_out:
        return _synthesis_timeout(limits)
    # The figures come from stat's own output (a long log, or one a design filled with $display
    # while yosys read it, cannot push them out of what is read back).
    stat = _read_capped(wd.path / "stat.log", 256_000) if _marker(nonce, "stat") in log else ""
    if result.returncode != 0 or "Number of cells" not in stat:
        return _synthesis_failed(result, log, nonce)
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
