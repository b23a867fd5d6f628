module TopModule (
    input      clk,
    input      rst,
    output reg clk_out
);
    reg [7:0] cnt;
    always @(posedge clk) begin
        if (rst) begin
            cnt <= 8'd0;
            clk_out <= 1'b0;
        end else if (cnt == ${N//2-1}) begin
            cnt <= 8'd0;
            clk_out <= ~clk_out;
        end else
            cnt <= cnt + 8'd1;
    end
endmodule
