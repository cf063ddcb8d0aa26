"""Atomic outputs and the resume manifest."""

import os

import pytest

from hapfpga.errors import ConfigError
from hapfpga.runstate import RunState, atomic_dir, atomic_path, atomic_write_text, stage_key


def test_manifest_resume_and_invalidation(tmp_path):
    st = RunState(tmp_path)
    out = tmp_path / "a.txt"
    atomic_write_text(out, "hello")
    k = stage_key("train", {"epochs": 1})
    assert st.done("train", k) is None
    st.finish("train", k, [out], {"accuracy": 0.5})
    again = RunState(tmp_path)
    assert again.done("train", k) == {"accuracy": 0.5}
    assert again.done("train", stage_key("train", {"epochs": 2})) is None  # config changed
    out.write_text("tampered")
    assert again.done("train", k) is None  # output changed since it was recorded
    out.unlink()
    assert again.done("train", k) is None


def test_atomic_path_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "model.onnx"
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert not target.exists()
    assert os.listdir(tmp_path) == []


def test_atomic_dir_replaces_whole(tmp_path):
    d = tmp_path / "finn"
    with atomic_dir(d) as tmp:
        (tmp / "x").write_text("1")
    assert (d / "x").read_text() == "1"
    with pytest.raises(RuntimeError), atomic_dir(d) as tmp:
        (tmp / "y").write_text("2")
        raise RuntimeError
    assert sorted(os.listdir(d)) == ["x"]


def test_unwritable_out_dir(tmp_path):
    f = tmp_path / "file"
    f.write_text("")
    with pytest.raises(ConfigError, match="not writable"):
        RunState(f / "sub")
