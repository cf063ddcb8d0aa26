"""Assemble the deployment package ``DIR/deploy/`` (+ ``DIR/deploy.zip``) from a FINN build.

Layout (what FINN's ``step_deployment_package`` gives, plus ours)::

    deploy/
      bitfile/        *.bit + *.hwh           (only after a Vivado build)
      driver/         FINN's settings.json     (only after a Vivado build; driver code = finn-plus-driver)
      hapfpga_deploy/ our thin runtime: api.py + board.py (numpy + pynq only)
      model/hw_model.onnx                      FINN's HW graph, for the simulated backend
      test_data.npz   x, y                     (a slice of the test set, dataset domain)
      manifest.json   shapes, datatypes, input scale, clock, FINN-estimated FPS, what is present
      run_on_board.py measure throughput, latency and accuracy (board, or simulated on a host)
      README.md
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError
from .api import MANIFEST

__all__ = ["DeployPackage", "make_deployment_package", "HW_MODEL_STEP", "PARTITION_STEP", "RUNTIME_FILES"]

#: The FINN step whose saved model the simulated backend executes: the graph right after FINN's
#: conversion to HW layers, the one ``hapfpga.verify`` checks against Brevitas (stage ``finn_hw``).
#: Its generic HW layers run in Python with the arithmetic of their HLS/RTL specialisations, and
#: folding does not change what a layer computes.
HW_MODEL_STEP = "step_convert_to_hw"
#: The accelerator proper: FINN's dataflow partition (what the bitstream computes).
PARTITION_STEP = "step_create_dataflow_partition"

#: FINN's graph around the partition (what runs before and after the accelerator), next to the step models.
PARENT_MODEL = "dataflow_parent.onnx"

#: Modules of hapfpga.deploy that go to the board (they import numpy and pynq only).
RUNTIME_FILES: tuple[str, ...] = ("api.py", "board.py")

_SHIPPED_INIT = '''"""hapfpga's on-board runtime (numpy + pynq; FINN's driver is the finn-plus-driver package)."""

from pathlib import Path

from .api import Accelerator, Measurement, load_manifest
from .board import BoardAccelerator

__all__ = ["Accelerator", "BoardAccelerator", "Measurement", "load_manifest", "open_accelerator"]


def open_accelerator(package_dir=None, backend="auto", **kwargs):
    """The board accelerator when pynq is importable (backend 'pynq'), else the host simulation ('sim');
    'emulate': FINN's driver on an emulated board around the Verilator simulation of the RTL (host only)."""
    package_dir = Path(package_dir) if package_dir is not None else Path(__file__).resolve().parent.parent
    if backend == "auto":
        try:
            import pynq  # noqa: F401
            backend = "pynq"
        except ImportError:
            backend = "sim"
    if backend == "pynq":
        return BoardAccelerator(package_dir, **kwargs)
    if backend == "emulate":
        from hapfpga.deploy.emulate import EmulatedAccelerator  # host only: hapfpga, finn-plus-driver, verilator

        return EmulatedAccelerator(package_dir, **kwargs)
    from hapfpga.deploy.sim import SimulatedAccelerator  # host only: needs hapfpga + finn-plus

    return SimulatedAccelerator(package_dir)
'''

_RUN_SCRIPT = '''"""Measure the deployed network: python run_on_board.py [--backend auto|pynq|sim|emulate] [--batch-size N].

--backend emulate (a host with hapfpga, finn-plus-driver and verilator): FINN's driver runs against an
emulated board whose DMAs stream into the Verilator simulation of the accelerator's RTL.
"""

import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from hapfpga_deploy import open_accelerator  # noqa: E402

p = argparse.ArgumentParser(description=__doc__)
p.add_argument("--backend", default="auto", choices=["auto", "pynq", "sim", "emulate"])
p.add_argument("--batch-size", type=int, default=None)
a = p.parse_args()
if a.backend == "emulate":
    from hapfpga.deploy.emulate import emulate_report, format_report
    from hapfpga.errors import HapError

    try:
        rep = emulate_report(HERE, batch_size=a.batch_size)
    except HapError as e:
        sys.exit(f"run_on_board.py: error: {e}")
    print(format_report(rep))
    (HERE / "measurement_emulate.json").write_text(json.dumps(rep, indent=2))
    sys.exit(0 if rep["equal_to_sim"] == rep["n"] else 1)
acc = open_accelerator(HERE, backend=a.backend)
x, y = acc.test_set()
m = acc.measure(x, y, batch_size=a.batch_size)
print(m)
(HERE / f"measurement_{m.backend}.json").write_text(json.dumps(m.as_dict(), indent=2))
'''


@dataclass(frozen=True)
class DeployPackage:
    """Where the package went and what it holds."""

    path: Path
    zip_path: Path
    has_bitfile: bool
    manifest: dict[str, Any]


def _output_tail(hw: Any, accel_out: str) -> dict[str, Any] | None:
    """``output = acc · mul + add`` between the accelerator's output ``accel_out`` and the graph output.

    The board runtime applies it to what the bitstream returns, so that both backends return the
    same outputs. None when the accelerator output is the graph output.
    """
    name = hw.graph.output[0].name
    mul, add = np.ones(1), np.zeros(1)
    chain = []
    while name != accel_out:
        node = hw.find_producer(name)
        if node is None or node.op_type not in ("Mul", "Add"):
            raise ConfigError(f"The FINN graph has a {node.op_type if node else 'missing'} node after the "
                              "accelerator that hapfpga's runtime cannot apply; end the model in Mul/Add or integers.")
        consts = [hw.get_initializer(i) for i in node.input]
        var = [i for i, c in zip(node.input, consts, strict=True) if c is None]
        const = [c for c in consts if c is not None]
        if len(var) != 1 or len(const) != 1:
            raise ConfigError(f"Node {node.name} after the accelerator has no single constant operand.")
        chain.append((node.op_type, np.asarray(const[0], dtype=np.float64)))
        name = var[0]
    if not chain:
        return None
    for op, c in reversed(chain):
        if op == "Mul":
            mul, add = mul * c, add * c
        else:
            add = add + c
    return {"mul": mul.reshape(-1).tolist(), "add": add.reshape(-1).tolist()}


def input_head(parent: Any) -> tuple[list[int] | None, list[str]]:
    """What the graph does between its input and the accelerator: (one permutation for a chain of
    ``Transpose`` nodes or None, op types of any other nodes there, which the board runtime cannot apply)."""
    name, perm, other = parent.graph.input[0].name, None, []
    while True:
        node = parent.find_consumer(name)
        if node is None or node.op_type == "StreamingDataflowPartition":
            return perm, other
        if node.op_type == "Transpose":
            p = [int(v) for v in next(a.ints for a in node.attribute if a.name == "perm")]
            perm = p if perm is None else [perm[k] for k in p]
        else:
            other.append(node.op_type)
        name = node.output[0]


def _hw_model_info(path: Path, partition: Path | None) -> dict[str, Any]:
    from .sim import load_hw_model

    m = load_hw_model(path)
    i, o = m.graph.input[0].name, m.graph.output[0].name
    idt, odt = m.get_tensor_datatype(i), m.get_tensor_datatype(o)
    tail, perm, other = None, None, []
    if partition is not None and partition.is_file():
        p = load_hw_model(partition)
        tail = _output_tail(m, p.graph.output[0].name)
        parent = partition.parent / PARENT_MODEL
        if parent.is_file():
            perm, other = input_head(load_hw_model(parent))
    return {
        "output_tail": tail,
        "input_transpose": perm,
        "input_head_ops": other,
        "input_shape": [int(d) for d in m.get_tensor_shape(i)],
        "output_shape": [int(d) for d in m.get_tensor_shape(o)],
        "input_dtype": idt.get_canonical_name(),
        "output_dtype": odt.get_canonical_name(),
        "input_integer": bool(idt.is_integer()),
        "output_integer": bool(odt.is_integer()),
    }


def _copy_runtime(out: Path) -> None:
    """Our runtime (``hapfpga_deploy``) and the on-board script into the package."""
    rt = out / "hapfpga_deploy"
    rt.mkdir()
    here = Path(__file__).resolve().parent
    for f in RUNTIME_FILES:
        shutil.copyfile(here / f, rt / f)
    (rt / "__init__.py").write_text(_SHIPPED_INIT)
    (out / "run_on_board.py").write_text(_RUN_SCRIPT)


def _copy_finn_outputs(finn_dir: Path, out: Path) -> tuple[str | None, bool]:
    """FINN's outputs when Vivado made them: (the bitfile's path in the package or None, whether a driver came)."""
    bitfile = None
    if (finn_dir / "bitfile").is_dir():
        shutil.copytree(finn_dir / "bitfile", out / "bitfile")
        bits = sorted((out / "bitfile").glob("*.bit"))
        bitfile = str(bits[0].relative_to(out)) if bits else None
    has_driver = (finn_dir / "driver" / "settings.json").is_file()
    if has_driver:
        shutil.copytree(finn_dir / "driver", out / "driver")
    return bitfile, has_driver


def make_deployment_package(
    out_dir: str | Path,
    finn_dir: str | Path,
    *,
    board: Any,
    clock_mhz: float,
    x_test: np.ndarray | None = None,
    y_test: np.ndarray | None = None,
    n_test: int = 200,
    input_scale: float | None = None,
    batch_size: int = 10,
    estimated_fps: float | None = None,
    zip_package: bool = True,
) -> DeployPackage:
    """Build ``out_dir`` (normally ``DIR/deploy``) from the FINN output dir ``finn_dir``.

    ``x_test``/``y_test`` (dataset domain) are shipped for the accuracy check (first ``n_test``);
    ``input_scale`` maps dataset floats to the accelerator input (see ``hapfpga.deploy.api``); by
    default 255 when the graph input is UINT8 (``hapfpga.export`` annotates raw pixels so), else 1.
    The bitfile and FINN's driver settings are included when the FINN build produced them
    (``finn_dir/bitfile``, ``finn_dir/driver``).
    """
    finn_dir = Path(finn_dir)
    out = Path(out_dir)
    hw_src = finn_dir / "intermediate_models" / f"{HW_MODEL_STEP}.onnx"
    if not hw_src.is_file():
        raise ConfigError(f"{hw_src} is missing; run the FINN build (hapfpga build) into {finn_dir} first.")
    if out.exists():
        shutil.rmtree(out)
    (out / "model").mkdir(parents=True)
    shutil.copyfile(hw_src, out / "model" / "hw_model.onnx")

    _copy_runtime(out)
    bitfile, has_driver = _copy_finn_outputs(finn_dir, out)

    manifest: dict[str, Any] = {
        "format": 1,
        "board": getattr(board, "name", str(board)),
        "finn_board": getattr(board, "finn_board", str(board)),
        "part": getattr(board, "part", None),
        "clock_mhz": float(clock_mhz),
        "hw_model": "model/hw_model.onnx",
        "bitfile": bitfile,
        "driver_settings": "driver/settings.json" if has_driver else None,
        "batch_size": int(batch_size),
        "estimated_fps": None if estimated_fps is None else float(estimated_fps),
        **_hw_model_info(out / "model" / "hw_model.onnx", finn_dir / "intermediate_models" / f"{PARTITION_STEP}.onnx"),
    }
    if input_scale is None:
        input_scale = 255.0 if manifest["input_dtype"] == "UINT8" else 1.0
    manifest["input_scale"] = float(input_scale)
    manifest["output_kind"] = ("label" if manifest["output_integer"] and manifest["output_shape"][-1] == 1
                               else "scores")
    if x_test is not None:
        n = min(int(n_test), len(x_test))
        y = np.zeros(n, np.int64) if y_test is None else np.asarray(y_test[:n]).astype(np.int64)
        np.savez_compressed(out / "test_data.npz", x=np.asarray(x_test[:n], np.float32), y=y)
        manifest["test_data"] = "test_data.npz"
        manifest["n_test"] = n
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    (out / "README.md").write_text(package_readme(manifest))

    zip_path = out.with_suffix(".zip")
    if zip_package:
        if zip_path.exists():
            zip_path.unlink()
        shutil.make_archive(str(out), "zip", root_dir=str(out.parent), base_dir=out.name)
    return DeployPackage(path=out, zip_path=zip_path, has_bitfile=bitfile is not None, manifest=manifest)


def package_readme(m: dict[str, Any]) -> str:
    board_part = ("On the board (PYNQ image, `pip install finn-plus-driver`):\n\n"
                  "    python run_on_board.py            # loads bitfile/, prints FPS, latency, accuracy\n"
                  if m["bitfile"] else
                  "This package has no bitfile: it was built without Vivado. Rebuild with\n"
                  "`hapfpga build ... --bitstream` on a machine with Vivado to run it on the board.\n")
    return (f"# hapfpga deployment package — {m['board']} ({m['part']}) @ {m['clock_mhz']:g} MHz\n\n"
            f"{board_part}\n"
            "On a host with hapfpga installed (simulated backend, FINN's Python execution):\n\n"
            "    python run_on_board.py --backend sim\n\n"
            + ("and on the emulated board (FINN's driver, emulated DMAs, the RTL in Verilator):\n\n"
               "    python run_on_board.py --backend emulate\n\n" if m.get("emulated_board") else "")
            +
            f"Input: {m['input_shape']} {m['input_dtype']} (dataset floats × {m['input_scale']:g}); "
            f"output: {m['output_shape']} {m['output_dtype']} ({m['output_kind']}).\n"
            f"FINN-estimated throughput: {m['estimated_fps']} FPS.\n")
