"""Power of a synthesized design, estimated from simulated switching activity and the liberty data.

The design is synthesized with the PPA flow's commands (yosys ``synth -flatten``, ``dfflibmap``,
ABC on ``hiergym_generic.lib``), the gate-level netlist is simulated with iverilog on the task's
seeded stimulus (the one the generated testbench uses, so a design and its reference see the same
vectors; cell models are written from the liberty ``function``, ``ff`` and ``latch`` groups), and
every net's toggles are counted from the waveform (zero-delay: a net changes at most once per
time step, so glitches are not counted). Then

* switching energy per cycle = sum over nets of ``toggles / cycles * 1/2 * C * V^2``, with ``C`` the
  liberty ``capacitance`` of every cell input pin the net drives (an output port counts one
  ``default_output_pin_cap`` plus 1 fF of load) and ``V`` the library's ``nom_voltage``;
* leakage = the sum of the cells' ``cell_leakage_power`` (0 for a library that has none);
* ``power_uw`` = switching energy (fJ) per cycle at :data:`CLOCK_GHZ` (fJ x GHz = uW) + leakage.

It is an estimate for comparing a design with its reference on one library and one stimulus, as
the area and delay figures are; it is reported in the PPA level's metrics and never changes a
score.
"""

from __future__ import annotations

import json
import re
import secrets
from pathlib import Path
from typing import Any

from . import testbench, toolchain, verilog
from .toolchain import Limits, Workdir

CLOCK_GHZ = 1.0
OUTPUT_LOAD_FF = 1.0
POWER_VERSION = "rtl-power-1"


# --------------------------------------------------------------------------------------------
# The liberty file


def _groups(text: str, keyword: str) -> list[tuple[str, str]]:
    """``(name, body)`` of every ``keyword (name) { ... }`` group (balanced braces)."""
    found = []
    for m in re.finditer(rf"\b{keyword}\s*\(\s*([^)]*?)\s*\)\s*\{{", text):
        depth, i = 1, m.end()
        while i < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            i += 1
        found.append((m.group(1).strip('"'), text[m.end() : i - 1]))
    return found


def _attr(body: str, name: str) -> str | None:
    m = re.search(rf"\b{name}\s*:\s*\"?([^;\"]*)\"?\s*;", body)
    return m.group(1).strip() if m else None


def read_liberty(path: Path) -> dict[str, Any]:
    """The cells of a liberty file: pins (direction, capacitance, function), ff / latch groups,
    leakage; plus the nominal voltage."""
    text = re.sub(r"/\*.*?\*/", "", path.read_text(), flags=re.S)
    cells = {}
    for name, body in _groups(text, "cell"):
        pins = {}
        for pin, pbody in _groups(body, "pin"):
            pins[pin] = {
                "direction": _attr(pbody, "direction"),
                "capacitance": float(_attr(pbody, "capacitance") or 0.0),
                "function": _attr(pbody, "function"),
            }
        seq = None
        for kind in ("ff", "latch"):
            for state, gbody in _groups(body, kind):
                seq = {
                    "kind": kind,
                    "state": state.split(",")[0].strip(),
                    **{
                        k: _attr(gbody, k)
                        for k in (
                            "next_state",
                            "clocked_on",
                            "clear",
                            "preset",
                            "data_in",
                            "enable",
                        )
                    },
                }
        cells[name] = {
            "pins": pins,
            "seq": seq,
            "leakage_nw": float(_attr(body, "cell_leakage_power") or 0.0),
        }
    return {"cells": cells, "voltage": float(_attr(text, "nom_voltage") or 1.0)}


def _expr(function: str) -> str:
    return function.replace("!", "~")


def cell_models(lib: dict[str, Any]) -> str:
    """Verilog models of the library's cells, for simulating a mapped netlist."""
    out = []
    for name, cell in lib["cells"].items():
        pins = cell["pins"]
        decls = [f"{p['direction']} {n}" for n, p in pins.items()]
        lines = [f"module {name}({', '.join(decls)});"]
        seq = cell["seq"]
        if seq:
            state = seq["state"]
            lines.append(f"  reg {state};")
            if seq["kind"] == "ff":
                events = [f"posedge {seq['clocked_on']}"]
                body = []
                for key, value in (("clear", "1'b0"), ("preset", "1'b1")):
                    if seq[key]:
                        events.append(f"posedge {seq[key]}")
                        body.append(f"if ({_expr(seq[key])}) {state} <= {value}; else ")
                body.append(f"{state} <= {_expr(seq['next_state'])};")
                lines.append(f"  always @({' or '.join(events)}) {''.join(body)}")
            else:
                lines.append(
                    f"  always @* if ({_expr(seq['enable'])}) {state} = {_expr(seq['data_in'])};"
                )
        for n, p in pins.items():
            if p["direction"] == "output" and p["function"]:
                lines.append(f"  assign {n} = {_expr(p['function'])};")
        lines.append("endmodule")
        out.append("\n".join(lines))
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------------------------
# Simulation and toggles


def _driver(task: Any, netlist_top: str, dump: str) -> tuple[str, str]:
    """A driver for the netlist on the task's stimulus (the generated testbench's timing) that
    dumps the netlist's nets; returns (source, stimulus hex)."""
    ins = testbench.input_ports(task)
    rows = testbench.stimulus(task)
    total = sum(p.width for p in ins)
    digits = max(1, (total + 3) // 4)
    seq = task.kind == "seq"
    lines = ["`timescale 1ns/1ps", "module hg_power_tb;"]
    lines.append(f"  reg [{max(total, 1) - 1}:0] hg_stim [0:{len(rows) - 1}];")
    lines.append("  reg hg_clk; integer hg_i;")
    conns = []
    for p in task.ports:
        rng = f"[{p.width - 1}:0] " if p.width > 1 else ""
        if p.name == task.clock:
            conns.append(f".{p.name}(hg_clk)")
        elif p.direction == "input":
            lines.append(f"  reg {rng}hg_in_{p.name};")
            conns.append(f".{p.name}(hg_in_{p.name})")
        else:
            lines.append(f"  wire {rng}hg_out_{p.name};")
            conns.append(f".{p.name}(hg_out_{p.name})")
    lines.append(f"  {netlist_top} hg_dut ({', '.join(conns)});")
    lines.append("  initial begin")
    lines.append('    $readmemh("power_stimulus.hex", hg_stim);')
    lines.append(f'    $dumpfile("{dump}"); $dumpvars(0, hg_dut);')
    lines.append("    hg_clk = 1'b0;")
    lines.append(f"    for (hg_i = 0; hg_i < {len(rows)}; hg_i = hg_i + 1) begin")
    if ins:
        lines.append("      {" + ", ".join(f"hg_in_{p.name}" for p in ins) + "} = hg_stim[hg_i];")
    lines.append("      #3; hg_clk = 1'b0; #4; hg_clk = 1'b1; #1;" if seq else "      #10;")
    lines.append("    end")
    lines.append("    $finish;")
    lines.append("  end")
    lines.append("endmodule")
    hex_rows = (
        "\n".join(f"{testbench.pack(r, ins):0{digits}x}" for r in rows)
        if ins
        else "0\n" * len(rows)
    )
    return "\n".join(lines) + "\n", hex_rows + "\n"


def toggles(vcd: str) -> dict[str, list[int]]:
    """Bit toggles per net of a VCD file (``name -> [toggles of bit 0 (lsb), bit 1, ...]``); the
    first value of a net is not a toggle."""
    ids: dict[str, list[str]] = {}
    width: dict[str, int] = {}
    counts: dict[str, list[int]] = {}
    last: dict[str, str] = {}
    lines = iter(vcd.splitlines())
    for line in lines:
        parts = line.split()
        if parts[:1] == ["$var"] and len(parts) >= 5:
            code, name = parts[3], parts[4].lstrip("\\")
            ids.setdefault(code, []).append(name)
            width[code] = int(parts[2])
            counts.setdefault(code, [0] * int(parts[2]))
        elif parts[:1] == ["$enddefinitions"]:
            break
    for line in lines:
        if not line or line[0] in "#$":
            continue
        if line[0] in "bB":
            value, _, code = line[1:].partition(" ")
        elif line[0] in "01xzXZ":
            value, code = line[0], line[1:]
        else:
            continue
        if code not in width:
            continue
        value = value.rjust(width[code], "0")[-width[code] :]
        old = last.get(code)
        if old is not None:
            for i, (a, b) in enumerate(zip(reversed(old), reversed(value), strict=True)):
                if a != b and a in "01" and b in "01":
                    counts[code][i] += 1
        last[code] = value
    return {name: counts[code] for code, names in ids.items() for name in names}


def estimate(task: Any, code: str, limits: Limits) -> dict[str, Any]:
    """The power report of ``code``: ``ok``, ``power_uw``, ``switching_uw``, ``leakage_uw``,
    ``toggle_rate`` (toggles per net bit per cycle); ``ok=False`` with ``messages`` when it
    cannot be estimated (a design that does not synthesize, a simulation that fails)."""
    code = verilog.extract_code(code)
    lib_path = toolchain.liberty_path()
    lib = read_liberty(lib_path)
    abc_script = "+strash;dc2;&get -n;&dch -f;&nf;&put;topo;print_stats;stime -p"
    script = "\n".join(
        [
            "read_verilog -sv design.v",
            f"hierarchy -check -top {task.module}",
            f"synth -top {task.module} -flatten",
            f"dfflibmap -liberty {lib_path}",
            f'abc -liberty {lib_path} -script "{abc_script}"',
            "opt_clean",
            "rename -enumerate",
            "write_verilog -noattr netlist.v",
            "write_json netlist.json",
        ]
    )
    nonce = secrets.token_hex(4)
    with Workdir() as wd:
        wd.write("design.v", code)
        wd.write("power.ys", script + "\n")
        syn = toolchain.run(
            ["yosys", "-Q", "-T", "-q", "-s", "power.ys"], wd.path, limits.synthesize_s, limits
        )
        if syn.timed_out or syn.returncode != 0 or not (wd.path / "netlist.json").is_file():
            failed = {"ok": False, "messages": "the design does not synthesize for the estimate"}
            return {**failed, toolchain.TRANSIENT: True} if syn.timed_out else failed
        netlist = json.loads((wd.path / "netlist.json").read_text())
        top = netlist["modules"].get(task.module)
        if top is None:
            return {"ok": False, "messages": f"the netlist has no module {task.module}"}
        driver, stim = _driver(task, task.module, f"power_{nonce}.vcd")
        wd.write("cells.v", cell_models(lib))
        wd.write("power_tb.v", driver)
        wd.write("power_stimulus.hex", stim)
        built = toolchain.run(
            ["iverilog", "-g2012", "-o", "power.vvp", "-s", "hg_power_tb"]
            + ["power_tb.v", "netlist.v", "cells.v"],
            wd.path,
            limits.compile_s,
            limits,
        )
        if built.returncode != 0 or built.timed_out:
            return {"ok": False, "messages": "the netlist does not compile for the estimate"}
        ran = toolchain.run(["vvp", "-n", "power.vvp"], wd.path, limits.simulate_s, limits)
        vcd_path = wd.path / f"power_{nonce}.vcd"
        if ran.timed_out or not vcd_path.is_file():
            failed = {"ok": False, "messages": "the netlist simulation did not finish"}
            return {**failed, toolchain.TRANSIENT: True} if ran.timed_out else failed
        counts = toggles(vcd_path.read_text())
    cycles = max(1, len(testbench.stimulus(task)))
    # Load per net bit: the input pin capacitances of the cells it drives; output ports one load.
    load: dict[Any, float] = {}
    leakage_nw = 0.0
    for cell in top["cells"].values():
        info = lib["cells"].get(cell["type"])
        if info is None:
            continue
        leakage_nw += info["leakage_nw"]
        for pin, bits in cell["connections"].items():
            if cell.get("port_directions", {}).get(pin) == "input":
                cap = info["pins"].get(pin, {}).get("capacitance", 0.0)
                for bit in bits:
                    load[bit] = load.get(bit, 0.0) + cap
    for port in top["ports"].values():
        if port["direction"] == "output":
            for bit in port["bits"]:
                load[bit] = load.get(bit, 0.0) + OUTPUT_LOAD_FF
    seen: set[Any] = set()
    energy_fj = 0.0
    total_toggles = 0
    bits_counted = 0
    v2 = lib["voltage"] ** 2
    for name, net in top["netnames"].items():
        per_bit = counts.get(name)
        if per_bit is None:
            continue
        for i, bit in enumerate(net["bits"]):
            if isinstance(bit, str) or bit in seen or i >= len(per_bit):
                continue  # a constant bit, or one already counted under another name
            seen.add(bit)
            bits_counted += 1
            total_toggles += per_bit[i]
            energy_fj += per_bit[i] * 0.5 * load.get(bit, 0.0) * v2
    switching_uw = energy_fj / cycles * CLOCK_GHZ
    leakage_uw = leakage_nw / 1000.0
    return {
        "ok": True,
        "power_uw": round(switching_uw + leakage_uw, 6),
        "switching_uw": round(switching_uw, 6),
        "leakage_uw": round(leakage_uw, 6),
        "toggle_rate": round(total_toggles / cycles / max(1, bits_counted), 6),
        "cycles": cycles,
    }


def compare(sandbox: Any, task: Any, code: str, limits: Limits) -> dict[str, Any]:
    """Power metrics of ``code`` next to the reference's (both cached like toolchain stages):
    ``power_uw``, ``reference_power_uw``, ``power_ratio``; empty when either is unavailable."""
    from .tools import memo_unless_transient

    scope = f"{toolchain.scope(task, limits)}/{POWER_VERSION}"

    def run(source: str) -> dict[str, Any]:
        return memo_unless_transient(
            sandbox,
            "estimate_power",
            {"code": source},
            lambda: estimate(task, source, limits),
            scope,
        )

    mine, ref = run(code), run(task.reference)
    if not (mine.get("ok") and ref.get("ok")):
        return {}
    floor = 1e-3  # uW: a design that never toggles does not divide by zero
    ratio = (mine["power_uw"] + floor) / (ref["power_uw"] + floor)
    return {
        "power_uw": mine["power_uw"],
        "reference_power_uw": ref["power_uw"],
        "power_ratio": round(ratio, 6),
    }
