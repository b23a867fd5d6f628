module TopModule (
    input                 clk,
    input                 rst,
    input                 load,
    input      [${W-1}:0] d,
    input                 en,
    input                 up,
    output reg [${W-1}:0] q
);
    always @(posedge clk) begin
        if (rst)
            q <= ${W}'d0;
        else if (load)
            q <= d;
        else if (en)
            q <= up ? q + ${W}'d1 : q - ${W}'d1;
    end
endmodule
