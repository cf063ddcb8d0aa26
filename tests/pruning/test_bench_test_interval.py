"""``benchmarks/pruning_vs_finn.py``'s test-split drop with its paired interval (issue 24, "the benchmark reports
every seed"): each arm's JSON row counts the test samples it lost and gained against the model its drop is
measured against (``test_paired``), the table prints the paired 95 % interval of the true drop beside each seed's
drop and a verdict (``meets`` / ``fails`` / ``fails (within test noise)``), while the acceptance and the last line
stay on the observed drop; ``--combine`` still reads runs written before ``test_paired``."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from hapfpga.pruning.selection import Paired, drop_bound

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "pruning_vs_finn.py"
_spec = importlib.util.spec_from_file_location("pruning_vs_finn", BENCH)
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)

#: digits' test split in the benchmark (load_digits: 25 % of 1,797)
N_TEST = 450


def _random_pairs(seed: int, count: int, n_max: int = 300) -> list[tuple[int, int, int]]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        n = int(rng.integers(20, n_max))
        changed = int(rng.integers(0, max(1, n // 6)))
        lost = int(rng.integers(0, changed + 1))
        out.append((n, lost, changed - lost))
    return out


# ----------------------------------------------------------------------------------------------- the interval


@pytest.mark.parametrize("n, lost, gained", [*_random_pairs(0, 10, n_max=200), (N_TEST, 8, 3), (N_TEST, 0, 0)])
def test_interval_holds_the_observed_drop_and_its_ends_are_drop_bound(n, lost, gained):
    """Over random paired outcomes: lower ≤ observed ≤ upper (strictly, the test's two 2.5 % tails exclude the
    point estimate); the upper end is ``drop_bound`` at 0.975, the lower end minus that of the swapped pair."""
    lo, hi = bench.drop_interval(n, lost, gained)
    drop = (lost - gained) / n
    assert lo < drop < hi
    assert hi == pytest.approx(drop_bound(Paired(n, lost, gained), 0.975, bench.CI_TOL), abs=1e-12)
    assert lo == pytest.approx(-drop_bound(Paired(n, gained, lost), 0.975, bench.CI_TOL), abs=1e-12)
    # a 95 % two-sided interval is wider than the one-sided 80 % bound on each side
    assert hi > drop_bound(Paired(n, lost, gained), 0.8)


@pytest.mark.parametrize("n, lost, gained", _random_pairs(1, 8, n_max=200))
def test_interval_is_symmetric_under_swapping_the_models(n, lost, gained):
    lo, hi = bench.drop_interval(n, lost, gained)
    lo_s, hi_s = bench.drop_interval(n, gained, lost)
    assert (lo_s, hi_s) == (-hi, -lo)


@pytest.mark.parametrize("lost_rate, gained_rate", [(0.0, 0.0), (0.02, 0.0), (0.03, 0.01), (0.01, 0.03)])
def test_interval_widens_as_the_split_shrinks(lost_rate, gained_rate):
    """The same lost and gained rates on fewer samples: a wider interval, still holding the observed drop."""
    widths = []
    for n in (240, 120, 60):
        lo, hi = bench.drop_interval(n, round(lost_rate * n), round(gained_rate * n))
        assert lo <= lost_rate - gained_rate <= hi
        widths.append(hi - lo)
    assert widths[0] < widths[1] < widths[2]


def test_interval_of_an_unchanged_model_on_digits_test_split():
    """The converged model against itself (the unpruned arms): lost = gained = 0 on 450 samples gives a symmetric
    interval whose ends are the smallest drop the split can certify at 97.5 % one-sided (below 1 pt)."""
    lo, hi = bench.drop_interval(N_TEST, 0, 0)
    assert lo == -hi and 0 < hi < 0.01


# ----------------------------------------------------------------------------------------------- the verdicts


def _arm(drop_pts: float, paired: tuple[int, int, int] | None, fits: bool = True) -> dict:
    row = {"fps": 2000.0, "ratio": 2.0, "fits": fits, "accuracy": 0.98 - drop_pts / 100, "drop_pts": drop_pts,
           "extra_epochs": 8.0, "reference": "converged + 8 ep"}
    if paired is not None:
        n, lost, gained = paired
        row["test_paired"] = {"n": n, "lost": lost, "gained": gained}
    return row


def _pts(n: int, lost: int, gained: int) -> float:
    return 100 * (lost - gained) / n


@pytest.mark.parametrize("paired, fits, verdict", [
    ((N_TEST, 2, 0), True, "meets"),  # 0.44 pt
    ((N_TEST, 3, 3), True, "meets"),
    ((N_TEST, 8, 3), True, "fails (within test noise)"),  # 1.11 pt, one sample over the rule
    ((N_TEST, 6, 0), True, "fails (within test noise)"),  # 1.33 pt: stop 25's failing seeds
    ((N_TEST, 30, 0), True, "fails"),  # 6.67 pt
    ((N_TEST, 2, 0), False, "fails (no fit)"),
])
def test_verdicts_on_synthetic_rows(paired, fits, verdict):
    runs = [{"seed": 0, "arms": {"hw+ours": _arm(_pts(*paired), paired, fits)}}]
    (row,) = bench.seed_rows(runs, "hw+ours", 1.0)
    assert row["verdict"] == verdict
    assert row["meets"] == (verdict == "meets")  # the acceptance stays on the observed drop


@pytest.mark.parametrize("seed", range(10))
def test_verdict_is_the_interval_against_the_rule(seed):
    """Over random rows: ``fails`` exactly when the observed drop and the interval's lower end are both above the
    rule, ``within test noise`` when only the observed drop is, ``meets`` when it is not."""
    rng = np.random.default_rng(100 + seed)
    rule = float(rng.choice([0.5, 1.0, 2.0]))
    for n, lost, gained in _random_pairs(200 + seed, 3, n_max=200):
        drop = _pts(n, lost, gained)
        row = bench.seed_rows([{"seed": 0, "arms": {"a": _arm(drop, (n, lost, gained))}}], "a", rule)[0]
        lo, hi = (100 * v for v in bench.drop_interval(n, lost, gained))
        assert row["drop_ci_pts"] == (lo, hi)
        if drop <= rule:
            assert row["verdict"] == "meets"
        else:
            assert row["verdict"] == ("fails" if lo > rule else "fails (within test noise)")


# ----------------------------------------------------------------------------------------------- finish_drops


def _random_correct(rng: np.random.Generator, base: np.ndarray, flips: int) -> np.ndarray:
    out = base.copy()
    out[rng.choice(base.size, size=flips, replace=False)] ^= True
    return out


@pytest.mark.parametrize("seed", range(20))
def test_finish_drops_counts_lost_and_gained_against_the_right_model(seed):
    """Random per-sample correctness of the converged model, the reference and the arms: each arm's ``test_paired``
    is against the reference (extra epochs) or the converged model (none), accuracy_ref − accuracy_arm equals
    (lost − gained) / n in samples, ``drop_pts`` is unchanged, and the per-sample vectors leave the row (JSON)."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(50, 500))
    conv = rng.random(n) < rng.uniform(0.8, 0.99)
    ref = _random_correct(rng, conv, int(rng.integers(0, n // 10)))
    arms = {}
    for i, (arm, _) in enumerate(bench.ARMS):
        c = conv if arm.startswith("unpruned") else _random_correct(rng, ref, int(rng.integers(0, n // 5)))
        arms[arm] = {"accuracy": float(c.mean()), bench.TEST_CORRECT: c, "fps": 1000.0 * (i + 1),
                     "extra_epochs": 0.0 if arm.startswith("unpruned") else 8.0}
    acc_ref = float(ref.mean())
    bench.finish_drops(arms, acc_ref, 8.0, ref)
    json.dumps(arms)
    for a in arms.values():
        t = a["test_paired"]
        against = conv if a["extra_epochs"] == 0 else ref
        assert t["n"] == n and bench.TEST_CORRECT not in a
        assert round(against.mean() * n) - round(a["accuracy"] * n) == t["lost"] - t["gained"]
        assert a["drop_pts"] == 100 * ((acc_ref if a["extra_epochs"] else arms["unpruned+ours"]["accuracy"])
                                       - a["accuracy"])
        assert a["drop_pts"] == pytest.approx(100 * (t["lost"] - t["gained"]) / n, abs=1e-9)
    assert arms["unpruned+ours"]["test_paired"] == {"n": n, "lost": 0, "gained": 0}


def _tfc(seed: int):
    """brevitas_examples' FINN TFC (1-bit weights and activations), a model no one on the team wrote, seeded."""
    import torch
    from brevitas_examples.bnn_pynq.models import model_with_cfg

    torch.manual_seed(seed)
    model, _ = model_with_cfg("tfc_1w1a", pretrained=False)
    return model.eval()


def _digits_28():
    """scikit-learn digits (real data) upsampled to 24×24 and padded to TFC's 28×28 input."""
    from hapfpga.data import load_digits

    d = load_digits(size=24)
    pad = ((0, 0), (0, 0), (2, 2), (2, 2))
    return SimpleNamespace(x_test=np.pad(d.x_test, pad).astype(np.float32), y_test=d.y_test)


def test_held_out_row_is_evaluate_figure_and_pairs_two_real_models():
    """``held_out_row`` gives exactly ``hapfpga.train.evaluate``'s accuracy on real data and a user's model; two
    such models (different seeds) paired: lost − gained is the accuracy difference in samples."""
    from hapfpga.train import evaluate

    data = _digits_28()
    a, b = _tfc(0), _tfc(1)
    ra, rb = bench.held_out_row(a, data), bench.held_out_row(b, data)
    assert ra["accuracy"] == evaluate(a, data.x_test, data.y_test)
    assert rb["accuracy"] == evaluate(b, data.x_test, data.y_test)
    p = Paired.of(ra[bench.TEST_CORRECT], rb[bench.TEST_CORRECT])
    assert p.n == len(data.y_test) == N_TEST and p.lost + p.gained > 0
    assert round(ra["accuracy"] * p.n) - round(rb["accuracy"] * p.n) == p.lost - p.gained


# ----------------------------------------------------------------------------------------------- --combine


ARGS = {**vars(bench.make_parser().parse_args([])), "seeds": [0]}
#: stop 25's failing seed rows, as (seed, arm) -> (ratio, lost, gained) of 450 test samples
SEEDS = {0: {"hw+ours": (3.56, 3, 0), "mixed+ours": (10.40, 3, 0)},
         1: {"hw+ours": (12.14, 10, 0), "mixed+ours": (8.43, 0, 2)},
         2: {"hw+ours": (5.85, 4, 0), "mixed+ours": (4.55, 6, 0)}}


def _seed_run(seed: int, with_paired: bool) -> dict:
    """One seed as ``run_seed`` returns it: before this change (no ``test_paired``) or after."""
    sf, acc_ref = 1526.0, 0.9867
    arms = {}
    for arm, _ in bench.ARMS:
        ratio, lost, gained = SEEDS[seed].get(arm.replace("setfolding", "ours"), (2.32, 0, 0))
        ratio = 1.0 if arm == "unpruned+setfolding" else ratio
        extra = 0.0 if arm.startswith("unpruned") else 8.0
        acc = acc_ref - (lost - gained) / N_TEST
        arms[arm] = {"accuracy": acc, "extra_epochs": extra, "fps": ratio * sf, "fits": True,
                     "finn_total": {"LUT": 1.0, "BRAM_18K": 1.0, "URAM": 0.0, "DSP": 0.0}, "bottleneck": "x",
                     "target_fps": None, "reference": "converged" if extra == 0 else "converged + 8 ep",
                     "drop_pts": 100 * (acc_ref - acc), "ratio": ratio}
        if with_paired:
            arms[arm]["test_paired"] = {"n": N_TEST, "lost": lost, "gained": gained}
    return {"seed": seed, "curve": [0.9, 0.95], "baseline_epochs": 20, "reference_epochs": 8.0,
            "reference_accuracy": acc_ref, "arms": arms,
            "phases": {"baseline": {"wall_s": 10.0, "cpu_s": 9.0}, "seed": {"wall_s": 50.0, "cpu_s": 80.0}}}


def _write(tmp_path: Path, with_paired: bool) -> list[str]:
    paths = []
    for seed in SEEDS:
        p = tmp_path / f"{'new' if with_paired else 'old'}{seed}.json"
        p.write_text(json.dumps({"args": {**ARGS, "seeds": [seed], "json": str(p)}, "runs": [_seed_run(seed, with_paired)],
                                 "summary": {}, "seconds": 100.0, "load_average": {"start": [1.0], "end": [2.0]}}))
        paths.append(str(p))
    return paths


def _line(out: str, label: str) -> str:
    return next(ln for ln in out.splitlines() if ln.strip().startswith(label) and "seed 0:" in ln)


def test_combine_of_runs_from_before_test_paired_prints_no_interval(tmp_path, capsys):
    assert bench.combine(_write(tmp_path, with_paired=False), 1.0) == 0
    out = capsys.readouterr().out
    hw = _line(out, "hw-aware pruning + our folding")
    assert "seed 0: 3.56× at 0.67 pt [-] meets" in hw
    assert "seed 1: 12.14× at 2.22 pt [-] fails (no interval)" in hw


def test_combine_prints_intervals_and_verdicts_and_keeps_the_acceptance(tmp_path, capsys):
    """The new rows: every seed's drop with its interval and verdict (synthetic counts: 10 lost / 0 gained, 2.22 pt,
    is a real loss; 6 lost / 0 gained, 1.33 pt, is within test noise); the acceptance, best arm and last line are
    those of the same runs without ``test_paired``."""
    assert bench.combine(_write(tmp_path, with_paired=False), 1.0) == 0
    old = capsys.readouterr().out
    assert bench.combine(_write(tmp_path, with_paired=True), 1.0) == 0
    new = capsys.readouterr().out
    hw, mixed = _line(new, "hw-aware pruning + our folding"), _line(new, "mixed precision + pruning + ours")
    for text, (n, lost, gained), verdict in (
            (hw, (N_TEST, 3, 0), "meets"), (hw, (N_TEST, 10, 0), "fails"),
            (mixed, (N_TEST, 6, 0), "fails (within test noise)"), (mixed, (N_TEST, 0, 2), "meets")):
        lo, hi = (100 * v for v in bench.drop_interval(n, lost, gained))
        assert f"at {_pts(n, lost, gained):.2f} pt [{lo:.2f}, {hi:.2f}] {verdict}" in text
    unpruned = _line(new, "unpruned + our folding")
    lo0, hi0 = (100 * v for v in bench.drop_interval(N_TEST, 0, 0))
    assert f"at 0.00 pt [{lo0:.2f}, {hi0:.2f}] meets" in unpruned

    def kept(out: str) -> list[str]:  # everything but the per-seed rows and their header
        lines = out.splitlines()
        start = next(i for i, ln in enumerate(lines) if ln.startswith("per seed"))
        return lines[:start] + [ln for ln in lines[start + 1:] if not ln.startswith("  ")]

    assert [ln.replace("new", "old") for ln in kept(new)] == kept(old)
    assert new.strip().splitlines()[-1].startswith("prune_fold_speedup_vs_setfolding 2.320")


# ----------------------------------------------------------------------------------------------- a real run


@pytest.mark.slow
def test_smoke_run_counts_lost_and_gained_that_add_up_to_the_accuracies(tmp_path):
    """A ``--smoke`` run (one seed, tiny budgets, real training and FINN): every arm has ``test_paired`` on the
    whole test split, lost − gained is the accuracy difference against the model it is measured against, in
    samples, and the table prints each seed's interval."""
    out = tmp_path / "smoke"
    cmd = [sys.executable, str(BENCH), "--smoke", "--work", str(out / "w"), "--cache", str(out / "c"), "--json",
           str(out / "r.json")]
    env = {**os.environ, "PYTHONPATH": str(BENCH.parents[1])}
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1800)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    (run,) = json.loads((out / "r.json").read_text())["runs"]
    acc_conv, acc_ref = run["arms"]["unpruned+ours"]["accuracy"], run["reference_accuracy"]
    for arm, a in run["arms"].items():
        t = a["test_paired"]
        n = t["n"]
        assert n == N_TEST and bench.TEST_CORRECT not in a
        against = acc_ref if a["extra_epochs"] > 0 else acc_conv
        assert round(against * n) - round(a["accuracy"] * n) == t["lost"] - t["gained"], arm
        assert a["drop_pts"] == pytest.approx(100 * (t["lost"] - t["gained"]) / n, abs=1e-9)
    assert run["arms"]["unpruned+setfolding"]["test_paired"] == {"n": N_TEST, "lost": 0, "gained": 0}
    # uniform under the rule: a keep ratio whose validation drop meets the search's rule (or the unpruned model)
    u = run["arms"]["urule+ours"]
    assert 0 < u["keep_ratio"] <= 1 and u["channels_after"] and u["extra_epochs"] > 0
    assert u["accuracy_val"]["before"] - u["accuracy_val"]["after"] <= 0.005 + 1e-12 or u["fps_after"] == u["fps_before"]
    assert run["phases"]["urule"]["wall_s"] > 0
    # the speed-matched uniform arm keeps its keep ratio beside its FPS ratio
    s = run["arms"]["uniform+ours"]
    assert 0 < s["keep_ratio"] <= 1 and s["ratio"] == pytest.approx(s["fps"] / run["arms"]["unpruned+setfolding"]["fps"])
    assert "paired 95 % interval" in res.stdout
    hw = next(ln for ln in res.stdout.splitlines() if ln.strip().startswith("hw-aware pruning + our folding")
              and "seed 0:" in ln)
    lo, hi = (100 * v for v in bench.drop_interval(**run["arms"]["hw+ours"]["test_paired"]))
    assert f"[{lo:.2f}, {hi:.2f}]" in hw
