module TopModule (
    input       clk,
    input       rst,
    input       start,
    input [7:0] data,
    output reg  tx,
    output      busy
);
    reg [9:0] frame;   // stop bit, data bits (LSB first), start bit
    reg [3:0] index;   // which frame bit is on the line
    reg [7:0] cnt;     // cycles the current bit has been on the line
    reg active;
    always @(posedge clk) begin
        if (rst) begin
            tx <= 1'b1;
            active <= 1'b0;
            frame <= 10'h3ff;
            index <= 4'd0;
            cnt <= 8'd0;
        end else if (!active) begin
            tx <= 1'b1;
            if (start) begin
                frame <= {1'b1, data, 1'b0};
                active <= 1'b1;
                index <= 4'd0;
                cnt <= 8'd0;
                tx <= 1'b0;
            end
        end else if (cnt == ${CPB-1}) begin
            cnt <= 8'd0;
            if (index == 4'd9) begin
                active <= 1'b0;
                tx <= 1'b1;
            end else begin
                index <= index + 4'd1;
                tx <= frame[index + 4'd1];
            end
        end else
            cnt <= cnt + 8'd1;
    end
    assign busy = active;
endmodule
