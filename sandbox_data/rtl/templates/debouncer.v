module TopModule (
    input      clk,
    input      rst,
    input      noisy,
    output reg clean
);
    reg [7:0] cnt;  // consecutive clock edges at which noisy differed from clean
    always @(posedge clk) begin
        if (rst) begin
            clean <= 1'b0;
            cnt <= 8'd0;
        end else if (noisy != clean) begin
            if (cnt == ${N-1}) begin
                clean <= noisy;
                cnt <= 8'd0;
            end else
                cnt <= cnt + 8'd1;
        end else
            cnt <= 8'd0;
    end
endmodule
