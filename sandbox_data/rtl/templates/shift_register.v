module TopModule (
    input                 clk,
    input                 rst,
    input                 en,
    input                 din,
    output reg [${W-1}:0] q
);
    always @(posedge clk) begin
        if (rst)
            q <= ${W}'d0;
        else if (en)
            q <= {q[${W-2}:0], din};
    end
endmodule
