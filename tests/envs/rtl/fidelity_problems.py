"""Small problems in VerilogEval's spec-to-RTL layout (prompt, RefModule, testbench ``tb`` printing
``Mismatches: N in M samples``), written by the tests into a directory, for the prover-fidelity
tests: each is a kind of correct design that the verifier once refused."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Problem:
    name: str
    prompt: str
    ref: str
    ins: tuple[tuple[str, int], ...]
    outs: tuple[tuple[str, int], ...]
    clocks: tuple[tuple[str, int], ...] = ()  # (name, half period)
    resets: tuple[tuple[str, int], ...] = ()  # (name, active level)
    cycles: int = 400


def _range(w: int) -> str:
    return f"[{w - 1}:0] " if w > 1 else ""


def testbench(p: Problem) -> str:
    """A VerilogEval-style testbench: stimulus_gen drives random inputs (resets pulsed now and
    then), tb compares RefModule and TopModule on every edge of the first clock (or every 5 ps
    for a combinational problem), an x in the reference matching anything."""
    clk0 = p.clocks[0][0] if p.clocks else None
    sg_ports = [f"input {c}" for c, _ in p.clocks[:1]]
    sg_ports += [f"output reg {_range(w)}{n}" for n, w in p.ins]
    lines = ["`timescale 1 ps/1 ps", "module stimulus_gen (", "\t" + ",\n\t".join(sg_ports), ");"]
    lines.append("\tinitial begin")
    for n, _ in p.ins:
        active = dict(p.resets).get(n)
        lines.append(f"\t\t{n} <= {active if active is not None else 0};")
    wait = f"@(negedge {clk0})" if clk0 else "#5"
    lines.append(f"\t\trepeat(3) {wait};")
    lines.append(f"\t\trepeat({p.cycles}) {wait} begin")
    for n, w in p.ins:
        active = dict(p.resets).get(n)
        if active is not None:
            lines.append(f"\t\t\t{n} <= ($random & 31) == 0 ? {active} : {1 - active};")
        else:
            words = (w + 31) // 32
            value = "{" + ", ".join(["$random"] * words) + "}" if words > 1 else "$random"
            lines.append(f"\t\t\t{n} <= {value};")
    lines.append("\t\tend")
    lines.append("\t\t#1 $finish;")
    lines.append("\tend")
    lines.append("endmodule\n")
    lines.append("module tb();")
    lines.append("\tint errors = 0, clocks = 0;")
    for c, half in p.clocks:
        lines.append(f"\treg {c} = 0;")
        lines.append(f"\tinitial forever #{half} {c} = ~{c};")
    for n, w in p.ins:
        lines.append(f"\tlogic {_range(w)}{n};")
    for n, w in p.outs:
        lines.append(f"\tlogic {_range(w)}{n}_ref, {n}_dut;")
    lines.append('\tinitial begin $dumpfile("wave.vcd"); $dumpvars(1, tb); end')
    conn_in = ", ".join(f".{n}({n})" for n, _ in p.clocks + tuple(p.ins))
    sg = ", ".join([f".{c}({c})" for c, _ in p.clocks[:1]] + [f".{n}({n})" for n, _ in p.ins])
    lines.append(f"\tstimulus_gen stim1 ({sg});")
    for mod, side in (("RefModule", "ref"), ("TopModule", "dut")):
        outs = ", ".join(f".{n}({n}_{side})" for n, _ in p.outs)
        lines.append(f"\t{mod} {side}1 ({conn_in}, {outs});")
    ref = "{" + ", ".join(f"{n}_ref" for n, _ in p.outs) + "}"
    dut = "{" + ", ".join(f"{n}_dut" for n, _ in p.outs) + "}"
    lines.append(f"\twire tb_match = ({ref} === ({ref} ^ {dut} ^ {ref}));")
    event = f"@(posedge {clk0}, negedge {clk0})" if clk0 else "@(stim1." + p.ins[0][0] + ")"
    if clk0:
        lines.append(f"\talways {event} begin")
    else:
        lines.append("\talways begin #5;")
    lines.append("\t\tclocks++;")
    lines.append("\t\tif (!tb_match) errors++;")
    lines.append("\tend")
    lines.append("\tfinal begin")
    lines.append(
        '\t\t$display("Hint: Total mismatched samples is %1d out of %1d samples", errors, clocks);'
    )
    lines.append('\t\t$display("Mismatches: %1d in %1d samples", errors, clocks);')
    lines.append("\tend")
    lines.append("endmodule")
    return "\n".join(lines) + "\n"


def write(directory: Path, problems: list[Problem]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for p in problems:
        (directory / f"{p.name}_prompt.txt").write_text(p.prompt.strip() + "\n")
        (directory / f"{p.name}_ref.sv").write_text(p.ref.strip() + "\n")
        (directory / f"{p.name}_test.sv").write_text(testbench(p))
    return directory


ASYNC_FSM = Problem(
    "Prob201_fsm_areset",
    "Implement a Moore machine with states A, B (one input in, one output out). It moves to the "
    "other state when in is 0 and stays when in is 1; out is 1 in state B. areset is an "
    "active-high asynchronous reset to B.",
    """
module RefModule (input clk, input areset, input in, output out);
  parameter A = 0, B = 1;
  reg state;
  always @(posedge clk, posedge areset)
    if (areset) state <= B;
    else if (!in) state <= ~state;
  assign out = (state == B);
endmodule
""",
    ins=(("areset", 1), ("in", 1)),
    outs=(("out", 1),),
    clocks=(("clk", 5),),
    resets=(("areset", 1),),
)

MULTIPLIER = Problem(
    "Prob202_mult16",
    "out is the 32-bit unsigned product of the 16-bit inputs a and b.",
    """
module RefModule (input [15:0] a, input [15:0] b, output [31:0] out);
  assign out = a * b;
endmodule
""",
    ins=(("a", 16), ("b", 16)),
    outs=(("out", 32),),
)

MEMORY = Problem(
    "Prob203_ram16x8",
    "A 16-word, 8-bit memory: on the rising edge of clk, when we is 1, word waddr is set to "
    "wdata. rdata is word raddr, read combinationally.",
    """
module RefModule (input clk, input we, input [3:0] waddr, input [7:0] wdata,
                  input [3:0] raddr, output [7:0] rdata);
  reg [7:0] mem [0:15];
  always @(posedge clk) if (we) mem[waddr] <= wdata;
  assign rdata = mem[raddr];
endmodule
""",
    ins=(("we", 1), ("waddr", 4), ("wdata", 8), ("raddr", 4)),
    outs=(("rdata", 8),),
    clocks=(("clk", 5),),
)

LATCH = Problem(
    "Prob204_dlatch",
    "Implement a D latch: q follows d while ena is 1 and holds its value while ena is 0.",
    """
module RefModule (input d, input ena, output logic q);
  always_comb begin
    if (ena) q = d;
  end
endmodule
""",
    ins=(("d", 1), ("ena", 1)),
    outs=(("q", 1),),
)

CLOCK_NAMED_CLOCK = Problem(
    "Prob205_count_clock",
    "A 4-bit counter that counts up on every rising edge of clock; reset (active high, "
    "synchronous) sets it to 0.",
    """
module RefModule (input clock, input reset, output reg [3:0] q);
  always @(posedge clock)
    if (reset) q <= 0;
    else q <= q + 1;
endmodule
""",
    ins=(("reset", 1),),
    outs=(("q", 4),),
    clocks=(("clock", 5),),
    resets=(("reset", 1),),
)

CLOCK_NAMED_CLK_IN = Problem(
    "Prob206_shift_clk_in",
    "An 8-bit shift register clocked on the rising edge of clk_in: q shifts left by one and takes "
    "din into bit 0; rst_n (active low, synchronous) clears it.",
    """
module RefModule (input clk_in, input rst_n, input din, output reg [7:0] q);
  always @(posedge clk_in)
    if (!rst_n) q <= 0;
    else q <= {q[6:0], din};
endmodule
""",
    ins=(("rst_n", 1), ("din", 1)),
    outs=(("q", 8),),
    clocks=(("clk_in", 5),),
    resets=(("rst_n", 0),),
)

TWO_CLOCKS = Problem(
    "Prob207_two_clocks",
    "Two registers in two clock domains: a captures din on the rising edge of clk_a, b captures "
    "a on the rising edge of clk_b. Both clear when reset (active high, synchronous to its own "
    "clock) is 1.",
    """
module RefModule (input clk_a, input clk_b, input reset, input [3:0] din,
                  output reg [3:0] a, output reg [3:0] b);
  always @(posedge clk_a) if (reset) a <= 0; else a <= din;
  always @(posedge clk_b) if (reset) b <= 0; else b <= a;
endmodule
""",
    ins=(("reset", 1), ("din", 4)),
    outs=(("a", 4), ("b", 4)),
    clocks=(("clk_a", 5), ("clk_b", 7)),
    resets=(("reset", 1),),
)

ROTATOR = Problem(
    "Prob208_rotate100",
    "A 100-bit rotator: load (synchronous) loads data; otherwise ena[1:0] = 2'b01 rotates right "
    "by one, 2'b10 rotates left by one, anything else holds. q is the register.",
    """
module RefModule (input clk, input load, input [1:0] ena, input [99:0] data,
                  output reg [99:0] q);
  always @(posedge clk)
    if (load) q <= data;
    else if (ena == 2'h1) q <= {q[0], q[99:1]};
    else if (ena == 2'h2) q <= {q[98:0], q[99]};
endmodule
""",
    ins=(("load", 1), ("ena", 2), ("data", 100)),
    outs=(("q", 100),),
    clocks=(("clk", 5),),
)

POPCOUNT = Problem(
    "Prob209_popcount255",
    "out is the number of 1 bits in the 255-bit input in.",
    """
module RefModule (input [254:0] in, output reg [7:0] out);
  always_comb begin
    out = 0;
    for (int i = 0; i < 255; i++) out = out + in[i];
  end
endmodule
""",
    ins=(("in", 255),),
    outs=(("out", 8),),
)

CELLULAR = Problem(
    "Prob210_rule90",
    "A 64-cell rule 90 automaton: load (synchronous) loads data; otherwise every cell becomes the "
    "XOR of its two neighbours (the cells past the ends are 0).",
    """
module RefModule (input clk, input load, input [63:0] data, output reg [63:0] q);
  always @(posedge clk)
    if (load) q <= data;
    else q <= {1'b0, q[63:1]} ^ {q[62:0], 1'b0};
endmodule
""",
    ins=(("load", 1), ("data", 64)),
    outs=(("q", 64),),
    clocks=(("clk", 5),),
)

PROBLEMS = [
    ASYNC_FSM,
    MULTIPLIER,
    MEMORY,
    LATCH,
    CLOCK_NAMED_CLOCK,
    CLOCK_NAMED_CLK_IN,
    TWO_CLOCKS,
    ROTATOR,
    POPCOUNT,
    CELLULAR,
]
