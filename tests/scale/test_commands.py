"""search-worker / search-front: user errors are one sentence (exit 2); the front of an SQLite study as JSON."""

from __future__ import annotations

import json

import pytest
import yaml

from hapfpga.cli import main

optuna = pytest.importorskip("optuna")
torch = pytest.importorskip("torch")


def _cfg(tmp_path, **pruning):
    p = tmp_path / "cfg.yaml"
    p.write_text(yaml.safe_dump({"model": {"name": "digits_cnn"}, "data": {"name": "digits"},
                                 **({"pruning": pruning} if pruning else {})}))
    return str(p)


def test_search_worker_user_errors(tmp_path, capsys):
    assert main(["search-worker", _cfg(tmp_path), "--storage", "sqlite:///x.db"]) == 2
    assert "no pruning: section" in capsys.readouterr().err
    assert main(["search-worker", _cfg(tmp_path, method="nsga2")]) == 2
    assert "--storage" in capsys.readouterr().err
    assert main(["search-worker", _cfg(tmp_path, method="greedy"), "--storage", "sqlite:///x.db"]) == 2
    assert "pruning.search.artifacts" in capsys.readouterr().err
    cfg = _cfg(tmp_path, method="nsga2", search={"artifacts": str(tmp_path / "shared")})
    url = f"sqlite:///{tmp_path / 's.db'}"
    assert main(["search-worker", cfg, "--storage", url, "--study", "s", "--wait", "0"]) == 2
    assert "No search problem" in capsys.readouterr().err
    assert main(["search-worker", _cfg(tmp_path, method="nsga2", search={"workers": 0}), "--storage", url]) == 2
    assert "pruning.search" in capsys.readouterr().err


def test_search_front_reads_a_study_and_names_unknown_ones(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 's.db'}"
    study = optuna.create_study(study_name="s", storage=url, directions=["maximize", "maximize", "minimize"])
    points = [(0.9, 100.0, 50.0), (0.8, 200.0, 40.0), (0.7, 150.0, 60.0)]  # the last is dominated by the second
    for acc, fps, lut in points:
        t = study.ask({"c": optuna.distributions.CategoricalDistribution([8, 16])})
        t.set_user_attr("worker", "h:1")
        study.tell(t, [acc, fps, lut])
    assert main(["search-front", "--storage", url, "--study", "s", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [r["trial"] for r in out["front"]] == [1, 0]  # fastest first
    assert len(out["complete"]) == 3 and out["states"] == {"COMPLETE": 3}
    assert main(["search-front", "--storage", url, "--study", "nope"]) == 2
    assert "No study 'nope'" in capsys.readouterr().err
    bad = f"sqlite:///{tmp_path / 'missing-dir' / 'x.db'}"
    assert main(["search-front", "--storage", bad, "--study", "s"]) == 2


@pytest.mark.parametrize("change", [{"seed": 1}, {"pruning": {"val_fraction": 0.3}}])
def test_search_worker_refuses_data_or_seed_other_than_the_leaders(tmp_path, capsys, change):
    """The leader publishes the hash of its validation split (``hapfpga.data.array_digest``); a worker whose
    config draws another split (another seed, another val_fraction) stops with one sentence, exit 2, before it
    joins the study; the leader's own config gives the published hash."""
    from hapfpga.data import array_digest, load_digits, split_validation
    from hapfpga.pruning.workers import load_problem, publish_problem
    from hapfpga.runconfig import ModelConfig
    from hapfpga.train import FinetuneConfig
    from hapfpga.zoo import build_model

    shared = tmp_path / "shared"
    ds = load_digits()
    split = split_validation(ds.x_train, ds.y_train, 0.2, 0)
    model = build_model(ModelConfig(name="digits_cnn"), tuple(ds.input_shape), 10, seed=0).eval()
    model(torch.as_tensor(split[0][:8]))  # the activations' scales exist after a first forward, as in a leader's model
    publish_problem(shared, "s", model, None, {"g": [8, 4]}, ["g"], 0, FinetuneConfig(epochs=0.5),
                    (split[2], split[3]))
    assert load_problem(shared, "s")["val_hash"] == array_digest(split[2], split[3])
    pruning = {"method": "nsga2", "search": {"artifacts": str(shared)}, **change.get("pruning", {})}
    p = tmp_path / "worker.yaml"
    p.write_text(yaml.safe_dump({"model": {"name": "digits_cnn"}, "data": {"name": "digits"},
                                 "seed": change.get("seed", 0), "pruning": pruning}))
    url = f"sqlite:///{tmp_path / 's.db'}"
    assert main(["search-worker", str(p), "--storage", url, "--study", "s"]) == 2
    err = capsys.readouterr().err
    assert "differ from the leader's" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "s.db").exists()  # refused before it touched the study
