"""One-node FINN graphs for a layer configuration: FINN's own RTL for that layer, without a whole network.

A configuration is a plain dict with ``kind`` and the layer's FINN attributes (see :data:`BUILDERS`); the node is
built as FINN's HW op, specialised to its ``_rtl`` variant for the part (``SpecializeLayers``) and its HDL generated
(:func:`hapfpga.rtlsim.prepare.generate_hdl`, what FINN's ``PrepareIP`` does). Used by the default tests and
``benchmarks/estimator_vs_synth.py`` to compare the estimator with Yosys on random legal configurations.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError

__all__ = ["BUILDERS", "build_single", "config_key"]

_DOMAIN = "finn.custom_op.fpgadataflow"


def config_key(cfg: dict[str, Any]) -> str:
    """Stable short hash of a configuration (folder names, cache keys)."""
    return hashlib.sha256(json.dumps(cfg, sort_keys=True).encode()).hexdigest()[:16]


def _graph(node: Any, ishape: list[int], oshape: list[int], idt: str, odt: str) -> Any:
    from onnx import TensorProto, helper
    from qonnx.core.datatype import DataType
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.util.basic import qonnx_make_model

    inp = helper.make_tensor_value_info("inp", TensorProto.FLOAT, ishape)
    out = helper.make_tensor_value_info("out", TensorProto.FLOAT, oshape)
    graph = helper.make_graph([node], "single", [inp], [out])
    model = ModelWrapper(qonnx_make_model(graph, producer_name="hapfpga-synth"))
    model.set_tensor_datatype("inp", DataType[idt])
    model.set_tensor_datatype("out", DataType[odt])
    return model


def _mvau(c: dict[str, Any], rng: np.random.Generator) -> Any:
    """``MVAU`` without activation (standalone thresholds, as open-simulatable designs are built)."""
    from onnx import helper
    from qonnx.core.datatype import DataType

    mw, mh, nv = c["mw"], c["mh"], c.get("n_vectors", 1)
    idt, wdt = c["idt"], c["wdt"]
    wt, it = DataType[wdt], DataType[idt]
    acc_bits = int(np.ceil(np.log2(mw))) + wt.bitwidth() + it.bitwidth() + 1
    odt = f"INT{acc_bits}"
    node = helper.make_node(
        "MVAU", ["inp", "weights"], ["out"], domain=_DOMAIN, backend="fpgadataflow", name="MVAU_0",
        MW=mw, MH=mh, SIMD=c["simd"], PE=c["pe"], inputDataType=idt, weightDataType=wdt, outputDataType=odt,
        accDataType=odt, noActivation=1, numInputVectors=[1, nv], resType="dsp",
        mem_mode=c.get("mem_mode", "internal_decoupled"), ram_style=c.get("ram_style", "auto"),
        preferred_impl_style="rtl",
    )
    model = _graph(node, [1, nv, mw], [1, nv, mh], idt, odt)
    lo = int(wt.min()) + (1 if c.get("narrow", True) else 0)
    w = rng.integers(lo, int(wt.max()) + 1, size=(mw, mh))
    if not c.get("narrow", True):
        w.flat[0] = int(wt.min())  # FINN: NARROW_WEIGHTS = 0 iff the weights reach the type's minimum
    model.set_initializer("weights", w.astype(np.float32))
    model.set_tensor_datatype("weights", wt)
    return model


def _thresholding(c: dict[str, Any], rng: np.random.Generator) -> Any:
    from onnx import helper
    from qonnx.core.datatype import DataType

    ch, nv, idt, odt = c["channels"], c.get("n_vectors", 1), c["idt"], c["odt"]
    steps = 2 ** DataType[odt].bitwidth() - 1
    it = DataType[idt]
    node = helper.make_node(
        "Thresholding", ["inp", "thresh"], ["out"], domain=_DOMAIN, backend="fpgadataflow", name="Thresholding_0",
        NumChannels=ch, PE=c["pe"], numSteps=steps, inputDataType=idt, weightDataType=idt, outputDataType=odt,
        ActVal=0, numInputVectors=[1, nv], preferred_impl_style="rtl",
        depth_trigger_bram=c.get("depth_trigger_bram", 0), depth_trigger_uram=c.get("depth_trigger_uram", 0),
    )
    model = _graph(node, [1, nv, ch], [1, nv, ch], idt, odt)
    t = np.sort(rng.integers(int(it.min()), int(it.max()) + 1, size=(ch, steps)), axis=1)
    model.set_initializer("thresh", t.astype(np.float32))
    model.set_tensor_datatype("thresh", it)
    return model


def _swg(c: dict[str, Any], rng: np.random.Generator) -> Any:
    from onnx import helper

    ch, (h, w), (kh, kw) = c["ifm_ch"], c["ifm_dim"], c["kernel"]
    sh, sw = c.get("stride", (1, 1))
    dh, dw = c.get("dilation", (1, 1))
    oh, ow = (h - (kh - 1) * dh - 1) // sh + 1, (w - (kw - 1) * dw - 1) // sw + 1
    node = helper.make_node(
        "ConvolutionInputGenerator", ["inp"], ["out"], domain=_DOMAIN, backend="fpgadataflow", name="SWG_0",
        ConvKernelDim=[kh, kw], IFMChannels=ch, IFMDim=[h, w], OFMDim=[oh, ow], SIMD=c["simd"],
        Stride=[sh, sw], Dilation=[dh, dw], inputDataType=c["idt"], outputDataType=c["idt"],
        depthwise=int(c.get("depthwise", 0)), parallel_window=int(c.get("parallel_window", 0)),
        ram_style=c.get("ram_style", "distributed"), is1D=int(h == 1 or w == 1), preferred_impl_style="rtl",
    )
    return _graph(node, [1, h, w, ch], [1, oh, ow, kh * kw * ch], c["idt"], c["idt"])


def _fmpadding(c: dict[str, Any], rng: np.random.Generator) -> Any:
    from onnx import helper

    ch, (h, w), pad = c["channels"], c["ifm_dim"], list(c["padding"])
    node = helper.make_node(
        "FMPadding", ["inp"], ["out"], domain=_DOMAIN, backend="fpgadataflow", name="FMPadding_0",
        ImgDim=[h, w], Padding=pad, NumChannels=ch, SIMD=c["simd"], inputDataType=c["idt"],
        numInputVectors=1, preferred_impl_style="rtl",
    )
    return _graph(node, [1, h, w, ch], [1, h + pad[0] + pad[2], w + pad[1] + pad[3], ch], c["idt"], c["idt"])


def _dwc(c: dict[str, Any], rng: np.random.Generator) -> Any:
    from onnx import helper
    from qonnx.core.datatype import DataType

    shape = [1, c.get("n_vectors", 1), c["channels"]]
    b = DataType[c["idt"]].bitwidth()
    node = helper.make_node(
        "StreamingDataWidthConverter", ["inp"], ["out"], domain=_DOMAIN, backend="fpgadataflow", name="DWC_0",
        inShape=shape, outShape=shape, inWidth=c["in_elems"] * b, outWidth=c["out_elems"] * b,
        dataType=c["idt"], preferred_impl_style="rtl",
    )
    return _graph(node, shape, shape, c["idt"], c["idt"])


def _fifo(c: dict[str, Any], rng: np.random.Generator) -> Any:
    from onnx import helper

    shape = [1, c.get("n_words", 16), c["elems"]]
    node = helper.make_node(
        "StreamingFIFO", ["inp"], ["out"], domain=_DOMAIN, backend="fpgadataflow", name="FIFO_0",
        depth=c["depth"], folded_shape=[1, shape[1], 1, c["elems"]], normal_shape=shape, dataType=c["idt"],
        ram_style=c.get("ram_style", "auto"), preferred_impl_style="rtl",
    )
    return _graph(node, shape, shape, c["idt"], c["idt"])


#: configuration ``kind`` -> builder of the one-node FINN graph (before specialisation).
BUILDERS: dict[str, Callable[[dict[str, Any], np.random.Generator], Any]] = {
    "MVAU_rtl": _mvau,
    "Thresholding_rtl": _thresholding,
    "ConvolutionInputGenerator_rtl": _swg,
    "FMPadding_rtl": _fmpadding,
    "StreamingDataWidthConverter_rtl": _dwc,
    "StreamingFIFO_rtl": _fifo,
}


def build_single(cfg: dict[str, Any], part: str, work_dir: str | Path, clock_mhz: float = 100.0) -> Any:
    """A one-node FINN graph for ``cfg``, specialised to RTL for ``part``, its HDL generated under ``work_dir``."""
    from ..finn.shim import ensure_finn

    ensure_finn()
    from finn.transformation.fpgadataflow.specialize_layers import SpecializeLayers
    from qonnx.transformation.infer_shapes import InferShapes

    from ..rtlsim.prepare import generate_hdl

    make = BUILDERS.get(cfg["kind"])
    if make is None:
        raise ConfigError(f"no single-layer builder for kind {cfg['kind']}; use one of {', '.join(BUILDERS)}.")
    model = make(cfg, np.random.default_rng(int(cfg.get("seed", 0))))
    model = model.transform(InferShapes())
    model = model.transform(SpecializeLayers(part))
    op = model.graph.node[0].op_type
    if op != cfg["kind"]:
        raise ConfigError(f"FINN specialised the {cfg['kind']} configuration to {op}; it has no RTL variant here.")
    generate_hdl(model, part, clock_mhz, Path(work_dir) / config_key(cfg))
    return model
