"""FINN's step lists in hapfpga.finn.build are finn-plus's own, and finn-plus's are still the ones we built on.

The second test fails when finn-plus changes its lists (a new step, a reorder): then check the slices in
hapfpga/finn/build.py (FOLD_AND_ESTIMATE_STEPS, SPECIALIZE_STEPS, RTLSIM_STEPS) and the stages that use them,
and update the snapshot.
"""

from __future__ import annotations

import pytest

pytest.importorskip("finn")

from hapfpga.finn import build as B  # noqa: E402

#: finn-plus 1.6.1, finn/builder/build_dataflow_config.py
FINN_PLUS_161_ESTIMATE = (
    "step_qonnx_to_finn", "step_tidy_up", "step_streamline", "step_convert_to_hw",
    "step_minimize_bit_width_initial", "step_create_dataflow_partition", "step_specialize_layers",
    "step_target_fps_parallelization", "step_apply_folding_config", "step_minimize_bit_width",
    "step_generate_estimate_reports",
)
FINN_PLUS_161_DEFAULT = (
    *FINN_PLUS_161_ESTIMATE[:10], "step_transpose_decomposition", "step_generate_estimate_reports",
    "step_assign_ddr_weight_offsets", "step_generate_hardware", "step_create_stitched_ip",
    "step_measure_rtlsim_performance", "step_out_of_context_synthesis", "step_prepare_synthesis",
    "step_synthesize_bitfile", "step_make_driver", "step_deployment_package",
)


def _finn_lists():
    from hapfpga.finn.shim import ensure_finn

    ensure_finn()
    import finn.builder.build_dataflow_config as bc

    return bc


def test_lists_are_finn_plus_own():
    bc = _finn_lists()
    assert tuple(bc.estimate_only_dataflow_steps) == B.ESTIMATE_STEPS
    assert tuple(bc.hw_codegen_dataflow_steps) == B.HW_CODEGEN_STEPS
    assert tuple(bc.default_build_dataflow_steps) == B.FULL_STEPS


def test_finn_plus_lists_unchanged_since_we_built_on_them():
    bc = _finn_lists()
    assert tuple(bc.estimate_only_dataflow_steps) == FINN_PLUS_161_ESTIMATE
    assert tuple(bc.hw_codegen_dataflow_steps) == (*FINN_PLUS_161_ESTIMATE, "step_hw_codegen")
    assert tuple(bc.default_build_dataflow_steps) == FINN_PLUS_161_DEFAULT


def test_every_step_we_name_resolves_in_finn():
    from finn.builder.build_dataflow import resolve_build_steps
    from finn.builder.build_dataflow_config import DataflowBuildConfig

    for steps in (B.ESTIMATE_STEPS, B.HW_CODEGEN_STEPS, B.FULL_STEPS, B.RTLSIM_STEPS, B.FOLD_AND_ESTIMATE_STEPS,
                  B.SPECIALIZE_STEPS):
        cfg = DataflowBuildConfig(output_dir="unused", synth_clk_period_ns=10.0, generate_outputs=[],
                                  steps=list(steps))
        assert [f.__name__ for f in resolve_build_steps(cfg)] == list(steps)


def test_slices():
    assert B.SPECIALIZE_STEPS[-1] == "step_specialize_layers"
    assert B.SPECIALIZE_STEPS + B.FOLD_AND_ESTIMATE_STEPS == B.ESTIMATE_STEPS
    assert B.RTLSIM_STEPS[-1] == "step_measure_rtlsim_performance" and "step_synthesize_bitfile" not in B.RTLSIM_STEPS
