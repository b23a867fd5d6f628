module TopModule (
    input                         clk,
    input                         rst,
    input                         en,
    output reg [${clog2(N)-1}:0] q,
    output                        tick
);
    always @(posedge clk) begin
        if (rst)
            q <= 0;
        else if (en)
            q <= (q == ${N-1}) ? 0 : q + 1;
    end
    assign tick = en && (q == ${N-1});
endmodule
