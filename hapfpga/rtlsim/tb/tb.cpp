// hapfpga Verilator testbench for hap_top (hapfpga/rtlsim/tb/tb.cpp).
// Drives the top's AXI-Stream inputs s<k> from in<k>.hex (one word per line, hex, MSB first), accepts
// output words on m<k> and writes them as "<cycle> <hex>" lines to out<k>.txt, and the cycle of every
// accepted input word to in<k>.cyc. Optional random stalls: valid on inputs / ready on outputs are
// dropped with the given probability each cycle (xorshift64 generator, fixed seed).
// Usage: sim <io dir> <max cycles> <input stall prob> <output stall prob> <seed> <idle limit>
// Exit: 0 all expected outputs seen, 3 no transfer for <idle limit> cycles (deadlock), 4 max cycles.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>
#include "verilated.h"
#include "Vhap_top.h"
#include "tb_ports.h"  // generated: HAP_N_IN, HAP_N_OUT, HAP_FOR_INPUTS(X), HAP_FOR_OUTPUTS(X), HAP_FOR_MONITORS(X)

typedef std::vector<uint32_t> Word;  // little-endian 32-bit limbs

template <class T> static void put(T& sig, const Word& w) {
    uint64_t v = 0;
    if (w.size() > 0) v = w[0];
    if (w.size() > 1) v |= (uint64_t)w[1] << 32;
    sig = (T)v;
}
template <std::size_t N> static void put(VlWide<N>& sig, const Word& w) {
    for (std::size_t i = 0; i < N; i++) sig[i] = i < w.size() ? w[i] : 0;
}
template <class T> static Word get(const T& sig) {
    uint64_t v = (uint64_t)sig;
    return Word{(uint32_t)v, (uint32_t)(v >> 32)};
}
template <std::size_t N> static Word get(const VlWide<N>& sig) {
    Word w(N);
    for (std::size_t i = 0; i < N; i++) w[i] = sig[i];
    return w;
}
static Word parse_hex(const std::string& s) {
    Word w;
    int end = (int)s.size();
    while (end > 0) {
        int start = end - 8 < 0 ? 0 : end - 8;
        w.push_back((uint32_t)strtoul(s.substr(start, end - start).c_str(), nullptr, 16));
        end = start;
    }
    return w;
}
static std::string to_hex(const Word& w) {
    std::string s;
    char buf[16];
    for (int i = (int)w.size() - 1; i >= 0; i--) {
        snprintf(buf, sizeof buf, "%08x", w[i]);
        s += buf;
    }
    return s;
}
static uint64_t rng_state = 88172645463325252ull;
static double rnd() {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (double)(rng_state >> 11) / 9007199254740992.0;
}

struct InStream { std::vector<Word> words; size_t idx = 0; bool valid = false; std::vector<uint64_t> cyc; };
struct OutStream { size_t expect = 0; bool ready = false; std::vector<std::pair<uint64_t, Word>> got; };

int main(int argc, char** argv) {
    if (argc < 7) { fprintf(stderr, "usage: sim dir max_cycles pin pout seed idle\n"); return 2; }
    std::string dir = argv[1];
    uint64_t max_cycles = strtoull(argv[2], nullptr, 10);
    double p_in = atof(argv[3]), p_out = atof(argv[4]);
    rng_state ^= strtoull(argv[5], nullptr, 10) * 0x9E3779B97F4A7C15ull;
    if (!rng_state) rng_state = 1;
    uint64_t idle_limit = strtoull(argv[6], nullptr, 10);

    VerilatedContext ctx;
    ctx.commandArgs(1, argv);
    Vhap_top top(&ctx);
    InStream ins[HAP_N_IN > 0 ? HAP_N_IN : 1];
    OutStream outs[HAP_N_OUT > 0 ? HAP_N_OUT : 1];
    for (int k = 0; k < HAP_N_IN; k++) {
        std::ifstream f(dir + "/in" + std::to_string(k) + ".hex");
        std::string line;
        while (std::getline(f, line)) if (!line.empty()) ins[k].words.push_back(parse_hex(line));
    }
    {
        std::ifstream f(dir + "/expect.txt");
        for (int k = 0; k < HAP_N_OUT; k++) f >> outs[k].expect;
    }
    top.ap_clk = 0;
    top.ap_rst_n = 0;
#define HAP_IDLE_IN(k, p) top.p##_tvalid = 0;
#define HAP_IDLE_OUT(k, p) top.p##_tready = 0;
    HAP_FOR_INPUTS(HAP_IDLE_IN)
    HAP_FOR_OUTPUTS(HAP_IDLE_OUT)
    for (int i = 0; i < 16; i++) { top.ap_clk = 0; top.eval(); top.ap_clk = 1; top.eval(); }
    top.ap_rst_n = 1;
    top.ap_clk = 0;
    top.eval();

    uint64_t cycle = 0, last_activity = 0;
    int rc = 4;
    while (cycle < max_cycles) {
#define HAP_DRIVE_IN(k, p)                                                              \
    ins[k].valid = ins[k].idx < ins[k].words.size() && !(p_in > 0 && rnd() < p_in);   \
    top.p##_tvalid = ins[k].valid;                                                      \
    if (ins[k].valid) put(top.p##_tdata, ins[k].words[ins[k].idx]);
#define HAP_DRIVE_OUT(k, p)                                         \
    outs[k].ready = !(p_out > 0 && rnd() < p_out);                  \
    top.p##_tready = outs[k].ready;
        HAP_FOR_INPUTS(HAP_DRIVE_IN)
        HAP_FOR_OUTPUTS(HAP_DRIVE_OUT)
        top.ap_clk = 0;
        top.eval();
        bool active = false;
#define HAP_SAMPLE_IN(k, p)                                  \
    if (ins[k].valid && top.p##_tready) {                   \
        ins[k].cyc.push_back(cycle); ins[k].idx++; active = true; }
#define HAP_SAMPLE_OUT(k, p)                                                     \
    if (outs[k].ready && top.p##_tvalid) {                                      \
        outs[k].got.emplace_back(cycle, get(top.p##_tdata)); active = true; }
        HAP_FOR_INPUTS(HAP_SAMPLE_IN)
        HAP_FOR_OUTPUTS(HAP_SAMPLE_OUT)
        top.ap_clk = 1;
        top.eval();
        cycle++;
        if (active) last_activity = cycle;
        bool done = true;
        for (int k = 0; k < HAP_N_OUT; k++) if (outs[k].got.size() < outs[k].expect) done = false;
        if (done) { rc = 0; break; }
        if (cycle - last_activity > idle_limit) { rc = 3; break; }
    }
    for (int k = 0; k < HAP_N_OUT; k++) {
        FILE* f = fopen((dir + "/out" + std::to_string(k) + ".txt").c_str(), "w");
        for (auto& g : outs[k].got) fprintf(f, "%llu %s\n", (unsigned long long)g.first, to_hex(g.second).c_str());
        fclose(f);
    }
    for (int k = 0; k < HAP_N_IN; k++) {
        FILE* f = fopen((dir + "/in" + std::to_string(k) + ".cyc").c_str(), "w");
        for (auto c : ins[k].cyc) fprintf(f, "%llu\n", (unsigned long long)c);
        fclose(f);
    }
    FILE* f = fopen((dir + "/stats.txt").c_str(), "w");
    fprintf(f, "cycles %llu\nrc %d\n", (unsigned long long)cycle, rc);
#define HAP_MONITOR(name) fprintf(f, "monitor %s %llu\n", #name, (unsigned long long)top.name);
    HAP_FOR_MONITORS(HAP_MONITOR)
    fclose(f);
    top.final();
    return rc;
}
