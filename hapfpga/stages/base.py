"""The pieces every stage is made of: ``Stage`` (what it reads, writes and is keyed by), ``Context``
(the run directory, board, clock, data and what upstream stages produced) and ``Conf`` (the config
sections a stage declared, and only those)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..boards import BoardSpec
from ..config import to_dict
from ..folding.options import FoldingOptions
from ..runconfig import RunConfig
from ..runstate import stage_key

__all__ = ["Stage", "Context", "Conf", "StageOutput", "always"]

#: What a stage function returns: the paths it wrote (files or folders, recorded with their digest in the
#: manifest) and its report fragment (plain JSON data, kept in the manifest and handed to later stages).
StageOutput = tuple[list[Path], dict[str, Any]]


def always(cfg: RunConfig) -> bool:
    """The ``enabled`` predicate of a stage every flow runs."""
    return True


class Conf:
    """The config sections a stage declared (``Stage.config``), as attributes; reading any other is a bug.

    Besides the fields of ``RunConfig`` (``train``, ``folding``, ``seed``...), ``board`` is the loaded
    ``BoardSpec``, ``clock_mhz`` the effective clock (the board's when the config leaves it out) and
    ``folding_options`` the ``FoldingOptions`` every folding of the run uses (from ``folding`` and the clock).
    """

    def __init__(self, values: Mapping[str, Any]):
        self._values = dict(values)

    def __getattr__(self, name: str) -> Any:
        try:
            return self.__dict__["_values"][name]
        except KeyError:
            raise AttributeError(
                f"config section '{name}' is not declared in this stage's Stage.config"
            ) from None

    def key_parts(self) -> dict[str, Any]:
        return {k: (v.as_dict() if isinstance(v, BoardSpec) else to_dict(v)) for k, v in self._values.items()}


@dataclass(frozen=True)
class Stage:
    """One registered unit of ``hapfpga run`` / ``hapfpga build``.

    ``fn(ctx, conf) -> (outputs, result)``; ``inputs``: the stages whose outputs or results it reads
    (a disabled optional input is skipped); ``outputs``: the paths it writes, relative to the run directory
    (what ``--from`` checks and the manifest digests); ``config``: the config sections its cache key
    depends on (the key also hashes the keys of its inputs, so a change upstream re-runs it);
    ``enabled``: whether the config turns it on (optional stages: their section is present);
    ``cached``: ``False`` for stages that always run (the report); ``key_extra``: anything else that
    changes its output (the FINN flow the installed tools allow); ``gate``: a check of its result run
    after the report is written (verification failures); ``produces``: what the user has once it ran,
    as a phrase for the "everything short of the bitstream" sentence.
    """

    name: str
    fn: Callable[[Context, Conf], StageOutput]
    inputs: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()
    config: tuple[str, ...] = ()
    enabled: Callable[[RunConfig], bool] = always
    cached: bool = True
    key_extra: Callable[[Context], Any] | None = None
    gate: Callable[[Context, dict[str, Any]], None] | None = None
    produces: Callable[[dict[str, Any]], str] | str = ""

    def describe(self, result: dict[str, Any]) -> str:
        return self.produces(result) if callable(self.produces) else self.produces


@dataclass
class Context:
    """What a stage sees of the run: where to write, the board, the data, and what ran before it.

    ``model_file`` is the QONNX file the hardware stages build: ``final.qonnx.onnx`` of the export stage in
    ``hapfpga run``, the user's file in ``hapfpga build``. ``results``/``keys`` hold every finished (or
    resumed) stage's report fragment and cache key; ``external`` names the inputs given from outside (the
    model file of ``hapfpga build``) with the key standing for them.
    """

    cfg: RunConfig
    run_dir: Path
    board: BoardSpec
    clock_mhz: float
    console: Any
    model_file: Path
    dataset: Any = None  # hapfpga.data.Dataset when the flow trains; None in `hapfpga build`
    test_set: tuple[Any, Any] | None = None  # (x_test, y_test) in the dataset's domain, when known
    input_scale: float | None = None  # dataset float -> accelerator input factor (`hapfpga build`)
    data_key: str | None = None  # hash of test data given from outside (`hapfpga build --test-data`)
    env: Mapping[str, str] | None = None  # environment to detect Vivado in (tests pass a fake one)
    progress: Callable[[int, int, str], None] | None = None  # FINN step progress
    results: dict[str, dict[str, Any]] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)  # seconds of each stage run this time
    resumed: list[str] = field(default_factory=list)  # stages found finished in the run directory

    def path(self, rel: str) -> Path:
        return self.run_dir / rel

    def conf(self, stage: Stage) -> Conf:
        values: dict[str, Any] = {}
        for name in stage.config:
            if name == "board":
                values[name] = self.board
            elif name == "clock_mhz":
                values[name] = self.clock_mhz
            elif name == "folding_options":  # derived once from the folding section and the effective clock
                values[name] = FoldingOptions.from_config(self.cfg.folding, self.clock_mhz, self.board.part)
            else:
                values[name] = getattr(self.cfg, name)
        return Conf(values)

    def key(self, stage: Stage, inputs: tuple[str, ...]) -> str:
        extra = stage.key_extra(self) if stage.key_extra is not None else None
        return stage_key(stage.name, self.conf(stage).key_parts(), {i: self.keys[i] for i in inputs}, extra)
