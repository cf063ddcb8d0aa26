"""Every refusal of a user's model is one sentence (exit 2, before any training) that names the user's layer by
its attribute path in their module and its class, the reason and the change (issue 21, item 4); FINN, not a list
of class names, decides what is buildable; and a model file's folder is importable as under ``python file.py``,
with the train stage's cache key covering the ``.py`` files the model file imports from there."""

from __future__ import annotations

import json
import re
from functools import partial
from pathlib import Path

import pytest

from hapfpga.cli import main
from hapfpga.zoo import model_source_hash
from hapfpga.zoo.userfile import local_sources, sources_hash

from .conftest import run_argv

HEAD = "import torch.nn as nn\nfrom brevitas.nn import QuantConv2d, QuantIdentity, QuantLinear, QuantReLU\n"

#: groups=2 on 8 channels: neither dense nor depthwise (qonnx's LowerConvsToMatMul fails inside step_streamline)
GROUPED = HEAD + """

class Net(nn.Module):
    def __init__(self, num_classes):
        super().__init__()
        self.inp = QuantIdentity(bit_width=8, return_quant_tensor=True)
        self.stem = QuantConv2d(1, 8, 3, weight_bit_width=4, bias=False)
        self.bn0 = nn.BatchNorm2d(8)
        self.act0 = QuantReLU(bit_width=4, return_quant_tensor=True)
        self.body = nn.Sequential(QuantConv2d(8, 8, 3, groups=2, weight_bit_width=4, bias=False),
                                  nn.BatchNorm2d(8), QuantReLU(bit_width=4, return_quant_tensor=True))
        self.flat = nn.Flatten()
        self.fc = QuantLinear(8 * 4 * 4, num_classes, weight_bit_width=4, bias=False)

    def forward(self, x):
        return self.fc(self.flat(self.body(self.act0(self.bn0(self.stem(self.inp(x)))))))


def make(input_shape, num_classes):
    return Net(num_classes)
"""

#: a residual add of two QuantTensors from two different quantisers (Brevitas: "Scaling factors are different")
UNSHARED_ADD = HEAD + """

class Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv = QuantConv2d(c, c, 3, padding=1, weight_bit_width=4, bias=False)
        self.bn = nn.BatchNorm2d(c)
        self.act = QuantReLU(bit_width=4, return_quant_tensor=True)
        self.skip_act = QuantReLU(bit_width=4, return_quant_tensor=True)

    def forward(self, x):
        y = self.act(self.bn(self.conv(x)))
        return y + self.skip_act(x)


class Net(nn.Module):
    def __init__(self, num_classes):
        super().__init__()
        self.inp = QuantIdentity(bit_width=8, return_quant_tensor=True)
        self.stem = QuantConv2d(1, 8, 3, weight_bit_width=4, bias=False)
        self.bn0 = nn.BatchNorm2d(8)
        self.act0 = QuantReLU(bit_width=4, return_quant_tensor=True)
        self.stage = nn.Sequential(Block(8))
        self.out_act = QuantReLU(bit_width=4, return_quant_tensor=True)
        self.flat = nn.Flatten()
        self.fc = QuantLinear(8 * 6 * 6, num_classes, weight_bit_width=4, bias=False)

    def forward(self, x):
        x = self.act0(self.bn0(self.stem(self.inp(x))))
        return self.fc(self.flat(self.out_act(self.stage(x))))


def make(input_shape, num_classes):
    return Net(num_classes)
"""

#: the two inputs at 4 and 8 bits: their scales differ already untrained, in the first forward pass
UNEQUAL_BITS_ADD = UNSHARED_ADD.replace(
    "self.skip_act = QuantReLU(bit_width=4, return_quant_tensor=True)",
    "self.skip_act = QuantReLU(bit_width=8, return_quant_tensor=True)")

#: a concatenation of two QuantTensors from two quantisers (Brevitas checks cat's scales as add's)
UNSHARED_CAT = UNSHARED_ADD.replace("return y + self.skip_act(x)", "return torch.cat([y, self.skip_act(x)], dim=1)"
                                    ).replace("import torch.nn as nn", "import torch\nimport torch.nn as nn").replace(
    "QuantLinear(8 * 6 * 6,", "QuantLinear(16 * 6 * 6,")

#: the same add on plain tensors (quantisers without return_quant_tensor): Brevitas adds floats, and the join
#: left with two float scales is refused after FINN's streamlining (hapfpga.finn.streamline.check_joins_integer)
UNSHARED_FLOAT_ADD = UNSHARED_ADD.replace(
    "self.act = QuantReLU(bit_width=4, return_quant_tensor=True)", "self.act = QuantReLU(bit_width=4)").replace(
    "self.skip_act = QuantReLU(bit_width=4, return_quant_tensor=True)", "self.skip_act = QuantReLU(bit_width=4)")

#: the same block with one shared quantiser on both inputs of the add (Brevitas' QuantBasicBlock pattern)
SHARED_ADD = UNSHARED_ADD.replace("return y + self.skip_act(x)", "return self.act(self.bn(self.conv(x))) + self.act(x)")

#: a float Sigmoid between two quantised layers: finn-plus makes it a PWPolyF, which exists only on Versal
SIGMOID = HEAD + """

class Head(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = QuantLinear(64, 32, weight_bit_width=4, bias=False)
        self.gate = nn.Sigmoid()
        self.act = QuantReLU(bit_width=4, return_quant_tensor=True)

    def forward(self, x):
        return self.act(self.gate(self.fc1(x)))


def make(input_shape, num_classes):
    return nn.Sequential(QuantIdentity(bit_width=8, return_quant_tensor=True), nn.Flatten(), Head(),
                         QuantLinear(32, num_classes, weight_bit_width=4, bias=False))
"""

#: a bipolar activation after a depthwise conv (fuzzer seed 36): finn-plus's VVAU cannot output {-1, +1}
BIPOLAR_AFTER_DW = GROUPED.replace(
    "import torch.nn as nn", "import torch.nn as nn\nfrom brevitas.quant import SignedBinaryActPerTensorConst").replace(
    "QuantConv2d(8, 8, 3, groups=2,", "QuantConv2d(8, 8, 3, groups=8,").replace(
    "nn.BatchNorm2d(8), QuantReLU(bit_width=4, return_quant_tensor=True))",
    "nn.BatchNorm2d(8), QuantIdentity(act_quant=SignedBinaryActPerTensorConst))")

#: a bipolar activation on a residual add's output: FINN's standalone thresholds cannot output {-1, +1}
BIPOLAR_AFTER_ADD = SHARED_ADD.replace(
    "import torch.nn as nn", "import torch.nn as nn\nfrom brevitas.quant import SignedBinaryActPerTensorConst").replace(
    "self.out_act = QuantReLU(bit_width=4, return_quant_tensor=True)",
    "self.out_act = QuantIdentity(act_quant=SignedBinaryActPerTensorConst)")

#: an op in the model's own forward (no module of its own): a float mean over the map
FORWARD_MEAN = HEAD + """

class Net(nn.Module):
    def __init__(self, num_classes):
        super().__init__()
        self.inp = QuantIdentity(bit_width=8, return_quant_tensor=True)
        self.conv = QuantConv2d(1, 8, 3, weight_bit_width=4, bias=False)
        self.act = QuantReLU(bit_width=4)
        self.fc = QuantLinear(8, num_classes, weight_bit_width=4, bias=False)

    def forward(self, x):
        return self.fc(self.act(self.conv(self.inp(x))).mean(dim=(2, 3)))


def make(input_shape, num_classes):
    return Net(num_classes)
"""


#: ``hapfpga run`` of ``model`` on 64 training digits
_cfg = partial(run_argv, max_train=64, max_test=16, n_samples=8)


def _not_trained(tmp: Path) -> None:
    out = tmp / "out"
    assert not (out / "baseline.pt").exists() and not (out / "checkpoints").exists()


REFUSALS = [
    # (model file, the layer's path and class as the sentence must name them, reason, the change)
    (GROUPED, "layer 'body.0' (QuantConv2d", r"grouped convolution \(groups=2\) that is not depthwise",
     r"depthwise convolution .* followed by a 1x1 pointwise convolution"),
    (UNSHARED_ADD, "Layer 'stage.0' (Block)", r"adds quantised tensors with different scales at mymodel\.py:\d+",
     r"one shared quantiser .*QuantBasicBlock"),
    (UNEQUAL_BITS_ADD, "Layer 'stage.0' (Block)", r"adds quantised tensors with different scales at mymodel\.py:\d+",
     r"one shared quantiser"),
    (UNSHARED_CAT, "Layer 'stage.0' (Block)", r"concatenates quantised tensors with different scales",
     r"one shared quantiser .*QuantCat"),
    (UNSHARED_FLOAT_ADD, "residual add Add_0 of layer 'stage.0' (Block, ONNX Add)", r"different float scales",
     r"one shared activation module"),
    (FORWARD_MEAN, "the ReduceMean in Net.forward", r"maps it to no hardware layer", r"TruncAvgPool2d"),
    (SIGMOID, "layer '2.gate' (Sigmoid)", r"PWPolyF .* cannot be specialized for FPGA part xc7z020",
     r"replace it by a quantised activation"),
    (BIPOLAR_AFTER_DW, "layer 'body.2' (QuantIdentity", r"bipolar .* after layer 'body\.0' \(QuantConv2d.*VVAU.*"
     r"out_scale must be equal to 1", r"2 or more bits .* dense \(groups=1\) QuantConv or a QuantLinear"),
    (BIPOLAR_AFTER_ADD, "layer 'out_act' (QuantIdentity", r"bipolar .* after layer 'stage\.0' \(Block, ONNX Add\).*standalone thresholding",
     r"2 or more bits"),
]


@pytest.mark.parametrize("body,layer,reason,change", REFUSALS, ids=["grouped_conv", "unshared_add", "unequal_bits_add", "unshared_cat", "unshared_float_add", "forward_mean", "sigmoid",
                              "bipolar_after_dw", "bipolar_after_add"])
def test_refusal_names_the_layer_reason_and_change_through_the_cli(tmp_path, body, layer, reason, change,
                                                                   one_sentence_error):
    f = tmp_path / "mymodel.py"
    f.write_text(body)
    assert main(_cfg(tmp_path, f"{f}:make")) == 2
    msg = one_sentence_error()
    assert layer in msg, msg
    assert re.search(reason, msg), msg
    assert re.search(change, msg), msg
    _not_trained(tmp_path)


def test_the_fix_the_residual_refusal_suggests_is_accepted(tmp_path):
    """The same residual block with the add's inputs from one shared quantiser passes FINN's check."""
    from hapfpga.boards import load_board
    from hapfpga.modelcheck import check_before_training
    from hapfpga.runconfig import ModelConfig
    from hapfpga.zoo import build_model

    f = tmp_path / "shared.py"
    f.write_text(SHARED_ADD)
    name = f"{f}:make"
    model = build_model(ModelConfig(name=name), (1, 8, 8), 10)
    check_before_training(model, name, (1, 8, 8), 10, tmp_path / "check", load_board("pynq-z2"))


# ---------------------------------------------------------------- a model file's folder and its cache key

MAIN_FILE = """from model import Net


def make(input_shape, num_classes):
    return Net(num_classes)
"""

SIBLING = HEAD + """

WIDTH = 16


class Net(nn.Sequential):
    def __init__(self, num_classes):
        super().__init__(QuantIdentity(bit_width=8, return_quant_tensor=True), nn.Flatten(),
                         QuantLinear(64, WIDTH, weight_bit_width=2, bias=False), nn.BatchNorm1d(WIDTH),
                         QuantReLU(bit_width=2, return_quant_tensor=True),
                         QuantLinear(WIDTH, num_classes, weight_bit_width=2, bias=False))
"""


def test_model_file_imports_a_module_next_to_it_and_editing_that_module_retrains(tmp_path, capsys):
    """`from model import Net` works as under `python main.py`; the train stage's key covers model.py: an
    unchanged re-run resumes, an edited model.py trains again (and builds the edited width)."""
    (tmp_path / "model.py").write_text(SIBLING)
    main_file = tmp_path / "main.py"
    main_file.write_text(MAIN_FILE)
    argv = [*_cfg(tmp_path, f"{main_file}:make"), "--to", "train"]

    def train_key() -> str:
        return json.loads((tmp_path / "out" / "manifest.json").read_text())["stages"]["train"]["key"]

    def resumed() -> bool:
        cap = capsys.readouterr()
        return "train: already done (resumed)" in cap.out + cap.err

    assert main(argv) == 0, capsys.readouterr().err[-2000:]
    first = train_key()
    assert not resumed()
    assert main(argv) == 0
    assert train_key() == first and resumed()
    (tmp_path / "model.py").write_text(SIBLING.replace("WIDTH = 16", "WIDTH = 12"))
    assert main(argv) == 0, capsys.readouterr().err[-2000:]
    assert train_key() != first and not resumed()
    import torch

    state = torch.load(tmp_path / "out" / "baseline.pt", weights_only=True)["state_dict"]
    assert state["2.weight"].shape[0] == 12  # the edited module was imported, not the one cached in-process


def test_two_model_folders_with_same_named_neighbours_each_get_their_own(tmp_path):
    """Two model files in different folders both `from model import Net`: each builds its own Net (a module
    imported for the first is not reused for the second), and an edit to the first's neighbour is seen."""
    from hapfpga.runconfig import ModelConfig
    from hapfpga.zoo import build_model

    built = {}
    for folder, width in (("a", 16), ("b", 12), ("a", 16), ("b", 12)):
        (tmp_path / folder).mkdir(exist_ok=True)
        (tmp_path / folder / "model.py").write_text(SIBLING.replace("WIDTH = 16", f"WIDTH = {width}"))
        (tmp_path / folder / "main.py").write_text(MAIN_FILE)
        model = build_model(ModelConfig(name=f"{tmp_path / folder / 'main.py'}:make"), (1, 8, 8), 10)
        built.setdefault(folder, []).append(model[2].out_features)
    (tmp_path / "a" / "model.py").write_text(SIBLING.replace("WIDTH = 16", "WIDTH = 8"))
    model = build_model(ModelConfig(name=f"{tmp_path / 'a' / 'main.py'}:make"), (1, 8, 8), 10)
    assert built == {"a": [16, 16], "b": [12, 12]} and model[2].out_features == 8


def _tree(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return root / "main.py"


LAYOUTS = {
    "import": {"main.py": "import helper\n", "helper.py": "X = 1\n"},
    "from_import": {"main.py": "from helper import X\n", "helper.py": "X = 1\n"},
    "transitive": {"main.py": "from helper import X\n", "helper.py": "from deep import Y\nX = Y\n", "deep.py": "Y = 1\n"},
    "package": {"main.py": "from pkg import blocks\n", "pkg/__init__.py": "", "pkg/blocks.py": "Z = 2\n"},
    "dotted": {"main.py": "import pkg.blocks\n", "pkg/__init__.py": "", "pkg/blocks.py": "Z = 2\n"},
    "inside_function": {"main.py": "def make():\n    import helper\n    return helper\n", "helper.py": "X = 1\n"},
}


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_cache_key_covers_every_local_module_the_file_imports(tmp_path, layout):
    """Property over import spellings: editing any local file the model file reaches changes the key; editing a
    file it does not import, or a stdlib/package import, does not."""
    files = LAYOUTS[layout]
    main_file = _tree(tmp_path, {**files, "unrelated.py": "U = 0\n"})
    name = f"{main_file}:make"
    reached = {p.relative_to(tmp_path).as_posix() for p in local_sources(main_file)}
    assert reached == set(files), reached
    base = model_source_hash(name)
    assert base == sources_hash(main_file)
    for rel in files:
        if rel == "main.py":
            continue
        p = tmp_path / rel
        old = p.read_text()
        p.write_text(old + "# edited\n")
        assert model_source_hash(name) != base, rel
        p.write_text(old)
        assert model_source_hash(name) == base
    (tmp_path / "unrelated.py").write_text("U = 1\n")
    assert model_source_hash(name) == base


def test_single_file_key_is_its_content_hash(tmp_path):
    """A model file that imports nothing local keeps the key runs made before sibling modules were hashed."""
    import hashlib

    f = tmp_path / "solo.py"
    f.write_text("import torch\nimport numpy as np\n")
    assert model_source_hash(f"{f}:make") == hashlib.sha256(f.read_bytes()).hexdigest()
