"""Streamlining for forks and joins (residual networks), as FINN build steps.

finn-plus 1.6.1's ``step_streamline`` streamlines chains: on a residual graph its ``MoveScalarLinearPastInvariants``
stops at a forking ``Mul`` ("Mul_0 is a fork-node, try MoveLinearPastFork first") and the float scales of both
add inputs stay in front of the add, so ``step_convert_to_hw`` leaves ``Transpose``/``Im2Col``/``MatMul``
unmapped. finn-examples' ResNet-50 build (``build/resnet50/custom_steps.py``: ``step_resnet50_streamline``)
runs FINN's linear streamlining and ``MoveLinearPastEltwiseAdd`` + ``MoveLinearPastFork`` in a loop; we do the
same in two steps placed around FINN's own ``step_streamline`` (``HAP_STEPS_AFTER`` in ``hapfpga.finn.build``):

* :func:`step_streamline_forks` (before ``step_streamline``, still on convolutions): repeat four times (the
  count finn-examples uses) FINN's ``Streamline`` → ``MoveLinearPastFork`` (a scale on a forking tensor is
  copied into each branch) → ``MoveLinearPastEltwiseAdd`` (``x·C + y·C = (x + y)·C`` when both add inputs carry
  the same scale, which the zoo's ``resnet8`` guarantees by sharing one quantiser) → ``MoveScalarLinearPastInvariants``.
  ``MoveLinearPastFork`` runs first: finn-plus's ``MoveLinearPastEltwiseAdd`` removes the ``Mul`` on an add
  input without checking whether that ``Mul`` also feeds another branch, which (measured on resnet8) duplicates
  the stem convolution when the identity shortcut's scale is still a fork.
* :func:`step_streamline_fork_layouts` (after ``step_streamline``, whose ``LowerConvsToMatMul`` wraps every
  convolution in NCHW↔NHWC ``Transpose`` pairs): the add, the threshold after it and the fork would otherwise
  stay in NCHW between ``Transpose`` nodes that FINN turns into ``Shuffle`` layers (a frame buffer each). It
  moves the transposes through forks and joins and cancels them, as finn-plus's ``StreamlinePlus`` does:
  ``MoveTransposePastFork``, ``MoveTransposePastJoinAdd``, ``AbsorbTransposeIntoMultiThreshold``,
  ``AbsorbConsecutiveTransposes``, ``CollapseRepeatedTranspose``, ``RemoveIdentityTranspose``.

Both steps change nothing on a graph without forks (every tensor has one consumer), so chain models build
exactly as with finn-plus's own step list.

A third, :func:`step_streamline_dwconv` (before ``step_streamline`` too), is finn-examples' MobileNet-v1 build
(``build/mobilenet-v1/custom_steps.py``: ``step_mobilenet_streamline``): Brevitas' ``MobileNet``
(``brevitas_examples.imagenet_classification``) scales its pointwise activations per channel, and FINN's
``Streamline`` moves scalar scales past convolutions only, so the channelwise ``Mul`` stays in front of each
depthwise ``Conv``, whose ``Im2Col`` then reads floats and maps to no hardware layer. ``MoveMulPastDWConv`` swaps
the two (a channelwise scale commutes with a depthwise convolution) and ``AbsorbMulIntoMultiThreshold`` folds it
into the thresholds after. It changes nothing where no such ``Mul`` exists (per-tensor scales, every zoo model).
"""

from __future__ import annotations

from typing import Any

__all__ = ["step_streamline_forks", "step_streamline_fork_layouts", "step_streamline_dwconv", "check_joins_integer",
           "has_forks", "FORK_ROUNDS", "merge_identical_siblings", "SIBLING_OPS"]

#: finn-examples' ResNet-50 build loops linear + fork/join streamlining four times (``step_resnet50_streamline``)
FORK_ROUNDS = 4


def has_forks(model: Any) -> bool:
    """True if some tensor of ``model`` (a qonnx ``ModelWrapper``) feeds two or more nodes (a fork, hence a join)."""
    seen: set[str] = set()
    for node in model.graph.node:
        for t in set(node.input):
            if model.get_initializer(t) is not None:
                continue
            if t in seen:
                return True
            seen.add(t)
    return False


def _tidy(model: Any) -> Any:
    from qonnx.transformation.general import (
        GiveReadableTensorNames,
        GiveUniqueNodeNames,
        RemoveUnusedTensors,
        SortGraph,
    )
    from qonnx.transformation.infer_data_layouts import InferDataLayouts
    from qonnx.transformation.infer_datatypes import InferDataTypes

    for t in (GiveUniqueNodeNames(), RemoveUnusedTensors(), GiveReadableTensorNames(), InferDataTypes(),
              InferDataLayouts(), SortGraph()):
        model = model.transform(t)
    return model


def step_streamline_forks(model: Any, cfg: Any) -> Any:
    """Move float scales through forks and joins (module docstring); a no-op on graphs without forks."""
    if not has_forks(model):
        return model
    from finn.transformation.streamline import Streamline
    from finn.transformation.streamline.absorb import AbsorbScalarBiasIntoMultiThreshold
    from finn.transformation.streamline.reorder import (
        MoveLinearPastEltwiseAdd,
        MoveLinearPastFork,
        MoveScalarLinearPastInvariants,
    )

    for _ in range(FORK_ROUNDS):
        model = model.transform(AbsorbScalarBiasIntoMultiThreshold())
        model = model.transform(Streamline())
        for t in (MoveLinearPastFork(), MoveLinearPastEltwiseAdd(), MoveScalarLinearPastInvariants()):
            model = model.transform(t)
        model = _tidy(model)
    # finn-plus's MakeMaxPoolNHWC (run by step_streamline) swaps a MaxPool with its first consumer Transpose only:
    # on a forking MaxPool (a pool before a residual block) the other branch's Transpose is left reading the
    # swapped, unpooled tensor. One MaxPool per branch avoids that; merge_identical_siblings joins them again.
    from finn.transformation.streamline.reorder import MoveOpPastFork

    return _tidy(model.transform(MoveOpPastFork(["MaxPool"])))


def step_streamline_dwconv(model: Any, cfg: Any) -> Any:
    """Move channelwise scales past depthwise convolutions into the thresholds after them (module docstring);
    the model unchanged where FINN's streamlining leaves no channelwise ``Mul`` in front of a depthwise ``Conv``."""
    if not any(n.op_type == "Conv" and _group(n) > 1 for n in model.graph.node):
        return model
    from finn.transformation.streamline import Streamline
    from finn.transformation.streamline.absorb import AbsorbMulIntoMultiThreshold
    from finn.transformation.streamline.reorder import MoveMulPastDWConv

    streamlined = model.transform(Streamline())
    moved = streamlined.transform(MoveMulPastDWConv())
    if [n.op_type for n in moved.graph.node] == [n.op_type for n in streamlined.graph.node]:
        return model  # no channelwise Mul met a depthwise Conv: FINN's own step_streamline follows unchanged
    return _tidy(moved.transform(AbsorbMulIntoMultiThreshold()))


def _group(node: Any) -> int:
    return next((a.i for a in node.attribute if a.name == "group"), 1)


#: Op types :func:`merge_identical_siblings` merges (no weights, nothing stateful: equal inputs give equal outputs)
SIBLING_OPS = frozenset({"Transpose", "MaxPool", "MaxPoolNHWC"})


def merge_identical_siblings(model: Any) -> tuple[Any, bool]:
    """Replace nodes of :data:`SIBLING_OPS` that read the same tensors with the same attributes by the first of
    them (common-subexpression elimination on a fork): ``LowerConvsToMatMul`` gives every convolution on a
    forking tensor its own NCHW->NHWC ``Transpose``, which FINN would build as one ``Shuffle`` (a frame buffer)
    per branch; merged, the one ``Transpose`` is in front of the fork (the graph input's transpose, done by the
    driver, or one absorbed into the thresholds before it). Returns the model and whether it changed."""
    seen: dict[tuple, Any] = {}
    changed = False
    for node in list(model.graph.node):
        if node.op_type not in SIBLING_OPS:
            continue
        key = (node.op_type, node.domain, tuple(node.input),
               tuple(sorted(a.SerializeToString() for a in node.attribute)))
        first = seen.setdefault(key, node)
        if first is node or node.output[0] in {o.name for o in model.graph.output}:
            continue
        for consumer in model.find_consumers(node.output[0]):
            consumer.input[:] = [first.output[0] if t == node.output[0] else t for t in consumer.input]
        model.graph.node.remove(node)
        changed = True
    return model, changed


def check_joins_integer(model: Any) -> None:
    """Raise a one-sentence ``UnsupportedLayerError`` for a two-input ``Add`` whose inputs are not integer after
    :func:`step_streamline_forks`: its inputs carry different float scales (two quantisers, not one shared), so
    FINN would build a float add (or none) and leave ``Transpose`` nodes around it."""
    from ..errors import UnsupportedLayerError

    for node in model.graph.node:
        if node.op_type != "Add" or len(node.input) != 2:
            continue
        if any(model.get_initializer(t) is not None for t in node.input):
            continue  # a bias, not a join
        dts = [model.get_tensor_datatype(t) for t in node.input]
        if all(dt is not None and dt.is_integer() for dt in dts):
            continue
        raise UnsupportedLayerError(
            f"The residual add {node.name} joins two tensors with different float scales, so FINN's "
            "step_streamline_forks cannot make it an integer ElementwiseAdd; quantise both inputs of every "
            "residual add with one shared activation module (as hapfpga.zoo.resnet does: the long branch ends "
            "in the activation the shortcut comes from)."
        )


def step_streamline_fork_layouts(model: Any, cfg: Any) -> Any:
    """Cancel the NCHW↔NHWC transposes around forks and joins (module docstring); a no-op without forks.
    A join left with float inputs is refused (:func:`check_joins_integer`)."""
    if not has_forks(model):
        return model
    check_joins_integer(model)
    from finn.transformation.streamline.absorb import (
        AbsorbConsecutiveTransposes,
        AbsorbTransposeIntoMultiThreshold,
    )
    from finn.transformation.streamline.collapse_repeated import CollapseRepeatedTranspose
    from finn.transformation.streamline.remove import RemoveIdentityTranspose
    from finn.transformation.streamline.reorder import MoveTransposePastFork, MoveTransposePastJoinAdd

    for _ in range(FORK_ROUNDS):
        for t in (MoveTransposePastJoinAdd(), AbsorbTransposeIntoMultiThreshold(), MoveTransposePastFork(),
                  AbsorbConsecutiveTransposes(), CollapseRepeatedTranspose(), RemoveIdentityTranspose()):
            model = model.transform(t)
        model = _tidy(model)
    # last, as MoveTransposePastFork would split the merged transposes again
    while True:
        model, changed = merge_identical_siblings(model)
        if not changed:
            return _tidy(model)
