"""Bad inputs end in one sentence: exit 2, one `hapfpga: error:` line on stderr naming cause and fix,
no traceback, and no output file left looking complete.

Each case builds its inputs in a temporary folder and runs the real CLI entry point in-process
(a few cases also through a real subprocess at the end).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import yaml

from hapfpga.cli import main

REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Case:
    id: str
    make: Callable[[Path, dict], list[str]]  # (tmp dir, fixtures) -> argv
    match: str  # regex the error sentence must contain


def _cfg(tmp: Path, **sections) -> str:
    base = {"board": "pynq-z2", "model": {"name": "digits_cnn"}, "data": {"name": "digits"},
            "train": {"epochs": 1}, "verify": {"n_samples": 8}}
    for k, v in sections.items():
        if v is None:
            base.pop(k, None)
        elif isinstance(v, dict) and isinstance(base.get(k), dict):
            base[k] = {**base[k], **v}
        else:
            base[k] = v
    p = tmp / "cfg.yaml"
    p.write_text(yaml.safe_dump(base))
    return str(p)


def _run(tmp: Path, **sections) -> list[str]:
    return ["run", _cfg(tmp, **sections), "--out", str(tmp / "out")]


def _npz(tmp: Path, **over) -> str:
    rng = np.random.default_rng(0)
    d = {
        "x_train": rng.random((40, 1, 8, 8), dtype=np.float32),
        "y_train": np.arange(40) % 10,
        "x_test": rng.random((20, 1, 8, 8), dtype=np.float32),
        "y_test": np.arange(20) % 10,
    }
    for k, v in over.items():
        if v is None:
            d.pop(k)
        else:
            d[k] = v
    p = tmp / "data.npz"
    np.savez(p, **d)
    return str(p)


def _npz_run(tmp: Path, **over) -> list[str]:
    return _run(tmp, data={"name": "npz", "path": _npz(tmp, **over)})


def _user_model(tmp: Path, body: str) -> str:
    f = tmp / "mymodel.py"
    f.write_text(body)
    return f"{f}:make"


LSTM_MODEL = """
import torch.nn as nn
class M(nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = nn.LSTM(8, 8, batch_first=True)
        self.fc = nn.Linear(8, 10)
    def forward(self, x):
        y, _ = self.rnn(x.reshape(x.shape[0], 8, 8))
        return self.fc(y[:, -1])
def make(input_shape, num_classes, quant=None, **kw):
    return M()
"""

FIXED_SHAPE_MODEL = """
import torch.nn as nn
from brevitas.nn import QuantLinear, QuantIdentity
def make(input_shape, num_classes, quant=None, **kw):
    return nn.Sequential(QuantIdentity(return_quant_tensor=True), nn.Flatten(), QuantLinear(100, num_classes, bias=False))
"""


def _folding(tmp: Path, fx: dict, mutate) -> str:
    raw = json.loads(Path(fx["folding"]).read_text())
    mutate(raw)
    p = tmp / "fold.json"
    p.write_text(json.dumps(raw))
    return str(p)


def _first(raw: dict, prefix: str) -> str:
    return next(k for k in raw if k.startswith(prefix))


def _tiny_board(tmp: Path) -> str:
    src = (REPO / "boards" / "pynq-z2.yaml").read_text()
    src = re.sub(r"LUT: 53200", "LUT: 100", src)
    p = tmp / "tiny.yaml"
    p.write_text(src)
    return str(p)


def _truncated(tmp: Path, fx: dict) -> str:
    data = Path(fx["onnx"]).read_bytes()
    p = tmp / "trunc.onnx"
    p.write_bytes(data[: len(data) // 3])
    return str(p)


def _plain_onnx(tmp: Path) -> str:
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    g = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [x], [y])
    p = tmp / "plain.onnx"
    onnx.save(helper.make_model(g), p)
    return str(p)


def _file(tmp: Path, name: str, text: str) -> str:
    p = tmp / name
    p.write_text(text)
    return str(p)


CASES = [
    # -- config files ---------------------------------------------------------------------------------------------
    Case("config-missing", lambda t, fx: ["run", str(t / "nope.yaml")], r"does not exist"),
    Case("config-malformed-yaml", lambda t, fx: ["run", _file(t, "c.yaml", "model: [x\n")], r"not valid YAML"),
    Case("config-not-mapping", lambda t, fx: ["run", _file(t, "c.yaml", "- a\n- b\n")], r"must hold a mapping"),
    Case("config-unknown-key", lambda t, fx: _run(t, modle={"name": "x"}), r"Unknown config key 'modle'"),
    Case("config-unknown-nested-key", lambda t, fx: _run(t, train={"epoch": 3}), r"'train\.epoch'"),
    Case("config-wrong-type", lambda t, fx: _run(t, train={"epochs": "ten"}), r"'train\.epochs' must be an integer"),
    Case("config-bad-choice", lambda t, fx: _run(t, data={"name": "imagenet"}), r"'data\.name'.*choose one of"),
    Case("config-bits-range", lambda t, fx: _run(t, model={"weight_bits": 0}), r"'model\.weight_bits'"),
    Case("config-fps-missing", lambda t, fx: _run(t, folding={"mode": "fps"}), r"'folding\.fps'"),
    Case("unknown-board", lambda t, fx: _run(t, board="pynq-z9"), r"Unknown board 'pynq-z9'"),
    Case("pruning-ratio-range", lambda t, fx: _run(t, pruning={"method": "uniform", "target": "ratio", "ratio": 1.5}),
         r"pruning\.ratio"),
    Case("pruning-unknown-key", lambda t, fx: _run(t, pruning={"metod": "greedy"}), r"'pruning\.metod'"),
    Case("out-dir-not-writable", lambda t, fx: ["run", _cfg(t), "--out", _file(t, "f", "") + "/sub"],
         r"not writable"),
    # -- models ---------------------------------------------------------------------------------------------------
    Case("unknown-model", lambda t, fx: _run(t, model={"name": "resnet9000"}), r"resnet9000"),
    Case("user-model-file-missing", lambda t, fx: _run(t, model={"name": str(t / "none.py") + ":make"}),
         r"none\.py"),
    Case("user-model-unsupported-layer", lambda t, fx: _run(t, model={"name": _user_model(t, LSTM_MODEL)}),
         r"LSTM"),
    Case("input-shape-mismatch", lambda t, fx: _run(t, model={"name": _user_model(t, FIXED_SHAPE_MODEL)}),
         r"shape"),
    # -- datasets -------------------------------------------------------------------------------------------------
    Case("npz-path-missing", lambda t, fx: _run(t, data={"name": "npz"}), r"data\.path|path"),
    Case("npz-file-missing", lambda t, fx: _run(t, data={"name": "npz", "path": str(t / "no.npz")}), r"no\.npz"),
    Case("npz-wrong-keys", lambda t, fx: _npz_run(t, y_test=None), r"y_test"),
    Case("npz-wrong-dtype", lambda t, fx: _npz_run(t, x_train=np.zeros((40, 1, 8, 8), dtype=np.int64)), r"float32|dtype"),
    Case("npz-nan", lambda t, fx: _npz_run(t, x_test=np.full((20, 1, 8, 8), np.nan, dtype=np.float32)), r"NaN"),
    Case("npz-out-of-range", lambda t, fx: _npz_run(t, x_train=np.full((40, 1, 8, 8), 3.0, dtype=np.float32)),
         r"\[0, ?1\]|range"),
    Case("npz-labels-out-of-range", lambda t, fx: _npz_run(t, y_train=np.arange(40) % 10 - 1), r"label"),
    Case("npz-empty", lambda t, fx: _npz_run(t, x_test=np.zeros((0, 1, 8, 8), np.float32),
                                             y_test=np.zeros((0,), np.int64)), r"empty|no "),
    Case("npz-shape-mismatch", lambda t, fx: _npz_run(t, x_test=np.zeros((20, 1, 7, 7), np.float32)), r"shape"),
    Case("npz-length-mismatch", lambda t, fx: _npz_run(t, y_train=np.arange(39) % 10), r"40|39|length|samples"),
    Case("mnist-folder-missing-files", lambda t, fx: _run(t, data={"name": "mnist", "path": str(t)}), r"MNIST|mnist"),
    Case("cifar-folder-missing", lambda t, fx: _run(t, data={"name": "cifar10", "path": str(t / "c")}),
         r"CIFAR|cifar"),
    # -- ONNX / folding files for estimate and fold ---------------------------------------------------------------------
    Case("onnx-not-a-model", lambda t, fx: ["estimate", _file(t, "m.onnx", "hello")], r"m\.onnx"),
    Case("onnx-truncated", lambda t, fx: ["estimate", _truncated(t, fx)], r"trunc\.onnx"),
    Case("onnx-not-qonnx", lambda t, fx: ["estimate", _plain_onnx(t)], r"plain\.onnx|QONNX|Relu"),
    Case("folding-not-json", lambda t, fx: ["estimate", fx["onnx"], "--folding", _file(t, "f.json", "{oops")],
         r"f\.json"),
    Case("folding-unknown-node", lambda t, fx: ["estimate", fx["onnx"], "--folding",
                                                _folding(t, fx, lambda r: r.update({"MVAU_hls_99": {"PE": 1}}))],
         r"MVAU_hls_99"),
    Case("folding-pe-not-divisor", lambda t, fx: ["estimate", fx["onnx"], "--folding",
                                                  _folding(t, fx, lambda r: r[_first(r, "MVAU")].update({"PE": 7}))],
         r"PE"),
    Case("estimate-unknown-board", lambda t, fx: ["estimate", fx["onnx"], "--board", "zedboard9"], r"zedboard9"),
    Case("fold-infeasible-fps", lambda t, fx: ["fold", fx["onnx"], "--fps", "1e12", "--out", str(t / "f.json")],
         r"FPS|fps"),
    Case("fold-infeasible-budget", lambda t, fx: ["fold", fx["onnx"], "--board", _tiny_board(t), "--out",
                                                  str(t / "f.json")], r"LUT"),
    Case("bad-clock", lambda t, fx: ["estimate", fx["onnx"], "--clock-mhz", "-5"], r"clock"),
    Case("bitstream-without-vivado", lambda t, fx: ["build", fx["onnx"], "--board", "pynq-z2", "--folding",
                                                    fx["folding"], "--out", str(t / "b"), "--bitstream"],
         r"Vivado"),
    Case("rtlsim-not-onnx", lambda t, fx: ["rtlsim", _file(t, "m.onnx", "hello"), "--out", str(t / "r")], r"m\.onnx"),
    Case("rtlsim-not-qonnx", lambda t, fx: ["rtlsim", _plain_onnx(t), "--out", str(t / "r")], r"plain\.onnx|QONNX"),
]


@pytest.fixture(scope="module")
def fx(tmp_path_factory, brevitas_export):
    """A real QONNX export (brevitas_examples TFC-w2a2, untrained) and a legal folding file for it."""
    d = tmp_path_factory.mktemp("fx")
    onnx_path = brevitas_export("tfc_2w2a", (1, 1, 28, 28), d / "tfc.onnx")
    fold = d / "fold.json"
    assert main(["fold", str(onnx_path), "--board", "pynq-z2", "--out", str(fold)]) == 0
    return {"onnx": str(onnx_path), "folding": str(fold)}


def test_at_least_thirty_cases():
    assert len(CASES) >= 30
    assert len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case, tmp_path, fx, capsys, monkeypatch):
    monkeypatch.delenv("XILINX_VIVADO", raising=False)
    argv = case.make(tmp_path, fx)
    capsys.readouterr()
    try:
        rc = main(argv)
    except SystemExit as e:  # argparse usage errors
        rc = e.code
    err = capsys.readouterr().err
    assert rc == 2, f"exit {rc}; stderr: {err[-1500:]}"
    assert "Traceback" not in err
    errors = [ln for ln in err.splitlines() if ln.startswith("hapfpga: error:")]
    assert len(errors) == 1, err[-1500:]
    msg = errors[0][len("hapfpga: error:"):].strip()
    assert re.search(case.match, msg), msg
    # one sentence: ends with a full stop and has no full stop followed by a capital in between
    assert msg.endswith("."), msg
    # no output left looking complete
    out = tmp_path / "out"
    assert not (out / "report.json").exists()
    assert not (out / "final.qonnx.onnx").exists()


def test_real_process_exit_code_and_stderr(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "hapfpga.cli", "run", str(tmp_path / "missing.yaml")],
                          capture_output=True, text=True, cwd=REPO, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and proc.stderr.startswith("hapfpga: error:")


def test_internal_error_exit_1_with_log(tmp_path, monkeypatch, capsys):
    import hapfpga.commands.boards as boards_cmd

    def boom(args):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(boards_cmd, "run", boom)
    assert main(["boards"]) == 1
    err = capsys.readouterr().err
    assert "internal error" in err and "Traceback" not in err
    log = Path(re.search(r"traceback is in (\S+)\.$", err.strip()).group(1))
    assert "ZeroDivisionError" in log.read_text()


#: FINN leaves the float average pool between two HW layers in software (step_create_dataflow_partition fails).
FINN_UNCONVERTIBLE_MODEL = """
import torch.nn as nn
from brevitas.nn import QuantConv2d, QuantLinear, QuantReLU
def make(input_shape, num_classes, quant=None, **kw):
    return nn.Sequential(
        QuantConv2d(1, 8, 3, weight_bit_width=2, bias=False), nn.BatchNorm2d(8), QuantReLU(bit_width=2),
        nn.AvgPool2d(2), nn.Flatten(), QuantLinear(72, num_classes, weight_bit_width=2, bias=False))
"""


def test_model_finn_cannot_convert_is_a_user_error(tmp_path, capsys):
    """A model that would train and export but that FINN cannot convert stops with exit 2, before training."""
    rc = main(_run(tmp_path, model={"name": _user_model(tmp_path, FINN_UNCONVERTIBLE_MODEL)}))
    err = capsys.readouterr().err
    assert rc == 2, err[-1500:]
    assert "Traceback" not in err
    errors = [ln for ln in err.splitlines() if ln.startswith("hapfpga: error:")]
    assert len(errors) == 1 and "FINN cannot build" in errors[0] and errors[0].endswith("."), errors
    assert not (tmp_path / "out" / "baseline.pt").exists()
    assert not (tmp_path / "out" / "report.json").exists()
    assert not (tmp_path / "out" / "folding.json").exists()
