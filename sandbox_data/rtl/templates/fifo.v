module TopModule (
    input                          clk,
    input                          rst,
    input                          push,
    input                          pop,
    input      [7:0]               din,
    output     [7:0]               dout,
    output                         full,
    output                         empty,
    output reg [${clog2(DEPTH)}:0] count
);
    reg [7:0] mem [0:${DEPTH-1}];
    reg [${clog2(DEPTH)-1}:0] rd, wr;
    wire do_push = push && !full;
    wire do_pop = pop && !empty;
    always @(posedge clk) begin
        if (rst) begin
            rd <= 0;
            wr <= 0;
            count <= 0;
        end else begin
            if (do_push) begin
                mem[wr] <= din;
                wr <= wr + 1'b1;
            end
            if (do_pop)
                rd <= rd + 1'b1;
            count <= count + do_push - do_pop;
        end
    end
    assign full = count == ${DEPTH};
    assign empty = count == 0;
    assign dout = empty ? 8'd0 : mem[rd];
endmodule
