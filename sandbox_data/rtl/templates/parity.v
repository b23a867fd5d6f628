module TopModule (
    input  [${W-1}:0] x,
    input            odd,
    output           p
);
    // Even parity makes the total number of ones (x and p) even; odd parity makes it odd.
    assign p = ^x ^ odd;
endmodule
