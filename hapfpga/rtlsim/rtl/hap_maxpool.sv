// hapfpga simulation model of FINN's Pool_hls with Function=MaxPool (finn-hlslib Pool_batch + MaxPoolFunction).
//
// Stream order as finn-hlslib's Pool_batch reads it (behind a depthwise SWG): for every output pixel, for each
// channel fold nf < CF, K2 consecutive words of PE channels (one per kernel position); the PE maxima are
// written after the K2-th word. One input word per cycle when the output is not back-pressured, i.e.
// CF*K2*OFMDim^2 cycles per frame, FINN's Pool.get_exp_cycles.
module hap_maxpool #(
	int unsigned  PE = 1,
	int unsigned  CF = 1,      // channel folds (Channels / PE), informative
	int unsigned  K2 = 4,      // kernel positions
	int unsigned  BITS = 2,    // element width
	int unsigned  SIGNED = 0,
	localparam int unsigned  W = ((PE*BITS+7)/8)*8
)(
	input	ap_clk,
	input	ap_rst_n,
	input	[W-1:0]  in0_V_TDATA,
	input	in0_V_TVALID,
	output	in0_V_TREADY,
	output	[W-1:0]  out0_V_TDATA,
	output	out0_V_TVALID,
	input	out0_V_TREADY
);
	logic [BITS-1:0]  Acc[PE];
	logic [BITS-1:0]  Nxt[PE];
	logic [31:0]  Sf = 0;
	logic  OVld = 0;
	logic [W-1:0]  OData = '0;

	wire  irdy = !OVld || out0_V_TREADY;
	wire  fire = in0_V_TVALID && irdy;
	assign	in0_V_TREADY = irdy;
	assign	out0_V_TVALID = OVld;
	assign	out0_V_TDATA = OData;

	always_comb begin
		for(int unsigned  p = 0; p < PE; p++) begin
			automatic logic [BITS-1:0]  x = in0_V_TDATA[p*BITS +: BITS];
			automatic logic  gt = SIGNED? ($signed(x) > $signed(Acc[p])) : (x > Acc[p]);
			Nxt[p] = (Sf == 0 || gt)? x : Acc[p];
		end
	end

	always_ff @(posedge ap_clk) begin
		if(!ap_rst_n) begin
			Sf <= 0;
			OVld <= 0;
		end
		else begin
			if(OVld && out0_V_TREADY)  OVld <= 0;
			if(fire) begin
				for(int unsigned  p = 0; p < PE; p++)  Acc[p] <= Nxt[p];
				if(Sf == K2-1) begin
					automatic logic [W-1:0]  o = '0;
					for(int unsigned  p = 0; p < PE; p++)  o[p*BITS +: BITS] = Nxt[p];
					OData <= o;
					OVld <= 1;
					Sf <= 0;
				end
				else  Sf <= Sf + 1;
			end
		end
	end
endmodule : hap_maxpool
