"""The slang front-end: interfaces as the compilers elaborate them, the token-level construct scan."""

from __future__ import annotations

import pytest

from hiergym.envs.rtl import importer
from hiergym.envs.rtl.verilog import (
    Port,
    edge_signals,
    instantiated_modules,
    interface_problems,
    parse_module,
    scan_forbidden,
)
from hiergym.errors import ToolError


def ports(code: str, name: str = "TopModule") -> list[tuple[str, str, int]]:
    return [(p.name, p.direction, p.width) for p in parse_module(code, name).ports]


def test_parameterised_widths_take_the_default_values():
    """`input [WIDTH-1:0] a` with `parameter WIDTH = 64` was width 0 (unchecked) before."""
    code = (
        "module TopModule #(parameter WIDTH = 64, parameter N = WIDTH / 8) (\n"
        "    input [WIDTH-1:0] a, b,\n    output [N-1:0] y, output [WIDTH:0] s);\n"
        "  assign s = a + b; assign y = a[N-1:0];\nendmodule\n"
    )
    assert ports(code) == [
        ("a", "input", 64),
        ("b", "input", 64),
        ("y", "output", 8),
        ("s", "output", 65),
    ]
    assert dict(parse_module(code, "TopModule").parameters) == {"WIDTH": "64", "N": "8"}
    wanted = (Port("a", "input", 64), Port("b", "input", 64), Port("y", "output", 8))
    assert interface_problems(parse_module(code, "TopModule"), (*wanted, Port("s", "output", 64)))
    assert (
        "must be 64 bits wide, not 65"
        in interface_problems(parse_module(code, "TopModule"), (*wanted, Port("s", "output", 64)))[
            0
        ]
    )


def test_ifdef_inside_a_port_list_follows_the_designs_own_macros():
    code = (
        "`define WIDE\nmodule TopModule (\n`ifdef WIDE\n    input [7:0] a,\n`else\n"
        "    input [3:0] a,\n`endif\n    output y);\n  assign y = ^a;\nendmodule\n"
    )
    assert ports(code) == [("a", "input", 8), ("y", "output", 1)]
    assert scan_forbidden(code) == []


def test_packed_two_dimensional_ports_have_their_total_width():
    code = "module TopModule(input [3:0][7:0] a, output [31:0] y); assign y = a; endmodule"
    assert ports(code) == [("a", "input", 32), ("y", "output", 32)]


def test_a_one_bit_carry_after_a_vector_declaration_is_one_bit():
    code = (
        "module TopModule(input wire [31:0] a, b, input wire cin, output reg [31:0] s,\n"
        "    output reg cout);\n  always @* {cout, s} = a + b + cin;\nendmodule\n"
    )
    assert ports(code) == [
        ("a", "input", 32),
        ("b", "input", 32),
        ("cin", "input", 1),
        ("s", "output", 32),
        ("cout", "output", 1),
    ]
    non_ansi = (
        "module TopModule(a, cin, s);\n  parameter W = 16;\n  input [W-1:0] a;\n  input cin;\n"
        "  output [W:0] s;\n  assign s = a + cin;\nendmodule\n"
    )
    assert ports(non_ansi) == [("a", "input", 16), ("cin", "input", 1), ("s", "output", 17)]


def test_interface_ports_are_refused_with_a_reason():
    code = "interface bus; logic a; endinterface\nmodule TopModule(bus b); endmodule"
    with pytest.raises(ToolError, match="interface port"):
        parse_module(code, "TopModule")


def test_dollar_signs_inside_identifiers_are_not_system_tasks():
    code = (
        "module TopModule(input a, output y);\n  wire a$b = a;\n  wire \\$finish = a$b;\n"
        "  assign y = \\$finish ;\nendmodule\n"
    )
    assert scan_forbidden(code) == []


def test_scan_reads_macro_expansions_and_keeps_every_refusal():
    code = (
        "`define T $time\nmodule TopModule(input [7:0] a, output y, output z);\n"
        "  assign y = (a === 8'h0);\n  assign z = `T;\n  (* keep *) wire k;\nendmodule\n"
    )
    found = {(f.construct, f.line) for f in scan_forbidden(code)}
    assert ("$time", 1) in found  # the define's body, and its expansion on line 4
    assert ("===", 3) in found
    assert ("(* *)", 5) in found
    assert ("!==", 1) in {
        (f.construct, f.line) for f in scan_forbidden("module M; wire q = 1 !== 0; endmodule")
    }


def test_macros_that_expand_exponentially_are_refused_before_parsing():
    lines = ["`define M0 a"] + [f"`define M{i} `M{i - 1} `M{i - 1}" for i in range(1, 40)]
    code = "\n".join(lines) + "\nmodule TopModule(input a, output y); assign y = `M39; endmodule\n"
    with pytest.raises(ToolError, match="macros expand"):
        parse_module(code, "TopModule")
    assert scan_forbidden(code) == []  # the scan falls back to the text, which has nothing refused


def test_include_is_never_read_by_the_front_end():
    code = '`include "/dev/zero"\nmodule TopModule(input a, output y); assign y = a; endmodule\n'
    assert ports(code) == [("a", "input", 1), ("y", "output", 1)]
    assert [f.construct for f in scan_forbidden(code)] == ["`include"]


def test_instances_and_edges_come_from_the_syntax_tree():
    code = (
        "module TopModule(input clock, input areset, input d, output q);\n"
        "  // sub fake(.x(d));\n  dff u(.clock(clock), .d(d), .q(q));\n"
        "  reg r; always @(posedge clock or posedge areset) r <= areset ? 1'b0 : d;\nendmodule\n"
    )
    assert instantiated_modules(code) == ["dff"]
    assert edge_signals(code) == ["clock", "areset"]


@pytest.mark.parametrize(
    ("clock", "reset", "edge", "level"),
    [
        ("clock", "reset", "", 1),
        ("clk_in", "rst_n", " or negedge rst_n", 0),
        ("CLK", "RST", " or posedge RST", 1),
        ("clk", "areset", " or posedge areset", 1),
    ],
)
def test_clocks_not_named_clk_make_a_sequential_task(clock, reset, edge, level):
    """A clock named `clock` or `clk_in` made a VerilogEval problem combinational."""
    active = "!" if level == 0 else ""
    ref = (
        f"module TopModule(input {clock}, input {reset}, input d, output reg q);\n"
        f"  always @(posedge {clock}{edge}) if ({active}{reset}) q <= 1'b0; else q <= d;\n"
        "endmodule\n"
    )
    kind, found_clock, found_reset, found_level = importer.infer_clocking(
        ref, "TopModule", parse_module(ref, "TopModule").ports
    )
    assert (kind, found_clock, found_reset, found_level) == ("seq", clock, reset, level)
    comb = "module TopModule(input a, output y); assign y = a; endmodule"
    assert importer.infer_clocking(comb, "TopModule", parse_module(comb, "TopModule").ports)[0] == (
        "comb"
    )
