"""Behaviour of the pure estimator: purity, errors, infrastructure, FPS and power, caching speed."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from hapfpga.boards import load_board
from hapfpga.errors import ConfigError, HapError, UnsupportedLayerError
from hapfpga.estimate import FoldingError, estimate_layer, estimate_network, load_folding
from hapfpga.estimate import layers as L
from hapfpga.types import FoldingPlan, LayerFolding


def _chain() -> list[L.LayerSpec]:
    """A small CNV-like chain built by hand: Thresholding -> SWG -> MVAU -> Pool-less FC."""
    return [
        L.Thresholding(name="Thresholding_rtl_0", impl="rtl", channels=3, n_vectors=32 * 32, idt="UINT8",
                       tdt="INT9", odt="INT8", num_steps=255, consumers=("ConvolutionInputGenerator_rtl_0",)),
        L.ConvolutionInputGenerator(name="ConvolutionInputGenerator_rtl_0", impl="rtl", ifm_ch=3, ifm_dim=(32, 32),
                                    ofm_dim=(30, 30), idt="INT8", producers=("Thresholding_rtl_0",),
                                    consumers=("MVAU_hls_0",)),
        L.MVAU(name="MVAU_hls_0", mw=27, mh=64, n_vectors=900, idt="INT8", wdt="INT2", odt="UINT2",
               acc_dt="INT13", producers=("ConvolutionInputGenerator_rtl_0",)),
    ]


def test_estimate_package_imports_no_heavy_frameworks():
    code = ("import sys, hapfpga.estimate; bad = [m for m in ('torch', 'finn', 'onnx', 'qonnx', 'brevitas') "
            "if m in sys.modules]; print(','.join(bad))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_unknown_node_in_folding_is_one_sentence_config_error():
    with pytest.raises(FoldingError) as e:
        load_folding({"Defaults": {}, "MVAU_hls_9": {"PE": 2}}, _chain())
    assert isinstance(e.value, ConfigError) and "MVAU_hls_9" in e.value.message
    assert e.value.message.count(". ") == 0 and "\n" not in e.value.message


def test_pe_not_dividing_channels_is_user_error():
    with pytest.raises(FoldingError, match=r"PE=5 does not divide.*64"):
        load_folding({"MVAU_hls_0": {"PE": 5}}, _chain())
    with pytest.raises(FoldingError, match="SIMD=2"):
        estimate_layer(_chain()[1], LayerFolding(simd=2))
    with pytest.raises(FoldingError):
        estimate_network(_chain(), FoldingPlan.from_mapping({"MVAU_hls_0": LayerFolding(simd=4)}))


def test_unknown_folding_key_and_bad_json(tmp_path):
    with pytest.raises(ConfigError, match="PEE"):
        load_folding({"MVAU_hls_0": {"PEE": 2}}, _chain())
    bad = tmp_path / "f.json"
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_folding(bad, _chain())


def test_unknown_kind_raises_not_zero():
    with pytest.raises(UnsupportedLayerError):
        estimate_layer(object(), LayerFolding())  # type: ignore[arg-type]


def test_folding_changes_cycles_as_finn_folds():
    m = _chain()[2]
    base = estimate_layer(m, LayerFolding(pe=1, simd=1))
    fast = estimate_layer(m, LayerFolding(pe=8, simd=3))
    assert base.cycles == 27 * 64 * 900 and fast.cycles == base.cycles // 24
    assert fast.resources.LUT > base.resources.LUT
    dsp = estimate_layer(m, LayerFolding(pe=8, simd=3, res_type="dsp"))
    assert dsp.resources.DSP == 24 and dsp.resources.LUT < fast.resources.LUT


def test_network_infrastructure_dwc_where_widths_differ_and_fps():
    board = load_board("pynq-z2")
    layers = _chain()
    same = FoldingPlan.from_mapping({"ConvolutionInputGenerator_rtl_0": LayerFolding(simd=3),
                                     "MVAU_hls_0": LayerFolding(pe=8, simd=3),
                                     "Thresholding_rtl_0": LayerFolding(pe=3)})
    est = estimate_network(layers, same, board, 100.0)
    assert not [n for n in est.infrastructure if n.startswith("DWC_")]
    assert len([n for n in est.infrastructure if n.startswith("FIFO_")]) == 4  # in, 2 internal, out
    diff = FoldingPlan.from_mapping({"ConvolutionInputGenerator_rtl_0": LayerFolding(simd=1),
                                     "MVAU_hls_0": LayerFolding(pe=8, simd=3)})
    est2 = estimate_network(layers, diff, board, 100.0)
    assert "DWC_ConvolutionInputGenerator_rtl_0__MVAU_hls_0" in est2.infrastructure
    assert est.max_cycles == max(c.cycles for c in est.layers.values())
    assert est.fps == pytest.approx(100e6 / est.max_cycles)
    infra_lut = sum(c.resources.LUT for c in est.infrastructure.values())
    assert abs(est.total.LUT - (est.layer_total.LUT + infra_lut)) < 1e-9
    at200 = estimate_network(layers, same, board, 200.0)
    assert at200.fps == pytest.approx(2 * est.fps) and at200.power_w > est.power_w
    j = est.as_json()
    assert set(j) >= {"layers", "infrastructure", "total", "fps", "clock_mhz", "power_w"}
    assert set(j["layers"]["MVAU_hls_0"]) == {"LUT", "FF", "BRAM_18K", "URAM", "DSP", "cycles"}
    json.dumps(j)


def test_fifo_model_matches_finn_resource_model():
    """Our port of finn-plus's fitted fifo.sv model against finn-plus's own function."""
    import random

    from finn.util.resource_models import _fifo_cost, _resolve

    from hapfpga.estimate.infra import fifo_cost, fifo_style

    rng = random.Random(3)
    for _ in range(300):
        depth = rng.choice([2, 3, 16, 33, 34, 64, 65, 200, 257, 258, 1000, 2028, 2029, 5000, 40000])
        width = rng.choice([1, 2, 5, 8, 12, 16, 24, 64, 72, 100, 256])
        w = (width + 7) // 8 * 8
        req = rng.choice(["auto", "block", "distributed", "ultra", "srl"])
        style = _resolve(depth, w, req)
        assert fifo_style(depth, w, req) == style
        ref = _fifo_cost(depth, w, style)
        ours = fifo_cost(depth, width, req, True)
        got = (ours.BRAM_18K, ours.URAM, ours.LUT)
        assert got == tuple(ref), (depth, width, req)


def test_dwc_luts_match_finn():
    from onnx import helper
    from qonnx.custom_op.registry import getCustomOp

    from hapfpga.estimate.infra import dwc_luts
    from hapfpga.finn.shim import ensure_finn

    ensure_finn()
    for a, b in [(8, 24), (24, 8), (16, 16), (6, 16), (64, 4), (3, 48)]:
        node = helper.make_node("StreamingDataWidthConverter_hls", ["i"], ["o"],
                                domain="finn.custom_op.fpgadataflow.hls", backend="fpgadataflow",
                                inShape=[1, a * b // 1], outShape=[1, a * b], inWidth=a, outWidth=b, dataType="UINT1")
        assert dwc_luts(a, b) == getCustomOp(node).lut_estimation("xc7z020clg400-1"), (a, b)


def test_full_network_evaluation_is_served_from_the_per_layer_cache(monkeypatch):
    """A full-network estimate for a folding seen before calls no formula; a new folding of one layer calls
    exactly one. (The speed this buys is measured by benchmarks/estimator_speed.py, not timed here.)"""
    from hapfpga.estimate.formulas import FORMULAS

    layers = _chain()
    board = load_board("pynq-z2")
    plan = FoldingPlan.from_mapping({"MVAU_hls_0": LayerFolding(pe=4, simd=3)})
    first = estimate_network(layers, plan, board)
    calls: list[str] = []

    def counting(real):  # noqa: ANN001, ANN202
        def formula(layer, folding, ctx):  # noqa: ANN001, ANN202
            calls.append(layer.name)
            return real(layer, folding, ctx)
        return formula

    for kind, real in list(FORMULAS.items()):
        monkeypatch.setitem(FORMULAS, kind, counting(real))
    again = estimate_network(layers, plan, board)
    assert calls == []
    assert again.layers == first.layers and again.max_cycles == first.max_cycles
    other = FoldingPlan.from_mapping({"MVAU_hls_0": LayerFolding(pe=8, simd=3)})
    changed = estimate_network(layers, other, board)
    assert calls == ["MVAU_hls_0"]
    assert changed.layers["MVAU_hls_0"].cycles < first.layers["MVAU_hls_0"].cycles


def test_cli_estimate_errors_exit_2(tmp_path, capsys):
    from hapfpga.cli import main

    assert main(["estimate", str(tmp_path / "missing.onnx")]) == 2
    err = capsys.readouterr().err
    assert "missing.onnx" in err and err.count("\n") == 1


def test_hap_errors_are_one_line():
    e = FoldingError("a\nb   c")
    assert isinstance(e, HapError) and e.message == "a b c"


def test_power_is_static_plus_per_layer_dynamic():
    board = load_board("pynq-z2")
    small = estimate_network(_chain(), FoldingPlan.from_mapping({"MVAU_hls_0": LayerFolding(pe=1, simd=1)}), board)
    big = estimate_network(_chain(), FoldingPlan.from_mapping({"MVAU_hls_0": LayerFolding(pe=64, simd=27)}), board)
    for est in (small, big):
        assert abs(est.power_w - (est.static_power_w + sum(est.layer_power_w.values()))) < 1e-12
        assert set(est.layers) <= set(est.layer_power_w)
    assert big.layer_power_w["MVAU_hls_0"] > small.layer_power_w["MVAU_hls_0"] > 0
    assert big.static_power_w == small.static_power_w > 0
    zcu = estimate_network(_chain(), None, load_board("zcu104"))
    assert zcu.static_power_w > small.static_power_w  # a bigger part leaks more


def test_thresholding_rtl_never_uses_uram_on_a_part_without_uram():
    """FINN's memutil offers URAM primitives on any part; xc7z020 has none (deviation thr-rtl-no-uram)."""
    t = L.Thresholding(name="Thresholding_rtl_0", impl="rtl", channels=256, idt="INT16", tdt="INT16", odt="UINT4",
                       num_steps=15)
    f = LayerFolding(pe=1, depth_trigger_bram=64, depth_trigger_uram=256)
    z2, zcu = load_board("pynq-z2"), load_board("zcu104")
    assert z2.capacity.URAM == 0
    finn = estimate_layer(t, f, board=z2, finn_compat=True).resources
    ours = estimate_layer(t, f, board=z2).resources
    assert finn.URAM > 0  # FINN's number: impossible on this part
    assert ours.URAM == 0 and ours.BRAM_18K > 0
    assert estimate_layer(t, f, board=zcu).resources.URAM == finn.URAM  # a part with URAM keeps FINN's choice


def test_rtl_mvu_with_restype_lut_is_a_user_error_but_finn_compat_keeps_finns_number():
    m = L.MVAU(name="MVAU_rtl_0", impl="rtl", mw=256, mh=10, idt="UINT4", wdt="INT4", odt="INT16", acc_dt="INT16",
               no_activation=True)
    f = LayerFolding(pe=1, simd=256, res_type="lut")
    assert estimate_layer(m, f, finn_compat=True).resources.DSP == 256  # ceil(1/4) * 256 on DSP48
    with pytest.raises(FoldingError, match="resType=lut"):
        estimate_layer(m, f)
    assert estimate_layer(m, f.with_(res_type="dsp")).resources.DSP == 256


def test_fifo_depth_models():
    board = load_board("pynq-z2")
    plan = FoldingPlan.from_mapping({"MVAU_hls_0": LayerFolding(pe=1, simd=1)})
    minimal = estimate_network(_chain(), plan, board, fifo_depths="minimal")
    rate = estimate_network(_chain(), plan, board, fifo_depths="rate")
    # the SWG (fast) feeding a slow MVAU needs a deep FIFO under the rate model, depth 2 under FINN's minimal rule
    key = "FIFO_ConvolutionInputGenerator_rtl_0__MVAU_hls_0"
    assert rate.infrastructure[key].resources.BRAM_18K + rate.infrastructure[key].resources.LUT > \
        minimal.infrastructure[key].resources.LUT
    assert minimal.layers == rate.layers


@pytest.mark.parametrize("key", ["pynq-z1", "pynq-z2", "ultra96-v2", "zcu104", "kv260"])
def test_every_board_estimates_and_budget_check_is_consistent(key):
    board = load_board(key)
    est = estimate_network(_chain(), None, board)
    assert est.board == key and est.clock_mhz == board.clock_mhz
    assert est.fits == (not est.total.over(board.budget)) and est.power_w > est.static_power_w > 0
    huge = FoldingPlan.from_mapping({"MVAU_hls_0": LayerFolding(pe=64, simd=27, ram_style="distributed")})
    big = estimate_network(_chain(), huge, board)
    assert big.total.LUT > est.total.LUT and big.fps > est.fps


def test_cost_table_matches_estimate_layer():
    from hapfpga.estimate import COST_COLUMNS, cost_table

    m = _chain()[2]
    cands = [LayerFolding(pe=p, simd=s) for p in m.legal_values("pe") for s in m.legal_values("simd")]
    table = cost_table(m, cands)
    assert table.shape == (len(cands), len(COST_COLUMNS))
    for row, f in zip(table, cands, strict=True):
        c = estimate_layer(m, f)
        assert tuple(row) == (*(getattr(c.resources, k) for k in COST_COLUMNS[:-1]), c.cycles)


def test_layer_specs_pickle_without_their_memo():
    import pickle

    m = _chain()[2]
    estimate_layer(m, LayerFolding(pe=4, simd=3))
    assert m.memo("cost")
    back = pickle.loads(pickle.dumps(m))
    assert back == m and "_memo" not in back.__dict__
    assert estimate_layer(back, LayerFolding(pe=4, simd=3)) == estimate_layer(m, LayerFolding(pe=4, simd=3))
