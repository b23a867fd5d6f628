module TopModule (
    input      [${W-1}:0]          x,
    output reg [${clog2(W+1)-1}:0] count
);
    integer i;
    always @(*) begin
        count = 0;
        for (i = 0; i < ${W}; i = i + 1)
            count = count + x[i];
    end
endmodule
