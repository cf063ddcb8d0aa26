"""The config of ``hapfpga run CONFIG.yaml`` — one typed tree, loaded by ``hapfpga.config``.

Sections owned by optional stages (``pruning``, ``rtlsim``) are kept as plain mappings here and parsed
by their stage into that stage's own dataclass, so the core does not import those stages.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from .config import from_dict, load_yaml
from .errors import ConfigError
from .types import QuantSpec

__all__ = [
    "ModelConfig",
    "DataConfig",
    "TrainConfig",
    "FoldingConfig",
    "BuildConfig",
    "VerifyConfig",
    "RtlsimConfig",
    "DeployConfig",
    "RunConfig",
    "load_run_config",
]


@dataclass(frozen=True)
class ModelConfig:
    """Which network: a zoo name (``digits_cnn``, ``tfc``, ``cnv``) or ``path/to/file.py:factory``."""

    name: str = "digits_cnn"
    weight_bits: int = 2
    act_bits: int = 2
    input_bits: int = 8
    #: per-layer overrides, layer index (0-based, quantised layers in definition order) -> bits
    layer_weight_bits: dict[int, int] = field(default_factory=dict)
    layer_act_bits: dict[int, int] = field(default_factory=dict)
    #: extra keyword arguments for the model factory (e.g. ``channels`` for cnv)
    options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for key in ("weight_bits", "act_bits", "input_bits"):
            v = getattr(self, key)
            if not 1 <= v <= 16:
                raise ConfigError(f"Config key 'model.{key}' is {v}; use a bit width from 1 to 16.")

    @property
    def quant(self) -> QuantSpec:
        return QuantSpec(
            weight_bits=self.weight_bits,
            act_bits=self.act_bits,
            input_bits=self.input_bits,
            layer_weight_bits=tuple(sorted(self.layer_weight_bits.items())),
            layer_act_bits=tuple(sorted(self.layer_act_bits.items())),
        )


@dataclass(frozen=True)
class DataConfig:
    """Dataset: ``digits``, ``signals`` (built in), ``npz`` (``path``), ``mnist`` / ``cifar10`` (local ``path``)."""

    name: Literal["digits", "signals", "npz", "mnist", "cifar10"] = "digits"
    path: str | None = None
    #: digits: upsample 8×8 to this size (e.g. 32) and repeat to ``channels`` channels;
    #: signals: the length L and the number of channels
    size: int | None = None
    channels: int = 1
    #: use at most this many training / test samples (None: all)
    max_train: int | None = None
    max_test: int | None = None


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 30
    batch_size: int = 64
    lr: float = 0.01
    optimizer: Literal["adam", "sgd"] = "adam"
    weight_decay: float = 0.0
    #: where QAT, fine-tuning, distillation, sensitivity and the search run: auto (CUDA when available), cpu, cuda
    device: Literal["auto", "cpu", "cuda"] = "auto"

    def __post_init__(self) -> None:
        if self.epochs < 0:
            raise ConfigError(f"Config key 'train.epochs' is {self.epochs}; use 0 or more epochs.")
        if self.batch_size < 1:
            raise ConfigError(f"Config key 'train.batch_size' is {self.batch_size}; use 1 or more.")
        if not self.lr > 0:
            raise ConfigError(f"Config key 'train.lr' is {self.lr}; the learning rate must be positive.")


@dataclass(frozen=True)
class FoldingConfig:
    """How to fold: ``max_fps`` (fastest within budget), ``fps`` (cheapest meeting ``fps``),
    ``finn`` (FINN's SetFolding with ``fps`` as target_fps, read back from FINN's model), ``none``
    (PE=SIMD=1) or ``file`` (FINN's folding JSON at ``file``, as ``hapfpga build --folding``)."""

    mode: Literal["max_fps", "fps", "finn", "none", "file"] = "max_fps"
    fps: float | None = None
    file: str | None = None
    #: build every layer that has one as FINN's RTL variant (standalone thresholds), so that the built
    #: design is the one ``rtlsim`` simulates; layers with neither RTL nor a hapfpga model are refused.
    open_simulatable: bool = False
    #: fractions of the budget kept free: one for every resource, or {LUT: 0.05, BRAM_18K: 0.1} (the other resources
    #: keep the default); None: the measured default, where our whole-design estimate fell below synthesis
    #: (folding/margin.py, docs/margin.md)
    margin: float | dict[str, float] | None = None
    #: fold for FINN's estimate report's FPS too: each layer's cycles the larger of ours and FINN's formula where
    #: they differ (the RTL sliding window, docs/estimator.md D10), so FINN's report says the FPS we fold for
    #: (on by default since issue 22: docs/margin.md "Cycles")
    finn_cycles: bool = True
    #: which graph ``max_fps``/``fps`` fold: ``auto`` both, the faster kept (a tie keeps the embedded one);
    #: ``embedded`` thresholds inside HLS MVAUs (FINN's default); ``mixed`` standalone thresholds with each MVAU RTL
    #: (DSP-packed) or HLS (stages/variant.py, docs/margin.md "The default command folds both graphs")
    variants: Literal["auto", "embedded", "mixed"] = "auto"

    def __post_init__(self) -> None:
        if self.mode in ("fps", "finn") and (self.fps is None or self.fps <= 0):
            raise ConfigError(
                f"Config key 'folding.fps' must be a positive number when folding.mode is '{self.mode}'."
            )
        if self.margin is not None:
            from .folding.margin import resolve_margin

            resolve_margin(self.margin)  # a bad margin fails when the config is read, not at the fold stage
        if self.mode == "file" and not self.file:
            raise ConfigError("Config key 'folding.file' must name a FINN folding JSON when folding.mode is 'file'.")


@dataclass(frozen=True)
class BuildConfig:
    bitstream: bool = False
    rtlsim: bool = False
    #: FINN's HLS/RTL code generation in the finn_build stage (``hapfpga build`` does it unless --no-codegen)
    codegen: bool = False


@dataclass(frozen=True)
class VerifyConfig:
    n_samples: int = 256
    #: tolerance of the float stages (Brevitas vs QONNX), in units of the output's quantisation step
    float_tol: float = 1e-3

    def __post_init__(self) -> None:
        if self.n_samples < 1:
            raise ConfigError(f"Config key 'verify.n_samples' is {self.n_samples}; use 1 or more samples.")


@dataclass(frozen=True)
class RtlsimConfig:
    """The optional ``rtlsim:`` stage: Verilator simulation of the FINN design on test images."""

    n: int = 16
    fifo_sizing: bool = True
    per_layer: bool = True
    stall: float = 0.0  # probability of random back-pressure on the output stream

    def __post_init__(self) -> None:
        if self.n < 1:
            raise ConfigError(f"Config key 'rtlsim.n' is {self.n}; simulate 1 or more images.")
        if not 0.0 <= self.stall < 1.0:
            raise ConfigError(f"Config key 'rtlsim.stall' is {self.stall}; use a probability in [0, 1).")


@dataclass(frozen=True)
class DeployConfig:
    """The ``deploy:`` stage: the PYNQ package; ``emulate``: also build the emulated board (FINN's driver,
    emulated DMAs, the RTL in Verilator) into it and run the package's test data on it at build time."""

    emulate: bool = False
    batch_size: int = 10  # the driver's hardware batch in the package (and on the emulated board)

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ConfigError(f"Config key 'deploy.batch_size' is {self.batch_size}; use 1 or more.")


@dataclass(frozen=True)
class SynthConfig:
    """The optional ``synth:`` stage: Yosys on every RTL layer of the open-simulatable design (issue 14)."""

    whole: bool = False  # also synthesise the stitched design as one top (minutes)
    quick: bool = False  # elaboration only: exact DSP counts in seconds, no LUT/FF/BRAM mapping


@dataclass(frozen=True)
class RunConfig:
    board: str = "pynq-z2"
    clock_mhz: float | None = None  # None: the board's default clock
    seed: int = 0
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    folding: FoldingConfig = field(default_factory=FoldingConfig)
    build: BuildConfig = field(default_factory=BuildConfig)
    verify: VerifyConfig = field(default_factory=VerifyConfig)
    deploy: DeployConfig = field(default_factory=DeployConfig)
    #: parsed by hapfpga.pruning (None or absent: no pruning)
    pruning: dict[str, Any] | None = None
    #: Verilator simulation of the built design (None or absent: no RTL simulation)
    rtlsim: RtlsimConfig | None = None
    #: open synthesis of the RTL layers with Yosys (None or absent: none)
    synth: SynthConfig | None = None
    #: run only these stages of ``hapfpga.stages.RUN_STAGES`` (None: all the config enables); the stages they
    #: read from must be finished in the run directory. Names are checked against the registry when the run starts.
    stages: tuple[str, ...] | None = None


def load_run_config(path: str | Path) -> RunConfig:
    return from_dict(RunConfig, load_yaml(path), "")
