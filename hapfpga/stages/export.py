"""QONNX export of the baseline and the final (pruned or not) model, with the final model's accuracy."""

from __future__ import annotations

from ..runstate import atomic_path, atomic_write_bytes
from .base import Conf, Context, Stage, StageOutput
from .model import final_model_file, load_model

__all__ = ["EXPORT"]


def export(ctx: Context, conf: Conf) -> StageOutput:
    from ..export import export_qonnx
    from ..summary import model_summary
    from ..train import evaluate

    ds = ctx.dataset
    baseline = load_model(ctx.path("baseline.pt"))
    base_onnx, final_onnx = ctx.path("baseline.qonnx.onnx"), ctx.path("final.qonnx.onnx")
    with atomic_path(base_onnx) as tmp:
        export_qonnx(baseline, ds.input_shape, tmp)
    if "prune" not in ctx.results:
        final = baseline
        atomic_write_bytes(final_onnx, base_onnx.read_bytes())
        acc_final = float(ctx.results["train"]["accuracy"])
    else:
        final = load_model(final_model_file(ctx))
        with atomic_path(final_onnx) as tmp:
            export_qonnx(final, ds.input_shape, tmp)
        acc_final = float(evaluate(final, ds.x_test, ds.y_test))
    return [base_onnx, final_onnx], {
        "accuracy_final": acc_final,
        "summary_baseline": model_summary(baseline, ds.input_shape),
        "summary_final": model_summary(final, ds.input_shape),
    }


EXPORT = Stage(
    "export", export, inputs=("train", "prune"), outputs=("baseline.qonnx.onnx", "final.qonnx.onnx"),
    produces="the QONNX exports",
)
