module TopModule (
    input  [${W-1}:0] a,
    input  [${W-1}:0] b,
    input            cin,
    output [${W-1}:0] sum,
    output           cout
);
    assign {cout, sum} = a + b + cin;
endmodule
