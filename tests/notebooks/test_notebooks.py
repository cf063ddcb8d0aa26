"""The four notebooks in notebooks/ run top to bottom (small settings, CPU) with the project's kernel."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
NAMES = sorted(p.name for p in NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))


def test_there_are_four_notebooks():
    assert [n[:2] for n in NAMES] == ["01", "02", "03", "04"]


def _run(name: str, work: Path) -> tuple:
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    env_before = dict(os.environ)
    os.environ["HAPFPGA_NB_WORK"] = str(work)
    try:
        # the kernel is this interpreter (the project's venv), started in the work dir
        client = NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(work)}})
        client.kernel_manager_kwargs = {"kernel_cmd": [sys.executable, "-m", "ipykernel_launcher", "-f",
                                                       "{connection_file}"]}
        t0 = time.perf_counter()
        client.execute()
        return nb, time.perf_counter() - t0
    finally:
        os.environ.clear()
        os.environ.update(env_before)


def _text(nb) -> str:
    out = []
    for c in nb.cells:
        for o in c.get("outputs", []):
            out.append(o.get("text", "") or "".join(o.get("data", {}).get("text/plain", "")))
    return "\n".join(out)


@pytest.mark.parametrize("name", NAMES)
def test_notebook_runs(name, tmp_path):
    nb, seconds = _run(name, tmp_path)
    text = _text(nb)
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
    if name.startswith("01"):
        assert "pruned test accuracy" in text and (tmp_path / "digits_pruned.qonnx.onnx").is_file()
    if name.startswith("02"):
        assert "max-FPS folding" in text and (tmp_path / "folding.json").is_file()
    if name.startswith("03"):
        assert "all stages pass: True" in text and (tmp_path / "report.html").is_file()
    if name.startswith("04"):
        assert "throughput:" in text and "accuracy:" in text
        assert "emulated board == sim backend on 100/100 images" in text
        assert "outputs equal to the sim backend on" in text and "cycles per frame" in text
    # figures were drawn
    if not name.startswith("03"):
        assert any("image/png" in o.get("data", {}) for c in nb.cells for o in c.get("outputs", []))


def test_default_work_folder_is_ignored_by_git():
    """Run in Jupyter without HAPFPGA_NB_WORK, the notebooks write to notebooks/nb_work/: never untracked."""
    import json
    import shutil
    import subprocess

    for name in NAMES:
        src = "".join("".join(c["source"]) for c in json.loads((NOTEBOOKS / name).read_text())["cells"])
        assert 'os.environ.get("HAPFPGA_NB_WORK", "nb_work")' in src, name
    git = shutil.which("git")
    assert git is not None
    proc = subprocess.run([git, "check-ignore", "-q", "notebooks/nb_work/digits.pt"], cwd=NOTEBOOKS.parent)
    assert proc.returncode == 0, "notebooks/nb_work/ is not in .gitignore"
