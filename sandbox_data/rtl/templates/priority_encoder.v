module TopModule (
    input      [${N-1}:0]        req,
    output reg [${clog2(N)-1}:0] idx,
    output                      valid
);
    integer i;
    // The highest-numbered request wins: later iterations overwrite earlier ones.
    always @(*) begin
        idx = 0;
        for (i = 0; i < ${N}; i = i + 1)
            if (req[i]) idx = i;
    end
    assign valid = |req;
endmodule
