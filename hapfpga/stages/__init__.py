"""The stages of ``hapfpga run`` and ``hapfpga build``: one explicit registry, one orchestrator.

A stage is a module-level function ``fn(ctx, conf) -> (outputs, result)`` wrapped in a ``Stage``
(``hapfpga/stages/base.py``) that declares

* ``inputs``: the stages whose outputs/results it reads (``ctx.results[name]``, files under ``ctx.run_dir``);
  an optional input the config leaves out is skipped;
* ``outputs``: the paths it writes, relative to the run directory (write them atomically with
  ``hapfpga.runstate.atomic_write_text`` / ``atomic_path`` / ``atomic_dir``);
* ``config``: the ``RunConfig`` sections it reads (``conf.<section>``; ``board`` and ``clock_mhz`` are the
  loaded board and the effective clock). Its cache key hashes these and its inputs' keys, so a changed
  section re-runs it and everything downstream, and nothing else;
* ``enabled``: for an optional stage, the predicate that its config section is present;
* optionally ``gate`` (a check run after the report, e.g. verification failed -> ``VerificationError``),
  ``key_extra`` and ``produces`` (see ``Stage``).

``result`` is plain JSON: it is kept in ``DIR/manifest.json`` (``hapfpga.runstate``) and is the stage's
fragment of ``report.json`` (``report.py`` maps it to a section).

To add a stage (e.g. ``synth``):

1. write ``hapfpga/stages/synth.py`` with ``def synth(ctx, conf): ...`` and
   ``SYNTH = Stage("synth", synth, inputs=("finn_build",), outputs=("synth",), config=("synth", "board"),
   enabled=lambda cfg: cfg.synth is not None)``;
2. add its config section to ``RunConfig`` (``hapfpga/runconfig.py``, ``None`` = off);
3. list it below: in ``REGISTRY`` and at its place in ``RUN_STAGES`` (and ``BUILD_STAGES`` if
   ``hapfpga build`` should run it); give it a section in ``report.py`` (and add it to ``REPORT.inputs``);
4. test it alone on a fixture run dir (``tests/pipeline/test_stages.py`` runs every registered stage alone).

Registration is explicit (this file), never a side effect of importing a module. ``runner.run_stages`` runs
a list of stages with resume-by-key; ``run_config`` (``hapfpga run``, with ``stages:``/``--from``/``--to``)
and ``build_model`` (``hapfpga build``) are two lists over the same registry.
"""

from __future__ import annotations

from .base import Conf, Context, Stage
from .export import EXPORT
from .fold import FOLD
from .hardware import DEPLOY, FINN_BUILD, RTLSIM, VERIFY, finn_estimate_summary
from .model import PRUNE, TRAIN
from .report import REPORT
from .runner import BuildOutputs, FlowResult, build_model, run_config, run_stages, select_stages
from .synth import SYNTH

__all__ = [
    "REGISTRY",
    "RUN_STAGES",
    "BUILD_STAGES",
    "Stage",
    "Context",
    "Conf",
    "FlowResult",
    "BuildOutputs",
    "run_config",
    "build_model",
    "run_stages",
    "select_stages",
    "finn_estimate_summary",
]

#: Every stage, by name.
REGISTRY: dict[str, Stage] = {
    s.name: s for s in (TRAIN, PRUNE, EXPORT, FOLD, FINN_BUILD, VERIFY, DEPLOY, RTLSIM, SYNTH, REPORT)
}

#: ``hapfpga run CONFIG``: the whole flow (optional stages run when their config section is present).
RUN_STAGES: tuple[str, ...] = (
    "train", "prune", "export", "fold", "finn_build", "verify", "deploy", "rtlsim", "synth", "report",
)
#: ``hapfpga build MODEL``: from a QONNX file (the ``export`` stage's output, given by the user).
BUILD_STAGES: tuple[str, ...] = ("fold", "finn_build", "deploy", "rtlsim", "synth", "report")
