// hapfpga HLS-style kernel: FINN LabelSelect (top-K class indices), finn-hlslib style (ap_uint words, hls::stream).
//
// Input: NumClasses/PE words per frame; word b carries the values of classes b*PE .. b*PE+PE-1, class b*PE+e in
// bits [e*In_T::width, (e+1)*In_T::width) (lane 0 at the LSB, FINN's packing). Output: K words per frame, the
// class indices of the K largest values, largest first; equal values rank the lower class index first. That
// is ONNX TopK (largest=1, sorted=1), which FINN's Python execution of LabelSelect computes.
//
// Difference from finn-hlslib's LabelSelect_Batch: that kernel seeds its top-K list with In_T's minimum value
// and only admits values strictly above it, so a class whose value is the type's minimum is never selected
// (all-minimum frames give label 0 K times). Here the list is filled with the first K classes whatever their
// values, so every frame gives FINN's Python result.
#ifndef HAP_LABELSELECT_H
#define HAP_LABELSELECT_H

#include <ap_int.h>
#include <hls_stream.h>

template <unsigned NumClasses, unsigned PE, unsigned K, typename In_T, typename Out_T>
void hap_labelselect(hls::stream<ap_uint<PE * In_T::width>> &in, hls::stream<ap_uint<Out_T::width>> &out,
                     unsigned const numReps) {
    static_assert(NumClasses % PE == 0, "PE must divide NumClasses");
    static_assert(K >= 1 && K <= NumClasses, "K must be in 1..NumClasses");
    In_T topval[K];
    Out_T toplab[K];
#pragma HLS ARRAY_PARTITION variable = topval complete dim = 1
#pragma HLS ARRAY_PARTITION variable = toplab complete dim = 1
    for (unsigned rep = 0; rep < numReps; rep++) {
        unsigned filled = 0;  // slots 0 .. filled-1 hold the best values so far, largest first
        for (unsigned t = 0; t < K; t++) {
#pragma HLS UNROLL
            topval[t] = 0;
            toplab[t] = 0;
        }
        for (unsigned b = 0; b < NumClasses / PE; b++) {
#pragma HLS PIPELINE II = 1
            ap_uint<PE * In_T::width> const word = in.read();
            for (unsigned e = 0; e < PE; e++) {
#pragma HLS UNROLL
                In_T const val = word((e + 1) * In_T::width - 1, e * In_T::width);
                Out_T const idx = b * PE + e;
                // val goes in front of slot t when t is empty or holds a smaller value (not an equal one:
                // earlier classes win ties); shift the slots behind its place down by one
                for (int t = K - 1; t >= 0; t--) {
#pragma HLS UNROLL
                    bool const here = unsigned(t) >= filled || val > topval[t];
                    bool const above = t > 0 && (unsigned(t - 1) >= filled || val > topval[t - 1]);
                    if (here && above) {
                        topval[t] = topval[t - 1];
                        toplab[t] = toplab[t - 1];
                    } else if (here) {
                        topval[t] = val;
                        toplab[t] = idx;
                    }
                }
                if (filled < K) filled++;
            }
        }
        for (unsigned t = 0; t < K; t++) {
#pragma HLS PIPELINE II = 1
            out.write(toplab[t]);
        }
    }
}

#endif  // HAP_LABELSELECT_H
