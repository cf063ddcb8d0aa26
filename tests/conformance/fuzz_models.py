"""A model-source fuzzer: seeded random user-style Brevitas model FILES plus a matching ``.npz``, each run
through ``hapfpga run`` with pruning.

:func:`generate` draws a :class:`ModelSpec` from a seed — a plain chain, residual blocks with projection shortcuts
(Brevitas' ``QuantBasicBlock`` pattern: one shared quantiser on both inputs of the add), depthwise-separable
blocks, or a 1D stack; strides, paddings, max-pools and a global ``TruncAvgPool2d``; the four flatten spellings
(``x.flatten(1)``, ``torch.flatten(x, 1)``, ``nn.Flatten()``, ``x.view(x.size(0), -1)``); bit widths 1–8 per
layer (1 bit written as Brevitas' binary presets); with and without an 8-bit input quantiser — and, with a small
probability, one of the mistakes users make (a grouped conv, a residual add whose inputs keep different scales,
a float ``AvgPool``), which the flow must refuse in one sentence. :func:`render` writes the spec as the Python a
user would write (an ``nn.Module`` with a ``forward``, and a factory), :func:`write_case` adds the data and the
config, :func:`run_case` runs it and classifies the outcome with :func:`harness.classify`.

The property (tests/conformance/test_fuzz.py): every generated model either completes (verification passed,
fits) or is refused before training with one sentence and exit 2; never exit 1.

Run by hand for the counts of the slow suite: ``python tests/conformance/fuzz_models.py --seeds 0:40 --out DIR``
(prints one line per seed and the totals; ``--write-only`` writes the files without running them).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import random
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

_spec = importlib.util.spec_from_file_location("conformance_harness", Path(__file__).with_name("harness.py"))
harness = sys.modules.setdefault("conformance_harness", importlib.util.module_from_spec(_spec))
_spec.loader.exec_module(harness)

FLATTENS = ("x.flatten(1)", "torch.flatten", "nn.Flatten", "view")
KINDS = ("chain", "residual", "dwsep", "chain1d")
MISTAKES = ("grouped_conv", "unshared_add", "float_avgpool")


@dataclass(frozen=True)
class Block:
    """One block of the feature extractor: ``conv`` (conv-BN-act), ``res`` (two 3×3 convs and a 1×1 projection
    shortcut joined by an add), ``dws`` (depthwise 3×3 then pointwise 1×1). ``pool``: a 2× max-pool after it."""

    kind: str
    out: int
    k: int = 3
    stride: int = 1
    pad: int = 0
    wbits: tuple[int, ...] = (2,)
    abits: tuple[int, ...] = (2,)
    pool: bool = False


@dataclass(frozen=True)
class ModelSpec:
    """A whole user model: its input, blocks, the global pool, the flatten spelling, the classifier, a mistake."""

    seed: int
    dims: int  # 1 or 2
    in_shape: tuple[int, ...]
    num_classes: int
    input_bits: int | None  # None: no input quantiser
    blocks: tuple[Block, ...]
    flatten: str
    global_pool: bool = False  # TruncAvgPool2d over the whole map (2D only)
    hidden: int | None = None
    fc_bits: tuple[int, ...] = (2, 2)  # hidden FC weights/act bits (if any), last layer weights
    mistake: str | None = None
    notes: tuple[str, ...] = field(default=())


# -- generation ------------------------------------------------------------------------------------------


def _bits(r: random.Random) -> int:
    """A bit width 1-8, weighted to the widths FINN users pick (1, 2, 4 bits most often)."""
    return r.choices(range(1, 9), weights=(3, 4, 2, 3, 1, 1, 1, 1))[0]


def _out_len(n: int, k: int, s: int, p: int) -> int:
    return (n + 2 * p - k) // s + 1


def _block(r: random.Random, kind: str, size: int, dims: int) -> tuple[Block, int]:
    """A random block of ``kind`` on a map of side ``size``; returns it and the side after it."""
    out = r.choice((4, 6, 8, 12, 16))
    if kind == "conv":
        k = r.choice((1, 3, 3, 5)) if size >= 5 else r.choice((1, 3)) if size >= 3 else 1
        pad = r.choice((0, k // 2))
        stride = 2 if size >= 6 and r.random() < 0.3 else 1
        b = Block("conv", out, k, stride, pad, (_bits(r),), (_bits(r),))
        size = _out_len(size, k, stride, pad)
    elif kind == "res":
        stride = 2 if size >= 4 and r.random() < 0.5 else 1
        b = Block("res", out, 3, stride, 1, (_bits(r), _bits(r), _bits(r)), (_bits(r), _bits(r), _bits(r)))
        size = _out_len(size, 3, stride, 1)
    else:
        stride = 2 if size >= 6 and r.random() < 0.3 else 1
        b = Block("dws", out, 3, stride, 1, (_bits(r), _bits(r)), (_bits(r), _bits(r)))
        size = _out_len(size, 3, stride, 1)
    if size >= 4 and r.random() < 0.35:
        b, size = replace(b, pool=True), size // 2
    return b, size


def _groupable(channels: int, blocks: list[Block]) -> bool:
    """Whether some conv block has an even number of input and output channels (a ``groups=2`` conv there)."""
    for b in blocks:
        if b.kind == "conv" and channels % 2 == 0 and b.out % 2 == 0:
            return True
        channels = b.out
    return False


def generate(seed: int) -> ModelSpec:
    """The model of ``seed`` (deterministic: the same seed always gives the same file)."""
    r = random.Random(seed)
    kind = KINDS[seed % len(KINDS)] if seed < len(KINDS) else r.choice(KINDS)
    dims = 1 if kind == "chain1d" else 2
    side = r.choice((16, 32)) if dims == 1 else r.choice((8, 12, 16))
    channels = r.choice((1, 2)) if dims == 1 else r.choice((1, 3))
    in_shape = (channels, side) if dims == 1 else (channels, side, side)
    block_kind = {"chain": "conv", "chain1d": "conv", "residual": "res", "dwsep": "dws"}[kind]
    blocks, size = [], side
    if kind == "dwsep":  # a depthwise conv needs channels to be depthwise over: a stem conv first
        b, size = _block(r, "conv", size, dims)
        blocks.append(b)
    for _ in range(r.randint(1, 3)):
        if size < 2:
            break
        b, size = _block(r, block_kind, size, dims)
        blocks.append(b)
    mistake = r.choice(MISTAKES) if r.random() < 0.15 else None
    if (mistake == "unshared_add" and kind != "residual" or mistake == "grouped_conv" and not _groupable(
            channels, blocks) or mistake == "float_avgpool" and (dims == 1 or size < 2)):
        mistake = None
    return ModelSpec(
        seed=seed, dims=dims, in_shape=in_shape, num_classes=r.choice((4, 10)),
        input_bits=8 if r.random() < 0.5 else None, blocks=tuple(blocks), flatten=r.choice(FLATTENS),
        global_pool=dims == 2 and size > 1 and r.random() < 0.3,
        hidden=r.choice((None, 16, 32)), fc_bits=(_bits(r), _bits(r), _bits(r)), mistake=mistake,
    )


# -- rendering -------------------------------------------------------------------------------------------


def _wq(bits: int) -> str:
    """The weight quantiser arguments a user writes for ``bits`` (1 bit: Brevitas' binary preset)."""
    return "weight_quant=SignedBinaryWeightPerTensorConst" if bits == 1 else f"weight_bit_width={bits}"


def _act(bits: int, qt: bool = False) -> str:
    """An activation a user writes for ``bits`` (1 bit: a bipolar QuantIdentity, as bnn_pynq does)."""
    rq = ", return_quant_tensor=True" if qt else ""
    if bits == 1:
        return f"QuantIdentity(act_quant=SignedBinaryActPerTensorConst{rq})"
    return f"QuantReLU(bit_width={bits}{rq})"


class _Writer:
    """Collects the ``__init__`` and ``forward`` lines of the rendered module and tracks the map's shape."""

    def __init__(self, spec: ModelSpec):
        self.spec, self.init, self.fwd = spec, [], []
        self.d = "1d" if spec.dims == 1 else "2d"
        self.c, self.side = spec.in_shape[0], spec.in_shape[1]

    def conv(self, name: str, cin: int, cout: int, k: int, stride: int, pad: int, wbits: int, groups: int = 1) -> None:
        g = f", groups={groups}" if groups != 1 else ""
        self.init.append(f"self.{name} = QuantConv{self.d}({cin}, {cout}, {k}, stride={stride}, padding={pad}{g}, "
                         f"bias=False, {_wq(wbits)})")
        self.init.append(f"self.{name}_bn = nn.BatchNorm{self.d}({cout})")

    def block(self, i: int, b: Block, mistake: str | None) -> None:
        getattr(self, f"_{b.kind}")(f"b{i}", b, mistake)
        if b.pool:
            self.init.append(f"self.b{i}_pool = nn.MaxPool{self.d}(2)")
            self.fwd.append(f"x = self.b{i}_pool(x)")
            self.side //= 2

    def _conv(self, n: str, b: Block, mistake: str | None) -> None:
        groups = 2 if mistake == "grouped_conv" and self.c % 2 == 0 and b.out % 2 == 0 else 1
        self.conv(n, self.c, b.out, b.k, b.stride, b.pad, b.wbits[0], groups)
        self.init.append(f"self.{n}_act = {_act(b.abits[0])}")
        self.fwd.append(f"x = self.{n}_act(self.{n}_bn(self.{n}(x)))")
        self.c, self.side = b.out, _out_len(self.side, b.k, b.stride, b.pad)

    def _res(self, n: str, b: Block, mistake: str | None) -> None:
        self.conv(f"{n}_conv1", self.c, b.out, 3, b.stride, 1, b.wbits[0])
        self.init.append(f"self.{n}_act1 = {_act(b.abits[0])}")
        self.conv(f"{n}_conv2", b.out, b.out, 3, 1, 1, b.wbits[1])
        self.conv(f"{n}_short", self.c, b.out, 1, b.stride, 0, b.wbits[2])
        self.init.append(f"self.{n}_join = {_act(b.abits[1], qt=True)}  # one quantiser on both inputs of the add")
        other = f"{n}_join"
        if mistake == "unshared_add":
            self.init.append(f"self.{n}_join_short = {_act(b.abits[1], qt=True)}")
            other = f"{n}_join_short"
        self.init.append(f"self.{n}_out = {_act(b.abits[2])}")
        self.fwd += [f"y = self.{n}_act1(self.{n}_conv1_bn(self.{n}_conv1(x)))",
                     f"y = self.{n}_join(self.{n}_conv2_bn(self.{n}_conv2(y)))",
                     f"x = self.{other}(self.{n}_short_bn(self.{n}_short(x)))",
                     f"x = self.{n}_out(y + x)"]
        self.c, self.side = b.out, _out_len(self.side, 3, b.stride, 1)

    def _dws(self, n: str, b: Block, mistake: str | None) -> None:
        self.conv(f"{n}_dw", self.c, self.c, 3, b.stride, 1, b.wbits[0], groups=self.c)
        self.init.append(f"self.{n}_dw_act = {_act(b.abits[0])}")
        self.conv(f"{n}_pw", self.c, b.out, 1, 1, 0, b.wbits[1])
        self.init.append(f"self.{n}_pw_act = {_act(b.abits[1])}")
        self.fwd += [f"x = self.{n}_dw_act(self.{n}_dw_bn(self.{n}_dw(x)))",
                     f"x = self.{n}_pw_act(self.{n}_pw_bn(self.{n}_pw(x)))"]
        self.c, self.side = b.out, _out_len(self.side, 3, b.stride, 1)


_FLATTEN_CODE = {"x.flatten(1)": "x = x.flatten(1)", "torch.flatten": "x = torch.flatten(x, 1)",
                 "nn.Flatten": "x = self.flatten(x)", "view": "x = x.view(x.size(0), -1)"}

HEADER = '''"""A user's model (written by tests/conformance/fuzz_models.py, seed {seed}): {summary}."""

import torch
import torch.nn as nn
from brevitas.nn import QuantConv1d, QuantConv2d, QuantIdentity, QuantLinear, QuantReLU, TruncAvgPool2d
from brevitas.quant import SignedBinaryActPerTensorConst, SignedBinaryWeightPerTensorConst, TruncTo8bit


class Net(nn.Module):
    def __init__(self, num_classes):
        super().__init__()
'''


def summary(spec: ModelSpec) -> str:
    """One line describing the spec (for file headers and the fuzzer's output)."""
    blocks = " ".join(f"{b.kind}{b.out}/k{b.k}s{b.stride}p{b.pad}{'+pool' if b.pool else ''}"
                      f"[w{''.join(map(str, b.wbits))}a{''.join(map(str, b.abits))}]" for b in spec.blocks)
    extra = [f"in{spec.input_bits}" if spec.input_bits else "no input quant", spec.flatten]
    if spec.global_pool:
        extra.append("global TruncAvgPool2d")
    if spec.hidden:
        extra.append(f"fc{spec.hidden}")
    if spec.mistake:
        extra.append(f"MISTAKE {spec.mistake}")
    return f"{spec.dims}D {'x'.join(map(str, spec.in_shape))}: {blocks}; {', '.join(extra)}"


def render(spec: ModelSpec) -> str:
    """The model file's source: a ``Net`` module and the factory ``make(input_shape, num_classes)``."""
    w = _Writer(spec)
    if spec.input_bits:
        w.init.append(f"self.inp = QuantIdentity(bit_width={spec.input_bits}, return_quant_tensor=True)")
        w.fwd.append("x = self.inp(x)")
    for i, b in enumerate(spec.blocks):
        w.block(i, b, spec.mistake)
    _render_head(w, spec)
    body = "\n".join(f"        {ln}" for ln in w.init)
    fwd = "\n".join(f"        {ln}" for ln in w.fwd)
    return (HEADER.format(seed=spec.seed, summary=summary(spec)) + body + "\n\n    def forward(self, x):\n" + fwd
            + "\n        return x\n\n\ndef make(input_shape, num_classes):\n"
            f"    assert tuple(input_shape) == {tuple(spec.in_shape)!r}, input_shape\n"
            "    return Net(num_classes)\n")


def _render_head(w: _Writer, spec: ModelSpec) -> None:
    """The global pool (if any), the flatten and the classifier."""
    if spec.mistake == "float_avgpool" and spec.dims == 2 and w.side > 1:
        w.init.append(f"self.gpool = nn.AvgPool2d({w.side})")
        w.fwd.append("x = self.gpool(x)")
        w.side = 1
    elif spec.global_pool:
        # TruncAvgPool2d needs a QuantTensor: the last activation returns one (as Brevitas' ResNet does)
        last = next(ln for ln in reversed(w.init) if "_act = " in ln or "_out = " in ln or "_pw_act = " in ln)
        w.init[w.init.index(last)] = last[:-1] + ", return_quant_tensor=True)"
        w.init.append(f"self.gpool = TruncAvgPool2d(kernel_size={w.side}, trunc_quant=TruncTo8bit, "
                      "float_to_int_impl_type='FLOOR')")
        w.fwd.append("x = self.gpool(x)")
        w.side = 1
    if spec.flatten == "nn.Flatten":
        w.init.append("self.flatten = nn.Flatten()")
    w.fwd.append(_FLATTEN_CODE[spec.flatten])
    feats = w.c * w.side ** spec.dims
    if spec.hidden:
        w.init += [f"self.fc = QuantLinear({feats}, {spec.hidden}, bias=False, {_wq(spec.fc_bits[0])})",
                   f"self.fc_bn = nn.BatchNorm1d({spec.hidden})", f"self.fc_act = {_act(spec.fc_bits[1])}"]
        w.fwd.append("x = self.fc_act(self.fc_bn(self.fc(x)))")
        feats = spec.hidden
    w.init.append(f"self.classifier = QuantLinear({feats}, num_classes, bias=False, {_wq(spec.fc_bits[2])})")
    w.fwd.append("x = self.classifier(x)")


# -- data, config, run -----------------------------------------------------------------------------------


def data_for(spec: ModelSpec, n_train: int, n_test: int) -> dict[str, np.ndarray]:
    """Real data of the spec's input shape (:func:`data_of_shape`)."""
    return data_of_shape(spec.in_shape, spec.num_classes, spec.seed, n_train, n_test)


def data_of_shape(shape: tuple[int, ...], num_classes: int, seed: int, n_train: int, n_test: int
                  ) -> dict[str, np.ndarray]:
    """Digits images of ``shape`` (C×H×W) or their pixel rows read as C×L signals (channel ``i`` odd: reversed),
    the first ``num_classes`` digits only, as the arrays of an ``.npz``."""
    if len(shape) == 3:
        x, y = harness.digits_images(shape)
    else:
        img, y = harness.digits_images((1, 8, 8))
        c, length = shape
        grid = np.linspace(0, 63, length)
        rows = [np.interp(grid, np.arange(64), row) for row in img.reshape(len(img), 64)]
        x = np.stack([np.stack([r if i % 2 == 0 else r[::-1] for i in range(c)]) for r in rows])
        x = (np.rint(x * 255.0) / 255.0).astype(np.float32)
    keep = y < num_classes
    x, y = x[keep], y[keep]
    idx = np.random.default_rng(seed).permutation(len(x))
    tr, te = idx[:n_train], idx[n_train:n_train + n_test]
    return {"x_train": x[tr], "y_train": y[tr], "x_test": x[te], "y_test": y[te]}


#: the fuzzer's run: tiny data, one epoch, a two-step greedy search (the property, not the accuracy, is tested)
RUN = {"n_train": 128, "n_test": 48, "epochs": 1, "max_steps": 2}


def case_config(model_file: Path, npz: Path, board: str = "pynq-z2") -> dict:
    return {
        "board": board, "seed": 0,
        "model": {"name": f"{model_file}:make"},
        "data": {"name": "npz", "path": str(npz)},
        "train": {"epochs": RUN["epochs"], "batch_size": 32, "lr": 0.01},
        "pruning": {"method": "greedy", "target": "max_fps", "max_accuracy_drop": 0.2, "max_steps": RUN["max_steps"],
                    "sensitivity": False, "step_finetune_epochs": 0.25, "finetune_epochs": 0.25},
        "folding": {"mode": "max_fps"},
        "verify": {"n_samples": 16},
    }


def write_case(spec: ModelSpec, folder: Path) -> tuple[Path, Path]:
    """Write ``model_<seed>.py`` and ``data_<seed>.npz`` into ``folder``; return their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    py, npz = folder / f"model_{spec.seed}.py", folder / f"data_{spec.seed}.npz"
    py.write_text(render(spec))
    np.savez(npz, **data_for(spec, RUN["n_train"], RUN["n_test"]))
    return py, npz


def run_case(spec: ModelSpec, folder: Path, timeout: float = 1800, *, pruning: bool = True):
    """Write and run the case; returns ``(outcome class, RunOutcome)``. ``pruning=False`` (a diagnosis aid:
    which failures are not pruning's) runs the same config without its ``pruning:`` section."""
    py, npz = write_case(spec, folder)
    cfg = case_config(py, npz)
    if not pruning:
        del cfg["pruning"]
    out = harness.run_user_config(cfg, folder / f"seed{spec.seed}", timeout=timeout)
    return harness.classify(out), out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", default="0:5", help="START:STOP (Python range) or a comma list")
    p.add_argument("--out", required=True, help="folder for the model files, data and runs")
    p.add_argument("--write-only", action="store_true", help="write the files, do not run them")
    p.add_argument("--no-pruning", action="store_true", help="diagnosis: run without the pruning: section")
    a = p.parse_args(argv)
    seeds = range(*map(int, a.seeds.split(":"))) if ":" in a.seeds else [int(s) for s in a.seeds.split(",")]
    counts: dict[str, int] = {}
    for s in seeds:
        spec = generate(s)
        if a.write_only:
            print(s, write_case(spec, Path(a.out))[0], summary(spec))
            continue
        cls, out = run_case(spec, Path(a.out), pruning=not a.no_pruning)
        counts[cls] = counts.get(cls, 0) + 1
        msg = "" if out.rc == 0 else f" :: {out.error}"
        print(json.dumps({"seed": s, "class": cls, "rc": out.rc, "wall_s": round(out.wall_s, 1),
                          "model": summary(spec)}) + msg, flush=True)
    print("totals", json.dumps(counts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
