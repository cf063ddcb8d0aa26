// hapfpga HLS-style kernel: elementwise addition of two streams (FINN's AddStreams; in finn-plus 1.6.1 the join
// of a residual block is ElementwiseAdd_hls with both inputs streamed), finn-hlslib style.
//
// Word i of in0 and word i of in1 carry PE lanes each (lane e in bits [e*T::width, (e+1)*T::width), lane 0 at
// the LSB); output lane e = A_T lane + B_T lane, exact in O_T (FINN's out_dtype: one bit wider than the wider
// input, two when an unsigned input is wider than a signed one). numWords: word pairs to add.
#ifndef HAP_ADDSTREAMS_H
#define HAP_ADDSTREAMS_H

#include <ap_int.h>
#include <hls_stream.h>

template <unsigned PE, typename A_T, typename B_T, typename O_T>
void hap_addstreams(hls::stream<ap_uint<PE * A_T::width>> &in0, hls::stream<ap_uint<PE * B_T::width>> &in1,
                    hls::stream<ap_uint<PE * O_T::width>> &out, unsigned const numWords) {
    for (unsigned i = 0; i < numWords; i++) {
#pragma HLS PIPELINE II = 1
        ap_uint<PE * A_T::width> const a = in0.read();
        ap_uint<PE * B_T::width> const b = in1.read();
        ap_uint<PE * O_T::width> o = 0;
        for (unsigned e = 0; e < PE; e++) {
#pragma HLS UNROLL
            A_T const x = a((e + 1) * A_T::width - 1, e * A_T::width);
            B_T const y = b((e + 1) * B_T::width - 1, e * B_T::width);
            O_T const s = x + y;
            o((e + 1) * O_T::width - 1, e * O_T::width) = s;
        }
        out.write(o);
    }
}

#endif  // HAP_ADDSTREAMS_H
