"""ADAPTER (lazy finn imports): layers and per-node costs read straight from a FINN HW model.

Temporary, until ``hapfpga.finn.graph.load_layers`` lands: builds ``hapfpga.estimate.layers`` specs
from a finn-plus 1.6.1 model after ``step_specialize_layers`` (ideally after
``step_minimize_bit_width``, whose data types FINN's estimate report uses), and a cost function that
asks FINN's own node methods (``get_exp_cycles``, ``lut_estimation``, ``bram_estimation``,
``uram_estimation``, ``dsp_estimation`` — what ``res_estimation`` sums into
``estimate_layer_resources.json``) for any folding. This is FINN's cost model, not a second
estimator: it lets the benchmark optimise against the very numbers the acceptance is judged by, and
checks our estimator against them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from ..errors import UnsupportedLayerError
from ..estimate.layers import LayerSpec
from ..types import LayerFolding, Resources

__all__ = ["FinnCosts", "ReshapeSpec"]


@dataclass(frozen=True, kw_only=True)
class ReshapeSpec(LayerSpec):
    """FINN ``Reshape_rtl`` (not in the estimator's contract): PE divides the last axis of both sides."""

    kind: ClassVar[str] = "Reshape"
    fold_dims: ClassVar[dict[str, str]] = {"pe": "channels"}
    channels: int
    idt: str = "INT8"

_KIND = {
    "MVAU": "MVAU",
    "VVAU": "VVAU",
    "Thresholding": "Thresholding",
    "ConvolutionInputGenerator": "ConvolutionInputGenerator",
    "Pool": "Pool",
    "StreamingMaxPool": "StreamingMaxPool",
    "FMPadding": "FMPadding",
    "LabelSelect": "LabelSelect",
    "ElementwiseMul": "ElementwiseMul",
    "ElementwiseAdd": "ElementwiseAdd",
    "Reshape": "Reshape",
}


def _split(op_type: str) -> tuple[str, str]:
    for impl in ("_hls", "_rtl"):
        if op_type.endswith(impl):
            return op_type[: -len(impl)], impl[1:]
    return op_type, "hls"


class FinnCosts:
    """Layers of a FINN HW model and FINN's per-node cost of any folding of them."""

    def __init__(self, model_path: str | Path, fpgapart: str = "xc7z020clg400-1"):
        from ..finn.shim import ensure_finn

        ensure_finn()
        from qonnx.core.modelwrapper import ModelWrapper
        from qonnx.custom_op.registry import getCustomOp

        self.model = ModelWrapper(str(model_path))
        self.fpgapart = fpgapart
        self._inst: dict[str, Any] = {}
        self.layers: list[Any] = []
        self.skipped: list[str] = []
        g = self.model
        for node in g.graph.node:
            base, impl = _split(node.op_type)
            kind = _KIND.get(base)
            if kind is None:
                raise UnsupportedLayerError(f"FINN node {node.name} ({node.op_type}) has no folding rules here.")
            inst = getCustomOp(node)
            self._inst[node.name] = inst
            producers = tuple(p.name for p in (g.find_producer(i) for i in node.input) if p is not None)
            consumers = tuple(c.name for o in node.output for c in g.find_consumers(o) or [])
            self.layers.append(self._spec(kind, impl, node, inst, producers, consumers))

    @staticmethod
    def _folding_of(inst: Any) -> LayerFolding:
        attrs = inst.get_nodeattr_types()
        vals = {}
        for finn_key, attr in (("PE", "pe"), ("SIMD", "simd"), ("ram_style", "ram_style"),
                               ("ram_style_thresholds", "ram_style_thresholds"), ("resType", "res_type"),
                               ("mem_mode", "mem_mode"), ("parallel_window", "parallel_window")):
            if finn_key in attrs:
                vals[attr] = inst.get_nodeattr(finn_key)
        return LayerFolding(**vals)

    def _spec(self, kind: str, impl: str, node: Any, inst: Any, producers: tuple, consumers: tuple) -> Any:
        from ..estimate import layers as L

        common = dict(name=node.name, impl=impl, producers=producers, consumers=consumers,
                      default_folding=self._folding_of(inst))
        a = inst.get_nodeattr
        idt = inst.get_input_datatype(0).name
        odt = inst.get_output_datatype(0).name
        if kind == "MVAU":
            import numpy as np

            return L.MVAU(mw=a("MW"), mh=a("MH"), n_vectors=int(np.prod(a("numInputVectors"))), idt=idt,
                          wdt=inst.get_input_datatype(1).name, odt=odt, no_activation=bool(a("noActivation")),
                          **common)
        if kind == "VVAU":
            return L.VVAU(channels=a("Channels"), kernel=tuple(a("Kernel")), dim=tuple(a("Dim")), idt=idt,
                          wdt=inst.get_input_datatype(1).name, odt=odt, **common)
        if kind == "ConvolutionInputGenerator":
            return L.ConvolutionInputGenerator(ifm_ch=a("IFMChannels"), ifm_dim=tuple(a("IFMDim")),
                                               ofm_dim=tuple(a("OFMDim")), kernel=tuple(a("ConvKernelDim")),
                                               stride=tuple(a("Stride")), dilation=tuple(a("Dilation")),
                                               idt=idt, depthwise=bool(a("depthwise")), **common)
        if kind == "Thresholding":
            return L.Thresholding(channels=a("NumChannels"), idt=idt, odt=odt, **common)
        if kind == "Pool":
            return L.Pool(channels=a("Channels"), idt=idt, odt=odt, **common)
        if kind == "StreamingMaxPool":
            return L.StreamingMaxPool(channels=a("NumChannels"), ifm_dim=tuple(a("ImgDim")), idt=idt, **common)
        if kind == "FMPadding":
            return L.FMPadding(channels=a("NumChannels"), ifm_dim=tuple(a("ImgDim")), idt=idt, **common)
        if kind == "LabelSelect":
            return L.LabelSelect(labels=a("Labels"), k=a("K"), idt=idt, odt=odt, **common)
        if kind == "Reshape":
            import math

            ch = math.gcd(int(inst.get_normal_input_shape(0)[-1]), int(inst.get_normal_output_shape(0)[-1]))
            return ReshapeSpec(channels=ch, idt=idt, **common)
        cls = L.ElementwiseMul if kind == "ElementwiseMul" else L.ElementwiseAdd
        return cls(lhs_shape=tuple(inst.get_normal_input_shape(0)), rhs_shape=tuple(inst.get_normal_input_shape(1)),
                   out_shape=tuple(inst.get_normal_output_shape(0)), lhs_dt=idt,
                   rhs_dt=inst.get_input_datatype(1).name, odt=odt, **common)

    def cost(self, layer: Any, f: LayerFolding) -> tuple[Resources, int]:
        """FINN's own estimate of ``layer`` under folding ``f`` (attributes set on the node, then read)."""
        inst = self._inst[layer.name]
        attrs = inst.get_nodeattr_types()
        old = {}
        for k, v in f.to_finn().items():
            if k in attrs:
                old[k] = inst.get_nodeattr(k)
                inst.set_nodeattr(k, v)
        try:
            cyc = int(inst.get_exp_cycles())
            p = self.fpgapart
            res = Resources(LUT=float(inst.lut_estimation(p)), BRAM_18K=float(inst.bram_estimation(p)),
                            URAM=float(inst.uram_estimation(p)), DSP=float(inst.dsp_estimation(p)))
        finally:
            for k, v in old.items():
                inst.set_nodeattr(k, v)
        return res, cyc
