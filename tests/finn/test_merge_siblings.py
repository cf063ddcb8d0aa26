"""``merge_identical_siblings`` (hapfpga/finn/streamline.py): identical Transpose/MaxPool nodes on one forking
tensor become one node, computing the same outputs; different ones stay. Random graphs: a 4D input forked into
2-4 branches, each a Transpose (one of two perms) or a MaxPool (one of two kernels) and a Relu."""

from __future__ import annotations

import random

import numpy as np
import pytest


def _graph(seed: int):
    from onnx import TensorProto, helper
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.util.basic import qonnx_make_model

    r = random.Random(seed)
    nodes, outs, kinds = [], [], []
    for i in range(r.randint(2, 4)):
        if r.random() < 0.5:
            perm = r.choice(([0, 2, 3, 1], [0, 3, 1, 2]))
            nodes.append(helper.make_node("Transpose", ["x"], [f"t{i}"], perm=perm))
            kinds.append(("Transpose", tuple(perm)))
        else:
            k = r.choice((1, 2))
            nodes.append(helper.make_node("MaxPool", ["x"], [f"t{i}"], kernel_shape=[k, k], strides=[k, k]))
            kinds.append(("MaxPool", k))
        nodes.append(helper.make_node("Relu", [f"t{i}"], [f"y{i}"]))
        outs.append(helper.make_tensor_value_info(f"y{i}", TensorProto.FLOAT, None))
    inp = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 4, 4])
    model = ModelWrapper(qonnx_make_model(helper.make_graph(nodes, "g", [inp], outs)))
    from qonnx.transformation.infer_shapes import InferShapes

    return model.transform(InferShapes()), kinds


@pytest.mark.parametrize("seed", range(12))
def test_identical_siblings_merge_and_outputs_stay(seed):
    import qonnx.core.onnx_exec as oxe

    from hapfpga.finn.streamline import merge_identical_siblings

    model, kinds = _graph(seed)
    x = np.random.default_rng(seed).standard_normal((1, 4, 4, 4)).astype(np.float32)
    names = [o.name for o in model.graph.output]
    before = oxe.execute_onnx(model, {"x": x})
    merged, changed = merge_identical_siblings(model)
    after = oxe.execute_onnx(merged, {"x": x})
    for n in names:
        np.testing.assert_array_equal(after[n], before[n])
    ops = [n for n in merged.graph.node if n.op_type in ("Transpose", "MaxPool")]
    assert len(ops) == len(set(kinds)) and changed == (len(set(kinds)) < len(kinds))
