module TopModule (
    input                 clk,
    input                 rst,
    input                 en,
    input      [${W-1}:0] d,
    output reg [${W-1}:0] acc
);
    always @(posedge clk) begin
        if (rst)
            acc <= ${W}'d0;
        else if (en)
            acc <= acc + d;
    end
endmodule
