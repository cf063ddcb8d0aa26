"""A realistic report.json built from a real (small) FINN estimate run of brevitas' TFC-w2a2.

The FINN section is FINN's own reports (condensed by the pipeline's ``finn_estimate_summary``); the
verification section compares Brevitas and QONNX execution on random inputs the fixture draws; our
estimator's section is our estimate of the folding FINN chose.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ..conftest import bnn_pynq_model, export_to_qonnx


def _verify_brevitas_qonnx(model: Any, onnx_path: Path, n: int = 4) -> dict[str, Any]:
    import torch
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.core.onnx_exec import execute_onnx

    rng = np.random.default_rng(0)
    x = rng.random((n, 1, 28, 28), dtype=np.float32)
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
    mw = ModelWrapper(str(onnx_path))
    iname, oname = mw.graph.input[0].name, mw.graph.output[0].name
    out = np.concatenate([execute_onnx(mw, {iname: x[i : i + 1]})[oname] for i in range(n)])
    diff = float(np.max(np.abs(out - ref)))
    agree = float(np.mean(out.argmax(1) == ref.argmax(1)))
    return {"name": "brevitas->qonnx", "max_abs_diff": diff, "argmax_agreement": agree, "integer": False,
            "exact": diff == 0.0, "passed": diff < 1e-3 and agree == 1.0, "note": f"{n} random inputs"}


def _our_estimate(finn_res: Any, board: Any) -> dict[str, Any]:
    """Our estimator on the folding FINN applied (read back from the folded model's node attributes)."""
    from hapfpga.estimate import estimate_network
    from hapfpga.finn.graph import load_layers
    from hapfpga.types import FoldingPlan

    layers = load_layers(finn_res.step_models["step_apply_folding_config"])
    plan = FoldingPlan(tuple((layer.name, layer.default_folding) for layer in layers))
    return estimate_network(layers, plan, board, 100.0).as_json()


@pytest.fixture(scope="session")
def tfc_report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """(report dict, path of report.json, FINN output dir) for TFC-w2a2 on Pynq-Z2 at 100 MHz."""
    from hapfpga.boards import load_board
    from hapfpga.finn.build import run_finn_steps
    from hapfpga.stages import finn_estimate_summary

    tmp = tmp_path_factory.mktemp("tfc_report")
    model = bnn_pynq_model("tfc_2w2a")
    onnx_path = export_to_qonnx(model, (1, 1, 28, 28), tmp / "tfc.qonnx.onnx")
    board = load_board("pynq-z2")
    # a target FPS makes FINN's SetFolding produce a non-trivial, unbalanced folding
    res = run_finn_steps(onnx_path, tmp / "finn", board=board.finn_board, clock_mhz=100.0, target_fps=20000)
    report: dict[str, Any] = {
        "board": board.as_dict(),
        "clock_mhz": 100.0,
        "dataset": {"name": "random", "n_train": 0, "n_test": 4, "input_shape": [1, 28, 28], "num_classes": 10},
        "accuracy": {"baseline": 0.1, "final": 0.1},
        "model": {"name": "tfc_2w2a", "params": int(sum(p.numel() for p in model.parameters())), "macs": 59008,
                  "channels": {"fc0": 64, "fc1": 64, "fc2": 64, "fc3": 10}},
        "folding": {"mode": "finn", "predicted_fps": None, "bound_fps": None, "binding_resource": None},
        "finn_estimate": finn_estimate_summary(res.reports, board),
        "verification": {"stages": [_verify_brevitas_qonnx(model, onnx_path)]},
        "timings": {k: round(v, 3) for k, v in res.step_seconds.items()},
    }
    report["verification"]["passed"] = all(s["passed"] for s in report["verification"]["stages"])
    report["estimate"] = _our_estimate(res, board)
    path = tmp / "report.json"
    path.write_text(json.dumps(report, indent=2, default=float))
    return {"report": report, "path": path, "finn": res}
