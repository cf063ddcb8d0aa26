"""FINN dataflow graph -> simulatable design (adapter; lazy FINN imports).

Splits a FINN dataflow partition into a software head, a simulated segment and a software tail (the float
tail after the last integer layer, e.g. TFC/CNV's ``ElementwiseMul_hls``, stays in software as FINN's
driver does), gathers the segment's HDL (FINN's generated wrappers + finn-rtllib + our own models for
layers without RTL) and builds the stitched top.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UnsupportedLayerError
from .sources import SourceSet
from .topgen import Block, TopStream, generate_top, parse_ports, stream_conns

__all__ = ["StreamSpec", "Design", "split_segment", "build_design", "OWN_RTL", "is_simulatable"]

#: FINN layers without an RTL variant that we simulate with our own RTL (``hapfpga/rtlsim/rtl``).
OWN_RTL = ("Pool_hls",)
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

    return is_rtl_node(node) or node.op_type in OWN_RTL


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


def _own_block(
    node: Any, model: Any, sources: SourceSet
) -> tuple[Block, list[tuple[str, int]], list[tuple[str, int]]]:
    from finn.util.basic import getHWCustomOp

    inst = getHWCustomOp(node)
    if node.op_type == "Pool_hls":
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
    raise UnsupportedLayerError(f"{node.name} ({node.op_type}) has no hapfpga simulation model.")


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


def build_design(
    model: Any, *, gauges: bool = False, only: list[str] | None = None, isolate: bool = False
) -> Design:
    """The simulated segment of ``model`` (a prepared FINN dataflow partition) as sources + top text.

    ``gauges``: expose each StreamingFIFO's ``maxcount`` as a top output (build with ``FINN_SIMULATION`` so
    that FIFOs are finn-rtllib's unbounded ``fifo_gauge``) for FIFO sizing. ``isolate``: do not connect the
    nodes; every node gets its own top-level input and output streams (one build measures every layer alone).
    """
    from finn.util.basic import getHWCustomOp

    head, seg, tail = split_segment(model, only)
    seg_names = {n.name for n in seg}
    produced = {o: n for n in seg for o in n.output}
    sources = SourceSet()
    blocks: list[Block] = []
    wires: dict[str, int] = {}
    seg_inputs: list[StreamSpec] = []
    seg_outputs: list[StreamSpec] = []
    top_in: list[TopStream] = []
    top_out: list[TopStream] = []
    monitors: dict[str, tuple[str, int]] = {}
    monitor_nodes: dict[str, str] = {}
    graph_outputs = {o.name for o in model.graph.output}
    stable = _stable_names(model)

    def _net(key: str) -> str:
        return "".join(c if c.isalnum() or c == "_" else "_" for c in key)

    for node in seg:
        inst = getHWCustomOp(node)
        if node.op_type in OWN_RTL:
            blk, ins, outs = _own_block(node, model, sources)
        else:
            blk, ins, outs = _rtl_block(node, model, sources, blocks, wires)
        dyn_inputs = [t for t in node.input if t and model.get_initializer(t) is None]
        if len(dyn_inputs) != len(ins) or len(node.output) != len(outs):
            raise UnsupportedLayerError(
                f"{node.name}: its stream interfaces ({len(ins)} in, {len(outs)} out) do not match its ONNX "
                f"inputs/outputs ({len(dyn_inputs)}, {len(node.output)}); hapfpga cannot stitch it."
            )
        pool_k2 = 0
        if node.op_type.startswith("Pool"):
            k = inst.get_nodeattr("KernelSize")
            pool_k2 = int(k[0] * k[1]) if isinstance(k, list | tuple) else int(k) ** 2
        for i_dyn, (t, (port, w)) in enumerate(zip(dyn_inputs, ins, strict=True)):
            net = _net(f"{node.name}__in{i_dyn}" if isolate else stable.get(t, t))
            if (isolate or t not in produced) and net not in wires:  # a segment input
                k = len(top_in)
                wires[net] = w
                top_in.append(TopStream(f"s{k}", net, w))
                i_in = list(node.input).index(t)
                seg_inputs.append(
                    StreamSpec(
                        t,
                        inst.get_input_datatype(i_in),
                        tuple(inst.get_folded_input_shape(i_in)),
                        tuple(inst.get_normal_input_shape(i_in)),
                        int(inst.get_instream_width(i_in)),
                        w,
                        node.name,
                        pool_k2 if isolate else 0,
                    )
                )
            blk.conns.update(stream_conns(port, net))
        dw_k2 = 0
        if (
            isolate
            and node.op_type.startswith("ConvolutionInputGenerator")
            and inst.get_nodeattr("depthwise")
        ):
            kd = inst.get_nodeattr("ConvKernelDim")
            dw_k2 = int(np.prod(kd))
        for o, (t, (port, w)) in enumerate(zip(node.output, outs, strict=True)):
            net = _net(f"{node.name}__out{o}" if isolate else stable.get(t, t))
            wires[net] = w
            blk.conns.update(stream_conns(port, net))
            consumers = [c for c in model.find_consumers(t) or [] if c.name not in seg_names]
            if isolate or consumers or t in graph_outputs:
                k = len(top_out)
                top_out.append(TopStream(f"m{k}", net, w))
                seg_outputs.append(
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
        if gauges and node.op_type.startswith("StreamingFIFO"):
            mon = f"maxcount_{len(monitors)}"
            monitors[mon] = (f"{node.name}_maxcount", 32)
            wires_name = f"{node.name}_maxcount"
            blk.conns["maxcount"] = wires_name
            monitor_nodes[mon] = node.name
        blocks.append(blk)
    top = generate_top(blocks, wires, top_in, top_out, monitors)
    if monitors:  # declare the gauge nets
        decl = "".join(f"wire [31:0] {expr};\n" for expr, _ in monitors.values())
        top = top.replace(");\n\n", ");\n\n" + decl, 1)
    return Design(
        nodes=[n.name for n in seg],
        head=[n.name for n in head],
        tail=[n.name for n in tail],
        inputs=seg_inputs,
        outputs=seg_outputs,
        sources=sources,
        top=top,
        monitors=monitor_nodes,
    )
