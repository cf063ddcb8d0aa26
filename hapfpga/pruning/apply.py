"""Structured channel removal on Brevitas (and plain PyTorch) models — the torch adapter of the pruner.

What it does: physically removes output channels of convolutions / neurons of linear layers together with
everything that is indexed by them: the following BatchNorm, per-channel quantiser tensors (weight-quant scales
of the layer itself, per-channel activation-quant scales after it), the input channels of the consuming layers,
the flatten→linear mapping (channel ``c`` of a ``C×H×W`` map owns inputs ``c·H·W … (c+1)·H·W−1`` of the linear
layer, PyTorch's NCHW flatten order) and coupled groups (residual adds, concatenations, depthwise convs — whose
channels are their producer's: pruning the producer removes the same depthwise filters and sets ``groups``).
Works on 1D and 2D convs, linear layers and their BatchNorms; a grouped conv that is not depthwise is refused.

How: Torch-Pruning's ``DependencyGraph`` (Fang et al., "DepGraph", CVPR 2023) is used **only to discover which
layers are coupled** and how indices map through concatenations; the surgery is ours, because on Brevitas graphs
Torch-Pruning (1.6.1) (a) ignores per-channel quantiser tensors that live outside conv/linear/BN modules (e.g. a
per-channel ``QuantReLU`` scale of shape ``(1, C, 1, 1)``) and (b) can mis-map the flatten→linear indices when
the activation is a ``QuantTensor`` (seen: ``in_features`` 256→224 instead of 128). Every index set that reaches
a linear layer through a flatten is therefore recomputed from the recorded shapes and checked.

Torch and Torch-Pruning are imported lazily (STYLE.md: adapters keep heavy imports inside functions).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import UnsupportedLayerError, VerificationError
from ..summary import count_macs, count_params  # the one parameter/MAC counter, re-exported here

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = [
    "ChannelGroup",
    "ChannelGraph",
    "prune_to_counts",
    "count_params",
    "count_macs",
    "layer_channels",
    "hw_layer_shapes",
]


@dataclass(frozen=True)
class ChannelGroup:
    """Output channels that must be removed together.

    ``name`` is the module name of the first producer (conv/linear) in execution order; ``producers`` are all
    conv/linear layers whose output channels are coupled (more than one for residual adds); ``consumers`` the
    layers whose inputs they feed; ``prunable`` is False for the channels that leave the network (classifier).
    """

    name: str
    producers: tuple[str, ...]
    consumers: tuple[str, ...]
    channels: int
    prunable: bool


def _is_prunable_layer(m: Any) -> bool:
    import torch.nn as nn

    return isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Linear))


def _out_channels(m: Any) -> int:
    import torch.nn as nn

    return m.out_features if isinstance(m, nn.Linear) else m.out_channels


def _value(x: Any) -> Any:
    """The plain tensor of a Brevitas ``QuantTensor`` (or the tensor itself)."""
    return getattr(x, "value", x)


class ChannelGraph:
    """Channel dependencies of ``model`` for one example input (built once, used for many prunings).

    Call :meth:`prune` with kept channel indices per group. The graph refers to the model it was built on;
    pruning works on a deep copy unless ``inplace=True``.
    """

    def __init__(self, model: torch.nn.Module, example_input: torch.Tensor):
        import torch
        import torch_pruning as tp

        self.model = model
        self.example_input = example_input
        self._names = {m: n for n, m in model.named_modules()}
        was_training = model.training
        model.eval()
        # Execution order and output shapes of every leaf-ish module (hooks see QuantTensors too).
        order: list[str] = []
        out_shapes: dict[str, tuple[int, ...]] = {}
        in_shapes: dict[str, tuple[int, ...]] = {}
        hooks = []

        def hook(mod: Any, inp: Any, out: Any) -> None:
            name = self._names[mod]
            if name not in seen:
                seen.add(name)
                order.append(name)
                v = _value(out)
                if hasattr(v, "shape"):
                    out_shapes[name] = tuple(v.shape)
                if inp and hasattr(_value(inp[0]), "shape"):
                    in_shapes[name] = tuple(_value(inp[0]).shape)

        seen: set[str] = set()
        # Containers (nn.Sequential, a user's block) are left out: their hooks fire after all their children, so
        # in execution order they would look like a module that follows their last layer, holding per-channel
        # tensors (BN statistics of earlier layers) that belong to other channel groups.
        for name, m in model.named_modules():
            if name and not _holds_layers(m):
                hooks.append(m.register_forward_hook(hook))
        try:
            with torch.no_grad():
                self.out_shape = tuple(_value(model(example_input)).shape)
        finally:
            for h in hooks:
                h.remove()
        self.order = order
        self.out_shapes = out_shapes
        self.in_shapes = in_shapes
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "unwrapped parameters" of Brevitas' TensorNorm etc.
            self.dg = tp.DependencyGraph().build_dependency(model, example_inputs=example_input)
        model.train(was_training)
        self.groups = self._find_groups()

    # ------------------------------------------------------------------ discovery
    def layers_in_order(self) -> list[str]:
        """Prunable conv/linear layers (names as in ``model.named_modules()``) in forward-pass order."""
        mods = dict(self.model.named_modules())
        return [n for n in self.order if _is_prunable_layer(mods[n])]

    def _group_actions(self, layer: str, idxs: Sequence[int]) -> list[tuple[str, bool, list[int]]]:
        """``(module name, is_out, plain indices)`` for every conv/linear/BN touched by pruning ``idxs``."""
        import torch.nn as nn
        import torch_pruning as tp

        mods = dict(self.model.named_modules())
        m = mods[layer]
        fn = tp.prune_linear_out_channels if isinstance(m, nn.Linear) else tp.prune_conv_out_channels
        group = self.dg.get_pruning_group(m, fn, list(idxs))
        actions = []
        for dep, gidx in group.items:
            target = dep.target.module
            if not isinstance(target, nn.Module) or target not in self._names:
                continue
            if not isinstance(target, (nn.Conv1d, nn.Conv2d, nn.Linear, nn.modules.batchnorm._BatchNorm)):
                continue
            plain = [int(getattr(i, "idx", i)) for i in gidx]
            actions.append((self._names[target], self.dg.is_out_channel_pruning_fn(dep.handler), plain))
        return actions

    def _find_groups(self) -> dict[str, ChannelGroup]:
        mods = dict(self.model.named_modules())
        seen: set[str] = set()
        groups: dict[str, ChannelGroup] = {}
        for name in self.layers_in_order():
            if name in seen:
                continue
            m = mods[name]
            if getattr(m, "groups", 1) != 1 and not _is_depthwise(m):
                raise UnsupportedLayerError(
                    f"Layer '{name}' is a grouped convolution (groups={m.groups}) that is not depthwise, which the "
                    "channel pruner does not support; use dense or depthwise convolutions."
                )
            acts = self._group_actions(name, [0])
            producers = tuple(dict.fromkeys(n for n, out, _ in acts if out and _is_prunable_layer(mods[n])))
            consumers = tuple(dict.fromkeys(n for n, out, _ in acts if not out and not _is_depthwise(mods[n])))
            seen.update(producers)
            producers = producers or (name,)
            groups[name] = ChannelGroup(
                name=name,
                producers=producers,
                consumers=consumers,
                channels=_out_channels(m),
                # channels that leave the network, or that only depthwise convs make (their channels are the
                # network input's), cannot be removed
                prunable=bool(consumers) and not all(_is_depthwise(mods[p]) for p in producers),
            )
        return groups

    def channels(self) -> dict[str, int]:
        """Current output channels per group (group name → count)."""
        return {g.name: g.channels for g in self.groups.values()}

    # ------------------------------------------------------------------ surgery
    def prune(
        self, keep: Mapping[str, Sequence[int]], *, inplace: bool = False, check: bool = True
    ) -> torch.nn.Module:
        """Return the model with only the ``keep[group]`` output channels of each listed group.

        Groups not listed keep all channels. With ``check`` the pruned model runs a forward pass on the example
        input and its output shape must equal the original's (``VerificationError`` otherwise).
        """
        self._check_keep(keep)
        model = self.model if inplace else copy.deepcopy(self.model)
        mods = dict(model.named_modules())
        remove_out, remove_in, act_channels = self._removals(keep)
        for name in [n for n in remove_in if _is_depthwise(mods[n])]:
            # a depthwise conv's inputs are its outputs: one removal, whichever side Torch-Pruning reported
            remove_out.setdefault(name, set()).update(remove_in.pop(name))
        for name, rem in remove_out.items():
            _prune_module(mods[name], out_remove=sorted(rem))
        for name, rem in remove_in.items():
            _prune_module(mods[name], in_remove=sorted(rem))
        for name, (c0, rem) in act_channels.items():
            _prune_channel_tensors(mods[name], c0, sorted(rem))
        _retarget_quant_injectors(model)
        if check:
            self._check_pruned(model, keep)
        return model

    def _check_keep(self, keep: Mapping[str, Sequence[int]]) -> None:
        """Every group of ``keep`` exists, keeps 1..channels distinct valid indices, and an output group keeps all."""
        for g, idx in keep.items():
            if g not in self.groups:
                raise UnsupportedLayerError(
                    f"'{g}' is not a prunable channel group of this model; use one of {sorted(self.groups)}."
                )
            grp = self.groups[g]
            bad = [i for i in idx if not 0 <= int(i) < grp.channels]
            if bad or len(set(idx)) != len(idx) or not idx:
                raise UnsupportedLayerError(
                    f"Kept channels of '{g}' must be 1..{grp.channels} distinct indices below {grp.channels}; "
                    "fix the pruning plan."
                )
            if not grp.prunable and len(idx) != grp.channels:
                raise UnsupportedLayerError(
                    f"Group '{g}' feeds the network output ({grp.channels} outputs) and cannot be pruned; "
                    "leave it out of the plan."
                )

    def _removals(self, keep: Mapping[str, Sequence[int]]) -> tuple[
        dict[str, set[int]], dict[str, set[int]], dict[str, tuple[int, set[int]]]
    ]:
        """The channels to remove per module, in ORIGINAL coordinates (applied once, after): output channels,
        input channels, and the per-channel tensors (activations' scales) of the modules after each producer
        as (original channels, removed)."""
        remove_out: dict[str, set[int]] = {}
        remove_in: dict[str, set[int]] = {}
        act_channels: dict[str, tuple[int, set[int]]] = {}
        for g, kept in keep.items():
            grp = self.groups[g]
            removed = sorted(set(range(grp.channels)) - {int(i) for i in kept})
            if not removed:
                continue
            for name, is_out, idxs in self._group_actions(g, removed):
                if is_out:
                    remove_out.setdefault(name, set()).update(idxs)
                else:
                    idxs = self._flatten_fix(name, idxs, removed, grp)
                    remove_in.setdefault(name, set()).update(idxs)
            for prod in grp.producers:
                for act in self._channel_modules_after(prod):
                    _, s = act_channels.setdefault(act, (grp.channels, set()))
                    s.update(removed)
        return remove_out, remove_in, act_channels

    def _check_pruned(self, model: Any, keep: Mapping[str, Sequence[int]]) -> None:
        """The pruned model's output on the example input has the original's shape and is finite."""
        import torch

        out = self._forward_pruned(model, keep)
        if tuple(out.shape) != self.out_shape:
            raise VerificationError(
                f"Pruned model output shape {tuple(out.shape)} differs from {self.out_shape}; "
                "this is a pruner bug, report it with the model."
            )
        if not torch.isfinite(out).all():
            raise VerificationError("Pruned model produces non-finite outputs; report this pruner bug.")

    def _forward_pruned(self, model: Any, keep: Mapping[str, Sequence[int]]) -> Any:
        """The pruned model's output on the example input; the user's forward failing on the narrower tensors (a
        feature count written into it, ``x.view(-1, 512)``) is a one-sentence error quoting theirs."""
        import torch

        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                return _value(model(self.example_input))
        except Exception as e:
            first = (str(e).splitlines() or [""])[0].rstrip(".") or "no message"
            groups = ", ".join(f"'{g}'" for g in keep)
            raise UnsupportedLayerError(
                f"The model's forward fails once channels of {groups} are removed ({type(e).__name__}: {first}); "
                "compute sizes from the tensors in forward (flatten with x.flatten(1) or x.view(x.size(0), -1), "
                "not a fixed feature count) or list them in pruning.exclude."
            ) from None
        finally:
            model.train(was_training)

    def _flatten_fix(self, name: str, idxs: list[int], removed: list[int], grp: ChannelGroup) -> list[int]:
        """Indices of a linear layer's inputs for removed channels, recomputed across a flatten.

        NCHW flatten (``torch.flatten(x, 1)``): channel ``c`` of a ``C×S`` map becomes features
        ``c·S … c·S+S−1``. Torch-Pruning sometimes passes unexpanded channel indices here (QuantTensor inputs).
        """
        import torch.nn as nn

        m = dict(self.model.named_modules())[name]
        if not isinstance(m, nn.Linear):
            return idxs
        c = grp.channels
        if m.in_features == c:
            return idxs
        if m.in_features % c:
            raise UnsupportedLayerError(
                f"Linear layer '{name}' has {m.in_features} inputs, not a multiple of the {c} channels of "
                f"'{grp.name}' that feed it; the pruner cannot map channels to features here, exclude the group."
            )
        s = m.in_features // c
        expected = sorted(ch * s + k for ch in removed for k in range(s))
        if sorted(idxs) != expected:
            # the Torch-Pruning flatten bug: recompute from the shapes (this is exact for a direct flatten)
            return expected
        return idxs

    def _channel_modules_after(self, producer: str) -> list[str]:
        """Modules between ``producer`` and the next conv/linear in execution order that hold per-channel tensors.

        Assumption (chains, residual and depthwise blocks): a per-channel activation quantiser acts on the channels
        of the most recent producer before it; any tensor in such a module with exactly one non-singleton dimension
        of the producer's channel count is indexed by those channels. ``order`` holds no containers (see
        ``__init__``); of nested candidates (a quantiser and its proxies) only the outermost is returned, so
        no tensor is cut twice.
        """
        import torch.nn as nn

        mods = dict(self.model.named_modules())
        i = self.order.index(producer)
        c = _out_channels(mods[producer])
        found = []
        for name in self.order[i + 1 :]:
            m = mods[name]
            if _is_prunable_layer(m):
                break
            if name.startswith(producer + ".") or isinstance(m, nn.modules.batchnorm._BatchNorm):
                continue
            if _channel_tensors(m, c):
                found.append(name)
        return [n for n in found if not any(n.startswith(o + ".") for o in found)]


def _retarget_quant_injectors(model: Any) -> None:
    """Point every Brevitas quant proxy's injector at the layers it tracks in ``model``.

    A proxy's injector is a class bound (``let(module=...)``) to the layer it was made for; ``copy.deepcopy`` copies
    the proxy's ``tracked_module_list`` but not that class, so after the copy is pruned the injector still reads the
    unpruned original's ``out_channels``, and Brevitas re-initialises the quantiser from it on every
    ``load_state_dict`` (``config.REINIT_ON_STATE_DICT_LOAD``): a per-channel weight scale then gets the unpruned
    shape (seen: ``shape '[16, 1, 1, 1]' is invalid for input of size 8`` after a fine-tune restored its best
    weights). Brevitas' own ``update_tracked_modules`` rebinds it."""
    for m in model.modules():
        if getattr(m, "tracked_module_list", None) and hasattr(m, "update_tracked_modules"):
            m.update_tracked_modules()


def _holds_layers(module: Any) -> bool:
    """True for a module that contains a conv/linear/BatchNorm below itself (a container, not a layer)."""
    import torch.nn as nn

    kinds = (nn.Conv1d, nn.Conv2d, nn.Linear, nn.modules.batchnorm._BatchNorm)
    return any(isinstance(s, kinds) for s in module.modules() if s is not module)


def _is_depthwise(m: Any) -> bool:
    """A depthwise convolution: one filter per input channel (``groups == in_channels == out_channels``)."""
    g = getattr(m, "groups", 1)
    return g > 1 and g == m.in_channels == m.out_channels


def _channel_tensors(module: Any, channels: int) -> list[tuple[Any, str, int]]:
    """``(owner, attr, dim)`` of every param/buffer with exactly one non-1 dimension equal to ``channels``."""
    found = []
    for owner in module.modules():
        for attr, t in list(owner._parameters.items()) + list(owner._buffers.items()):
            if t is None or t.dim() == 0 or t.numel() != channels or channels == 1:
                continue
            dims = [d for d, n in enumerate(t.shape) if n != 1]
            if len(dims) == 1 and t.shape[dims[0]] == channels:
                found.append((owner, attr, dims[0]))
    return found


def _index_keep(t: Any, dim: int, remove: Sequence[int]) -> Any:
    import torch

    keep = [i for i in range(t.shape[dim]) if i not in set(remove)]
    return torch.index_select(t.data, dim, torch.tensor(keep, dtype=torch.long, device=t.device)).clone()


def _set_tensor(owner: Any, attr: str, new: Any) -> None:
    import torch

    if attr in owner._parameters:
        owner._parameters[attr] = torch.nn.Parameter(new, requires_grad=owner._parameters[attr].requires_grad)
    else:
        owner._buffers[attr] = new


def _fix_shape_attrs(module: Any, old: int, new: int, *, skip_self: bool = False) -> None:
    """Rewrite stored broadcast shapes such as Brevitas' ``stats_output_shape`` ``(C, 1, 1, 1)``, in the modules
    and in their quantisers' injectors (:func:`_rebind_injector_shapes`).

    Any tuple attribute of a (sub)module with exactly one non-1 entry equal to ``old`` is a per-channel shape.
    """
    if old == 1:
        return
    for owner in module.modules():
        if skip_self and owner is module:
            continue
        for k, v in list(vars(owner).items()):
            if _per_channel(v, old):
                setattr(owner, k, tuple(new if e == old else e for e in v))
        _rebind_injector_shapes(owner, old, new)


def _per_channel(v: Any, channels: int) -> bool:
    """A shape tuple with exactly one non-1 entry, equal to ``channels``."""
    if not (isinstance(v, tuple) and v and all(isinstance(e, int) for e in v)):
        return False
    big = [e for e in v if e != 1]
    return len(big) == 1 and big[0] == channels


def _rebind_injector_shapes(owner: Any, old: int, new: int) -> None:
    """Rebind the per-channel shapes of a Brevitas quant proxy's injector (``quant_injector.let``). Brevitas
    re-creates a quantiser from its injector on every ``load_state_dict`` (``config.REINIT_ON_STATE_DICT_LOAD``);
    an activation quantiser scaled per channel (``scaling_per_output_channel=True``,
    ``per_channel_broadcastable_shape=(1, C, 1, 1)``, as Brevitas' MobileNet-v1 has on its pointwise layers) kept
    the unpruned ``C`` there, so restoring a pruned model's best weights failed ("size mismatch ... [1, 6, 1, 1]
    from checkpoint, [1, 8, 1, 1] in current model")."""
    inj = getattr(owner, "quant_injector", None)
    if inj is None or not hasattr(inj, "let"):
        return
    fixed = {}
    for k in dir(inj):
        if k.startswith("_") or "shape" not in k:
            continue
        try:
            v = getattr(inj, k)
        except Exception:  # a dependency this injector cannot resolve on its own: not a stored shape
            continue
        if _per_channel(v, old):
            fixed[k] = tuple(new if e == old else e for e in v)
    if fixed:
        owner.quant_injector = inj.let(**fixed)


def _prune_channel_tensors(module: Any, channels: int, remove: Sequence[int]) -> None:
    for owner, attr, dim in _channel_tensors(module, channels):
        t = owner._parameters.get(attr, owner._buffers.get(attr))
        _set_tensor(owner, attr, _index_keep(t, dim, remove))
    _fix_shape_attrs(module, channels, channels - len(remove))


def _prune_module(m: Any, *, out_remove: Sequence[int] = (), in_remove: Sequence[int] = ()) -> None:
    """Remove output (dim 0) or input (dim 1) channels of a conv/linear/BN, including its quantiser tensors."""
    import torch.nn as nn

    if isinstance(m, nn.modules.batchnorm._BatchNorm):
        c = m.num_features
        for attr in ("weight", "bias", "running_mean", "running_var"):
            t = getattr(m, attr, None)
            if t is not None:
                _set_tensor(m, attr, _index_keep(t, 0, out_remove))
        m.num_features = c - len(out_remove)
        return
    if out_remove:
        c = _out_channels(m)
        # per-output-channel quantiser tensors (weight scale etc.) live in submodules of the layer
        for owner, attr, dim in _channel_tensors(m, c):
            if owner is m:
                continue
            t = owner._parameters.get(attr, owner._buffers.get(attr))
            _set_tensor(owner, attr, _index_keep(t, dim, out_remove))
        _fix_shape_attrs(m, c, c - len(out_remove), skip_self=True)
        _set_tensor(m, "weight", _index_keep(m.weight, 0, out_remove))
        if m.bias is not None:
            _set_tensor(m, "bias", _index_keep(m.bias, 0, out_remove))
        if isinstance(m, nn.Linear):
            m.out_features = c - len(out_remove)
        elif _is_depthwise(m):
            m.out_channels = m.in_channels = m.groups = c - len(out_remove)
        else:
            m.out_channels = c - len(out_remove)
    if in_remove:
        _set_tensor(m, "weight", _index_keep(m.weight, 1, in_remove))
        if isinstance(m, nn.Linear):
            m.in_features -= len(in_remove)
        else:
            m.in_channels -= len(in_remove)


def prune_to_counts(
    model: torch.nn.Module,
    example_input: torch.Tensor,
    counts: Mapping[str, int],
    importance: Callable[..., Any],
    *,
    graph: ChannelGraph | None = None,
) -> tuple[torch.nn.Module, dict[str, list[int]]]:
    """Keep the ``counts[group]`` most important channels of each group (ties broken by lower index).

    ``importance(model, graph, group) -> 1-D tensor of length group.channels`` (see ``hapfpga.pruning.importance``).
    Returns the pruned copy and the kept indices (sorted) per group — replayable with ``ChannelGraph(model, example_input).prune(keep)``.
    """
    import torch

    graph = graph or ChannelGraph(model, example_input)
    keep: dict[str, list[int]] = {}
    for g, n in counts.items():
        grp = graph.groups[g]
        if n >= grp.channels:
            continue
        scores = torch.as_tensor(importance(model, graph, grp)).detach().to(torch.float64).flatten()
        if scores.numel() != grp.channels:
            raise VerificationError(
                f"Importance returned {scores.numel()} scores for the {grp.channels} channels of '{g}'; "
                "fix the importance criterion."
            )
        # stable: sort by (-score, index) so equal scores keep lower indices — deterministic
        order = sorted(range(grp.channels), key=lambda i: (-float(scores[i]), i))
        keep[g] = sorted(order[: max(1, int(n))])
    return graph.prune(keep), keep


def hw_layer_shapes(model: torch.nn.Module, names: Sequence[str]) -> list[Any]:
    """``plan.ModelLayer`` (outputs, weights per output, depthwise) of the conv/linear layers ``names``."""
    from .plan import ModelLayer

    mods = dict(model.named_modules())
    return [
        ModelLayer(n, _out_channels(mods[n]), int(mods[n].weight[0].numel()), _is_depthwise(mods[n])) for n in names
    ]


def layer_channels(model: torch.nn.Module) -> dict[str, int]:
    """Output channels/neurons of every conv and linear layer (module name → count)."""
    return {n: _out_channels(m) for n, m in model.named_modules() if _is_prunable_layer(m)}
