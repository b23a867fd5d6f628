module TopModule (
    input      [${W-1}:0] gray,
    output reg [${W-1}:0] bin
);
    integer i;
    always @(*) begin
        bin[${W-1}] = gray[${W-1}];
        for (i = ${W-2}; i >= 0; i = i - 1)
            bin[i] = bin[i + 1] ^ gray[i];
    end
endmodule
