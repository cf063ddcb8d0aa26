"""A user's own model file: the factory contract, FINN's conversion checked before training, the signed 8-bit
input quantiser, and the train stage's cache key covering the file's content. Errors are one sentence, exit 2,
no traceback, and stop the run before any training."""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path

from hapfpga.cli import main

from .conftest import run_argv

#: ``hapfpga run`` of ``model`` on 128 training digits
_cfg = partial(run_argv, max_train=128, max_test=32, n_samples=16)


def _model_file(tmp: Path, body: str) -> str:
    f = tmp / "mymodel.py"
    f.write_text(body)
    return f"{f}:make"


def _not_trained(tmp: Path) -> None:
    out = tmp / "out"
    assert not (out / "baseline.pt").exists() and not (out / "checkpoints").exists()
    manifest = out / "manifest.json"
    if manifest.exists():
        assert "train" not in json.loads(manifest.read_text()).get("stages", {})


HEAD = "import torch.nn as nn\nfrom brevitas.nn import QuantConv2d, QuantIdentity, QuantLinear, QuantReLU\n"

WRONG_SIGNATURE = HEAD + """
def make(shape, n_classes):
    return nn.Sequential(nn.Flatten(), QuantLinear(64, n_classes, bias=False))
"""

RAISES = HEAD + """
def make(input_shape, num_classes, quant=None, **options):
    width = options.get("width", 3)
    if width % 2:
        raise ValueError(f"width must be even, got {width}")
    return nn.Sequential(nn.Flatten(), QuantLinear(64, num_classes, bias=False))
"""

#: trains fine in PyTorch, but FINN leaves the float average pool in software between two HW layers
FLOAT_AVGPOOL = HEAD + """
def make(input_shape, num_classes, quant=None, **options):
    return nn.Sequential(
        QuantConv2d(1, 8, 3, weight_bit_width=2, bias=False), nn.BatchNorm2d(8), QuantReLU(bit_width=2),
        nn.AvgPool2d(2), nn.Flatten(), QuantLinear(72, num_classes, weight_bit_width=2, bias=False))
"""

#: Brevitas' common signed 8-bit input quantiser in front of a small MLP
SIGNED_INPUT = HEAD + """
def make(input_shape, num_classes, quant=None, **options):
    return nn.Sequential(
        QuantIdentity(bit_width=8, return_quant_tensor=True), nn.Flatten(),
        QuantLinear(64, 32, weight_bit_width=2, bias=False), nn.BatchNorm1d(32),
        QuantReLU(bit_width=2, return_quant_tensor=True),
        QuantLinear(32, num_classes, weight_bit_width=2, bias=False))
"""


def test_wrong_factory_signature_exits_2_naming_the_contract(tmp_path, one_sentence_error):
    assert main(_cfg(tmp_path, _model_file(tmp_path, WRONG_SIGNATURE))) == 2
    msg = one_sentence_error()
    assert "factory(input_shape, num_classes, quant, **options)" in msg and "shape" in msg
    _not_trained(tmp_path)


def test_exception_inside_the_factory_is_quoted_with_its_line(tmp_path, one_sentence_error):
    assert main(_cfg(tmp_path, _model_file(tmp_path, RAISES))) == 2
    msg = one_sentence_error()
    assert "ValueError at mymodel.py:7: width must be even, got 3" in msg
    _not_trained(tmp_path)


def test_what_finn_cannot_build_stops_before_training(tmp_path, one_sentence_error):
    """The float AvgPool2d trains in PyTorch; FINN's conversion of the untrained export rejects it in seconds,
    and the sentence names the layer, the FINN step and the fix."""
    assert main(_cfg(tmp_path, _model_file(tmp_path, FLOAT_AVGPOOL))) == 2
    msg = one_sentence_error()
    assert "layer '3' (AvgPool2d, ONNX AveragePool)" in msg
    assert "step_create_dataflow_partition" in msg and "TruncAvgPool2d" in msg
    _not_trained(tmp_path)
    assert not (tmp_path / "out" / "report.json").exists()


def test_signed_8bit_input_quantiser_builds_and_verifies_and_editing_the_file_retrains(tmp_path, capsys,
                                                                                       one_sentence_error):
    """Brevitas' QuantIdentity(bit_width=8) on the input goes through FINN (its negative thresholds on the
    UINT8 pixels are clipped before FINN's bit-width minimisation) and verifies bit-exactly; then editing the
    model file invalidates the finished train stage: the re-run trains again, and here stops in the train
    stage's FINN check because the edit introduced a float average pool."""
    name = _model_file(tmp_path, SIGNED_INPUT)
    argv = _cfg(tmp_path, name)
    assert main(argv) == 0, capsys.readouterr().err[-2000:]
    rep = json.loads((tmp_path / "out" / "report.json").read_text())
    assert rep["verification"]["passed"]
    hw = [s for s in rep["verification"]["stages"] if s["name"] == "finn_hw"][0]
    assert hw["exact"] and hw["max_abs_diff"] == 0.0
    assert any(n.startswith("Thresholding") for n in rep["finn_estimate"]["layers"])  # the input quantiser
    capsys.readouterr()
    assert main(argv) == 0  # unchanged file: everything resumes
    assert "train" in json.loads((tmp_path / "out" / "report.json").read_text())["resumed_stages"]
    Path(name.rsplit(":", 1)[0]).write_text(FLOAT_AVGPOOL)
    capsys.readouterr()
    assert main(argv) == 2  # a resumed train stage would not have checked the new model at all
    assert "AveragePool" in one_sentence_error()
