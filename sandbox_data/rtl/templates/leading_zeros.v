module TopModule (
    input      [${W-1}:0]          x,
    output reg [${clog2(W+1)-1}:0] n
);
    integer i;
    reg found;
    always @(*) begin
        n = 0;
        found = 1'b0;
        for (i = ${W-1}; i >= 0; i = i - 1) begin
            if (!found && x[i]) found = 1'b1;
            if (!found) n = n + 1;
        end
    end
endmodule
