module TopModule (
    input      [${W-1}:0] a,
    input      [${W-1}:0] b,
    input      [${W-1}:0] c,
    input      [${W-1}:0] d,
    input      [1:0]     sel,
    output reg [${W-1}:0] y
);
    always @(*) begin
        case (sel)
            2'd0: y = a;
            2'd1: y = b;
            2'd2: y = c;
            default: y = d;
        endcase
    end
endmodule
