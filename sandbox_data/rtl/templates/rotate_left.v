module TopModule (
    input  [${W-1}:0]        x,
    input  [${clog2(W)-1}:0] sh,
    output [${W-1}:0]        y
);
    wire [${2*W-1}:0] doubled = {x, x} << sh;
    assign y = doubled[${2*W-1}:${W}];
endmodule
