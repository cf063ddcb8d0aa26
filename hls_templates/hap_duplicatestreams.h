// hapfpga HLS-style kernel: FINN DuplicateStreams (one stream in, NumOut identical copies out), finn-hlslib style.
//
// Every input word (PE lanes, packed) is written unchanged to each output stream, one word per iteration.
// numWords: words to copy (FINN: NumChannels/PE * prod(numInputVectors) per frame, times the frames).
#ifndef HAP_DUPLICATESTREAMS_H
#define HAP_DUPLICATESTREAMS_H

#include <ap_int.h>
#include <hls_stream.h>

template <unsigned NumOut, unsigned W>
void hap_duplicatestreams(hls::stream<ap_uint<W>> &in, hls::stream<ap_uint<W>> (&out)[NumOut],
                          unsigned const numWords) {
    static_assert(NumOut >= 1, "at least one output stream");
    for (unsigned i = 0; i < numWords; i++) {
#pragma HLS PIPELINE II = 1
        ap_uint<W> const word = in.read();
        for (unsigned k = 0; k < NumOut; k++) {
#pragma HLS UNROLL
            out[k].write(word);
        }
    }
}

#endif  // HAP_DUPLICATESTREAMS_H
