// hapfpga cycle model that runs an hls_templates kernel as a stream block inside the Verilator simulation
// (hapfpga/rtlsim/rtl/hap_hls_block.h). The generated per-design C++ (hapfpga.rtlsim.design) derives one
// hap::Model per FINN node, and its DPI-C step function calls hap::Block::step once per clock edge from the
// node's SystemVerilog wrapper.
//
// Cycle model (all decisions at the rising edge, from the handshakes of the cycle that ends there):
//  * input k accepts one word per cycle while its buffer holds fewer than in_unit(k) words (TREADY);
//  * when every input buffer holds its unit and every output (buffer and output register) is empty, the
//    kernel runs once on the unit (the function call takes no simulated time);
//  * output k presents one word per cycle from its buffer (TVALID), the next one in the cycle after the
//    previous word was taken.
// The unit is the kernel's smallest complete piece of work: one word for DuplicateStreams and AddStreams
// (one word per cycle, one cycle of latency), one frame for LabelSelect (Labels/PE words in, K words out).
#ifndef HAP_HLS_BLOCK_H
#define HAP_HLS_BLOCK_H

#include <ap_int.h>
#include <hls_stream.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "svdpi.h"

namespace hap {

// W low bits of the DPI bit vector d (32-bit limbs, LSB first) as a word; the padding bits above W are ignored.
template <int W> ap_uint<W> from_limbs(const svBitVecVal* d) {
    ap_uint<W> v = 0;
    for (unsigned i = 0; i * 32 < W; i++) {
        unsigned const hi = (i * 32 + 31 < W) ? i * 32 + 31 : W - 1;
        v(hi, i * 32) = ap_uint<32>(d[i]);
    }
    return v;
}

// The word into a DPI bit vector of n_limbs limbs, zero above W.
template <int W> void to_limbs(const ap_uint<W>& v, svBitVecVal* d, unsigned n_limbs) {
    for (unsigned i = 0; i < n_limbs; i++) {
        if (i * 32 < W) {
            unsigned const hi = (i * 32 + 31 < W) ? i * 32 + 31 : W - 1;
            d[i] = uint32_t(ap_uint<32>(v(hi, i * 32)));
        } else {
            d[i] = 0;
        }
    }
}

// One node's kernel with its streams; the generated code implements it per node.
struct Model {
    virtual ~Model() = default;
    virtual unsigned n_in() const = 0;
    virtual unsigned n_out() const = 0;
    virtual unsigned in_unit(unsigned k) const = 0;  // words input k needs for one kernel call
    virtual std::size_t in_size(unsigned k) = 0;
    virtual std::size_t out_size(unsigned k) = 0;
    virtual void push(unsigned k, const svBitVecVal* d) = 0;
    virtual void pop(unsigned k, svBitVecVal* d, unsigned n_limbs) = 0;
    virtual void run() = 0;  // the kernel on one unit of every input
};

class Block {
   public:
    Block(std::function<Model*()> make, std::vector<unsigned> out_limbs)
        : make_(std::move(make)), model_(make_()), out_limbs_(std::move(out_limbs)) {
        reset();
    }

    // One rising edge. in_fire/out_fire: the handshakes of the ending cycle (TVALID && TREADY); in_ready,
    // out_valid, out_data: what the block shows in the next cycle.
    void step(bool rst, const bool* in_fire, const svBitVecVal* const* in_data, const bool* out_fire,
              svBit* in_ready, svBit* out_valid, svBitVecVal* const* out_data) {
        Model& m = *model_;
        if (rst) {
            model_.reset(make_());
            reset();
        } else {
            for (unsigned k = 0; k < m.n_out(); k++)
                if (out_fire[k]) have_[k] = false;
            for (unsigned k = 0; k < m.n_in(); k++)
                if (in_fire[k]) m.push(k, in_data[k]);
            bool go = true;
            for (unsigned k = 0; k < m.n_in(); k++) go = go && m.in_size(k) >= m.in_unit(k);
            for (unsigned k = 0; k < m.n_out(); k++) go = go && !have_[k] && m.out_size(k) == 0;
            if (go) m.run();
            for (unsigned k = 0; k < m.n_out(); k++) {
                if (!have_[k] && m.out_size(k) > 0) {
                    m.pop(k, cur_[k].data(), out_limbs_[k]);
                    have_[k] = true;
                }
            }
        }
        Model& n = *model_;
        for (unsigned k = 0; k < n.n_in(); k++) in_ready[k] = !rst && n.in_size(k) < n.in_unit(k);
        for (unsigned k = 0; k < n.n_out(); k++) {
            out_valid[k] = have_[k];
            for (unsigned i = 0; i < out_limbs_[k]; i++) out_data[k][i] = cur_[k][i];
        }
    }

   private:
    void reset() {
        have_.assign(model_->n_out(), false);
        cur_.clear();
        for (unsigned k = 0; k < model_->n_out(); k++) cur_.emplace_back(out_limbs_[k], 0u);
    }

    std::function<Model*()> make_;
    std::unique_ptr<Model> model_;
    std::vector<unsigned> out_limbs_;
    std::vector<bool> have_;  // output register k holds a word
    std::vector<std::vector<svBitVecVal>> cur_;
};

}  // namespace hap

#endif  // HAP_HLS_BLOCK_H
