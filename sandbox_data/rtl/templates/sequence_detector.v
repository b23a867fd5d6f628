module TopModule (
    input  clk,
    input  rst,
    input  din,
    output detect
);
    // The last L-1 bits received and how many of them are valid since reset; the pattern is
    // complete when those bits followed by the current din spell it (overlaps allowed).
    reg [${L-2}:0] history;
    reg [${clog2(L)}:0] seen;
    always @(posedge clk) begin
        if (rst) begin
            history <= 0;
            seen <= 0;
        end else begin
            history <= {history[${L-3}:0], din};
            if (seen < ${L-1})
                seen <= seen + 1;
        end
    end
    assign detect = (seen >= ${L-1}) && ({history, din} == ${L}'b${PATTERN});
endmodule
