"""The self-contained HTML report: content from a real FINN run, and a headless-Chromium render."""

from __future__ import annotations

import base64
import copy
import html
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from hapfpga.report_html import layer_table, pareto_front, render_report_html, write_report_html

#: Names a Chromium (or Chrome) goes by on PATH; HAPFPGA_CHROMIUM names one anywhere else.
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
_IMG = re.compile(r'<img alt="([^"]+)" src="data:image/png;base64,([A-Za-z0-9+/=]+)">')


def _images(page: str) -> dict[str, bytes]:
    return {alt: base64.b64decode(b64) for alt, b64 in _IMG.findall(page)}


def test_page_is_self_contained_and_has_the_plots(tfc_report, tmp_path):
    rep = tfc_report["report"]
    out = write_report_html(tfc_report["path"], tmp_path / "report.html")
    page = out.read_text()
    # nothing fetched from outside: no http(s) URLs, no external src/href
    assert not re.search(r"""(src|href)=["'](?!data:)""", page)
    assert "http://" not in page and "https://" not in page
    imgs = _images(page)
    for alt in ("per-layer cycles with the bottleneck marked", "per-layer resources stacked against the budget",
                "channels per layer"):
        assert alt in imgs, alt
        assert imgs[alt].startswith(b"\x89PNG\r\n\x1a\n")
    # the bottleneck named in the page is FINN's, and it is the node with the most cycles in FINN's report
    cyc = tfc_report["finn"].reports["estimate_layer_cycles"]
    worst = max(cyc, key=cyc.get)
    assert rep["finn_estimate"]["max_cycles_node"] == worst
    assert f"bottleneck {worst}" in page
    # FINN's total LUT and the board budget appear in the resource table
    lut = rep["finn_estimate"]["total"]["LUT"]
    assert f"{lut:,.0f}" in page and f"{rep['board']['budget']['LUT']:,.0f}" in page
    # verification table with the stage we computed
    assert "brevitas-&gt;qonnx" in page


def test_bottleneck_bar_is_red(tfc_report):
    """Decode the cycles PNG: the bottleneck colour is present exactly because one bar is the bottleneck."""
    import io

    from matplotlib.image import imread

    page = render_report_html(tfc_report["report"])
    png = _images(page)["per-layer cycles with the bottleneck marked"]
    img = imread(io.BytesIO(png))[..., :3]
    red = np.array([0xD6, 0x27, 0x28]) / 255.0
    assert (np.abs(img - red).max(axis=-1) < 0.02).sum() > 50


def test_comparison_section_when_our_estimate_present(tfc_report):
    rep = tfc_report["report"]
    page = render_report_html(rep)
    assert "FINN vs our estimator per layer" in _images(page)
    ours = layer_table(rep["estimate"])
    assert set(ours) & set(rep["finn_estimate"]["layers"])


def test_pruning_sections_from_test_made_search():
    """Pareto and channel plots appear when a pruning section is present (points made here)."""
    rng = np.random.default_rng(1)
    pts = [{"fps": float(f), "accuracy": float(a), "LUT": float(lu)}
           for f, a, lu in zip(rng.uniform(100, 1e5, 30), rng.uniform(0.5, 0.99, 30), rng.uniform(1e3, 4e4, 30),
                               strict=True)]
    rep = {"board": {"name": "Pynq-Z2", "budget": {"LUT": 37240, "BRAM_18K": 224, "DSP": 176, "URAM": 0}},
           "pruning": {"method": "l1", "channels_before": {"conv0": 32, "conv1": 64},
                       "channels_after": {"conv0": 16, "conv1": 40}, "pareto": pts, "fps_after": pts[0]["fps"]},
           "accuracy": {"final": pts[0]["accuracy"]}}
    imgs = _images(render_report_html(rep))
    assert "accuracy vs FPS Pareto front" in imgs and "channels before and after pruning" in imgs


def test_mixed_precision_bits_table_marks_lowered_layers():
    """report.json's per-layer bits (before/after a mixed-precision search) appear as a table in report.html."""
    before = {"conv0": {"weight": 2, "act": 2}, "fc0": {"weight": 2, "act": 2}, "fc1": {"weight": 2, "act": None}}
    after = {"conv0": {"weight": 2, "act": 2}, "fc0": {"weight": 1, "act": 1}, "fc1": {"weight": 1, "act": None}}
    page = render_report_html({"pruning": {"method": "greedy", "bits": [2, 1], "bits_before": before,
                                           "bits_after": after}})
    table = page[page.index("Bits per layer"):]
    table = table[:table.index("</table>")]
    rows = re.findall(r"<tr>(.*?)</tr>", table, re.S)[1:]
    cells = [[html.unescape(c) for c in re.findall(r"<td[^>]*>(.*?)</td>", r, re.S)] for r in rows]
    assert cells == [["conv0", "2", "2", ""], ["fc0", "2 → 1", "2 → 1", "lowered"], ["fc1", "2 → 1", "–", "lowered"]]
    assert "Bits per layer" not in render_report_html({"pruning": {"method": "greedy"}})


def test_pareto_front_matches_brute_force():
    rng = np.random.default_rng(2)
    pts = [{"fps": float(f), "accuracy": float(a)} for f, a in rng.integers(0, 20, size=(60, 2))]
    front = set(pareto_front(pts))
    for i, p in enumerate(pts):
        dominated = any(q["fps"] >= p["fps"] and q["accuracy"] >= p["accuracy"] and q != p for q in pts)
        assert (i in front) == (not dominated)


def find_chromium(env: dict[str, str]) -> tuple[str | None, str]:
    """(the Chromium to run, or None; why none): HAPFPGA_CHROMIUM if set, else the first of CHROMIUM_NAMES on PATH."""
    named = env.get("HAPFPGA_CHROMIUM")
    if named:
        path = shutil.which(named, path=env.get("PATH"))
        return (path, "") if path else (None, f"HAPFPGA_CHROMIUM={named} is not an executable file")
    for name in CHROMIUM_NAMES:
        if path := shutil.which(name, path=env.get("PATH")):
            return path, ""
    return None, ("no Chromium on PATH (chromium, chromium-browser, google-chrome): install one or set "
                  "HAPFPGA_CHROMIUM to run the browser check of report.html")


@pytest.fixture(scope="session")
def chromium() -> str:
    """The Chromium binary; without one the browser check is skipped with the reason, except in CI (CI=true),
    where .ci/run installs it and a missing browser is a failure."""
    path, why = find_chromium(dict(os.environ))
    if path is None:
        if os.environ.get("CI", "").lower() in ("true", "1", "yes"):
            pytest.fail(f"CI runs the browser check of report.html, but {why}")
        pytest.skip(why)
    return path


def test_find_chromium_prefers_the_variable_and_explains_a_miss(tmp_path):
    exe = tmp_path / "my-chrome"
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    on_path = tmp_path / "bin"
    on_path.mkdir()
    (on_path / "chromium").write_text("#!/bin/sh\n")
    (on_path / "chromium").chmod(0o755)
    assert find_chromium({"HAPFPGA_CHROMIUM": str(exe), "PATH": str(on_path)}) == (str(exe), "")
    assert find_chromium({"PATH": str(on_path)}) == (str(on_path / "chromium"), "")
    path, why = find_chromium({"PATH": str(tmp_path / "empty")})
    assert path is None and "HAPFPGA_CHROMIUM" in why
    path, why = find_chromium({"HAPFPGA_CHROMIUM": str(tmp_path / "nope"), "PATH": str(on_path)})
    assert path is None and "nope" in why


def _chromium(chromium: str, args: list[str], tmp: Path) -> subprocess.CompletedProcess:
    cmd = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--disable-dev-shm-usage", f"--user-data-dir={tmp / 'profile'}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def test_report_renders_in_headless_chromium(chromium, tfc_report, tmp_path):
    """Every image decodes and the charts are on screen; the same check catches a page with one corrupt image (so it
    can fail). One test, so that a machine without Chromium shows one skip with its reason."""
    html_path = write_report_html(tfc_report["report"], tmp_path / "report.html")
    n_img = len(_images(html_path.read_text()))
    assert n_img >= 3
    r = _chromium(chromium, ["--virtual-time-budget=5000", "--dump-dom", html_path.as_uri()], tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    m = re.search(r'data-images-loaded="(\d+)"', r.stdout)
    t = re.search(r'data-images-total="(\d+)"', r.stdout)
    assert m and t, "the page's load handler did not run"
    assert int(t.group(1)) == n_img and int(m.group(1)) == n_img

    shot = tmp_path / "shot.png"
    r = _chromium(chromium, ["--window-size=1200,2400", "--hide-scrollbars", f"--screenshot={shot}", html_path.as_uri()],
                  tmp_path)
    assert r.returncode == 0 and shot.is_file(), r.stderr[-2000:]
    from matplotlib.image import imread

    img = imread(str(shot))[..., :3]
    # charts are drawn: a good share of non-white pixels, and the plots' blue bars are on screen
    assert (img.min(axis=-1) < 0.9).mean() > 0.05
    blue = np.array([0x1F, 0x77, 0xB4]) / 255.0
    assert (np.abs(img - blue).max(axis=-1) < 0.03).sum() > 100

    # the same check on a page whose first image's data is corrupt: one image fewer loads
    page = render_report_html(copy.deepcopy(tfc_report["report"]))
    page = re.sub(r"base64,iVBOR", "base64,AAAAA", page, count=1)
    p = tmp_path / "broken.html"
    p.write_text(page)
    r = _chromium(chromium, ["--virtual-time-budget=5000", "--dump-dom", p.as_uri()], tmp_path)
    loaded = int(re.search(r'data-images-loaded="(\d+)"', r.stdout).group(1))
    total = int(re.search(r'data-images-total="(\d+)"', r.stdout).group(1))
    assert loaded == total - 1
