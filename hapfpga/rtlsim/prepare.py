"""Turn a QONNX model into a FINN dataflow graph that Verilator can simulate (adapter, lazy FINN imports).

The recipe is FINN's own, restricted to what finn-plus 1.6.1 does without Vivado:

1. ``run_finn_steps`` (estimate-only flow) with ``standalone_thresholds=True`` and a
   ``specialize_layers_config_file`` of ``{"Defaults": {"preferred_impl_style": ["rtl", "all"]}}``, so that
   every layer with an RTL variant (MVAU, Thresholding, SWG, FMPadding, ...) becomes ``*_rtl``;
2. ``InsertDWC`` and ``InsertFIFO(create_shallow_fifos=True)`` as FINN's ``step_create_stitched_ip`` prelude
   (``finn/builder/build_dataflow_steps.py``), then ``SpecializeLayers`` so that they become
   ``StreamingDataWidthConverter_rtl`` / ``StreamingFIFO_rtl``;
3. per-node HDL generation (``code_generation_ipgen``, what ``PrepareIP`` calls), into a folder of ours.

FINN's ``PrepareIP`` skips nodes whose ``code_gen_dir_ipgen`` already exists and otherwise writes under
``FINN_BUILD_DIR``; we set the folder per node and call the node's code generation ourselves.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError, UnsupportedLayerError
from ..finn.build import RTL_PREFERRED, rtl_build_kwargs  # imports no finn at module load

__all__ = [
    "RTL_PREFERRED",
    "PreparedDesign",
    "check_chosen_design",
    "chosen_hls_layers",
    "complete_rtl_folding",
    "design_folding",
    "folding_for_rtl",
    "refuse_hls_layers",
    "prepare_design",
    "prepare_hw_model",
    "fold_model",
]


@dataclass(frozen=True)
class PreparedDesign:
    """A FINN dataflow partition ready for simulation."""

    model_path: Path  # the dataflow-partition model with DWCs, FIFOs and generated HDL
    folded_path: Path  # the same before DWC/FIFO insertion (what FINN's estimates describe)
    parent_path: Path | None  # FINN's dataflow parent (float head/tail around the partition)
    finn_reports: dict[str, Any]
    fpgapart: str
    clock_mhz: float


def fold_model(
    qonnx_path: str | Path,
    work_dir: str | Path,
    *,
    finn_board: str = "Pynq-Z2",
    clock_mhz: float = 100.0,
    folding_config_file: str | Path | None = None,
    specialize: dict[str, Any] | None = None,
) -> tuple[Path, Path | None, dict[str, Any]]:
    """Run FINN's estimate-only flow with RTL layers preferred (or, given ``specialize``, FINN's per-node
    specialize config of a chosen design, as the finn_build stage passes it); return (folded model, parent,
    reports)."""
    from ..finn.build import ESTIMATE_STEPS, run_finn_steps

    work = Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    spec_kw = rtl_build_kwargs(work)
    if specialize is not None:  # the design FINN builds: finn/fullbuild.py run_flow, the same two keywords
        cfg = work / "specialize_layers_chosen.json"
        cfg.write_text(json.dumps(specialize, indent=1))
        spec_kw = {"specialize_layers_config_file": cfg, "standalone_thresholds": True}
    res = run_finn_steps(
        qonnx_path,
        work / "finn",
        board=finn_board,
        clock_mhz=clock_mhz,
        folding_config_file=folding_config_file,
        steps=ESTIMATE_STEPS,
        **spec_kw,
    )
    parent = work / "finn" / "intermediate_models" / "dataflow_parent.onnx"
    return res.final_model, (parent if parent.exists() else None), res.reports


def prepare_hw_model(model: Any, fpgapart: str, clock_mhz: float, codegen_dir: str | Path) -> Any:
    """InsertDWC + InsertFIFO + SpecializeLayers + per-node HDL generation on a folded FINN ``ModelWrapper``."""
    from ..finn.shim import ensure_finn

    ensure_finn()
    from finn.transformation.fpgadataflow.insert_dwc import InsertDWC
    from finn.transformation.fpgadataflow.insert_fifo import InsertFIFO
    from finn.transformation.fpgadataflow.specialize_layers import SpecializeLayers
    from qonnx.transformation.general import GiveUniqueNodeNames

    model = model.transform(InsertDWC())
    model = model.transform(InsertFIFO(create_shallow_fifos=True))
    model = model.transform(SpecializeLayers(fpgapart))
    model = model.transform(GiveUniqueNodeNames())
    generate_hdl(model, fpgapart, clock_mhz, codegen_dir)
    return model


def generate_hdl(model: Any, fpgapart: str, clock_mhz: float, codegen_dir: str | Path) -> None:
    """Run each RTL node's ``code_generation_ipgen`` into ``codegen_dir/<node name>`` (FINN's PrepareIP)."""
    from finn.util.basic import getHWCustomOp
    from finn.util.fpgadataflow import is_rtl_node

    codegen_dir = Path(codegen_dir).resolve()
    for node in model.graph.node:
        if not is_rtl_node(node):
            continue
        inst = getHWCustomOp(node)
        d = codegen_dir / node.name
        d.mkdir(parents=True, exist_ok=True)
        inst.set_nodeattr("code_gen_dir_ipgen", str(d))
        inst.code_generation_ipgen(model, fpgapart, 1000.0 / clock_mhz)


def prepare_design(
    qonnx_path: str | Path,
    work_dir: str | Path,
    *,
    finn_board: str = "Pynq-Z2",
    fpgapart: str = "xc7z020clg400-1",
    clock_mhz: float = 100.0,
    folding_config_file: str | Path | None = None,
    specialize: dict[str, Any] | None = None,
) -> PreparedDesign:
    """QONNX file -> FINN dataflow partition with RTL layers, DWCs, FIFOs and generated HDL.

    ``specialize``: the chosen design's per-node specialize config (a mixed design of the fold stage); the
    partition is then the one FINN builds, and an HLS MVAU/VVAU in it is refused (:func:`refuse_hls_layers`).
    """
    from qonnx.core.modelwrapper import ModelWrapper

    work = Path(work_dir).resolve()
    kw = {"finn_board": finn_board, "clock_mhz": clock_mhz, "specialize": specialize}
    folded, parent, reports = fold_model(qonnx_path, work, folding_config_file=folding_config_file, **kw)
    model = ModelWrapper(str(folded))
    refuse_hls_layers(model, specialize)
    if folding_config_file is not None:
        # standalone thresholds the config does not name: fold them from the graph, then fold again
        given = json.loads(Path(folding_config_file).read_text())
        full = complete_rtl_folding(model, given)
        if full != given:
            folding_config_file = work / "folding_rtl_completed.json"
            folding_config_file.write_text(json.dumps(full, indent=1))
            folded, parent, reports = fold_model(qonnx_path, work, folding_config_file=folding_config_file, **kw)
            model = ModelWrapper(str(folded))
    if any(n.op_type == "StreamingDataflowPartition" for n in model.graph.node):
        raise ConfigError(
            f"{qonnx_path} has more than one dataflow partition after FINN's flow; simulate a model whose "
            "hardware layers form one partition."
        )
    model = prepare_hw_model(model, fpgapart, clock_mhz, work / "codegen")
    out = work / "rtlsim_model.onnx"
    model.save(str(out))
    return PreparedDesign(
        model_path=out,
        folded_path=Path(folded),
        parent_path=parent,
        finn_reports=reports,
        fpgapart=fpgapart,
        clock_mhz=clock_mhz,
    )


#: FINN's HLS compute layers that also have an RTL variant: hapfpga simulates the RTL one only (Verilator; an
#: HLS layer becomes RTL through Vitis HLS), and runs no HLS MVAU/VVAU in software at the partition's ends either.
HLS_COMPUTE = ("MVAU_hls", "VVAU_hls")


#: What refuses an HLS MVAU/VVAU: (the open tool, what it cannot do to the design, the stages to leave out).
SIMULATION = ("hapfpga's Verilator simulation does not run", "simulated", "rtlsim and deploy.emulate")
SYNTHESIS = ("open synthesis (Yosys) does not read", "synthesised", "synth")


def _hls_refusal(
    name: str, op_type: str, specialize: dict[str, Any] | None, use: tuple[str, str, str] = SIMULATION
) -> UnsupportedLayerError:
    if specialize is not None:
        why = ("chosen by the design's specialize config: report.json's folding.specialize, hapfpga fold's "
               "F.specialize.json", "fold it with folding.open_simulatable: true or hapfpga fold --open-simulatable "
               "(every layer that can be RTL is RTL)")
    else:
        why = ("FINN's RTL variant does not take it: _mvu_rtl_possible/_vvu_rtl_possible in finn-plus's "
               "specialize_layers.py", "this model's design has no open simulation")
    return UnsupportedLayerError(
        f"layer {name} is FINN's {op_type} in the design FINN builds ({why[0]}), and an HLS layer becomes RTL only "
        f"through Vitis HLS, which {use[0]}, so this design cannot be {use[1]} here: {why[1]}, or leave out "
        f"{use[2]}."
    )


def chosen_hls_layers(folding: dict[str, Any], specialize: dict[str, Any] | None) -> list[str]:
    """The HLS MVAUs/VVAUs a chosen design's folding names (FINN's names after its specialisation): checked in
    seconds, before FINN's flow; [] without a specialize config (then every layer that can be RTL is)."""
    if specialize is None:
        return []
    return [k for k in folding if k != "Defaults" and k.rsplit("_", 1)[0] in HLS_COMPUTE]


def refuse_hls_layers(model: Any, specialize: dict[str, Any] | None) -> None:
    """Raise (one sentence, naming the first) where FINN's specialised graph ``model`` has an HLS MVAU/VVAU:
    simulating the rest and running it in software would be another design (``split_segment`` would put one
    at the partition's head or tail in software)."""
    for n in model.graph.node:
        if n.op_type in HLS_COMPUTE:
            raise _hls_refusal(n.name, n.op_type, specialize)


def check_chosen_design(
    folding: dict[str, Any], specialize: dict[str, Any] | None, use: tuple[str, str, str] = SIMULATION
) -> None:
    """:func:`chosen_hls_layers` as a refusal: the fast check the rtlsim, deploy.emulate and synth stages make
    first (``use``: :data:`SIMULATION` or :data:`SYNTHESIS`, for the sentence)."""
    hls = chosen_hls_layers(folding, specialize)
    if hls:
        raise _hls_refusal(hls[0], hls[0].rsplit("_", 1)[0], specialize, use)


def design_folding(folding: dict[str, Any], specialize: dict[str, Any] | None) -> dict[str, Any]:
    """The folding config to simulate with: a chosen design's (``specialize`` given) as it is, since its names
    are FINN's after that specialisation; otherwise :func:`folding_for_rtl` (RTL variants preferred)."""
    return dict(folding) if specialize is not None else folding_for_rtl(folding)


def folding_for_rtl(folding: dict[str, Any]) -> dict[str, Any]:
    """Turn an HLS-named FINN folding config (e.g. finn-examples') into one for the RTL-specialised graph.

    ``MVAU_hls_i`` -> ``MVAU_rtl_i`` keeping PE, SIMD, ram_style and mem_mode (RTL MVAUs are DSP-based:
    ``resType`` becomes ``dsp``, FINN refuses ``lut``). Other entries are kept as they are. The standalone
    ``Thresholding_rtl`` layers that ``standalone_thresholds`` splits off the MVAUs are named by FINN in graph
    order, which depends on the network (an input quantiser takes index 0 or not): ``complete_rtl_folding``
    folds them from the graph itself.
    """
    out: dict[str, Any] = {"Defaults": dict(folding.get("Defaults", {}))}
    mvau_keys = ("PE", "SIMD", "ram_style", "mem_mode", "runtime_writeable_weights")
    for name, cfg in folding.items():
        if name == "Defaults":
            continue
        if name.startswith("MVAU_hls_") or name.startswith("MVAU_rtl_"):
            idx = int(name.rsplit("_", 1)[1])
            new = {k: v for k, v in cfg.items() if k in mvau_keys}
            new["resType"] = "dsp"
            out[f"MVAU_rtl_{idx}"] = new
        else:
            out[name] = dict(cfg)
    return out


def complete_rtl_folding(model: Any, folding: dict[str, Any]) -> dict[str, Any]:
    """Fold the standalone ``Thresholding_rtl`` layers ``folding`` does not name, from the graph.

    ``model``: the RTL-specialised, folded FINN graph. A threshold layer fed by an MVAU/VVAU takes its PE
    (what the activation had inside the HLS MVAU, so the design keeps the HLS design's throughput); any other
    (e.g. an input quantiser) takes the smallest PE dividing its channels whose cycles do not exceed the
    slowest other layer's (``get_exp_cycles``), so it never becomes the bottleneck by default.
    """
    from finn.util.basic import getHWCustomOp

    from ..folding.legal import divisors

    out = {k: dict(v) for k, v in folding.items()}
    todo = []
    for node in model.graph.node:
        if not node.op_type.startswith("Thresholding") or node.name in out:
            continue
        prod = model.find_producer(node.input[0])
        if prod is not None and prod.op_type.startswith(("MVAU", "VVAU")):
            inst = getHWCustomOp(prod)
            out[node.name] = {"PE": int(inst.get_nodeattr("PE"))}
            getHWCustomOp(node).set_nodeattr("PE", out[node.name]["PE"])
        else:
            todo.append(node)
    if todo:
        names = {n.name for n in todo}
        target = max(
            (int(getHWCustomOp(n).get_exp_cycles()) for n in model.graph.node if n.name not in names),
            default=0,
        )
        for node in todo:
            inst = getHWCustomOp(node)
            ch = int(inst.get_nodeattr("NumChannels"))
            for pe in divisors(ch):
                inst.set_nodeattr("PE", pe)
                if int(inst.get_exp_cycles()) <= target:
                    break
            out[node.name] = {"PE": int(inst.get_nodeattr("PE"))}
    return out
