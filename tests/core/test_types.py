"""Resources arithmetic and FINN folding-file round trips."""

import json
from pathlib import Path

import pytest

from hapfpga.types import FoldingPlan, LayerFolding, Resources

REF = Path(__file__).resolve().parents[1] / "data"  # finn-examples folding files (tests/data)


def test_resources_arithmetic_and_fit():
    a = Resources(LUT=10, BRAM_18K=2)
    b = Resources(LUT=5, DSP=1)
    s = a + b
    assert s == Resources(LUT=15, BRAM_18K=2, DSP=1)
    assert sum([a, b]) == s
    assert (a * 2).LUT == 20
    budget = Resources(LUT=14, FF=1e9, BRAM_18K=10, URAM=0, DSP=10)
    assert s.over(budget) == ["LUT"]
    assert not s.fits_in(budget)
    assert a.fits_in(budget)


@pytest.mark.parametrize("name", ["cnv-w2a2_finn-examples_folding.json", "cnv-w1a1_finn-examples_folding.json"])
def test_finn_folding_file_round_trip(name):
    path = REF / name
    raw = json.loads(path.read_text())
    plan = FoldingPlan.from_finn_dict(raw)
    assert plan.to_finn_dict() == raw
    for node, entry in raw.items():
        if node != "Defaults" and "PE" in entry:
            assert plan[node].pe == entry["PE"]
    assert plan.names == [k for k in raw if k != "Defaults"]


def test_unknown_folding_key_is_named():
    with pytest.raises(KeyError, match="bogus"):
        LayerFolding.from_finn({"PE": 2, "bogus": 1})
