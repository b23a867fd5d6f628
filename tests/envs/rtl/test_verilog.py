"""Pure-Python parts of the RTL domain: source handling, templates, problems, stimulus."""

from __future__ import annotations

import collections
import contextlib

import pytest

from hiergym.envs.rtl import data, testbench
from hiergym.envs.rtl.verilog import (
    Port,
    check_size,
    extract_code,
    interface_problems,
    module_names,
    parse_module,
    rename_modules,
    scan_forbidden,
)
from hiergym.errors import TaskError, ToolError


def test_ansi_and_non_ansi_port_lists():
    ansi = """
    // module Decoy(input x);
    module TopModule #(parameter W = 8) (
        input  wire [7:0] a, b,   // b is 8 bits too
        input             sel,
        output reg  [7:0] y
    );
    endmodule
    """
    m = parse_module(ansi, "TopModule")
    assert [(p.name, p.direction, p.width) for p in m.ports] == [
        ("a", "input", 8),
        ("b", "input", 8),
        ("sel", "input", 1),
        ("y", "output", 8),
    ]
    old_style = (
        "module TopModule(a, y);\n  input [3:0] a;\n  output y;\n  assign y = ^a;\nendmodule"
    )
    m = parse_module(old_style, "TopModule")
    assert [(p.name, p.direction, p.width) for p in m.ports] == [
        ("a", "input", 4),
        ("y", "output", 1),
    ]
    assert module_names(ansi) == ["TopModule"]  # the commented-out module is not declared


def test_parse_errors_say_what_was_expected():
    with pytest.raises(ToolError, match="no module named 'TopModule'.*declares \\['top'\\]"):
        parse_module("module top(input a); endmodule", "TopModule")
    with pytest.raises(ToolError, match="declared 2 times"):
        parse_module("module TopModule; endmodule\nmodule TopModule; endmodule", "TopModule")
    with pytest.raises(ToolError, match="no input/output declaration"):
        parse_module("module TopModule(a, y);\n input a;\nendmodule", "TopModule")


def test_interface_problems_name_every_difference():
    required = (Port("a", "input", 8), Port("y", "output", 1))
    m = parse_module("module TopModule(output [3:0] a, input z); endmodule", "TopModule")
    problems = interface_problems(m, required)
    assert problems == [
        "port 'a' must be an input, not an output",
        "missing output port 'y' (1 bits)",
        "unexpected port 'z'",
    ]


def test_markdown_fences_are_extracted():
    answer = "Here it is:\n```verilog\nmodule TopModule; endmodule\n```\nHope it helps."
    assert extract_code(answer) == "module TopModule; endmodule\n"
    assert extract_code("module A; endmodule") == "module A; endmodule\n"


def test_an_unclosed_fence_is_not_part_of_the_code():
    """An answer cut off before its closing fence was compiled with the ``` line in it and
    refused as "macro token pasting (``)"."""
    code = "module TopModule(input a, output y);\n    assign y = a;\nendmodule"
    assert extract_code(f"Here:\n```verilog\n{code}\n") == code + "\n"
    assert extract_code(f"```\n{code}") == code + "\n"
    assert scan_forbidden(extract_code(f"```systemverilog\n{code}")) == []
    assert extract_code(f"{code}\n```\n") == code + "\n"


def test_scan_refuses_side_effects_and_allows_pure_functions():
    code = """
    `include "/etc/passwd"
    `define PASTE(x) $f``x
    module TopModule(input [7:0] a, output [7:0] y);
        // $fopen in a comment is harmless
        initial $display("$finish in a string is harmless too");
        assign y = $signed(a) >>> $clog2(4);
        initial begin $system("rm -rf /"); $readmemh("x", m); $fdisplay(1, "x"); $finish; end
    endmodule
    """
    found = {f.construct for f in scan_forbidden(code)}
    assert found == {"`include", "``", "$f", "$system", "$readmemh", "$fdisplay", "$finish"}
    assert scan_forbidden('module TopModule; initial $display("hi"); endmodule') == []


def test_scan_refuses_tool_dependent_conditional_compilation():
    code = (
        "`ifdef SYNTHESIS\nmodule TopModule; endmodule\n`else\nmodule TopModule; endmodule\n`endif"
    )
    assert [f.construct for f in scan_forbidden(code)] == ["`ifdef SYNTHESIS"]
    own = "`define WIDE\n`ifdef WIDE\nmodule TopModule; endmodule\n`endif\n"
    assert scan_forbidden(own) == []


@pytest.mark.parametrize(
    ("comment", "pragma"),
    [
        ("// synopsys translate_off", "translate_off"),
        ("/* synthesis translate_off */", "translate_off"),
        ("//synopsys translate_on", "translate_on"),
        ("// synopsys full_case parallel_case", "full_case"),
        ("/* synthesis parallel_case */", "parallel_case"),
        ("// SYNOPSYS TRANSLATE_OFF", "TRANSLATE_OFF"),
    ],
)
def test_scan_refuses_synthesis_pragmas_in_comments(comment, pragma):
    """yosys obeys these comments and iverilog ignores them: simulation and synthesis would see
    different designs (see test_rtl's translate_off counter, which passed every level)."""
    code = f"module TopModule(input a, output y);\n    {comment}\n    assign y = a;\nendmodule\n"
    found = scan_forbidden(code)
    assert [(f.construct, f.line) for f in found] == [(pragma, 2)]
    assert "synthesis obeys it and simulation does not" in found[0].message


def test_scan_refuses_attributes_but_not_star_event_controls():
    code = (
        "(* whitebox *)\nmodule Helper(input a, output y); assign y = a; endmodule\n"
        "module TopModule(input a, output reg y);\n    always @(*) y = a;\nendmodule\n"
    )
    found = scan_forbidden(code)
    assert [(f.construct, f.line) for f in found] == [("(* *)", 1)]
    assert "synthesis acts on them and simulation ignores them" in found[0].message
    assert (
        scan_forbidden("module TopModule(input a, output reg y);\n always @(*) y = a;\n endmodule")
        == []
    )
    assert scan_forbidden(
        "module TopModule(input a, output reg y);\n always @(*)\n (* parallel_case *) y = a; endmodule"
    )


def test_ordinary_comments_about_synthesis_are_harmless():
    code = (
        "// Synthesizable; not for synthesis tools that translate everything.\n"
        "module TopModule(input a, output y);\n"
        '    initial $display("translate_off full_case in a string");\n'
        "    /* the full case list: */ assign y = a;\nendmodule\n"
    )
    assert scan_forbidden(code) == []


def test_nul_characters_are_refused_with_a_clear_message():
    """iverilog stops reading at a NUL: the compile failed with "Unable to find the root module
    hg_iface_N", which says nothing about the design."""
    with pytest.raises(ToolError, match="NUL"):
        check_size("module TopModule(input a, output y); assign y = a; endmodule\n\x00")


def test_rename_modules_is_whole_word():
    src = "module TopModule; TopModule_helper h(); endmodule\nmodule TopModule_helper; endmodule"
    out = rename_modules(src, {"TopModule": "hg_ref_1"})
    assert module_names(out) == ["hg_ref_1", "TopModule_helper"]


def test_template_expressions():
    assert data.evaluate("W-1", {"W": 8}) == 7
    assert data.evaluate("2**N", {"N": 3}) == 8
    assert data.evaluate("clog2(W+1)", {"W": 16}) == 5
    assert data.render("[${W-1}:0] ${W}'d0", {"W": 4}) == "[3:0] 4'd0"
    with pytest.raises(TaskError, match="unknown parameter 'X'"):
        data.evaluate("X+1", {"W": 1})
    with pytest.raises(TaskError, match="unsupported"):
        data.evaluate("__import__('os')", {})


def test_problem_catalog_shape():
    tasks = data.generate_tasks()
    assert len(tasks) >= 60
    cells = collections.Counter((t.split, t.difficulty) for t in tasks)
    for split in data.SPLITS:
        for difficulty in data.DIFFICULTIES:
            assert cells[(split, difficulty)] >= 2, (split, difficulty)
    families = collections.defaultdict(set)
    for t in tasks:
        families[t.family].add(t.split)
        assert t.spec and t.reference.count("module TopModule") == 1 and t.ports
    assert all(len(splits) == 1 for splits in families.values()), "a family spans two splits"
    wanted = {
        "mux2", "decoder", "priority_encoder", "adder", "comparator", "alu", "popcount",
        "rotate_left", "bin2gray", "gray2bin", "counter", "shift_register", "edge_detector",
        "sequence_detector", "traffic_light", "fifo", "clock_divider", "debouncer", "uart_tx",
    }  # fmt: skip
    assert wanted <= set(families)
    assert {t.kind for t in tasks} == {"comb", "seq"}


def _task(task_id):
    return next(t for t in data.generate_tasks() if t.task_id == task_id)


def test_stimulus_is_seeded_large_and_starts_with_reset():
    seq = _task("rtl-counter-w8")
    rows = testbench.stimulus(seq)
    assert rows == testbench.stimulus(seq) and len(rows) >= 1000
    names = [p.name for p in testbench.input_ports(seq)]
    assert names == ["rst", "en"]  # the clock is driven by the testbench, not the stimulus
    assert [r[0] for r in rows[:2]] == [1, 1] and 0 < sum(r[0] for r in rows[2:]) < 100
    comb = _task("rtl-adder-w16")
    rows = testbench.stimulus(comb)
    assert len(rows) >= 1000 and [0, 0, 0] in rows and [0xFFFF, 0xFFFF, 1] in rows
    small = _task("rtl-mux2-w1")  # 3 input bits: every combination, in order, first
    assert testbench.stimulus(small)[:8] == [[v >> 2 & 1, v >> 1 & 1, v & 1] for v in range(8)]


def _longest_run_without_reset(rows):
    longest = run = 0
    for row in rows:
        run = 0 if row[0] else run + 1
        longest = max(longest, run)
    return longest


def test_sequential_runs_end_with_a_long_stretch_without_reset():
    for task in data.generate_tasks():
        if task.kind != "seq":
            continue
        rows = testbench.stimulus(task)
        late = max(4 * testbench.RESET_CYCLES, len(rows) // testbench.LATE_RESET_SHARE)
        assert _longest_run_without_reset(rows) >= len(rows) // 2 - late - 1, task.task_id
    counter = _task("rtl-counter-w16")  # 2**16 counts fit in its reset-free stretch
    rows = testbench.stimulus(counter)
    start = len(rows) - _longest_run_without_reset(rows)
    assert sum(en for _, en in rows[start:]) > 2**16


@pytest.mark.parametrize(
    "text",
    [
        "/*" * 32_000,
        "```verilog\n" * 5_000,
        '"' * 64_000,
        "module TopModule " + "(" * 60_000,
        "module TopModule(input " + "[" * 60_000 + " a); endmodule",
        "module TopModule(input " + "[1" * 30_000 + " a); endmodule",
        "module TopModule(a); input " + "[" * 60_000 + " a; endmodule",
    ],
)
def test_pathological_sources_are_handled_in_linear_time(text):
    """Agent text reaches these parsers on every call; none may backtrack quadratically (each of
    these took 10-20 s with the first, regex-based version)."""
    code = extract_code(text)
    scan_forbidden(code)
    with contextlib.suppress(ToolError):
        parse_module(code, "TopModule")
