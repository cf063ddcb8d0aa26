"""FINN HW graph -> typed layer descriptions for the estimator.

This is the only module that reads FINN node attributes. finn/qonnx are imported lazily inside the
functions, so importing this module is cheap.
"""

from __future__ import annotations

import hashlib
from math import prod
from pathlib import Path
from typing import Any

from ..boards import BoardSpec
from ..errors import ConfigError, UnsupportedLayerError
from ..estimate import layers as L
from ..types import FOLDING_KEYS, LayerFolding
from .build import SPECIALIZE_STEPS

__all__ = [
    "load_layers", "layers_from_model", "hw_layers_from_qonnx", "layers_for_model_file", "is_finn_hw_model",
    "accumulator_contributions", "SPECIALIZE_STEPS",
]


def _kind_and_impl(op_type: str) -> tuple[str, str]:
    for suffix in ("_hls", "_rtl"):
        if op_type.endswith(suffix):
            return op_type[: -len(suffix)], suffix[1:]
    return op_type, "hls"


def _s(v: Any) -> Any:
    return v.decode() if isinstance(v, bytes) else v


def _narrow(model: Any, node: Any, inst: Any) -> bool | None:
    """FINN's ``NARROW_WEIGHTS`` (``MVAU_rtl.generate_hdl``): the weights never reach the type's minimum."""
    w = model.get_initializer(node.input[1]) if len(node.input) > 1 else None
    if w is None:
        return None
    return bool(w.min() != inst.get_input_datatype(1).min())


def _spec_from_node(model: Any, node: Any) -> L.LayerSpec:
    from qonnx.custom_op.registry import getCustomOp

    inst = getCustomOp(node)
    types = inst.get_nodeattr_types()

    def a(name: str) -> Any:
        return _s(inst.get_nodeattr(name))

    kind, impl = _kind_and_impl(node.op_type)
    # inFIFODepths: every FINN node has it (default [2]); only the folding optimiser sets it, for joins
    fold = LayerFolding(**{f: a(k) for k, f in FOLDING_KEYS.items() if k in types and k != "inFIFODepths"})
    preds = model.find_direct_predecessors(node) or []
    succs = model.find_direct_successors(node) or []
    common: dict[str, Any] = dict(
        name=node.name,
        impl=impl,
        producers=tuple(p.name for p in preds),
        consumers=tuple(s.name for s in succs),
        default_folding=fold,
    )
    if kind == "MVAU":
        return L.MVAU(**common, mw=a("MW"), mh=a("MH"), n_vectors=int(prod(a("numInputVectors"))),
                      idt=a("inputDataType"), wdt=a("weightDataType"), odt=a("outputDataType"),
                      acc_dt=a("accDataType"), no_activation=bool(a("noActivation")),
                      binary_xnor=bool(a("binaryXnorMode")), narrow_weights=_narrow(model, node, inst))
    if kind == "VVAU":
        return L.VVAU(**common, channels=a("Channels"), kernel=tuple(a("Kernel")), dim=tuple(a("Dim")),
                      idt=a("inputDataType"), wdt=a("weightDataType"), odt=a("outputDataType"),
                      acc_dt=a("accDataType"), no_activation=bool(a("noActivation")))
    if kind == "Thresholding":
        return L.Thresholding(**common, channels=a("NumChannels"), n_vectors=int(prod(a("numInputVectors"))),
                              idt=a("inputDataType"), tdt=a("weightDataType"), odt=a("outputDataType"),
                              num_steps=a("numSteps"),
                              uniform_thres=bool(a("uniform_thres")) if "uniform_thres" in types else False)
    if kind == "ConvolutionInputGenerator":
        return L.ConvolutionInputGenerator(
            **common, ifm_ch=a("IFMChannels"), ifm_dim=tuple(a("IFMDim")), ofm_dim=tuple(a("OFMDim")),
            kernel=tuple(a("ConvKernelDim")), stride=tuple(a("Stride")), dilation=tuple(a("Dilation")),
            idt=a("inputDataType"), depthwise=bool(a("depthwise")))
    if kind == "Pool":
        return L.Pool(**common, channels=a("Channels"), kernel=tuple(a("KernelSize")),
                      out_dims=tuple(a("OutImgDims")), idt=a("InputDataType"), odt=a("OutputDataType"),
                      function=a("Function"), batch=a("BatchSize"), accum_bits=a("AccumBits"))
    if kind == "StreamingMaxPool":
        return L.StreamingMaxPool(**common, channels=a("NumChannels"), ifm_dim=tuple(a("ImgDim")),
                                  pool_dim=tuple(a("PoolDim")), idt=a("dataType"), ceil_mode=bool(a("CeilMode")))
    if kind == "FMPadding":
        return L.FMPadding(**common, channels=a("NumChannels"), ifm_dim=tuple(a("ImgDim")),
                           padding=tuple(a("Padding")), idt=a("inputDataType"))
    if kind == "LabelSelect":
        return L.LabelSelect(**common, labels=a("Labels"), k=a("K"), idt=a("inputDataType"),
                             odt=a("outputDataType") or "UINT32", n_vectors=int(prod(a("numInputVectors"))))
    if kind in ("ElementwiseMul", "ElementwiseAdd"):
        cls = L.ElementwiseMul if kind == "ElementwiseMul" else L.ElementwiseAdd
        return cls(**common, lhs_shape=tuple(a("lhs_shape")), rhs_shape=tuple(a("rhs_shape")),
                   out_shape=tuple(a("out_shape")), lhs_dt=a("lhs_dtype"), rhs_dt=a("rhs_dtype"),
                   odt=a("out_dtype"), lhs_const=a("lhs_style") == "const", rhs_const=a("rhs_style") == "const")
    if kind == "DuplicateStreams":
        return L.DuplicateStreams(**common, channels=a("NumChannels"), n_vectors=int(prod(a("numInputVectors"))),
                                  n_outputs=a("NumOutputStreams"), idt=a("inputDataType"))
    if kind == "Reshape":
        return L.Reshape(**common, inp_shape=tuple(a("inp_shape")), out_shape=tuple(a("out_shape")),
                         dt=a("dtype"))
    if kind == "StreamingDataWidthConverter":
        return L.StreamingDataWidthConverter(
            **common, in_width=int(inst.get_instream_width()), out_width=int(inst.get_outstream_width()),
            n_words_in=int(prod(inst.get_folded_input_shape()[:-1])), dt=a("dataType"))
    if kind == "StreamingFIFO":
        return L.StreamingFIFO(**common, width=int(inst.get_instream_width()), depth=a("depth"),
                               ram_style=a("ram_style"))
    raise UnsupportedLayerError(
        f"FINN node {node.name} ({node.op_type}) is not a layer kind the estimator models; "
        f"supported: {', '.join(sorted(L.LAYER_KINDS))}."
    )


def layers_from_model(model: Any) -> list[L.LayerSpec]:
    """Layer descriptions of every FINN HW node of a qonnx ``ModelWrapper``, in graph order."""
    return [_spec_from_node(model, n) for n in model.graph.node]


def load_layers(onnx_path: str | Path) -> list[L.LayerSpec]:
    """Read a FINN HW model (after step_specialize_layers / step_apply_folding_config).

    ``default_folding`` of each layer is the folding the file holds. If the file is a FINN parent
    model with a dataflow partition, the partition's model is read.
    """
    from .shim import ensure_finn

    ensure_finn()
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.custom_op.registry import getCustomOp

    path = Path(onnx_path)
    if not path.is_file():
        raise ConfigError(f"Model file '{path}' does not exist; give the path of a FINN HW .onnx model.")
    model = ModelWrapper(str(path))
    sdp = [n for n in model.graph.node if n.op_type == "StreamingDataflowPartition"]
    if sdp:
        inner = getCustomOp(sdp[0]).get_nodeattr("model")
        inner_path = Path(_s(inner))
        if not inner_path.is_absolute():
            inner_path = path.parent / inner_path
        model = ModelWrapper(str(inner_path))
    return layers_from_model(model)


def accumulator_contributions(onnx_path: str | Path) -> dict[str, tuple[Any, Any]]:
    """Per MVAU with weights in a FINN HW model, the ``(MW, MH)`` arrays of each weight's contribution to the
    largest and to the smallest accumulator value: FINN's ``calculate_matvec_accumulator_range`` (which
    ``MVAU.minimize_accumulator_width`` sets ``accDataType`` from) before its column sums and max/min — each
    weight times the input data type's max or min, by the weight's sign; bipolar weights as +-1 in XNOR mode."""
    import numpy as np

    from .shim import ensure_finn

    ensure_finn()
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.custom_op.registry import getCustomOp

    model = ModelWrapper(str(onnx_path))
    out: dict[str, tuple[Any, Any]] = {}
    for node in model.graph.node:
        if _kind_and_impl(node.op_type)[0] != "MVAU" or len(node.input) < 2:
            continue
        w = model.get_initializer(node.input[1])
        if w is None:
            continue
        inst = getCustomOp(node)
        if inst.get_nodeattr("binaryXnorMode"):
            w = 2 * w - 1
        idt = inst.get_input_datatype(0)
        w = np.asarray(w, dtype=np.float64)
        hi, lo = w * np.where(w > 0, idt.max(), idt.min()), w * np.where(w > 0, idt.min(), idt.max())
        out[node.name] = (hi.astype(np.float32), lo.astype(np.float32))  # small integers: exact
    return out


def _file_hash(path: Path) -> str:
    h = hashlib.sha256(path.read_bytes())
    return h.hexdigest()[:16]


def hw_layers_from_qonnx(
    qonnx_path: str | Path,
    work_dir: str | Path,
    board: BoardSpec,
    clock_mhz: float | None = None,
    *,
    rtl: bool = False,
    strict: bool = True,
) -> tuple[list[L.LayerSpec], Path]:
    """Run finn-plus's steps up to step_specialize_layers on a Brevitas QONNX export and read the layers.

    Cached by the model file's hash (and board/clock): a second call on the same file reads the saved
    specialised model. Returns the layers (FINN's default folding, PE=SIMD=1) and that model's path.
    ``rtl``: prefer RTL variants with standalone thresholds (``rtl_build_kwargs``), an open-simulatable
    design; a layer that keeps it from simulating (``open_simulatable_blockers``) is a user error. A graph
    FINN cannot convert is a user error (``ConfigError``) naming the step and the log. ``strict=False``: the RTL
    graph as a folding variant (``folding.variants``), blockers allowed.
    """
    from .build import FinnStepError, rtl_build_kwargs, run_finn_steps

    qonnx_path = Path(qonnx_path)
    if not qonnx_path.is_file():
        raise ConfigError(f"Model file '{qonnx_path}' does not exist; give the path of a QONNX .onnx export.")
    clock = float(clock_mhz or board.clock_mhz)
    key = f"{_file_hash(qonnx_path)}_{board.key}_{clock:g}{'_rtl' if rtl else ''}"
    out = Path(work_dir) / f"hw_{key}"
    spec_model = out / "intermediate_models" / "step_specialize_layers.onnx"
    if not spec_model.is_file():
        extra = rtl_build_kwargs(out) if rtl else {}
        try:
            res = run_finn_steps(
                qonnx_path, out, board=board.finn_board, clock_mhz=clock, steps=SPECIALIZE_STEPS, **extra
            )
        except FinnStepError as e:
            raise ConfigError(
                f"FINN could not convert '{qonnx_path}' at {e.step} ({type(e.cause).__name__}; details in "
                f"{e.log_file}); check that the model uses only layers and quantisers FINN supports."
            ) from None
        spec_model = res.step_models["step_specialize_layers"]
    layers = load_layers(spec_model)
    if rtl and strict:
        from ..folding.legal import open_simulatable_blockers

        blockers = open_simulatable_blockers(layers)
        if blockers:
            raise ConfigError(
                f"{', '.join(blockers)} has neither an RTL variant in finn-plus nor a hapfpga simulation model, "
                "so the design cannot be open-simulatable; turn open-simulatable off or change those layers."
            )
    return layers, spec_model


def is_finn_hw_model(model: Any) -> bool:
    """True for a FINN HW graph (HW custom ops or a dataflow partition), False for a QONNX export."""
    return any(
        n.domain.startswith("finn.custom_op.fpgadataflow") or n.op_type == "StreamingDataflowPartition"
        for n in model.graph.node
    )


def layers_for_model_file(
    path: str | Path,
    work_dir: str | Path | None,
    board: BoardSpec,
    clock_mhz: float | None = None,
    *,
    rtl: bool = False,
) -> list[L.LayerSpec]:
    """Layers of a user's model file: a FINN HW model is read as it is, a QONNX export is converted first.

    The file is checked first (missing, truncated, not ONNX, not QONNX: one-sentence ``ConfigError``); a
    QONNX graph that FINN cannot convert is a user error naming the step and the log.
    """
    from .onnxfile import check_onnx_file

    path = Path(path)
    proto = check_onnx_file(path)
    if is_finn_hw_model(proto):
        return load_layers(path)
    work = Path(work_dir) if work_dir else path.parent / ".hapfpga-cache"
    layers, _ = hw_layers_from_qonnx(path, work, board, clock_mhz, rtl=rtl)
    return layers
