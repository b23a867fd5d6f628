"""Testbenches the verifier generates, never the agent: stimulus, harness source, result parsing.

The generated testbench drives the design and a renamed copy of the reference with the same seeded
stimulus (directed corner cases, then random; at least 1,000 samples; sequential runs start in
reset, reset at random in their first half, not at all for most of their second, then again at
random points late in the run), compares every output on
every sample (sequential inputs change while the clock is high, between its rising and falling
edges), and writes its verdict to a file whose name and every line carry a per-run random
nonce. A design cannot forge it: it cannot know the nonce, it may not use file tasks (see
:func:`hiergym.envs.rtl.verilog.scan_forbidden`), and what it prints to the console is never read
as a result. VerilogEval problems bring their own testbench; its result line gets the nonce too.
"""

from __future__ import annotations

import itertools
import json
import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import verilog

MIN_SAMPLES = 1000
EXHAUSTIVE_BITS = 12
MAX_DIRECTED = 256
MAX_REPORTED_MISMATCHES = 8
RESET_CYCLES = 2
RANDOM_RESET_RATE = 0.03
LATE_RESET_SHARE = 32
"""Sequential runs reset at random in their first half and their last 1/32 (at least 8 cycles),
never in between."""


def input_ports(task: Any) -> list[verilog.Port]:
    """The inputs the stimulus drives: every input but the clock."""
    return [p for p in task.ports if p.direction == "input" and p.name != task.clock]


def output_ports(task: Any) -> list[verilog.Port]:
    return [p for p in task.ports if p.direction == "output"]


def _corners(width: int) -> list[int]:
    top = (1 << width) - 1
    alternating = int("01" * width, 2) & top if width > 1 else 1
    values = [0, top, 1, 1 << (width - 1), alternating, top ^ alternating]
    return list(dict.fromkeys(v & top for v in values))


def _draw(
    rng: random.Random, port: verilog.Port, spec: dict[str, Any], previous: int | None
) -> int:
    top = (1 << port.width) - 1
    if "hold" in spec and previous is not None and rng.random() < float(spec["hold"]):
        return previous
    if "p1" in spec:
        return int(rng.random() < float(spec["p1"]))
    if "values" in spec:
        return int(rng.choice(spec["values"])) & top
    return rng.getrandbits(port.width) & top if port.width else 0


def stimulus(task: Any) -> list[list[int]]:
    """One row of input values (in :func:`input_ports` order) per sample, a pure function of the
    task: the seed is a string of its id, so every process draws the same vectors."""
    ports = input_ports(task)
    specs: dict[str, dict[str, Any]] = json.loads(task.stimulus or "{}")
    rng = random.Random(f"hiergym/rtl/stimulus/{task.task_id}")
    n = max(MIN_SAMPLES, int(task.samples))
    rows: list[list[int]] = []
    if task.kind == "comb":
        bits = sum(p.width for p in ports)
        if bits <= EXHAUSTIVE_BITS:  # small input spaces are covered completely, in order
            for value in range(1 << bits):
                rows.append(_unpack(value, ports))
        else:
            combos = list(itertools.product(*(_corners(p.width) for p in ports)))
            if len(combos) > MAX_DIRECTED:
                combos = rng.sample(combos, MAX_DIRECTED)
            rows += [list(c) for c in combos]
        while len(rows) < n:
            rows.append([_draw(rng, p, specs.get(p.name, {}), None) for p in ports])
        return rows
    # Resets at random points through the whole run, around one long stretch without reset
    # (from the middle to the last LATE_RESET_SHARE): there a design that is right only for a
    # while after reset (a counter that wraps early, a timer that saturates) is caught, and the
    # resets after it come late in a counter's range, so a reset that clears only some bits (and
    # relies on a power-on value for the rest) is caught too. The bounded proof covers just the
    # first cycles after reset.
    quiet_from = max(RESET_CYCLES, n // 2)
    late_from = max(quiet_from + 1, n - max(RESET_CYCLES * 4, n // LATE_RESET_SHARE))
    first_late = late_from + rng.randrange(RESET_CYCLES * 2)
    previous: list[int | None] = [None] * len(ports)
    for cycle in range(n):
        row = []
        for k, p in enumerate(ports):
            if p.name == task.reset:
                active = (
                    cycle < RESET_CYCLES
                    or cycle == first_late
                    or (
                        (cycle < quiet_from or cycle > first_late)
                        and rng.random() < RANDOM_RESET_RATE
                    )
                )
                value = task.reset_active if active else 1 - task.reset_active
            else:
                value = _draw(rng, p, specs.get(p.name, {}), previous[k])
            row.append(value)
        previous = list(row)
        rows.append(row)
    return rows


def _unpack(value: int, ports: list[verilog.Port]) -> list[int]:
    out = []
    for p in reversed(ports):
        out.append(value & ((1 << p.width) - 1))
        value >>= p.width
    return out[::-1]


def pack(row: list[int], ports: list[verilog.Port]) -> int:
    value = 0
    for v, p in zip(row, ports, strict=True):
        value = (value << p.width) | v
    return value


def _range(width: int) -> str:
    return f"[{width - 1}:0] " if width > 1 else ""


def interface_harness(task: Any, name: str) -> str:
    """A module that instantiates the required module with wires of the required widths."""
    decls = "".join(f"    wire {_range(p.width)}{p.name};\n" for p in task.ports)
    conns = ", ".join(f".{p.name}({p.name})" for p in task.ports)
    return f"module {name};\n{decls}    {task.module} hg_dut ({conns});\nendmodule\n"


def renamed_reference(task: Any, ref_name: str, nonce: str) -> str:
    """The reference with its top module renamed to ``ref_name`` and every helper module to an
    ``hg_<nonce>_`` name, so nothing a design declares or instantiates can reach it."""
    names = verilog.module_names(task.reference)
    renames = {n: (ref_name if n == task.module else f"hg_{nonce}_{n}") for n in names}
    return verilog.rename_modules(task.reference, renames)


@dataclass
class Bench:
    """A testbench ready to compile: its files, compile order, top module and result parser."""

    files: dict[str, str]
    sources: list[str]
    top: str
    result_file: str | None
    parse: Callable[[str, str], dict[str, Any]]
    console: Callable[[str], str]
    rows: list[list[int]] = field(default_factory=list)


def build(task: Any, nonce: str) -> Bench:
    if task.source == "rtllm" and task.testbench:  # RTLLM's own testbench, made safe
        return rtllm_bench(task, nonce)
    if task.testbench:
        return _verilog_eval_bench(task, nonce)
    return _generated_bench(task, nonce)


def _hex(width: int, value: str) -> str:
    return f"{width}'h{value}"


def _generated_bench(task: Any, nonce: str) -> Bench:
    ins, outs = input_ports(task), output_ports(task)
    rows = stimulus(task)
    total = sum(p.width for p in ins)
    digits = max(1, (total + 3) // 4)
    top, ref_name = f"hg_tb_{nonce}", f"hg_ref_{nonce}"
    result_file = f"result_{nonce}.txt"
    seq = task.kind == "seq"
    n = len(rows)
    lines = ["`timescale 1ns/1ps", f"module {top};"]
    lines.append(f"    reg [{max(total, 1) - 1}:0] hg_stim [0:{n - 1}];")
    if seq:
        lines.append("    reg hg_clk;")
    for p in ins:
        lines.append(f"    reg {_range(p.width)}hg_in_{p.name};")
    for p in outs:
        lines.append(f"    wire {_range(p.width)}hg_ref_{p.name}, hg_dut_{p.name};")

    def connections(side: str) -> str:
        conns = []
        for p in task.ports:
            if p.name == task.clock:
                conns.append(f".{p.name}(hg_clk)")
            elif p.direction == "input":
                conns.append(f".{p.name}(hg_in_{p.name})")
            else:
                conns.append(f".{p.name}(hg_{side}_{p.name})")
        return ", ".join(conns)

    lines.append(f"    {ref_name} hg_ref_i ({connections('ref')});")
    lines.append(f"    {task.module} hg_dut_i ({connections('dut')});")
    counters = "".join(f", hg_e_{i}" for i in range(len(outs)))
    lines.append(f"    integer hg_i, hg_fd, hg_bad, hg_shown{counters};")
    lines.append("    reg hg_sample_bad;")
    lines.append("    initial begin")
    lines.append('        $readmemh("stimulus.hex", hg_stim);')
    lines.append(f'        hg_fd = $fopen("{result_file}", "w");')
    lines.append(
        "        hg_bad = 0; hg_shown = 0;" + "".join(f" hg_e_{i} = 0;" for i in range(len(outs)))
    )
    if seq:
        lines.append("        hg_clk = 1'b0;")
    target = "{" + ", ".join(f"hg_in_{p.name}" for p in ins) + "}" if ins else None
    lines.append(f"        for (hg_i = 0; hg_i < {n}; hg_i = hg_i + 1) begin")
    if target:
        lines.append(f"            {target} = hg_stim[hg_i];")
    # Sequential timing (8 ns a cycle): inputs change 1 ns after a rising edge, the clock falls
    # 3 ns later, outputs are compared 4 ns after that, then the clock rises. Inputs change while
    # the clock is high, so a design on the falling edge (or a latch open while the clock is high)
    # sees different values than one on the rising edge, and fails.
    if seq:
        lines.append("            #3; hg_clk = 1'b0;")
    lines.append("            #4;")
    lines.append("            hg_sample_bad = 1'b0;")
    for i, p in enumerate(outs):
        r, d = f"hg_ref_{p.name}", f"hg_dut_{p.name}"
        # X in the reference is a don't-care (it matches anything); X in the design never matches.
        lines.append(f"            if (({r} ^ {d} ^ {r}) !== {r}) begin")
        lines.append(f"                hg_sample_bad = 1'b1; hg_e_{i} = hg_e_{i} + 1;")
        lines.append(f"                if (hg_shown < {MAX_REPORTED_MISMATCHES}) begin")
        lines.append("                    hg_shown = hg_shown + 1;")
        lines.append(
            f'                    $fdisplay(hg_fd, "{nonce} MISMATCH %0d {i} %h %h", hg_i, {r}, {d});'
        )
        lines.append("                end")
        lines.append("            end")
    lines.append("            if (hg_sample_bad) hg_bad = hg_bad + 1;")
    if seq:
        lines.append("            hg_clk = 1'b1; #1;")
    else:
        lines.append("            #6;")
    lines.append("        end")
    lines.append(f'        $fdisplay(hg_fd, "{nonce} RESULT %0d %0d", {n}, hg_bad);')
    for i in range(len(outs)):
        lines.append(f'        $fdisplay(hg_fd, "{nonce} OUTPUT {i} %0d", hg_e_{i});')
    lines.append("        $fclose(hg_fd);")
    lines.append("        $finish;")
    lines.append("    end")
    lines.append("endmodule")
    hex_rows = "\n".join(f"{pack(r, ins):0{digits}x}" for r in rows) if ins else "0\n" * n
    files = {
        "tb.v": "\n".join(lines) + "\n",
        "reference.v": renamed_reference(task, ref_name, nonce),
        "stimulus.hex": hex_rows + "\n",
    }

    def parse(stdout: str, result_text: str) -> dict[str, Any]:
        return _parse_generated(task, nonce, result_text, rows)

    def console(stdout: str) -> str:
        return "\n".join(
            ln for ln in stdout.splitlines() if nonce not in ln and "$finish called" not in ln
        )

    return Bench(files, ["tb.v", "reference.v"], top, result_file, parse, console, rows)


_LINE = re.compile(r"^(\w+) (RESULT|OUTPUT|MISMATCH) (.*)$")


def _parse_generated(task: Any, nonce: str, text: str, rows: list[list[int]]) -> dict[str, Any]:
    ins, outs = input_ports(task), output_ports(task)
    result: tuple[int, int] | None = None
    per_output: dict[str, int] = {}
    mismatches: list[dict[str, Any]] = []
    for line in text.splitlines():
        m = _LINE.match(line.strip())
        if not m or m.group(1) != nonce:
            continue  # only lines that carry this run's nonce count
        fields = m.group(3).split()
        if m.group(2) == "RESULT" and len(fields) == 2:
            result = (int(fields[0]), int(fields[1]))
        elif m.group(2) == "OUTPUT" and len(fields) == 2:
            per_output[outs[int(fields[0])].name] = int(fields[1])
        elif m.group(2) == "MISMATCH" and len(fields) == 4:
            sample, index = int(fields[0]), int(fields[1])
            port = outs[index]
            entry: dict[str, Any] = {
                "cycle" if task.kind == "seq" else "sample": sample,
                "signal": port.name,
                "expected": _hex(port.width, fields[2]),
                "got": _hex(port.width, fields[3]),
                "inputs": {
                    p.name: _hex(p.width, format(v, "x"))
                    for p, v in zip(ins, rows[sample], strict=True)
                },
            }
            mismatches.append(entry)
    if result is None:
        return {
            "ok": False,
            "status": "no_result",
            "samples": len(rows),
            "matching": 0,
            "score": 0.0,
        }
    samples, bad = result
    return {
        "ok": bad == 0,
        "status": "completed",
        "samples": samples,
        "matching": samples - bad,
        "score": (samples - bad) / samples if samples else 0.0,
        "mismatches": mismatches,
        "mismatches_by_output": {k: v for k, v in per_output.items() if v},
    }


# --------------------------------------------------------------------------------------------
# VerilogEval testbenches


_VE_RESULT = re.compile(r"^(\w+) Mismatches: (\d+) in (\d+) samples\s*$")
_DUMP = re.compile(r"\$dump\w+\s*(\([^;]*\))?\s*;")
VE_RESULT_LITERAL = '"Mismatches: '


def verilog_eval_testbench(
    test_source: str, reference_module: str, ref_name: str, nonce: str
) -> str:
    """A VerilogEval ``tb`` made safe: its modules renamed (the reference to ``ref_name``), its
    result line prefixed with the nonce, waveform dumping removed (it writes files)."""
    names = verilog.module_names(test_source)
    renames = {n: f"hg_{nonce}_{n}" for n in names}
    renames["tb"] = f"hg_tb_{nonce}"
    renames[reference_module] = ref_name
    text = verilog.rename_modules(test_source, renames)
    text = text.replace(VE_RESULT_LITERAL, f'"{nonce} Mismatches: ')
    return _DUMP.sub(";", text)


def _verilog_eval_bench(task: Any, nonce: str) -> Bench:
    top, ref_name = f"hg_tb_{nonce}", f"hg_ref_{nonce}"
    files = {
        "tb.sv": verilog_eval_testbench(task.testbench, "RefModule", ref_name, nonce),
        "reference.sv": renamed_reference(task, ref_name, nonce),
    }

    def parse(stdout: str, result_text: str) -> dict[str, Any]:
        hints = [ln.strip() for ln in stdout.splitlines() if ln.startswith("Hint:")]
        for line in stdout.splitlines():
            m = _VE_RESULT.match(line.strip())
            if m and m.group(1) == nonce:
                bad, samples = int(m.group(2)), int(m.group(3))
                return {
                    "ok": bad == 0 and samples > 0,
                    "status": "completed",
                    "samples": samples,
                    "matching": samples - bad,
                    "score": (samples - bad) / samples if samples else 0.0,
                    "hints": hints[:10],
                }
        return {"ok": False, "status": "no_result", "samples": 0, "matching": 0, "score": 0.0}

    def console(stdout: str) -> str:
        return "\n".join(
            ln
            for ln in stdout.splitlines()
            if nonce not in ln and not ln.startswith("Hint:") and "$finish called" not in ln
        )

    return Bench(files, ["tb.sv", "reference.sv"], top, None, parse, console)


# --------------------------------------------------------------------------------------------
# RTLLM testbenches (the layout is read by rtllm.py): made as safe as the VerilogEval ones

_RTLLM_DUMP = re.compile(r"\$(?:\w*[dD]ump\w*|vcdplus\w*)\s*(\([^;]*\))?\s*;")


def pass_text(text: str) -> bool:
    """RTLLM's own pass rule (auto_run.py): the output contains ``Pass`` or ``pass``."""
    return "Pass" in text or "pass" in text


def safe_testbench(source: str, top: str, nonce: str) -> str:
    """RTLLM's testbench with its modules renamed (``top`` to ``hg_tb_<nonce>``, every other one
    it declares to ``hg_<nonce>_<name>``), every string literal RTLLM's rule would read as a pass
    line prefixed with the nonce, and waveform dumps removed. The design's module keeps its name
    (the testbench instantiates it)."""
    renames = {n: f"hg_{nonce}_{n}" for n in verilog.module_names(source)}
    renames[top] = f"hg_tb_{nonce}"
    text = verilog.rename_modules(source, renames)
    out: list[str] = []
    pos = 0
    for kind, start, end in verilog._literals(text):
        if kind == "string" and pass_text(text[start:end]):
            out.append(text[pos : start + 1])
            out.append(f"{nonce} ")
            pos = start + 1
    out.append(text[pos:])
    return _RTLLM_DUMP.sub(";", "".join(out))


def rtllm_bench(task: Any, nonce: str) -> Bench:
    """The :class:`~hiergym.envs.rtl.testbench.Bench` of an RTLLM task: passed when a line of the
    output starts with this run's nonce and passes RTLLM's rule."""
    spec = json.loads(task.testbench)
    files = {name: text for name, text in spec.get("files", {}).items()}
    files["tb.v"] = safe_testbench(spec["testbench"], spec["top"], nonce)

    def parse(stdout: str, result_text: str) -> dict[str, Any]:
        stamped = [ln for ln in stdout.splitlines() if ln.strip().startswith(nonce)]
        passed = any(pass_text(ln.replace(nonce, "", 1)) for ln in stamped)
        if not stamped:
            return {"ok": False, "status": "no_result", "samples": 1, "matching": 0, "score": 0.0}
        hints = [ln.strip() for ln in stdout.splitlines() if nonce not in ln][-10:]
        return {
            "ok": passed,
            "status": "completed",
            "samples": 1,
            "matching": int(passed),
            "score": float(passed),
            "hints": [] if passed else hints[:5],
        }

    def console(stdout: str) -> str:
        return "\n".join(
            ln for ln in stdout.splitlines() if nonce not in ln and "$finish called" not in ln
        )

    return Bench(files, ["tb.v"], f"hg_tb_{nonce}", None, parse, console)
