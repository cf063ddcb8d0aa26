"""The optional ``synth:`` stage: Yosys ``synth_xilinx`` on the RTL FINN generates for each layer (issue 14).

Runs on the model and folding of the run (the design ``rtlsim`` simulates: RTL layers preferred, standalone
thresholds, DWCs and FIFOs); report.json's ``synth`` section puts ours / FINN / Yosys side by side per layer.
Results are cached by content (``~/.cache/hapfpga/synth``), so a resumed or repeated run costs seconds.
"""

from __future__ import annotations

from .base import Conf, Context, Stage, StageOutput

__all__ = ["SYNTH", "synth"]


def synth(ctx: Context, conf: Conf) -> StageOutput:
    from ..runconfig import SynthConfig
    from ..synth.stage import run_synth_stage
    from .hardware import chosen_specialize

    sc = conf.synth or SynthConfig()
    rep = run_synth_stage(ctx.model_file, ctx.path("folding.json"), conf.board, ctx.run_dir, whole=sc.whole,
                          quick=sc.quick, clock_mhz=conf.clock_mhz,
                          specialize=chosen_specialize(ctx))
    return [ctx.path("synth")], rep


SYNTH = Stage(
    "synth", synth, inputs=("fold",), outputs=("synth",), config=("synth", "board", "clock_mhz"),
    enabled=lambda cfg: cfg.synth is not None, produces="an open synthesis (Yosys) of the RTL layers",
)
