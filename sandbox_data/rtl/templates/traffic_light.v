module TopModule (
    input  clk,
    input  rst,
    input  ped,
    output red,
    output yellow,
    output green
);
    localparam S_RED = 2'd0, S_GREEN = 2'd1, S_YELLOW = 2'd2;
    reg [1:0] state;
    reg [7:0] t;  // cycles already spent in the current state
    always @(posedge clk) begin
        if (rst) begin
            state <= S_RED;
            t <= 8'd0;
        end else begin
            case (state)
                S_GREEN:
                    if (t == ${G-1} || (ped && t >= ${MIN-1})) begin
                        state <= S_YELLOW;
                        t <= 8'd0;
                    end else
                        t <= t + 8'd1;
                S_YELLOW:
                    if (t == ${Y-1}) begin
                        state <= S_RED;
                        t <= 8'd0;
                    end else
                        t <= t + 8'd1;
                default:
                    if (t == ${R-1}) begin
                        state <= S_GREEN;
                        t <= 8'd0;
                    end else
                        t <= t + 8'd1;
            endcase
        end
    end
    assign red = state == S_RED || state == 2'd3;
    assign yellow = state == S_YELLOW;
    assign green = state == S_GREEN;
endmodule
