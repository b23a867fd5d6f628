module TopModule (
    input                 clk,
    input                 rst,
    input                 en,
    output reg [${W-1}:0] q
);
    wire feedback = ${FEEDBACK};
    always @(posedge clk) begin
        if (rst)
            q <= ${W}'d1;
        else if (en)
            q <= {q[${W-2}:0], feedback};
    end
endmodule
