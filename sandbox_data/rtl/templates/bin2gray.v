module TopModule (
    input  [${W-1}:0] bin,
    output [${W-1}:0] gray
);
    assign gray = bin ^ (bin >> 1);
endmodule
