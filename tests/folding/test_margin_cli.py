"""``--margin`` on ``hapfpga build`` (with ``--max-fps``: our optimiser) reaches the fold stage's config."""

from __future__ import annotations

import pytest

from hapfpga.cli import main
from hapfpga.errors import ConfigError
from hapfpga.runconfig import FoldingConfig


@pytest.mark.parametrize(("argv", "mode", "margin"), [
    (["--margin", "0.1"], "max_fps", 0.1),
    (["--max-fps"], "max_fps", None),
    (["--max-fps", "--margin", "LUT=0.2"], "max_fps", {"LUT": 0.2}),
    ([], "none", None),
])
def test_build_margin_reaches_the_fold_stage(tmp_path, monkeypatch, argv, mode, margin):
    from hapfpga.stages import runner

    seen = {}

    def capture(ctx, stages, chosen):  # noqa: ANN001, ANN202
        seen["folding"] = ctx.cfg.folding
        raise ConfigError("stop here: the stages are not under test.")

    monkeypatch.setattr(runner, "run_stages", capture)
    model = tmp_path / "m.onnx"
    model.write_bytes(b"not read before the stages run")
    assert main(["build", str(model), "--out", str(tmp_path / "out"), *argv]) == 2
    f = seen["folding"]
    assert isinstance(f, FoldingConfig) and f.mode == mode and f.margin == margin


@pytest.mark.parametrize("argv", [["--folding", "f.json", "--margin", "0.1"], ["--target-fps", "100", "--max-fps"],
                                  ["--margin", "1.2"], ["--margin", "DSP=x"]])
def test_build_margin_user_errors_exit_2(tmp_path, capsys, argv):
    assert main(["build", str(tmp_path / "m.onnx"), "--out", str(tmp_path / "o"), *argv]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_config_margin_is_checked_when_read():
    assert FoldingConfig(margin={"BRAM_18K": 0.05}).margin == {"BRAM_18K": 0.05}
    with pytest.raises(ConfigError):
        FoldingConfig(margin={"LUTS": 0.05})
    with pytest.raises(ConfigError):
        FoldingConfig(margin=1.0)
