"""SetFolding's best-fit scan builds each distinct design once (issue 24): the deduplicated scan
(``setfolding_best_fit``, default) against one finn-plus build per target (``dedupe=False``), on brevitas_examples'
bnn_pynq TFC models (untrained, seeded weights) with LUT/BRAM budgets drawn at random, so the scans end on
different targets. Every comparison is with real finn-plus builds; nothing is mocked but a recorder around the
in-process folding."""

from __future__ import annotations

import dataclasses
import json
import random
from pathlib import Path

import pytest

from hapfpga.boards import load_board
from hapfpga.types import Resources

REPORTS = ("estimate_network_performance", "estimate_layer_resources", "estimate_layer_cycles")
KEYS = ("target_fps", "n_targets", "fps", "max_cycles", "bottleneck", "total", "fits")


@pytest.fixture(scope="module")
def tfc_specs(tmp_path_factory, brevitas_export) -> dict[str, Path]:
    """tfc_1w1a (seeds 0 and 1) and tfc_2w2a, exported to QONNX and specialised by finn-plus."""
    from hapfpga.finn.build import SPECIALIZE_STEPS, run_finn_steps

    d = tmp_path_factory.mktemp("tfc_sf")
    out = {}
    for name, seed in (("tfc_1w1a", 0), ("tfc_1w1a", 1), ("tfc_2w2a", 0)):
        key = f"{name}_s{seed}"
        onnx = brevitas_export(name, (1, 1, 28, 28), d / f"{key}.onnx", seed)
        out[key] = run_finn_steps(onnx, d / key, steps=SPECIALIZE_STEPS).step_models["step_specialize_layers"]
    return out


def _board(lut: float, bram: float):  # noqa: ANN202
    """The Pynq-Z2 with a LUT and BRAM budget of its own (whole capacity usable)."""
    board = load_board("pynq-z2")
    return dataclasses.replace(board, capacity=Resources(LUT=lut, FF=1e6, BRAM_18K=bram, URAM=0, DSP=220),
                               limits=Resources(LUT=1.0, FF=1.0, BRAM_18K=1.0, URAM=1.0, DSP=1.0))


def _reports(build_dir: Path) -> dict:
    return {r: json.loads((build_dir / "report" / f"{r}.json").read_text()) for r in REPORTS}


def _folding(build_dir: Path) -> dict:
    return json.loads((build_dir / "report" / "auto_folding_config.json").read_text())


_rng = random.Random(24)
CASES = [("tfc_1w1a_s0", _rng.randint(2500, 15000), _rng.choice([10, 40, 280])) for _ in range(2)] + [
    ("tfc_1w1a_s1", _rng.randint(2500, 15000), 280),
    ("tfc_2w2a_s0", _rng.randint(3000, 20000), _rng.choice([20, 280])),
]


@pytest.mark.parametrize(("model", "lut", "bram"), CASES)
def test_deduplicated_scan_is_the_scan_of_one_build_per_target(tfc_specs, tmp_path, monkeypatch, model, lut, bram):
    """Same targets visited in the same order, same best target and report as one build per target; fewer
    builds; and every target's own FINN build equals the build of the design its fingerprint maps it to."""
    from hapfpga.finn import setfolding as sf

    board, spec = _board(lut, bram), tfc_specs[model]
    settings = sf.ScanSettings(start=500, factor=1.25, max_misses=3, refine_steps=6, stop=1e8)
    built: list[int] = []
    build_report = sf._build_report
    monkeypatch.setattr(sf, "_build_report", lambda *a: built.append(a[-1]) or build_report(*a))
    old = sf.setfolding_best_fit(spec, tmp_path / "old", board, settings=settings, dedupe=False)
    old_built, built[:] = list(built), []
    visits: list[tuple[int, str]] = []
    fingerprint = sf._Folder.fingerprint

    def recorded(self, t: int) -> str:  # noqa: ANN001
        visits.append((t, fingerprint(self, t)))
        return visits[-1][1]

    monkeypatch.setattr(sf._Folder, "fingerprint", recorded)
    new = sf.setfolding_best_fit(spec, tmp_path / "new", board, settings=settings)
    assert {k: new[k] for k in KEYS} == {k: old[k] for k in KEYS}
    assert [t for t, _ in visits] == old_built and len(old_built) == old["n_targets"] == old["n_builds"]
    old_dirs = {t: tmp_path / "old" / f"sf_{t}" for t in old_built}
    first = {}
    for t, fp in visits:
        first.setdefault(fp, t)
    assert new["n_builds"] == len(first) < new["n_targets"] and built == list(first.values())
    for t, fp in visits:  # equal fingerprint: FINN's own build of t reports what the design's one build reports
        assert _reports(old_dirs[t]) == _reports(tmp_path / "new" / f"sf_{first[fp]}"), (t, first[fp])
        assert _folding(old_dirs[t]) == _folding(old_dirs[first[fp]])
    foldings = [json.dumps(_folding(old_dirs[t]), sort_keys=True) for t in first.values()]
    assert len(set(foldings)) == len(foldings)  # distinct fingerprints are distinct foldings: nothing over-split


def test_different_foldings_are_not_merged(tfc_specs, tmp_path):
    """Two targets whose SetFolding designs differ get different fingerprints and a build each; so do the same
    target on models that differ only in their weights (``step_minimize_bit_width`` reads them), and a folded
    model with one attribute changed."""
    from qonnx.custom_op.registry import getCustomOp

    from hapfpga.finn import setfolding as sf

    board = _board(1e6, 1e4)
    folder = sf._Folder(tfc_specs["tfc_1w1a_s0"], tmp_path, board.finn_board, 100.0)
    lo, hi = folder.fold(2000), folder.fold(200000)
    pe = {n.name: getCustomOp(n).get_nodeattr("PE") for n in lo.graph.node if n.op_type.startswith("MVAU")}
    assert pe != {n.name: getCustomOp(n).get_nodeattr("PE") for n in hi.graph.node if n.op_type.startswith("MVAU")}
    assert sf.design_fingerprint(lo) != sf.design_fingerprint(hi)
    assert folder.fingerprint(2000) == sf.design_fingerprint(lo)  # deterministic
    node = next(n for n in lo.graph.node if n.op_type.startswith("MVAU"))
    inst = getCustomOp(node)
    inst.set_nodeattr("ram_style", "block" if inst.get_nodeattr("ram_style") != "block" else "distributed")
    assert sf.design_fingerprint(lo) != folder.fingerprint(2000)
    other = sf._Folder(tfc_specs["tfc_1w1a_s1"], tmp_path / "s1", board.finn_board, 100.0)
    assert other.fingerprint(2000) != folder.fingerprint(2000)
    two = sf.ScanSettings(start=2000, factor=100.0, max_misses=1, refine_steps=1, stop=3e5)  # targets 2000, 200000
    res = sf.setfolding_best_fit(tfc_specs["tfc_1w1a_s0"], tmp_path / "scan", board, settings=two)
    assert res["n_targets"] >= 2 and res["n_builds"] >= 2
    assert {2000, 200000} <= {int(p.name[3:]) for p in (tmp_path / "scan").glob("sf_*")}



def test_a_budget_nothing_fits_is_refused_as_before(tfc_specs, tmp_path):
    """No target fits 100 LUTs: the deduplicated scan stops after the same misses and raises the same error."""
    from hapfpga.errors import InfeasibleError
    from hapfpga.finn import setfolding as sf

    settings = sf.ScanSettings(start=500, factor=1.25, max_misses=3, refine_steps=6, stop=1e8)
    errors = []
    for dedupe in (False, True):
        with pytest.raises(InfeasibleError) as e:
            sf.setfolding_best_fit(tfc_specs["tfc_1w1a_s0"], tmp_path / str(dedupe), _board(100, 280),
                                   settings=settings, dedupe=dedupe)
        errors.append(str(e.value))
    assert errors[0] == errors[1] and "fits" in errors[0]
    assert len(list((tmp_path / "False").glob("sf_*"))) == 3 >= len(list((tmp_path / "True").glob("sf_*"))) >= 1

@pytest.mark.slow
def test_speed_benchmark_checks_both_scans_agree():
    """``benchmarks/setfolding_scan_speed.py`` on the zoo's digits_cnn (a small model whose designs plateau, so
    most targets repeat one): exit 0 only when both scans agree; its last line counts fewer builds than targets."""
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run([sys.executable, str(root / "benchmarks" / "setfolding_scan_speed.py"), "--model",
                           "digits_cnn", "--start", "2000"], cwd=root, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    lines = proc.stdout.strip().splitlines()
    assert "same result: True" in lines[-2]
    words = lines[-1].split()
    assert words[0] == "setfolding_scan_builds" and words[2] == "of" and int(words[1]) < int(words[3]), lines[-1]
    assert float(words[-1]) > 0
