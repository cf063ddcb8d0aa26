"""Build side of the emulated board: the driver's settings and the "bitstream" of an emulated PYNQ board.

``driver_settings(model)`` writes what finn-plus 1.6.1's ``MakePYNQDriver`` writes into
``driver/settings.json`` (``driver_information``: ``io_shape_dict`` with the I/O datatypes and the normal,
folded and packed shapes, platform, clock), derived from the dataflow partition itself, for designs that
have no Vivado build (FINN writes it only after synthesis). Where FINN's file exists too,
``check_driver_settings`` compares the two and a difference is a build error, not a wrong answer on the board.

``write_emulated_board(package, rtl_model)`` puts the emulated board into a deployment package
(``emulate/``): ``board.json`` (pynq's ``ip_dict`` of the two IODMAs, the streams, the clock), the
simulation sources of the stitched RTL (``emulate/rtl/``, what ``hapfpga.rtlsim`` builds with Verilator)
and the partition model for the layers that run in software around the simulated segment (e.g. TFC/CNV's
float ``ElementwiseMul_hls`` tail).

FINN facts used (finn-plus 1.6.1 sources): ``finn/util/basic.py:get_driver_shapes`` (folded shape = the first
/ last dataflow node's folded input / output shape, packed = ``finnpy_to_packed_bytearray`` of it, i.e. the
innermost dimension padded to whole bytes); ``transformation/fpgadataflow/insert_iodma.py`` (the IODMA's
stream is the node's padded stream width, its AXI-MM width ``gcd(transfer bits, axi_port_width)``);
``make_zynq_proj.py`` (``axi_port_width=64``; instances ``idma0``/``odma0``).
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, UnsupportedLayerError
from .package import package_readme

__all__ = [
    "AXI_PORT_WIDTH",
    "BOARD_FILE",
    "SHAPE_KEYS",
    "driver_settings",
    "io_shape_dict",
    "check_driver_settings",
    "write_emulated_board",
    "build_emulated_board",
]

#: The emulated board description inside a deployment package (pynq's "bitfile" for the stand-in).
BOARD_FILE = "emulate/board.json"
#: finn-plus' ZynqBuild default AXI-MM port width of the IODMAs (``make_zynq_proj.py``).
AXI_PORT_WIDTH = 64
#: The io_shape_dict entries that must agree between FINN's settings, ours and the emulated board.
SHAPE_KEYS = ("idt", "ishape_normal", "ishape_folded", "ishape_packed",
              "odt", "oshape_normal", "oshape_folded", "oshape_packed", "num_inputs", "num_outputs")


def _packed(folded: list[int], bits: int) -> list[int]:
    """FINN's packed shape: the innermost dimension as whole bytes (``finnpy_to_packed_bytearray``)."""
    return [*folded[:-1], -(-folded[-1] * bits // 8)]


def io_shape_dict(model: Any) -> dict[str, Any]:
    """``io_shape_dict`` of the single-input, single-output dataflow partition ``model`` (FINN's format)."""
    from finn.util.basic import getHWCustomOp

    if len(model.graph.input) != 1 or len(model.graph.output) != 1:
        raise UnsupportedLayerError(
            "the emulated board drives one input and one output DMA; this accelerator has "
            f"{len(model.graph.input)} inputs and {len(model.graph.output)} outputs."
        )
    i, o = model.graph.input[0].name, model.graph.output[0].name
    first, last = getHWCustomOp(model.find_consumer(i)), getHWCustomOp(model.find_producer(o))
    idt, odt = model.get_tensor_datatype(i), model.get_tensor_datatype(o)
    ifold = [int(d) for d in first.get_folded_input_shape()]
    ofold = [int(d) for d in last.get_folded_output_shape()]
    return {
        "idt": [f"DataType['{idt.name}']"],
        "idma_names": ["idma0"],
        "ishape_normal": [[int(d) for d in model.get_tensor_shape(i)]],
        "ishape_folded": [ifold],
        "ishape_packed": [_packed(ifold, idt.bitwidth())],
        "odt": [f"DataType['{odt.name}']"],
        "odma_names": ["odma0"],
        "oshape_normal": [[int(d) for d in model.get_tensor_shape(o)]],
        "oshape_folded": [ofold],
        "oshape_packed": [_packed(ofold, odt.bitwidth())],
        "num_inputs": 1,
        "num_outputs": 1,
        "number_of_external_weights": 0,
        "external_weights_input_shapes": {},
    }


def driver_settings(model: Any, clock_mhz: float) -> dict[str, Any]:
    """The whole ``settings.json`` that FINN's ``MakePYNQDriver`` writes for a ``FINNDMAOverlay`` design."""
    return {
        "driver_information": {
            "driver_type": "FINNDMAOverlay",
            "io_shape_dict": io_shape_dict(model),
            "external_weights": False,
            "runtime_weights": False,
            "platform": "zynq-iodma",
            "fclk_mhz": float(clock_mhz),
        },
        "experiment_information": {},
    }


def _norm(v: Any) -> Any:
    return json.loads(json.dumps(v))


def check_driver_settings(expected: dict[str, Any], given: dict[str, Any], given_name: str, expected_name: str) -> None:
    """Raise ``ConfigError`` (one sentence) at the first ``SHAPE_KEYS`` entry where two io_shape_dicts differ."""
    for key in SHAPE_KEYS:
        a, b = _norm(expected.get(key)), _norm(given.get(key))
        if a != b:
            raise ConfigError(
                f"{given_name} gives {key} = {b}, but {expected_name} needs {a}; the driver would pack or "
                "unpack the accelerator's data wrongly, so rebuild the package instead of running it."
            )


def _dma_params(shape: dict[str, Any], side: str) -> dict[str, Any]:
    """The IODMA of one side (``i`` or ``o``): stream width, AXI-MM width, words and bytes per frame."""
    packed = shape[f"{side}shape_packed"][0]
    width = 8 * int(packed[-1])
    words = int(np.prod(packed[1:-1]))
    transfer_bits = width * words
    return {"streamWidth": width, "intfWidth": math.gcd(transfer_bits, AXI_PORT_WIDTH),
            "words_per_frame": words, "bytes_per_frame": transfer_bits // 8}


def _ip_dict(shape: dict[str, Any]) -> dict[str, Any]:
    """pynq's ``ip_dict`` of the two IODMAs (AXI-lite windows as Vivado's address editor gives on Zynq-7000)."""
    ips = {}
    for k, (name, side, direction) in enumerate((("idma0", "i", "in"), ("odma0", "o", "out"))):
        ips[name] = {
            "fullpath": name, "type": f"xilinx.com:hls:{name}:1.0", "phys_addr": 0x4000_0000 + k * 0x1_0000,
            "addr_range": 0x1_0000, "state": None, "interrupts": {}, "gpio": {}, "mem_id": "s_axi_control",
            "parameters": {"direction": direction, **_dma_params(shape, side)},
        }
    return ips


def _spec_json(s: Any) -> dict[str, Any]:
    return {"tensor": s.tensor, "dtype": s.dtype.name, "folded_shape": list(s.folded_shape),
            "normal_shape": list(s.normal_shape), "bits": int(s.bits), "width": int(s.width), "pool_k2": int(s.pool_k2)}


def _write_sources(design: Any, rtl: Path) -> dict[str, Any]:
    """The design's simulation sources into ``rtl``; what ``hapfpga.deploy.emulate`` needs to rebuild them."""
    from ..rtlsim.design import ap_types_dir, hls_templates_dir
    from ..rtlsim.sources import write_sources

    src = design.sources
    write_sources(rtl, src.files, src.data)
    cxx = getattr(src, "cxx", {})
    for name, text in cxx.items():
        (rtl / name).write_text(text)
    known = {hls_templates_dir().resolve(): "hls_templates", ap_types_dir().resolve(): "ap_types"} if cxx else {}
    incs = [known.get(Path(d).resolve(), str(d)) for d in getattr(src, "include_dirs", [])]
    return {"files": src.ordered_names(), "data": sorted(src.data), "cxx": sorted(cxx), "include_dirs": incs,
            "top": design.top}


def _check_boundary(design: Any, shape: dict[str, Any]) -> None:
    """The simulated segment's first stream must be what the input DMA sends when no software head runs."""
    s = design.inputs[0]
    if design.head:
        return
    if list(s.folded_shape) != shape["ishape_folded"][0] or s.width != 8 * shape["ishape_packed"][0][-1]:
        raise ConfigError(
            f"the RTL's first layer takes folded shape {list(s.folded_shape)} in {s.width}-bit words, but the "
            f"driver settings send {shape['ishape_folded'][0]} packed as {shape['ishape_packed'][0]}; rebuild."
        )
    if s.pool_k2:
        raise UnsupportedLayerError("the accelerator starts with a max-pool, whose stream order FINN's driver does not "
                                    "produce; start the network with a convolution or a dense layer.")


def _check_input_head(pkg: Path, parent_path: str | Path | None) -> None:
    """The RTL design's graph must change the input layout before the accelerator as the package's does."""
    from .package import input_head
    from .sim import load_hw_model

    if parent_path is None:
        return
    perm, other = input_head(load_hw_model(parent_path))
    m = json.loads((pkg / "manifest.json").read_text())
    if (perm, other) != (m.get("input_transpose"), m.get("input_head_ops", [])):
        raise ConfigError(f"the RTL design's graph transposes its input by {perm} before the accelerator, the "
                          f"package's by {m.get('input_transpose')}; build both from the same model.")


def write_emulated_board(package_dir: str | Path, rtl_model_path: str | Path, *, clock_mhz: float,
                         parent_path: str | Path | None = None) -> Path:
    """Add ``emulate/`` (board description, RTL sources, partition model) to the package; return board.json.

    ``rtl_model_path``: the prepared dataflow partition (``hapfpga.rtlsim.prepare_design(...).model_path``).
    Writes ``driver/settings.json`` when the package has none (no Vivado build), else checks FINN's against it.
    """
    from ..rtlsim.design import build_design
    from .sim import load_hw_model

    pkg = Path(package_dir)
    _check_input_head(pkg, parent_path)
    model = load_hw_model(rtl_model_path)
    settings = driver_settings(model, clock_mhz)
    shape = settings["driver_information"]["io_shape_dict"]
    design = build_design(model)
    if len(design.inputs) != 1 or len(design.outputs) != 1:
        raise UnsupportedLayerError("the emulated board needs one simulated input and output stream; this design "
                                    f"has {len(design.inputs)} and {len(design.outputs)}.")
    _check_boundary(design, shape)
    emu = pkg / "emulate"
    if emu.exists():
        shutil.rmtree(emu)
    rtl = emu / "rtl"
    rtl.mkdir(parents=True)
    model.save(str(emu / "partition.onnx"))
    desc = {
        "format": 1, "clock_mhz": float(clock_mhz), "ip_dict": _ip_dict(shape), "io_shape_dict": shape,
        "rtl": _write_sources(design, rtl), "partition_model": "partition.onnx",
        "head": design.head, "tail": design.tail,
        "segment_inputs": [_spec_json(s) for s in design.inputs],
        "segment_outputs": [_spec_json(s) for s in design.outputs],
    }
    board = pkg / BOARD_FILE
    board.write_text(json.dumps(desc, indent=1) + "\n")
    _settings_into_package(pkg, settings)
    return board


def _settings_into_package(pkg: Path, settings: dict[str, Any]) -> None:
    """Ours as ``driver/settings.json`` when FINN wrote none; FINN's checked against ours when it did."""
    f = pkg / "driver" / "settings.json"
    ours = settings["driver_information"]["io_shape_dict"]
    if f.is_file():
        finn = json.loads(f.read_text())["driver_information"]["io_shape_dict"]
        check_driver_settings(ours, finn, "FINN's driver/settings.json", "the accelerator hapfpga built")
    else:
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(json.dumps(settings, indent=2) + "\n")
    m = json.loads((pkg / "manifest.json").read_text())
    m["driver_settings"] = "driver/settings.json"
    m["emulated_board"] = BOARD_FILE
    (pkg / "manifest.json").write_text(json.dumps(m, indent=2) + "\n")
    (pkg / "README.md").write_text(package_readme(m))


def build_emulated_board(package_dir: str | Path, qonnx_path: str | Path, folding_json: str | Path | None,
                         board: Any, clock_mhz: float, work_dir: str | Path, *,
                         specialize: dict[str, Any] | None = None) -> Path:
    """FINN's RTL design of ``qonnx_path`` with the folding ``folding_json`` (``hapfpga.rtlsim.prepare``, the
    design ``rtlsim`` simulates) as the emulated board of the package; returns ``emulate/board.json``.
    ``specialize``: the chosen design's specialize config (a mixed design): that design, or a one-sentence
    refusal where it has an HLS MVAU (``rtlsim.stage.write_design_folding``)."""
    from ..rtlsim.prepare import prepare_design
    from ..rtlsim.stage import write_design_folding

    work = Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    fold = write_design_folding(work, folding_json, specialize)
    design = prepare_design(qonnx_path, work, finn_board=board.finn_board, fpgapart=board.part,
                            clock_mhz=clock_mhz, folding_config_file=fold, specialize=specialize)
    return write_emulated_board(package_dir, design.model_path, clock_mhz=clock_mhz, parent_path=design.parent_path)
