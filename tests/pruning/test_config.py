"""The pruning: config section (pure)."""

from __future__ import annotations

import pytest

from hapfpga.errors import ConfigError
from hapfpga.pruning.config import PruningConfig, parse_pruning_config


def test_defaults_and_nested():
    c = parse_pruning_config({"method": "nsga2", "nsga2": {"trials": 4, "storage": "postgresql://h/db"}})
    assert isinstance(c, PruningConfig) and c.nsga2.trials == 4 and c.nsga2.storage == "postgresql://h/db"
    assert parse_pruning_config(None).method == "greedy"
    assert parse_pruning_config(c) is c


@pytest.mark.parametrize(
    "section, match",
    [
        ({"metod": "greedy"}, "pruning.metod"),
        ({"method": "magic"}, "pruning.method"),
        ({"target": "fps"}, "pruning.target_fps"),
        ({"ratio": 0}, "pruning.ratio"),
        ({"alpha": 2}, "pruning.alpha"),
        ({"nsga2": {"trials": 0}}, "trials"),
        ({"sparsity": 1.0}, "pruning.sparsity"),
    ],
)
def test_errors_name_the_key(section, match):
    with pytest.raises(ConfigError, match=match):
        parse_pruning_config(section)
