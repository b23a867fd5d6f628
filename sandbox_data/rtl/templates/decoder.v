module TopModule (
    input  [${N-1}:0]    a,
    input               en,
    output [${2**N-1}:0] y
);
    assign y = en ? (${2**N}'d1 << a) : ${2**N}'d0;
endmodule
