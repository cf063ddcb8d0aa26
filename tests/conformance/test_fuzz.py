"""The model-source fuzzer's property: every generated user model file either completes ``hapfpga run`` with
pruning (verification passed, the design fits) or is refused before training with one sentence and exit 2;
never exit 1, never a refusal after minutes of training, never a traceback (tests/conformance/fuzz_models.py).

Default suite: seeds 0-4 (tiny models, one epoch, 128 samples); ``-m slow``: seeds 0-39. A seed that fails is
shrunk by hand to the smallest file that still fails and kept in ``regressions/`` (test_regressions below).
"""

from __future__ import annotations

import ast
import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

_spec = importlib.util.spec_from_file_location("conformance_fuzz", Path(__file__).with_name("fuzz_models.py"))
fuzz = sys.modules.setdefault("conformance_fuzz", importlib.util.module_from_spec(_spec))
_spec.loader.exec_module(fuzz)
harness = fuzz.harness

FAST_SEEDS = range(5)
SLOW_SEEDS = range(40)
#: fuzz36 runs once, in test_a_finn_step_refusal_quotes_finn (the same file, data and config, more asserts)
REGRESSIONS = sorted(p for p in Path(__file__).with_name("regressions").glob("*.py")
                     if p.stem != "fuzz36_finn_step_refusal")


def check(cls: str, out) -> None:
    assert cls in (harness.COMPLETED, harness.REFUSED_EARLY), (
        f"{cls} (exit {out.rc} after {out.wall_s:.0f} s): {out.error}")


@pytest.mark.parametrize("seed", FAST_SEEDS)
def test_fuzz_fast(seed, tmp_path):
    spec = fuzz.generate(seed)
    check(*fuzz.run_case(spec, tmp_path))


@pytest.mark.slow
@pytest.mark.parametrize("seed", SLOW_SEEDS)
def test_fuzz(seed, tmp_path):
    spec = fuzz.generate(seed)
    check(*fuzz.run_case(spec, tmp_path))


def test_generator_is_seeded_and_covers_the_variations():
    """Same seed, same file; over the slow seeds every kind, flatten spelling, bit width and mistake occurs."""
    assert fuzz.render(fuzz.generate(7)) == fuzz.render(fuzz.generate(7))
    specs = [fuzz.generate(s) for s in SLOW_SEEDS]
    src = "\n".join(fuzz.render(s) for s in specs)
    assert {s.flatten for s in specs} == set(fuzz.FLATTENS)
    assert {b.kind for s in specs for b in s.blocks} == {"conv", "res", "dws"}
    assert {s.dims for s in specs} == {1, 2} and {s.input_bits for s in specs} == {None, 8}
    assert {x for s in specs for b in s.blocks for x in (*b.wbits, *b.abits)} == set(range(1, 9))
    assert {s.mistake for s in specs} == {None, *fuzz.MISTAKES}
    for needle in ("groups=", "stride=2", "padding=2", "MaxPool1d", "MaxPool2d", "TruncAvgPool2d", "_short("):
        assert needle in src, needle


@pytest.mark.parametrize("path", REGRESSIONS, ids=lambda p: p.stem)
def test_regressions(path, tmp_path):
    """Shrunk failing cases of the fuzzer, kept as fixed model files; each file names its input ``SHAPE`` and
    ``CLASSES`` (module constants) and gets digits of that shape, run as the fuzzer runs its cases. A file with a
    ``PRUNING`` section (one that really removes channels, where the fuzzer's max_fps search removes none) runs
    with it instead, and must complete with fewer channels: its fix holds on the pruned model too."""
    consts = {t.targets[0].id: ast.literal_eval(t.value) for t in ast.parse(path.read_text()).body
              if isinstance(t, ast.Assign) and isinstance(t.targets[0], ast.Name) and t.targets[0].id.isupper()}
    npz = tmp_path / "data.npz"
    np.savez(npz, **fuzz.data_of_shape(tuple(consts["SHAPE"]), consts["CLASSES"], 0, 128, 48))
    cfg = fuzz.case_config(path, npz)
    if "PRUNING" in consts:
        cfg["pruning"] = consts["PRUNING"]
    out = harness.run_user_config(cfg, tmp_path)
    check(harness.classify(out), out)
    if "PRUNING" in consts:
        assert harness.classify(out) == harness.COMPLETED, out.error
        pruning = out.report["pruning"]
        before, after = pruning["channels_before"], pruning["channels_after"]
        assert sum(after.values()) < sum(before.values()), (before, after)


def test_a_finn_step_refusal_quotes_finn(tmp_path):
    """A model FINN's step refuses (fuzzer seed 36: a bipolar activation after a depthwise conv, which FINN's VVAU
    cannot output): the one sentence quotes FINN's own reason and names the user's activation and its change."""
    path = Path(__file__).with_name("regressions") / "fuzz36_finn_step_refusal.py"
    npz = tmp_path / "data.npz"
    np.savez(npz, **fuzz.data_of_shape((1, 8, 8), 10, 0, 128, 48))
    out = harness.run_user_config(fuzz.case_config(path, npz), tmp_path)
    assert harness.classify(out) == harness.REFUSED_EARLY, out.error
    assert 'FINN says "MultiThreshold_' in out.error and "out_scale must be equal to 1.0" in out.error, out.error
    # the user's layer: the bipolar activation after the depthwise conv b2_dw, and the change
    assert "layer 'b2_dw_act'" in out.error and "after layer 'b2_dw'" in out.error, out.error
    assert "2 or more bits" in out.error, out.error
