"""FINN dataflow graph -> simulatable design (adapter; lazy FINN imports).

Splits a FINN dataflow partition into a software head, a simulated segment and a software tail (the float
tail after the last integer layer, e.g. TFC/CNV's ``ElementwiseMul_hls``, stays in software as FINN's
driver does), gathers the segment's HDL (FINN's generated wrappers + finn-rtllib + our own models for
layers without RTL) and builds the stitched top.

Our models of FINN layers without RTL (:data:`OWN_MODELS`): ``Pool_hls`` max-pool is our SystemVerilog
(``rtl/hap_maxpool.sv``); ``LabelSelect_hls``, ``DuplicateStreams_hls`` and the streamed integer
``ElementwiseAdd_hls`` (FINN's AddStreams) run the HLS-style C++ kernels of the repository's
``hls_templates/`` inside the Verilator simulation through DPI-C: per node, a generated SystemVerilog
wrapper with FINN's port names and a generated C++ file that instantiates the kernel in a
``hap::Block`` (``rtl/hap_hls_block.h``, which documents the cycle model).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ToolMissingError, UnsupportedLayerError
from .backend import SimSources
from .sources import SourceSet
from .topgen import TOP_MODULE, Block, TopStream, generate_top, parse_ports, stream_conns

__all__ = [
    "StreamSpec",
    "Design",
    "HlsKernel",
    "OwnModel",
    "OWN_MODELS",
    "split_segment",
    "build_design",
    "hls_kernel",
    "hls_templates_dir",
    "ap_types_dir",
    "is_simulatable",
]

#: Pass-through infrastructure that may follow the float tail (executed in software there).
_INFRA = ("StreamingFIFO", "StreamingDataWidthConverter")


@dataclass(frozen=True)
class StreamSpec:
    """One stream at the segment boundary, with what FINN's packing helpers need."""

    tensor: str
    dtype: Any  # qonnx DataType
    folded_shape: tuple[int, ...]  # with batch dim 1 first
    normal_shape: tuple[int, ...]
    bits: int  # stream width before padding
    width: int  # padded TDATA width
    node: str = ""  # the node whose port this is (isolated designs)
    pool_k2: int = 0  # >0: hardware order channel fold outer, kernel position inner (K2 positions): a Pool
    # input (finn-hlslib Pool_batch) or a depthwise SWG output, where it differs from FINN's Python layout


@dataclass
class Design:
    """A segment ready to build: sources, top text, boundary streams and FIFO gauges."""

    nodes: list[str]
    head: list[str]
    tail: list[str]
    inputs: list[StreamSpec]
    outputs: list[StreamSpec]
    sources: SourceSet
    top: str
    monitors: dict[str, str] = field(default_factory=dict)  # monitor port -> FIFO node name


def is_simulatable(node: Any) -> bool:
    from finn.util.fpgadataflow import is_rtl_node

    if is_rtl_node(node):
        return True
    own = OWN_MODELS.get(node.op_type)
    return own is not None and own.covers(node)


def split_segment(model: Any, only: list[str] | None = None) -> tuple[list[Any], list[Any], list[Any]]:
    """(head, segment, tail) node lists in graph order; raise if a layer we cannot simulate sits inside.

    ``only``: simulate just these nodes (e.g. one layer, for per-layer timing); the rest runs in software.
    """
    nodes = list(model.graph.node)
    if only is not None:
        want = set(only)
        idx = [k for k, n in enumerate(nodes) if n.name in want]
        if len(idx) != len(want):
            raise UnsupportedLayerError(
                f"nodes {sorted(want - {n.name for n in nodes})} are not in the graph; name existing nodes."
            )
        seg = [nodes[k] for k in idx]
        for n in seg:
            if not is_simulatable(n):
                raise UnsupportedLayerError(
                    f"layer {n.name} ({n.op_type}) has no RTL implementation or hapfpga model; it cannot be simulated."
                )
        return nodes[: idx[0]], seg, [n for n in nodes[idx[0] :] if n.name not in want]
    i = 0
    while i < len(nodes) and not is_simulatable(nodes[i]):
        i += 1
    j = i
    while j < len(nodes) and is_simulatable(nodes[j]):
        j += 1
    head, seg, tail = nodes[:i], nodes[i:j], nodes[j:]
    for n in tail:
        if is_simulatable(n) and not n.op_type.startswith(_INFRA):
            bad = nodes[j]
            raise UnsupportedLayerError(
                f"layer {bad.name} ({bad.op_type}) has neither an RTL variant nor a hapfpga simulation model and "
                f"sits between simulated layers; choose an RTL implementation for it or simulate up to it."
            )
    if not seg:
        raise UnsupportedLayerError(
            "the dataflow partition has no layer with an RTL implementation; build it with "
            "preferred_impl_style 'rtl' (hapfpga.rtlsim.prepare)."
        )
    return head, seg, tail


def hls_templates_dir() -> Path:
    """The repository's top-level ``hls_templates`` folder: next to the ``hapfpga`` package in a checkout
    (editable install), else the ``hls_templates`` data package an installed wheel ships."""
    from importlib.util import find_spec

    candidates = [Path(__file__).resolve().parents[2] / "hls_templates"]
    spec = find_spec("hls_templates")
    if spec is not None and spec.submodule_search_locations:
        candidates += [Path(p) for p in spec.submodule_search_locations]
    for d in candidates:
        if (d / "hap_labelselect.h").is_file():
            return d
    raise ToolMissingError(
        "hapfpga's hls_templates folder (the C++ models of FINN's HLS-only layers) is missing; reinstall hapfpga "
        "from its repository."
    )


def ap_types_dir() -> Path:
    """The ``ap_int``/``hls_stream`` C-simulation headers that the hls4ml wheel bundles."""
    from importlib.util import find_spec

    spec = find_spec("hls4ml")
    if spec is not None and spec.origin is not None:
        d = Path(spec.origin).parent / "templates" / "vivado" / "ap_types"
        if (d / "ap_int.h").is_file():
            return d
    raise ToolMissingError(
        "simulating FINN's HLS-only layers needs the ap_int headers of the hls4ml package, which is not "
        "installed; run '.venv/bin/pip install --no-deps hls4ml==1.3.0'."
    )


@dataclass(frozen=True)
class HlsKernel:
    """One ``hls_templates`` kernel call standing for a FINN node, in C++ text.

    ``decls`` declare the kernel's streams; ``ins``/``outs`` name each AXI-Stream port's stream expression
    with its word width (unpadded) and the words one call with ``reps = 1`` consumes/produces; ``call`` is
    the kernel call with ``{reps}`` for the repetition count (frames for LabelSelect, words otherwise).
    """

    header: str
    decls: tuple[str, ...]
    ins: tuple[tuple[str, int, int], ...]
    outs: tuple[tuple[str, int, int], ...]
    call: str

    def run(self, reps: str | int) -> str:
        return self.call.replace("{reps}", str(reps))


def _ctype(dt: Any, what: str, node: Any, *, bipolar: bool = False) -> str:
    """The ``ap_int``/``ap_uint`` element type of a FINN integer DataType."""
    name = dt.name
    if name in ("BIPOLAR", "BINARY") and bipolar:
        return "ap_uint<1>"  # BIPOLAR's encoding (-1 -> 0, +1 -> 1) keeps the order
    if not dt.is_integer() or name in ("BIPOLAR", "TERNARY"):
        raise UnsupportedLayerError(
            f"{node.name}: its {what} data type {name} is not a plain integer, which the hapfpga model of "
            f"{node.op_type} needs; quantise that tensor to INT/UINT."
        )
    return f"ap_{'' if dt.signed() else 'u'}int<{dt.bitwidth()}>"


def _labelselect_kernel(node: Any, inst: Any) -> HlsKernel:
    labels, pe, k = (int(inst.get_nodeattr(a)) for a in ("Labels", "PE", "K"))
    idt, odt = inst.get_input_datatype(), inst.get_output_datatype()
    it, ot = _ctype(idt, "input", node, bipolar=True), _ctype(odt, "output", node)
    iw = pe * idt.bitwidth()
    return HlsKernel(
        "hap_labelselect.h",
        (f"hls::stream<ap_uint<{iw}>> in0;", f"hls::stream<ap_uint<{odt.bitwidth()}>> out0;"),
        (("in0", iw, labels // pe),),
        (("out0", odt.bitwidth(), k),),
        f"hap_labelselect<{labels}, {pe}, {k}, {it}, {ot}>(in0, out0, {{reps}});",
    )


def _duplicate_kernel(node: Any, inst: Any) -> HlsKernel:
    n = int(inst.get_nodeattr("NumOutputStreams"))
    w = int(inst.get_instream_width(0))
    return HlsKernel(
        "hap_duplicatestreams.h",
        (f"hls::stream<ap_uint<{w}>> in0;", f"hls::stream<ap_uint<{w}>> out[{n}];"),
        (("in0", w, 1),),
        tuple((f"out[{j}]", w, 1) for j in range(n)),
        f"hap_duplicatestreams<{n}, {w}>(in0, out, {{reps}});",
    )


def _addstreams_problem(node: Any) -> str | None:
    """Why the streamed-add model does not cover this ElementwiseAdd node (None: it does)."""
    from finn.util.basic import getHWCustomOp

    inst = getHWCustomOp(node)
    if inst.get_nodeattr("lhs_style") != "input" or inst.get_nodeattr("rhs_style") != "input":
        return "one operand is a constant (only the join of two streams, FINN's AddStreams, is modelled)"
    shapes = [list(inst.get_nodeattr(a)) for a in ("lhs_shape", "rhs_shape", "out_shape")]
    if not shapes[0] == shapes[1] == shapes[2]:
        return f"its operands are broadcast ({shapes[0]} + {shapes[1]})"
    for a in ("lhs_dtype", "rhs_dtype", "out_dtype"):
        dt = getattr(inst, a)
        if not dt.is_integer() or dt.name in ("BIPOLAR", "TERNARY"):
            return f"its {a} {dt.name} is not a plain integer type"
    return None


def _addstreams_kernel(node: Any, inst: Any) -> HlsKernel:
    why = _addstreams_problem(node)
    if why is not None:
        raise UnsupportedLayerError(f"{node.name} cannot be simulated by hapfpga's AddStreams model: {why}.")
    pe = int(inst.get_nodeattr("PE"))
    a, b, o = inst.lhs_dtype, inst.rhs_dtype, inst.out_dtype
    ta, tb, to = (_ctype(t, w, node) for t, w in ((a, "lhs"), (b, "rhs"), (o, "output")))
    wa, wb, wo = pe * a.bitwidth(), pe * b.bitwidth(), pe * o.bitwidth()
    return HlsKernel(
        "hap_addstreams.h",
        (
            f"hls::stream<ap_uint<{wa}>> in0;",
            f"hls::stream<ap_uint<{wb}>> in1;",
            f"hls::stream<ap_uint<{wo}>> out0;",
        ),
        (("in0", wa, 1), ("in1", wb, 1)),
        (("out0", wo, 1),),
        f"hap_addstreams<{pe}, {ta}, {tb}, {to}>(in0, in1, out0, {{reps}});",
    )


_KERNELS: dict[str, Callable[[Any, Any], HlsKernel]] = {
    "LabelSelect_hls": _labelselect_kernel,
    "DuplicateStreams_hls": _duplicate_kernel,
    "ElementwiseAdd_hls": _addstreams_kernel,
}


def hls_kernel(node: Any) -> HlsKernel:
    """The ``hls_templates`` kernel call that models ``node`` (LabelSelect, DuplicateStreams, AddStreams)."""
    from finn.util.basic import getHWCustomOp

    make = _KERNELS.get(node.op_type)
    if make is None:
        raise UnsupportedLayerError(f"{node.name} ({node.op_type}) has no hls_templates kernel.")
    return make(node, getHWCustomOp(node))


def _c_name(name: str) -> str:
    return re.sub(r"\W", "_", name)


def _model_cpp(node: Any, k: HlsKernel, fn: str, in_w: list[int], out_w: list[int]) -> str:
    """C++ of one node's DPI-C model: a ``hap::Model`` around the kernel and the two DPI functions."""
    ni, no = len(k.ins), len(k.outs)
    limbs = [(w + 31) // 32 for w in out_w]

    def cases(body: Callable[[int, str, int], str], ports: tuple[tuple[str, int, int], ...]) -> str:
        return " ".join(f"case {j}: {body(j, e, w)}" for j, (e, w, _) in enumerate(ports))

    args = ["void* h", "svBit rst"]
    args += [f"svBit in{j}_fire, const svBitVecVal* in{j}_data" for j in range(ni)]
    args += [f"svBit out{j}_fire" for j in range(no)]
    args += [f"svBit* in{j}_ready" for j in range(ni)]
    args += [f"svBit* out{j}_valid, svBitVecVal* out{j}_data" for j in range(no)]
    lst = ", ".join
    return f"""// generated by hapfpga.rtlsim.design -- do not edit
// DPI-C model of {node.name} ({node.op_type}): hls_templates/{k.header} in a hap::Block (hap_hls_block.h)
#include "V{TOP_MODULE}__Dpi.h"
#include "hap_hls_block.h"
#include "{k.header}"

namespace {{
struct M_{fn} final : hap::Model {{
    {chr(10).join("    " + d for d in k.decls).strip()}
    unsigned n_in() const override {{ return {ni}; }}
    unsigned n_out() const override {{ return {no}; }}
    unsigned in_unit(unsigned k) const override {{
        static const unsigned u[] = {{{lst(str(u) for _, _, u in k.ins)}}};
        return u[k];
    }}
    std::size_t in_size(unsigned k) override {{
        switch (k) {{ {cases(lambda j, e, w: f"return {e}.size();", k.ins)} }}
        return 0;
    }}
    std::size_t out_size(unsigned k) override {{
        switch (k) {{ {cases(lambda j, e, w: f"return {e}.size();", k.outs)} }}
        return 0;
    }}
    void push(unsigned k, const svBitVecVal* d) override {{
        switch (k) {{ {cases(lambda j, e, w: f"{e}.write(hap::from_limbs<{w}>(d)); break;", k.ins)} }}
    }}
    void pop(unsigned k, svBitVecVal* d, unsigned n) override {{
        switch (k) {{ {cases(lambda j, e, w: f"hap::to_limbs<{w}>({e}.read(), d, n); break;", k.outs)} }}
    }}
    void run() override {{ {k.run(1)} }}
}};
}}  // namespace

extern "C" void* {fn}_new() {{
    return new hap::Block([] {{ return static_cast<hap::Model*>(new M_{fn}()); }}, {{{lst(map(str, limbs))}}});
}}

extern "C" void {fn}_step({lst(args)}) {{
    const bool in_fire[] = {{{lst([f"in{j}_fire != 0" for j in range(ni)])}}};
    const svBitVecVal* const in_data[] = {{{lst([f"in{j}_data" for j in range(ni)])}}};
    const bool out_fire[] = {{{lst([f"out{j}_fire != 0" for j in range(no)])}}};
    svBitVecVal* const out_data[] = {{{lst([f"out{j}_data" for j in range(no)])}}};
    svBit in_ready[{ni}], out_valid[{no}];
    static_cast<hap::Block*>(h)->step(rst != 0, in_fire, in_data, out_fire, in_ready, out_valid, out_data);
    {" ".join(f"*in{j}_ready = in_ready[{j}];" for j in range(ni))}
    {" ".join(f"*out{j}_valid = out_valid[{j}];" for j in range(no))}
}}
"""


def _dpi_wrapper_sv(
    node: Any, module: str, fn: str, ins: list[tuple[str, int]], outs: list[tuple[str, int]]
) -> str:
    """SystemVerilog wrapper with FINN's AXI-Stream port names that steps the node's C++ model every edge."""
    ports = ["\tinput ap_clk", "\tinput ap_rst_n"]
    for p, w in ins:
        ports += [f"\tinput [{w - 1}:0] {p}_TDATA", f"\tinput {p}_TVALID", f"\toutput {p}_TREADY"]
    for p, w in outs:
        ports += [f"\toutput [{w - 1}:0] {p}_TDATA", f"\toutput {p}_TVALID", f"\tinput {p}_TREADY"]
    ni, no = len(ins), len(outs)
    dargs = ["input chandle h", "input bit rst"]
    dargs += [f"input bit in{j}_fire, input bit [{w - 1}:0] in{j}_data" for j, (_, w) in enumerate(ins)]
    dargs += [f"input bit out{j}_fire" for j in range(no)]
    dargs += [f"output bit in{j}_ready" for j in range(ni)]
    dargs += [f"output bit out{j}_valid, output bit [{w - 1}:0] out{j}_data" for j, (_, w) in enumerate(outs)]
    regs = [f"\tbit in{j}_rdy = 0;" for j in range(ni)]
    regs += [f"\tbit out{j}_vld = 0;\n\tbit [{w - 1}:0] out{j}_dat = '0;" for j, (_, w) in enumerate(outs)]
    assigns = [f"\tassign {p}_TREADY = in{j}_rdy;" for j, (p, _) in enumerate(ins)]
    assigns += [
        f"\tassign {p}_TVALID = out{j}_vld;\n\tassign {p}_TDATA = out{j}_dat;"
        for j, (p, _) in enumerate(outs)
    ]
    nxt = [f"\t\tbit in{j}_rdy_n;" for j in range(ni)]
    nxt += [f"\t\tbit out{j}_vld_n;\n\t\tbit [{w - 1}:0] out{j}_dat_n;" for j, (_, w) in enumerate(outs)]
    call = ["h", "!ap_rst_n"]
    call += [f"{p}_TVALID && in{j}_rdy, {p}_TDATA" for j, (p, _) in enumerate(ins)]
    call += [f"out{j}_vld && {p}_TREADY" for j, (p, _) in enumerate(outs)]
    call += [f"in{j}_rdy_n" for j in range(ni)]
    call += [f"out{j}_vld_n, out{j}_dat_n" for j in range(no)]
    upd = [f"\t\tin{j}_rdy <= in{j}_rdy_n;" for j in range(ni)]
    upd += [f"\t\tout{j}_vld <= out{j}_vld_n;\n\t\tout{j}_dat <= out{j}_dat_n;" for j in range(no)]
    nl = "\n"
    return f"""// generated by hapfpga.rtlsim.design -- do not edit
// {node.name} ({node.op_type}): AXI-Stream shell around its hls_templates C++ model ({fn}_step, DPI-C)
module {module} (
{("," + nl).join(ports)}
);
\timport "DPI-C" function chandle {fn}_new();
\timport "DPI-C" function void {fn}_step({", ".join(dargs)});
\tchandle h;
\tinitial h = {fn}_new();
{nl.join(regs)}
{nl.join(assigns)}
\talways @(posedge ap_clk) begin : step
{nl.join(nxt)}
\t\t{fn}_step({", ".join(call)});
{nl.join(upd)}
\tend
endmodule : {module}
"""


def _hls_block(
    node: Any, inst: Any, sources: SourceSet
) -> tuple[Block, list[tuple[str, int]], list[tuple[str, int]]]:
    """A node whose model is an hls_templates kernel: DPI-C wrapper + generated C++ (see module docstring)."""
    if not isinstance(sources, SimSources):
        raise TypeError("HLS kernel models need SimSources (C++ sources and include folders)")
    k = hls_kernel(node)
    ins = [(f"in{j}_V", int(inst.get_instream_width_padded(j))) for j in range(len(k.ins))]
    outs = [(f"out{j}_V", int(inst.get_outstream_width_padded(j))) for j in range(len(k.outs))]
    for (_, w, _), (p, wp) in zip(k.ins + k.outs, ins + outs, strict=True):
        if w > wp:
            raise UnsupportedLayerError(
                f"{node.name}: stream {p} is {wp} bits wide, narrower than its {w}-bit words."
            )
    fn = f"hap_{_c_name(node.name)}"
    module = f"{_c_name(node.name)}_hapmodel"
    text = _dpi_wrapper_sv(node, module, fn, ins, outs)
    sources.add_text(f"{module}.sv", text)
    sources.add_cxx(f"{fn}.cpp", _model_cpp(node, k, fn, [w for _, w in ins], [w for _, w in outs]))
    sources.add_include_dir(hls_templates_dir())
    sources.add_include_dir(ap_types_dir())
    sources.add_include_dir(Path(str(resources.files("hapfpga.rtlsim"))) / "rtl")
    return Block(module, node.name, parse_ports(text, module)), ins, outs


def _maxpool_block(
    node: Any, inst: Any, sources: SourceSet
) -> tuple[Block, list[tuple[str, int]], list[tuple[str, int]]]:
    """``Pool_hls`` with ``Function=MaxPool``: our RTL ``rtl/hap_maxpool.sv``."""
    if inst.get_nodeattr("Function") != "MaxPool":
        raise UnsupportedLayerError(
            f"{node.name}: only max-pooling Pool layers have a hapfpga simulation model (got "
            f"{inst.get_nodeattr('Function')}); use MaxPool."
        )
    text = resources.files("hapfpga.rtlsim").joinpath("rtl/hap_maxpool.sv").read_text()
    sources.add_text("hap_maxpool.sv", text)
    idt = inst.get_input_datatype(0)
    pe = int(inst.get_nodeattr("PE"))
    k = inst.get_nodeattr("KernelSize")
    k2 = int(k[0] * k[1]) if isinstance(k, list | tuple) else int(k) ** 2
    ch = int(inst.get_nodeattr("Channels"))
    params = {"PE": pe, "CF": ch // pe, "K2": k2, "BITS": idt.bitwidth(), "SIGNED": int(idt.signed())}
    iw = inst.get_instream_width_padded(0)
    ow = inst.get_outstream_width_padded(0)
    blk = Block("hap_maxpool", node.name, parse_ports(text, "hap_maxpool"), params=params)
    return blk, [("in0_V", iw)], [("out0_V", ow)]


@dataclass(frozen=True)
class OwnModel:
    """hapfpga's simulation model of a FINN layer that has no RTL variant.

    ``block(node, inst, sources)`` adds the model's sources and returns its instance with its input and
    output stream ports; ``covers(node)`` says which nodes of the op type it models (the rest stay in software
    when they sit at the segment's ends, e.g. a float ``ElementwiseAdd_hls`` tail).
    """

    block: Callable[[Any, Any, SourceSet], tuple[Block, list[tuple[str, int]], list[tuple[str, int]]]]
    covers: Callable[[Any], bool] = lambda node: True
    kind: str = "rtl"  # "rtl": our SystemVerilog; "hls": an hls_templates kernel through DPI-C


#: FINN op type -> our model of it.
OWN_MODELS: dict[str, OwnModel] = {
    "Pool_hls": OwnModel(_maxpool_block),
    "LabelSelect_hls": OwnModel(_hls_block, kind="hls"),
    "DuplicateStreams_hls": OwnModel(_hls_block, kind="hls"),
    "ElementwiseAdd_hls": OwnModel(_hls_block, lambda node: _addstreams_problem(node) is None, kind="hls"),
}


def _own_block(
    node: Any, model: Any, sources: SourceSet
) -> tuple[Block, list[tuple[str, int]], list[tuple[str, int]]]:
    from finn.util.basic import getHWCustomOp

    own = OWN_MODELS.get(node.op_type)
    if own is None:
        raise UnsupportedLayerError(f"{node.name} ({node.op_type}) has no hapfpga simulation model.")
    return own.block(node, getHWCustomOp(node), sources)


def _rtl_block(node: Any, model: Any, sources: SourceSet, blocks: list[Block], wires: dict[str, int]):
    from finn.util.basic import getHWCustomOp

    inst = getHWCustomOp(node)
    files = [Path(f) for f in inst.get_rtl_file_list(abspath=True)]
    codegen = Path(inst.get_nodeattr("code_gen_dir_ipgen"))
    if node.op_type.startswith("MVAU") or node.op_type.startswith("VVAU"):
        mname = inst.get_nodeattr("gen_top_module") or inst.get_verilog_top_module_name()
    else:
        mname = inst.get_verilog_top_module_name()
    for f in files:
        sources.add_file(f)
    for dat in sorted(codegen.glob("*.dat")):
        if dat.name != "memblock.dat":
            sources.add_data(dat)
    texts = {f.name: sources.files[f.name] for f in files}
    top_text = next((t for t in texts.values() if f"module {mname}" in t), None)
    if top_text is None:
        raise UnsupportedLayerError(
            f"{node.name}: FINN's generated HDL has no module {mname}; re-run code generation."
        )
    blk = Block(mname, node.name, parse_ports(top_text, mname))
    intf = inst.get_verilog_top_module_intf_names()
    ins = [(n, int(w)) for n, w in intf["s_axis"]]
    outs = [(n, int(w)) for n, w in intf["m_axis"]]
    # weight streamer beside a decoupled MVAU/VVAU, as MVAU.code_generation_ipi builds it in Vivado
    try:
        mem_mode = inst.get_nodeattr("mem_mode")
    except AttributeError:
        mem_mode = ""
    if mem_mode == "internal_decoupled":
        from finn.util.settings import get_settings

        rtllib = Path(get_settings().finn_rtllib)
        wrapper = codegen / f"{node.name}_memstream_wrapper.v"
        wname = f"{node.name}_memstream_wrapper"
        data_name = f"{node.name}_memblock.dat"
        text = wrapper.read_text().replace(str(codegen / "memblock.dat"), data_name)
        sources.add_data(codegen / "memblock.dat", data_name)
        sources.add_file(wrapper, text)
        sources.add_file(rtllib / "memstream" / "hdl" / "memstream_axi.sv")
        sources.add_file(rtllib / "memstream" / "hdl" / "memstream.sv")
        sources.add_file(rtllib / "axi" / "hdl" / "axilite.sv")  # memstream_axi's config port
        net = f"{node.name}_weights"
        wires[net] = int(inst.get_instream_width_padded(1))
        mem = Block(wname, f"{node.name}_memstream", parse_ports(sources.files[wrapper.name], wname))
        mem.conns.update(
            {
                "m_axis_0_tdata": f"{net}_tdata",
                "m_axis_0_tvalid": f"{net}_tvalid",
                "m_axis_0_tready": f"{net}_tready",
            }
        )
        blocks.append(mem)
        blk.conns.update(stream_conns("in1_V", net))
    return blk, ins, outs


def _stable_names(model: Any) -> dict[str, str]:
    """Tensor -> net name from the graph's structure (FINN's tensor names are random per build; ours must
    not be, or the content-keyed build cache would never hit)."""
    names: dict[str, str] = {}
    for k, t in enumerate(model.graph.input):
        names[t.name] = f"graph_in{k}"
    for n in model.graph.node:
        for o, t in enumerate(n.output):
            names[t] = f"{n.name}_out{o}"
    return names


def _net(key: str) -> str:
    return "".join(c if c.isalnum() or c == "_" else "_" for c in key)


@dataclass
class _Stitch:
    """What ``build_design`` collects while it stitches the segment's nodes: nets, top streams, gauges."""

    model: Any
    seg_names: set[str]
    produced: dict[str, Any]
    stable: dict[str, str]
    isolate: bool
    graph_outputs: set[str]
    wires: dict[str, int] = field(default_factory=dict)
    seg_inputs: list[StreamSpec] = field(default_factory=list)
    seg_outputs: list[StreamSpec] = field(default_factory=list)
    top_in: list[TopStream] = field(default_factory=list)
    top_out: list[TopStream] = field(default_factory=list)
    monitors: dict[str, tuple[str, int]] = field(default_factory=dict)
    monitor_nodes: dict[str, str] = field(default_factory=dict)


def _connect_inputs(
    node: Any, inst: Any, blk: Block, ins: list[tuple[str, int]], dyn_inputs: list[str], st: _Stitch
) -> None:
    """Connect the node's input streams; a segment input (or every input, isolated) becomes a top input."""
    pool_k2 = 0
    if node.op_type.startswith("Pool"):
        k = inst.get_nodeattr("KernelSize")
        pool_k2 = int(k[0] * k[1]) if isinstance(k, list | tuple) else int(k) ** 2
    for i_dyn, (t, (port, w)) in enumerate(zip(dyn_inputs, ins, strict=True)):
        net = _net(f"{node.name}__in{i_dyn}" if st.isolate else st.stable.get(t, t))
        if (st.isolate or t not in st.produced) and net not in st.wires:  # a segment input
            k = len(st.top_in)
            st.wires[net] = w
            st.top_in.append(TopStream(f"s{k}", net, w))
            i_in = list(node.input).index(t)
            st.seg_inputs.append(
                StreamSpec(
                    t,
                    inst.get_input_datatype(i_in),
                    tuple(inst.get_folded_input_shape(i_in)),
                    tuple(inst.get_normal_input_shape(i_in)),
                    int(inst.get_instream_width(i_in)),
                    w,
                    node.name,
                    pool_k2 if st.isolate else 0,
                )
            )
        blk.conns.update(stream_conns(port, net))


def _connect_outputs(node: Any, inst: Any, blk: Block, outs: list[tuple[str, int]], st: _Stitch) -> None:
    """Connect the node's output streams; one leaving the segment (or every one, isolated) becomes a top output."""
    dw_k2 = 0
    if st.isolate and node.op_type.startswith("ConvolutionInputGenerator") and inst.get_nodeattr("depthwise"):
        kd = inst.get_nodeattr("ConvKernelDim")
        dw_k2 = int(np.prod(kd))
    for o, (t, (port, w)) in enumerate(zip(node.output, outs, strict=True)):
        net = _net(f"{node.name}__out{o}" if st.isolate else st.stable.get(t, t))
        st.wires[net] = w
        blk.conns.update(stream_conns(port, net))
        consumers = [c for c in st.model.find_consumers(t) or [] if c.name not in st.seg_names]
        if st.isolate or consumers or t in st.graph_outputs:
            k = len(st.top_out)
            st.top_out.append(TopStream(f"m{k}", net, w))
            st.seg_outputs.append(
                StreamSpec(
                    t,
                    inst.get_output_datatype(o),
                    tuple(inst.get_folded_output_shape(o)),
                    tuple(inst.get_normal_output_shape(o)),
                    int(inst.get_outstream_width(o)),
                    w,
                    node.name,
                    dw_k2,
                )
            )


def _add_node(node: Any, sources: SimSources, blocks: list[Block], gauges: bool, st: _Stitch) -> None:
    """The node's block (and any weight streamer beside it), its streams connected, appended to ``blocks``."""
    from finn.util.basic import getHWCustomOp

    model = st.model
    inst = getHWCustomOp(node)
    if node.op_type in OWN_MODELS:
        blk, ins, outs = _own_block(node, model, sources)
    else:
        blk, ins, outs = _rtl_block(node, model, sources, blocks, st.wires)
    dyn_inputs = [t for t in node.input if t and model.get_initializer(t) is None]
    if len(dyn_inputs) != len(ins) or len(node.output) != len(outs):
        raise UnsupportedLayerError(
            f"{node.name}: its stream interfaces ({len(ins)} in, {len(outs)} out) do not match its ONNX "
            f"inputs/outputs ({len(dyn_inputs)}, {len(node.output)}); hapfpga cannot stitch it."
        )
    _connect_inputs(node, inst, blk, ins, dyn_inputs, st)
    _connect_outputs(node, inst, blk, outs, st)
    if gauges and node.op_type.startswith("StreamingFIFO"):
        mon = f"maxcount_{len(st.monitors)}"
        st.monitors[mon] = (f"{node.name}_maxcount", 32)
        wires_name = f"{node.name}_maxcount"
        blk.conns["maxcount"] = wires_name
        st.monitor_nodes[mon] = node.name
    blocks.append(blk)


def build_design(
    model: Any, *, gauges: bool = False, only: list[str] | None = None, isolate: bool = False
) -> Design:
    """The simulated segment of ``model`` (a prepared FINN dataflow partition) as sources + top text.

    ``gauges``: expose each StreamingFIFO's ``maxcount`` as a top output (build with ``FINN_SIMULATION`` so
    that FIFOs are finn-rtllib's unbounded ``fifo_gauge``) for FIFO sizing. ``isolate``: do not connect the
    nodes; every node gets its own top-level input and output streams (one build measures every layer alone).
    """
    head, seg, tail = split_segment(model, only)
    st = _Stitch(
        model=model,
        seg_names={n.name for n in seg},
        produced={o: n for n in seg for o in n.output},
        stable=_stable_names(model),
        isolate=isolate,
        graph_outputs={o.name for o in model.graph.output},
    )
    sources = SimSources()
    blocks: list[Block] = []
    for node in seg:
        _add_node(node, sources, blocks, gauges, st)
    top = generate_top(blocks, st.wires, st.top_in, st.top_out, st.monitors)
    if st.monitors:  # declare the gauge nets
        decl = "".join(f"wire [31:0] {expr};\n" for expr, _ in st.monitors.values())
        top = top.replace(");\n\n", ");\n\n" + decl, 1)
    return Design(
        nodes=[n.name for n in seg],
        head=[n.name for n in head],
        tail=[n.name for n in tail],
        inputs=st.seg_inputs,
        outputs=st.seg_outputs,
        sources=sources,
        top=top,
        monitors=st.monitor_nodes,
    )
