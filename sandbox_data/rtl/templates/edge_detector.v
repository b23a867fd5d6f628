module TopModule (
    input  clk,
    input  rst,
    input  d,
    output pulse
);
    reg prev;
    always @(posedge clk) begin
        if (rst)
            prev <= 1'b0;
        else
            prev <= d;
    end
    assign pulse = ${EXPR};
endmodule
