"""Board files: numbers as the vendor data sheets give them, budgets as FINN computes them."""

import json

import pytest

from hapfpga.boards import list_boards, load_board
from hapfpga.cli import main
from hapfpga.errors import ConfigError


def test_all_five_boards_present():
    assert set(list_boards()) >= {"pynq-z1", "pynq-z2", "ultra96-v2", "zcu104", "kv260"}


def test_pynq_z2_budget_matches_finn_default_limits():
    b = load_board("pynq-z2")
    assert b.part == "xc7z020clg400-1"
    assert b.capacity.LUT == 53200 and b.capacity.BRAM_18K == 280 and b.capacity.DSP == 220
    # REFERENCE.md: on Pynq-Z2, FINN's DEFAULT_RES_LIMITS give LUT <= 37,240, BRAM18 <= 224, DSP <= 176
    assert pytest.approx(37240) == b.budget.LUT
    assert pytest.approx(224) == b.budget.BRAM_18K
    assert pytest.approx(176) == b.budget.DSP


def test_board_limits_equal_finn_default_res_limits():
    from finn.util.platforms import DEFAULT_RES_LIMITS  # order: LUT, FF, BRAM, URAM, DSP

    for key in list_boards():
        lim = load_board(key).limits
        assert pytest.approx(list(DEFAULT_RES_LIMITS)) == [lim.LUT, lim.FF, lim.BRAM_18K, lim.URAM, lim.DSP]


def test_parts_agree_with_finn_part_map():
    from finn.util.basic import pynq_part_map

    for key in list_boards():
        b = load_board(key)
        assert pynq_part_map[b.finn_board] == b.part, key


def test_lookup_by_finn_name_and_unknown_board():
    assert load_board("Pynq-Z2").key == "pynq-z2"
    assert load_board("KV260_SOM").key == "kv260"
    with pytest.raises(ConfigError, match="Unknown board 'pynq-z9'"):
        load_board("pynq-z9")


def test_boards_cli_json(capsys):
    assert main(["boards", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["zcu104"]["capacity"]["URAM"] == 96
    assert data["ultra96-v2"]["budget"]["DSP"] == pytest.approx(288)


def test_bad_board_file_limit(tmp_path):
    src = (load_board("pynq-z2"),)
    text = (tmp_path / "x.yaml")
    import shutil

    from hapfpga.boards import BOARDS_DIR

    shutil.copy(BOARDS_DIR / "pynq-z2.yaml", text)
    text.write_text(text.read_text().replace("LUT: 0.7", "LUT: 7"))
    load_board.cache_clear()
    with pytest.raises(ConfigError, match="limits.LUT"):
        load_board(str(text))
    assert src[0].key == "pynq-z2"
