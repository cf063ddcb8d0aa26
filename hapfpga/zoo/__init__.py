"""Model zoo: Brevitas models by name (``digits_cnn``, ``tfc``, ``cnv``) or a user's ``path/to/file.py:factory``.

The registry :data:`MODELS` is an explicit table (no registration by import side effect). Factories take
``(input_shape, num_classes, quant: QuantSpec, **options)``; ``ModelConfig.options`` are passed through, so
``options: {channels: [32, 32, 64, 64, 128, 128], fc: [256, 256]}`` narrows ``cnv``. A user factory is called
with whichever of ``input_shape``, ``num_classes``, ``quant`` it accepts, plus the options, and must return a
``torch.nn.Module``. torch/brevitas are imported only when a model is built.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import sys
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, HapError
from .userfile import make_folder_importable, sources_hash

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from ..runconfig import ModelConfig

__all__ = [
    "MODELS", "ZooModel", "model_source_hash", "build_model", "load_factory", "save_model", "load_model", "model_spec",
    "model_from_spec",
]

@dataclass(frozen=True)
class ZooModel:
    """One zoo entry: where its factory lives (a ``"module:function"`` reference inside hapfpga.zoo, resolved
    lazily: importing the zoo needs no torch) and one line on what it is. A pruned model is rebuilt by pruning the
    factory's fresh model to its saved channels (:func:`model_spec`), the same for zoo and user models."""

    factory: str
    summary: str


#: The zoo: one explicit table (no registration by import side effect).
MODELS: dict[str, ZooModel] = {
    "digits_cnn": ZooModel("hapfpga.zoo.models:digits_cnn", "small CNN for 8x8 digits (conv 16-32, pool, FC 64)"),
    "tfc": ZooModel("hapfpga.zoo.models:tfc", "FINN's TFC (FC 64-64-64)"),
    "cnv": ZooModel("hapfpga.zoo.models:cnv", "FINN's CNV (conv 64-64-128-128-256-256, FC 512-512)"),
    "cnn1d": ZooModel("hapfpga.zoo.conv1d:cnn1d", "VGG10-1D-like QuantConv1d stack for N×C×L signals"),
    "mobilenet_v1": ZooModel("hapfpga.zoo.separable:mobilenet_v1", "MobileNet-v1 (depthwise-separable, width multiplier)"),
    "ds_cnn": ZooModel("hapfpga.zoo.separable:ds_cnn", "keyword-spotting DS-CNN on a 2D feature map"),
    "kws_mlp": ZooModel("hapfpga.zoo.mlp:kws_mlp", "keyword-spotting MLP (FC only)"),
    "mlp_autoencoder": ZooModel("hapfpga.zoo.mlp:mlp_autoencoder", "MLPerf Tiny anomaly-detection autoencoder body + classifier head (FC only)"),
    "resnet8": ZooModel("hapfpga.zoo.resnet:resnet8", "MLPerf Tiny ResNet-8 (stem 16, residual stages 16/32/64, 1x1 shortcuts)"),
}


def _resolve(ref: str) -> Callable[..., Any]:
    mod, fn = ref.split(":")
    return getattr(importlib.import_module(mod), fn)


def load_factory(name: str) -> Callable[..., Any]:
    """The factory of a zoo name or of ``path/to/file.py:factory`` (user errors are one-sentence ConfigErrors)."""
    if name in MODELS:
        return _resolve(MODELS[name].factory)
    if ":" not in name or not name.split(":", 1)[0].endswith(".py"):
        raise ConfigError(
            f"Unknown model '{name}'; use one of {', '.join(sorted(MODELS))} or 'path/to/file.py:factory'."
        )
    file, fn = name.rsplit(":", 1)
    path = Path(file).expanduser()
    if not path.is_file():
        raise ConfigError(f"Model file '{path}' (from model.name '{name}') does not exist; check the path.")
    mod_name = f"hapfpga_user_model_{abs(hash(str(path.resolve())))}"
    spec = importlib.util.spec_from_file_location(mod_name, path)
    if spec is None or spec.loader is None:
        raise ConfigError(f"Model file '{path}' cannot be imported as Python; give a .py file.")
    module = importlib.util.module_from_spec(spec)
    make_folder_importable(path)  # imports of modules next to the file work as under `python file.py`
    sys.modules[mod_name] = module  # so that torch.save can pickle classes defined there
    try:
        spec.loader.exec_module(module)
    except Exception as e:  # the user's code failed to import: name it, one sentence
        raise ConfigError(
            f"Model file '{path}' failed to import ({type(e).__name__}: {e}); fix that file."
        ) from e
    factory = getattr(module, fn, None)
    if not callable(factory):
        raise ConfigError(f"Model file '{path}' defines no function '{fn}'; name a factory defined there.")
    return factory


def build_model(
    cfg: ModelConfig, input_shape: Sequence[int], num_classes: int, *, seed: int | None = 0
) -> torch.nn.Module:
    """Build the Brevitas model ``cfg.name`` for inputs of ``input_shape`` (no batch dim) and ``num_classes``.

    The initial weights are drawn from ``torch.manual_seed(seed)`` inside a forked RNG (the global torch RNG is
    left as it was), so the same config builds the same model; ``seed=None`` uses the global RNG."""
    import torch

    if seed is not None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return build_model(cfg, input_shape, num_classes, seed=None)

    factory = load_factory(cfg.name)
    if cfg.name in MODELS and cfg.input_bits != 8:
        raise ConfigError(
            f"model.input_bits is {cfg.input_bits}, but the zoo's models take UINT8 pixels; set model.input_bits: 8."
        )
    kwargs: dict[str, Any] = {
        "input_shape": tuple(int(d) for d in input_shape),
        "num_classes": int(num_classes),
        "quant": cfg.quant,
    }
    options = dict(cfg.options or {})
    try:
        sig = inspect.signature(factory)
    except (TypeError, ValueError):  # builtins: pass everything
        sig = None
    if sig is not None:
        params = sig.parameters
        var_kw = any(p.kind is p.VAR_KEYWORD for p in params.values())
        if cfg.name not in MODELS:  # a user factory gets what it accepts
            kwargs = {k: v for k, v in kwargs.items() if k in params or var_kw}
        unknown = [k for k in options if k not in params and not var_kw]
        if unknown:
            accepted = [
                k for k, p in params.items() if p.kind is p.KEYWORD_ONLY or (k not in kwargs and k != "self")
            ]
            raise ConfigError(
                f"Model '{cfg.name}' has no option {', '.join(repr(k) for k in unknown)}; "
                f"its options are {', '.join(accepted) or 'none'}."
            )
    model = _call_factory(cfg.name, factory, kwargs, options, user=cfg.name not in MODELS)
    if not isinstance(model, torch.nn.Module):
        raise ConfigError(
            f"Model factory '{cfg.name}' returned {type(model).__name__}, not a torch.nn.Module; fix it."
        )
    model.hap_spec = {  # what save_model needs to rebuild it (plain data)
        "name": cfg.name,
        "input_shape": [int(d) for d in input_shape],
        "num_classes": int(num_classes),
        "model_config": {
            "weight_bits": cfg.weight_bits,
            "act_bits": cfg.act_bits,
            "input_bits": cfg.input_bits,
            "layer_weight_bits": {int(k): int(v) for k, v in cfg.layer_weight_bits.items()},
            "layer_act_bits": {int(k): int(v) for k, v in cfg.layer_act_bits.items()},
        },
        "options": options,
    }
    return model


def _call_factory(
    name: str, factory: Callable[..., Any], kwargs: dict[str, Any], options: dict[str, Any], *, user: bool
) -> Any:
    """Call a factory; for a user's factory, a signature that cannot take the call and any exception raised
    inside it are one-sentence ConfigErrors quoting the user's error and the line of their file."""
    if not user:
        return factory(**kwargs, **options)
    try:
        inspect.signature(factory).bind(**kwargs, **options)
    except TypeError as e:
        raise ConfigError(
            f"Model factory '{name}' cannot be called as factory(input_shape, num_classes, quant, **options) "
            f"({e}); give it that signature (see docs/models.md, 'Your own model')."
        ) from None
    except ValueError:  # no signature to inspect (a builtin): just call it
        pass
    try:
        return factory(**kwargs, **options)
    except HapError:
        raise
    except Exception as e:
        file = Path(inspect.getsourcefile(factory) or "").resolve()
        frames = [f for f in traceback.extract_tb(e.__traceback__) if Path(f.filename).resolve() == file]
        where = f" at {file.name}:{frames[-1].lineno}" if frames else ""
        msg = " ".join(str(e).split()).rstrip(".")
        raise ConfigError(
            f"Model factory '{name}' raised {type(e).__name__}{where}: {msg or 'no message'}; fix the factory."
        ) from None


def model_source_hash(name: str) -> str | None:
    """sha256 of a user's model file (``path/to/file.py:factory``) and of the ``.py`` files it imports from its
    folder (:func:`hapfpga.zoo.userfile.local_sources`), None for zoo models: the train stage's cache key includes
    it, so editing the file or a module next to it that it imports re-runs training."""
    if name in MODELS or ":" not in name:
        return None
    path = Path(name.rsplit(":", 1)[0]).expanduser()
    return sources_hash(path) if path.is_file() else None


def model_spec(model: torch.nn.Module) -> dict[str, Any]:
    """How to rebuild ``model`` (built by :func:`build_model`): name, shapes, bits and options as the factory was
    called, plus ``channels``, the output channels of every conv/linear layer read from the modules themselves.

    A channel-pruned model (zoo or user factory alike) is rebuilt by calling the factory as before and pruning the
    fresh instance to those channels (:func:`_from_spec`), so no factory needs a width option. Per-layer bits are in
    ``model_config`` (``layer_weight_bits``/``layer_act_bits``, which mixed precision rewrites)."""
    from ..pruning.apply import layer_channels

    spec = getattr(model, "hap_spec", None)
    if spec is None:
        raise ConfigError(
            "This model was not built by hapfpga.zoo.build_model; save it with torch.save(model.state_dict())."
        )
    return {**spec, "options": dict(spec["options"]), "channels": layer_channels(model)}


def save_model(model: torch.nn.Module, path: str | Path) -> Path:
    """Save a zoo/user model as its rebuild spec plus ``state_dict`` (Brevitas models cannot be pickled whole:
    their quantiser injectors are classes made at run time) and the Brevitas runtime-statistics state that
    ``state_dict`` leaves out (``hapfpga.train.runtime_state``: an activation scale still collecting statistics
    would otherwise come back as finished, and the reloaded model would train differently from the saved one).
    Load with :func:`load_model`."""
    import torch

    from ..train import full_state_dict, runtime_state

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"spec": model_spec(model), "state_dict": full_state_dict(model), "runtime": runtime_state(model)},
               path)
    return path


def load_model(path: str | Path) -> torch.nn.Module:
    """Rebuild a model saved by :func:`save_model` and load its weights and quantiser state, the runtime-statistics
    state included where the file has it (eval mode)."""
    import torch

    from ..train import load_runtime_state

    blob = torch.load(Path(path), weights_only=True)
    model = model_from_spec(blob["spec"])
    try:
        model.load_state_dict(blob["state_dict"])
    except RuntimeError as e:  # the factory's model (pruned to the saved channels) has other tensors
        first = next((ln.strip() for ln in str(e).splitlines()[1:] if ln.strip()), str(e)).rstrip(".")
        raise ConfigError(
            f"Model file '{path}' does not fit model '{blob['spec']['name']}' as its factory rebuilds it ({first}); "
            "it was saved by an older hapfpga without its pruned channel counts or the factory changed since, so "
            "re-run the stage that wrote it (hapfpga run --from train or --from prune)."
        ) from None
    load_runtime_state(model, blob.get("runtime", {}))
    return model.eval()


def model_from_spec(spec: dict[str, Any]) -> torch.nn.Module:
    """The model ``spec`` describes (the rebuild half of :func:`load_model`): the factory's fresh model, pruned to
    ``spec["channels"]`` where they differ."""
    from ..runconfig import ModelConfig

    cfg = ModelConfig(name=spec["name"], options=dict(spec["options"]), **spec["model_config"])
    model = build_model(cfg, spec["input_shape"], spec["num_classes"])
    if spec.get("channels") is None:  # a blob saved before the channels were recorded: options carry the widths
        return model
    return _prune_to_channels(model, spec)


def _prune_to_channels(model: torch.nn.Module, spec: dict[str, Any]) -> torch.nn.Module:
    """``model`` (fresh from the factory) pruned to the saved channels of each channel group (kept indices
    ``0..n-1``: the saved weights replace them); a factory that no longer builds that architecture is a
    one-sentence ``ConfigError``."""
    import torch

    from ..pruning.apply import ChannelGraph, layer_channels

    want = {k: int(v) for k, v in spec["channels"].items()}
    if layer_channels(model) != want:
        graph = ChannelGraph(model, torch.zeros((2, *spec["input_shape"])))
        keep = {g: list(range(want[g])) for g, grp in graph.groups.items() if want.get(g, grp.channels) < grp.channels}
        model = graph.prune(keep, inplace=True) if keep else model
    got = layer_channels(model)
    if got != want:
        diff = sorted(k for k in {*got, *want} if got.get(k) != want.get(k))
        raise ConfigError(
            f"The saved model's layers {', '.join(repr(k) for k in diff[:3])} have "
            f"{', '.join(str(want.get(k)) for k in diff[:3])} channels, but model '{spec['name']}' pruned to the saved "
            f"channel counts has {', '.join(str(got.get(k)) for k in diff[:3])}; the factory changed since the model "
            "was saved, re-run training (or restore the model file)."
        )
    return model
