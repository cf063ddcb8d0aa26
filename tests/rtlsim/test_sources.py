"""Pure parts of the Verilator flow: finn-rtllib fixes, port parsing, the stitched top (no simulation)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from hapfpga.rtlsim.sources import SourceSet, fix_add_multi, fix_fifo
from hapfpga.rtlsim.topgen import Block, Port, TopStream, generate_top, parse_ports, stream_conns


@pytest.fixture(scope="module")
def rtllib() -> Path:
    pytest.importorskip("finn")
    import finn

    return Path(finn.__file__).parent / "finn-rtllib"


def test_add_multi_fix_moves_constant_function_to_module_scope(rtllib):
    src = (rtllib / "mvu" / "add_multi.sv").read_text()
    fixed = fix_add_multi(src)
    assert fixed != src
    func = fixed.index("function leaf_load_t init_leaf_loads")
    # now before the generate block that used to contain it, after L is known
    assert fixed.index("localparam int unsigned  L = $clog2(N);") < func < fixed.index("genTrivial")
    # same statements, only moved
    assert sorted(fixed.split()) == sorted(src.split())
    assert fix_add_multi(fixed) == fixed  # idempotent: applying it to our copy twice changes nothing
    assert fixed.count("function leaf_load_t init_leaf_loads") == 1


def test_fifo_fix_packs_the_struct(rtllib):
    src = (rtllib / "fifo" / "hdl" / "fifo.sv").read_text()
    fixed = fix_fifo(src)
    assert "typedef struct packed {" in fixed and "typedef struct {" not in fixed
    assert fixed.replace("struct packed {", "struct {") == src


def test_parse_ports_of_finn_templates(rtllib):
    text = (rtllib / "memstream" / "hdl" / "memstream_wrapper_template.v").read_text()
    ports = parse_ports(text.replace("$MODULE_NAME$", "X"), "X_memstream_wrapper")
    names = [p.name for p in ports]
    assert names[:3] == ["ap_clk", "ap_clk2x", "ap_rst_n"]
    assert "m_axis_0_tdata" in names and Port("output", "m_axis_0_tvalid") in ports
    assert len(names) == len(set(names))


def test_sourceset_refuses_two_different_files_with_one_name(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    (a / "x.sv").write_text("module x; endmodule")
    (b / "x.sv").write_text("module x; wire w; endmodule")
    s = SourceSet()
    s.add_file(a / "x.sv")
    s.add_file(a / "x.sv")  # same content: fine
    with pytest.raises(Exception, match="x.sv"):
        s.add_file(b / "x.sv")


def test_top_for_a_fork_and_join():
    """DuplicateStreams -> two branches -> AddStreams, as FINN builds residual blocks."""
    ports_dup = [
        Port("input", n)
        for n in ("ap_clk", "ap_rst_n", "in0_V_TDATA", "in0_V_TVALID", "out0_V_TREADY", "out1_V_TREADY")
    ]
    ports_dup += [
        Port("output", n)
        for n in ("in0_V_TREADY", "out0_V_TDATA", "out0_V_TVALID", "out1_V_TDATA", "out1_V_TVALID")
    ]
    dup = Block("Dup", "dup", ports_dup)
    dup.conns.update(stream_conns("in0_V", "a") | stream_conns("out0_V", "b") | stream_conns("out1_V", "c"))
    add = Block(
        "Add", "add", [Port("input", "in0_V_TDATA"), Port("input", "in1_V_TDATA"), Port("input", "cfg")]
    )
    add.conns.update({"in0_V_TDATA": "b_tdata", "in1_V_TDATA": "c_tdata"})
    top = generate_top(
        [dup, add], {"a": 8, "b": 8, "c": 8}, [TopStream("s0", "a", 8)], [TopStream("m0", "c", 8)]
    )
    assert re.search(r"module hap_top \(", top)
    assert ".out1_V_TDATA(c_tdata)" in top and ".in1_V_TDATA(c_tdata)" in top
    assert ".cfg('0)" in top  # unconnected inputs tied off
    assert "assign a_tdata = s0_tdata;" in top and "assign m0_tdata = c_tdata;" in top
    assert top.count("ap_clk(ap_clk)") == 1
