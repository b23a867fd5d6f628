module TopModule (
    input  [${W-1}:0] a,
    input  [${W-1}:0] b,
    input            sel,
    output [${W-1}:0] y
);
    assign y = sel ? b : a;
endmodule
