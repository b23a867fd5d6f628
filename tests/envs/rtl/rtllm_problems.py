"""Small designs in RTLLM's own layout (design_description.txt, testbench.v printing RTLLM's pass
line, verified_<name>.v), written by the tests into a directory: a parameterised adder, a
multiplexer with an `ifdef inside its port list, an asynchronous-reset FSM, a multiplier and a
memory whose testbench reads its expected values from a data file."""

from __future__ import annotations

from pathlib import Path

PASS = '$display("===========Your Design Passed===========");'
FAIL = '$display("===========Test completed with %d failures===========", error);'

DESIGNS: dict[str, dict[str, str]] = {
    "adder_param": {
        "description": """Please act as a professional verilog designer.
Implement a parameterised ripple adder.
Module name:
    adder_param
Parameters:
    WIDTH = 8
Input ports:
    a[WIDTH-1:0], b[WIDTH-1:0]: operands. cin: carry in.
Output ports:
    sum[WIDTH-1:0]: the sum. cout: the 1-bit carry out.
""",
        "verified_adder_param.v": """module verified_adder_param #(parameter WIDTH = 8) (
    input [WIDTH-1:0] a, b,
    input cin,
    output [WIDTH-1:0] sum,
    output cout
);
    assign {cout, sum} = a + b + cin;
endmodule
""",
        "testbench.v": f"""`timescale 1ns/1ps
module testbench;
  reg [7:0] a, b; reg cin; wire [7:0] sum; wire cout;
  integer i; integer error = 0;
  adder_param uut (.a(a), .b(b), .cin(cin), .sum(sum), .cout(cout));
  initial begin
    $dumpfile("adder.vcd"); $dumpvars(0, testbench);
    for (i = 0; i < 300; i = i + 1) begin
      a = $random; b = $random; cin = $random;
      #10;
      if ({{cout, sum}} != a + b + cin) error = error + 1;
    end
    if (error == 0) {PASS}
    else {FAIL}
    $finish;
  end
endmodule
""",
    },
    "mux_ifdef": {
        "description": """Implement a 2-to-1 multiplexer of 8-bit words.
Module name:
    mux_ifdef
Input ports: a[7:0], b[7:0], sel. Output ports: y[7:0].
""",
        "verified_mux_ifdef.v": """`define WIDE
module verified_mux_ifdef (
`ifdef WIDE
    input [7:0] a, b,
`else
    input [3:0] a, b,
`endif
    input sel,
    output [7:0] y
);
    assign y = sel ? b : a;
endmodule
""",
        "testbench.v": f"""`timescale 1ns/1ps
module mux_tb;
  reg [7:0] a, b; reg sel; wire [7:0] y;
  integer i; integer error = 0;
  mux_ifdef dut (.a(a), .b(b), .sel(sel), .y(y));
  initial begin
    for (i = 0; i < 200; i = i + 1) begin
      a = $random; b = $random; sel = $random;
      #5;
      if (y != (sel ? b : a)) error = error + 1;
    end
    if (error == 0) {PASS}
    else {FAIL}
    $finish;
  end
endmodule
""",
    },
    "fsm_async": {
        "description": """Implement a Mealy detector of the sequence 101 with an asynchronous,
active-low reset.
Module name:
    fsm_async
Input ports: clk, rst_n, din. Output ports: hit (1 when the last three bits were 101).
""",
        "verified_fsm_async.v": """module verified_fsm_async (input clk, input rst_n, input din, output hit);
    reg [1:0] state;
    localparam S0 = 2'd0, S1 = 2'd1, S10 = 2'd2;
    always @(posedge clk or negedge rst_n) begin
        if (!rst_n) state <= S0;
        else case (state)
            S0: state <= din ? S1 : S0;
            S1: state <= din ? S1 : S10;
            S10: state <= din ? S1 : S0;
            default: state <= S0;
        endcase
    end
    assign hit = (state == S10) && din;
endmodule
""",
        "testbench.v": f"""`timescale 1ns/1ps
module tb_fsm;
  reg clk = 0, rst_n = 0, din = 0; wire hit;
  reg [2:0] hist; integer i; integer error = 0;
  fsm_async dut (.clk(clk), .rst_n(rst_n), .din(din), .hit(hit));
  always #5 clk = ~clk;
  initial begin
    hist = 0;
    #12 rst_n = 1;
    for (i = 0; i < 400; i = i + 1) begin
      @(negedge clk); din = $random;
      #1 if (hit != ({{hist[1:0], din}} == 3'b101)) error = error + 1;
      @(posedge clk); hist = {{hist[1:0], din}};
    end
    if (error == 0) {PASS}
    else {FAIL}
    $finish;
  end
endmodule
""",
    },
    "multi_4bit": {
        "description": """Implement an unsigned 4x4-bit multiplier.
Module name:
    multi_4bit
Input ports: A[3:0], B[3:0]. Output ports: P[7:0].
""",
        "verified_multi_4bit.v": """module verified_multi_4bit (input [3:0] A, input [3:0] B, output [7:0] P);
    assign P = A * B;
endmodule
""",
        "testbench.v": f"""`timescale 1ns/1ps
module tb_multi;
  reg [3:0] A, B; wire [7:0] P; integer i, j; integer error = 0;
  multi_4bit uut (.A(A), .B(B), .P(P));
  initial begin
    for (i = 0; i < 16; i = i + 1) for (j = 0; j < 16; j = j + 1) begin
      A = i; B = j; #5;
      if (P != i * j) error = error + 1;
    end
    if (error == 0) {PASS}
    else {FAIL}
    $finish;
  end
endmodule
""",
    },
    "ram_small": {
        "description": """Implement a 4-word by 4-bit RAM with a synchronous write port and a
registered read port, cleared by an asynchronous active-low reset.
Module name:
    ram_small
Input ports: clk, rst_n, we, waddr[1:0], wdata[3:0], raddr[1:0]. Output ports: rdata[3:0].
""",
        "verified_ram_small.v": """module verified_ram_small (
    input clk, input rst_n, input we, input [1:0] waddr, input [3:0] wdata,
    input [1:0] raddr, output reg [3:0] rdata
);
    reg [3:0] mem [0:3];
    integer k;
    always @(posedge clk or negedge rst_n) begin
        if (!rst_n) begin
            for (k = 0; k < 4; k = k + 1) mem[k] <= 4'd0;
            rdata <= 4'd0;
        end else begin
            if (we) mem[waddr] <= wdata;
            rdata <= mem[raddr];
        end
    end
endmodule
""",
        "testbench.v": f"""`timescale 1ns/1ps
module tb_RAM;
  reg clk = 0, rst_n = 0, we = 0; reg [1:0] waddr = 0, raddr = 0; reg [3:0] wdata = 0;
  wire [3:0] rdata; reg [3:0] expected [0:3]; integer i; integer error = 0;
  ram_small uut (.clk(clk), .rst_n(rst_n), .we(we), .waddr(waddr), .wdata(wdata),
                 .raddr(raddr), .rdata(rdata));
  always #5 clk = ~clk;
  initial begin
    $readmemh("expected.txt", expected);
    #12 rst_n = 1;
    for (i = 0; i < 4; i = i + 1) begin
      @(negedge clk); we = 1; waddr = i; wdata = expected[i];
    end
    @(negedge clk); we = 0;
    for (i = 0; i < 4; i = i + 1) begin
      raddr = i; @(posedge clk); #1;
      if (rdata != expected[i]) error = error + 1;
    end
    if (error == 0) {PASS}
    else {FAIL}
    $finish;
  end
endmodule
""",
        "expected.txt": "a\n5\n3\nc\n",
    },
}


def write(root: Path, names: list[str] | None = None) -> Path:
    """Write the designs (all, or ``names``) into ``root``/<category>/<name>/, as RTLLM does."""
    for name, files in DESIGNS.items():
        if names is not None and name not in names:
            continue
        folder = root / "Small" / name
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "makefile").write_text("vcs:\n\tvcs testbench.v\n")
        for file, text in files.items():
            target = "design_description.txt" if file == "description" else file
            (folder / target).write_text(text)
    return root
