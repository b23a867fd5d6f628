module TopModule (
    input  [${W-1}:0] a,
    input  [${W-1}:0] b,
    output           eq,
    output           lt,
    output           gt
);
    assign eq = a == b;
    assign lt = $signed(a) < $signed(b);
    assign gt = $signed(a) > $signed(b);
endmodule
