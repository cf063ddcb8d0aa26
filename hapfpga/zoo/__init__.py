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
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from ..runconfig import ModelConfig

__all__ = ["MODELS", "build_model", "load_factory", "save_model", "load_model", "model_spec"]

#: zoo name -> "module:function" inside hapfpga.zoo (resolved lazily so importing the zoo needs no torch)
MODELS: dict[str, str] = {
    "digits_cnn": "hapfpga.zoo.models:digits_cnn",
    "tfc": "hapfpga.zoo.models:tfc",
    "cnv": "hapfpga.zoo.models:cnv",
    "resnet8": "hapfpga.zoo.resnet:resnet8",
}


def _resolve(ref: str) -> Callable[..., Any]:
    mod, fn = ref.split(":")
    return getattr(importlib.import_module(mod), fn)


def load_factory(name: str) -> Callable[..., Any]:
    """The factory of a zoo name or of ``path/to/file.py:factory`` (user errors are one-sentence ConfigErrors)."""
    if name in MODELS:
        return _resolve(MODELS[name])
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
    model = factory(**kwargs, **options)
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


def model_spec(model: torch.nn.Module) -> dict[str, Any]:
    """How to rebuild ``model`` (built by :func:`build_model`): name, shapes, bits and options, with the widths
    read from the modules themselves for zoo models, so a channel-pruned model rebuilds at its pruned widths."""
    spec = getattr(model, "hap_spec", None)
    if spec is None:
        raise ConfigError(
            "This model was not built by hapfpga.zoo.build_model; save it with torch.save(model.state_dict())."
        )
    spec = {**spec, "options": dict(spec["options"])}
    if spec["name"] in MODELS and hasattr(model, "features"):  # QuantCNN zoo models (resnet8 keeps its options)
        import brevitas.nn as qnn

        convs = [m for _, m in model.features.named_children() if isinstance(m, qnn.QuantConv2d)]
        names = [n for n, _ in model.features.named_children()]
        fcs = [m for _, m in model.classifier.named_children() if isinstance(m, qnn.QuantLinear)]
        if spec["name"] != "tfc":
            spec["options"]["channels"] = [int(c.out_channels) for c in convs]
            spec["options"]["pool_after"] = [int(n[4:]) for n in names if n.startswith("pool")]
        spec["options"]["fc"] = [int(f.out_features) for f in fcs[:-1]]
    return spec


def save_model(model: torch.nn.Module, path: str | Path) -> Path:
    """Save a zoo/user model as its rebuild spec plus ``state_dict`` (Brevitas models cannot be pickled whole:
    their quantiser injectors are classes made at run time). Load with :func:`load_model`."""
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"spec": model_spec(model), "state_dict": model.state_dict()}, path)
    return path


def load_model(path: str | Path) -> torch.nn.Module:
    """Rebuild a model saved by :func:`save_model` and load its weights and quantiser state (eval mode)."""
    import torch

    blob = torch.load(Path(path), weights_only=True)
    model = _from_spec(blob["spec"])
    model.load_state_dict(blob["state_dict"])
    return model.eval()


def _from_spec(spec: dict[str, Any]) -> torch.nn.Module:
    from ..runconfig import ModelConfig

    cfg = ModelConfig(name=spec["name"], options=dict(spec["options"]), **spec["model_config"])
    return build_model(cfg, spec["input_shape"], spec["num_classes"])
