"""Deployment package, simulated backend, board runtime (with a stand-in overlay), Vivado gate."""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from hapfpga.deploy import Measurement, open_accelerator
from hapfpga.deploy.package import RUNTIME_FILES
from hapfpga.finn.fullbuild import SUPPORTED_VIVADO, detect_xilinx
from hapfpga.stages import build_model as build

from .conftest import qonnx_outputs


def test_bitstream_without_vivado_exits_2_with_one_sentence(tfc_build):
    if detect_xilinx().supported:
        pytest.skip("Vivado is installed here")
    assert tfc_build["rc"] == 2
    msg = tfc_build["stderr"].strip().splitlines()
    errs = [m for m in msg if m.startswith("hapfpga: error:")]
    assert len(errs) == 1, tfc_build["stderr"]
    sentence = errs[0].removeprefix("hapfpga: error: ")
    assert sentence.endswith(".") and sentence.count(". ") == 0
    assert "XILINX_VIVADO is not set" in sentence and "2022.2 or 2024.2" in sentence
    assert "estimate-only FINN build" in sentence and "simulated backend" in sentence


def test_what_the_user_still_got(tfc_build):
    out: Path = tfc_build["out"]
    # FINN's estimate reports, the HW code finn-plus generates without Vivado, the package, the report
    assert (out / "finn" / "report" / "estimate_layer_cycles.json").is_file()
    cpp = list((out / "hw_code").rglob("top_MVAU_hls_*.cpp"))
    assert len(cpp) == 4  # TFC has four MVAUs
    assert (out / "report.html").is_file() and (out / "deploy.zip").is_file()
    summary = json.loads((out / "build.json").read_text())
    cyc = json.loads((out / "finn" / "report" / "estimate_layer_cycles.json").read_text())
    assert summary["finn_estimate"]["fps"] == pytest.approx(100e6 / max(cyc.values()), rel=1e-6)
    assert summary["outputs"]["bitfile"] is None
    m = json.loads((out / "deploy" / "manifest.json").read_text())
    assert m["bitfile"] is None and m["estimated_fps"] == summary["finn_estimate"]["fps"]
    # the summary table was printed
    assert "FINN estimate FPS" in tfc_build["stdout"]


def test_simulated_backend_matches_qonnx(tfc_build):
    acc = open_accelerator(tfc_build["out"] / "deploy", backend="sim")
    x = tfc_build["x"][:8]
    ref = qonnx_outputs(tfc_build["onnx"], x)
    got = acc.run(x)
    assert got.shape == ref.shape
    np.testing.assert_allclose(got, ref, atol=1e-4)
    assert (acc.predict(x) == ref.argmax(1)).all()


def test_measure_reports_throughput_and_accuracy(tfc_build):
    acc = open_accelerator(tfc_build["out"] / "deploy")  # auto: no bitfile -> simulated
    assert acc.backend == "simulated"
    x, y = acc.test_set()
    assert len(x) == 24
    m = acc.measure(x, y, batch_size=8, latency_repeats=2)
    assert isinstance(m, Measurement)
    assert m.accuracy == pytest.approx(18 / 24)  # 6 labels were made wrong on purpose
    assert m.fps > 0 and m.latency_ms > 0 and m.n == 24
    assert "throughput" in str(m) and "accuracy 0.7500" in str(m)


def test_run_script_from_the_unzipped_package(tfc_build, tmp_path):
    with zipfile.ZipFile(tfc_build["out"] / "deploy.zip") as z:
        z.extractall(tmp_path)
    pkg = tmp_path / "deploy"
    assert (pkg / "hapfpga_deploy" / "board.py").is_file() and (pkg / "model" / "hw_model.onnx").is_file()
    r = subprocess.run([sys.executable, "run_on_board.py", "--backend", "sim"], cwd=pkg, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert re.search(r"throughput [\d,.]+ FPS", r.stdout) and "accuracy 0.7500" in r.stdout
    assert json.loads((pkg / "measurement_simulated.json").read_text())["accuracy"] == pytest.approx(0.75)


def test_shipped_runtime_imports_only_numpy_and_stdlib(tfc_build):
    rt = tfc_build["out"] / "deploy" / "hapfpga_deploy"
    allowed_top = {"numpy", "pynq", "finn_plus_driver", "__future__", *sys.stdlib_module_names}
    for f in RUNTIME_FILES:
        tree = ast.parse((rt / f).read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            else:
                continue
            for n in names:
                assert n.split(".")[0] in allowed_top, f"{f} imports {n}"
    # and it imports with torch, finn, qonnx and onnx unavailable
    code = ("import sys\nfor m in ('torch','finn','qonnx','onnx','brevitas','hapfpga'): sys.modules[m] = None\n"
            f"sys.path.insert(0, {str(rt.parent)!r})\n"
            "import hapfpga_deploy\nfrom hapfpga_deploy import BoardAccelerator, Measurement\nprint('ok')\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr


class _StandInOverlay:
    """Stands in for finn-plus-driver's FINNDMAOverlay: checks the fixed hardware batch, computes with FINN."""

    calls: list[tuple[int, ...]] = []

    def __init__(self, bitfile_name, platform, io_shape_dict, batch_size, fclk_mhz, download, runtime_weight_dir,
                 runtime_weights):
        assert Path(bitfile_name).is_file() and platform == "zynq-iodma"
        self.batch_size = batch_size
        self.io_shape_dict = io_shape_dict
        self.sim = open_accelerator(Path(bitfile_name).parent.parent, backend="sim")
        _StandInOverlay.calls = []

    def execute(self, x):
        assert x.shape == (self.batch_size, *self.io_shape_dict["ishape_normal"][0][1:])
        _StandInOverlay.calls.append(x.shape)
        return self.sim._run_acc(x)


def test_board_runtime_batches_and_pads(tfc_build, tmp_path):
    import shutil

    from hapfpga.deploy.board import BoardAccelerator

    pkg = tmp_path / "deploy"
    shutil.copytree(tfc_build["out"] / "deploy", pkg)
    (pkg / "bitfile").mkdir()
    (pkg / "bitfile" / "finn-accel.bit").write_bytes(b"not a real bitstream")
    (pkg / "driver").mkdir()
    settings = {"driver_information": {"driver_type": "FINNDMAOverlay", "platform": "zynq-iodma",
                                       "fclk_mhz": 100.0, "io_shape_dict": {"ishape_normal": [[4, 1, 28, 28]]}}}
    (pkg / "driver" / "settings.json").write_text(json.dumps(settings))
    m = json.loads((pkg / "manifest.json").read_text())
    m.update(bitfile="bitfile/finn-accel.bit", driver_settings="driver/settings.json")
    (pkg / "manifest.json").write_text(json.dumps(m))

    board = BoardAccelerator(pkg, batch_size=4, overlay_cls=_StandInOverlay)
    x = tfc_build["x"][:10]
    pred = board.predict(x, batch_size=10)
    assert len(_StandInOverlay.calls) == 3  # 4 + 4 + (2 padded to 4)
    ref = qonnx_outputs(tfc_build["onnx"], x).argmax(1)
    assert (pred == ref).all()


def test_board_backend_needs_a_bitfile(tfc_build):
    with pytest.raises(FileNotFoundError, match="simulated backend"):
        open_accelerator(tfc_build["out"] / "deploy", backend="pynq")


def _fake_xilinx(root: Path, version: str, hls: bool = True) -> dict[str, str]:
    vd = root / "Vivado" / version
    (vd / "bin").mkdir(parents=True)
    (vd / "bin" / "vivado").write_text("#!/bin/sh\n")
    env = {"XILINX_VIVADO": str(vd)}
    if hls:
        hd = root / "Vitis_HLS" / version
        (hd / "bin").mkdir(parents=True)
        (hd / "bin" / "vitis_hls").write_text("#!/bin/sh\n")
        env["XILINX_HLS"] = str(hd)
    return env


@pytest.mark.parametrize("version", [f"{y}.{m}" for y, m in SUPPORTED_VIVADO])
def test_detect_supported_vivado(tmp_path, version):
    t = detect_xilinx(_fake_xilinx(tmp_path, version))
    assert t.supported and t.missing() is None and t.version_str == version


def test_detect_unsupported_or_incomplete(tmp_path):
    assert "XILINX_VIVADO is not set" in detect_xilinx({}).missing()
    old = detect_xilinx(_fake_xilinx(tmp_path / "a", "2023.1"))
    assert not old.supported and "2023.1" in old.missing()
    no_hls = detect_xilinx(_fake_xilinx(tmp_path / "b", "2022.2", hls=False))
    assert not no_hls.supported and "Vitis HLS" in no_hls.missing()


def test_bitstream_gate_names_vivado_version_problem(tfc_build, tmp_path):
    """A Vivado install in a version finn-plus does not support: exits the same way, naming the version."""
    from hapfpga.boards import load_board
    from hapfpga.errors import ToolMissingError

    env = _fake_xilinx(tmp_path / "x", "2023.1")
    with pytest.raises(ToolMissingError, match=r"2023\.1") as ei:
        build(tfc_build["onnx"], tmp_path / "out", load_board("pynq-z2"), bitstream=True, codegen=False, env=env)
    assert str(ei.value).startswith("A bitstream needs")
    assert (tmp_path / "out" / "deploy" / "manifest.json").is_file()


@pytest.mark.vivado
def test_full_flow_with_vivado(tfc_build, tmp_path):
    """On a machine with Vivado: the real bitfile, FINN's driver settings and the package with both."""
    from hapfpga.boards import load_board

    assert os.environ.get("XILINX_VIVADO")
    outs = build(tfc_build["onnx"], tmp_path / "out", load_board("pynq-z2"), target_fps=20000, bitstream=True,
                 rtlsim=True, test_data=(tfc_build["x"], tfc_build["y"]))
    assert outs.bitfile is not None and outs.bitfile.stat().st_size > 1_000_000
    assert outs.deploy.has_bitfile and (outs.deploy.path / "driver" / "settings.json").is_file()
    assert list((outs.deploy.path / "bitfile").glob("*.hwh"))


def test_estimate_only_build_succeeds(tfc_build, tmp_path, capsys):
    """Without --bitstream/--rtlsim nothing needs Vivado: exit 0, FINN reports, package, report."""
    from hapfpga.cli import main

    rc = main(["build", str(tfc_build["onnx"]), "--out", str(tmp_path / "b"), "--no-codegen"])
    assert rc == 0
    out = tmp_path / "b"
    assert not (out / "hw_code").exists() or not any((out / "hw_code").iterdir())
    assert (out / "deploy" / "manifest.json").is_file() and (out / "report.html").is_file()
    # no folding given: FINN's defaults (PE=SIMD=1), slower than the SetFolding build of the fixture
    slow = json.loads((out / "build.json").read_text())["finn_estimate"]["fps"]
    fast = json.loads((tfc_build["out"] / "build.json").read_text())["finn_estimate"]["fps"]
    assert slow < fast
    assert "hapfpga: error" not in capsys.readouterr().err


@pytest.mark.slow
def test_rtlsim_without_vivado_uses_verilator(tfc_build, tmp_path):
    """--rtlsim without Vivado: hapfpga's Verilator simulation of FINN's RTL, bit-exact, cycles near FINN's estimate."""
    from hapfpga.boards import load_board

    if detect_xilinx().supported:
        pytest.skip("Vivado is installed: the FINN flow runs instead")
    outs = build(tfc_build["onnx"], tmp_path / "out", load_board("pynq-z2"), rtlsim=True, codegen=False,
                 test_data=(tfc_build["x"], tfc_build["y"]), rtlsim_frames=4)
    r = outs.rtlsim
    assert r["simulator"].startswith("verilator") and r["frames"] == 4
    assert r["exact"] and r["passed"]
    est = outs.finn_estimate["max_cycles"]
    assert 0.8 * est <= r["cycles_per_frame"] <= 1.25 * est
    assert "RTL simulation" in (tmp_path / "out" / "report.html").read_text()
