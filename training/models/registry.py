"""The model registry: one name -> one builder, timm-style.

A builder is a plain function ``builder(num_classes, **cfg) -> nn.Module`` whose keyword defaults
*are* the model's default config (segments, input size, backbone, fusion weights, ...). The built
module carries ``model_name``, ``default_cfg`` (the resolved config) and ``input_specs``.

Each entry also declares ``inputs(**cfg) -> tuple[InputSpec, ...]``, a cheap function of the same
config, so what a model consumes is known without building it (``model_input_specs``: the cache
is chosen, and a config checked, before any weight is allocated). ``build_model`` checks that the
built model agrees with it.
"""

from __future__ import annotations

import difflib
import inspect
from dataclasses import dataclass, field
from typing import Callable

from torch import nn

from edgekit.errors import ConfigError
from edgekit.spec import InputSpec


@dataclass(frozen=True)
class ModelEntry:
    """What the registry knows about one architecture."""

    name: str
    builder: Callable[..., nn.Module]
    summary: str
    paper: str
    default_cfg: dict = field(default_factory=dict)
    inputs: Callable[..., tuple[InputSpec, ...]] | None = None  # (**resolved cfg) -> the model's input specs


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(name: str, *, summary: str, paper: str, inputs: Callable[..., tuple[InputSpec, ...]]):
    """Decorator: register ``builder`` under ``name``; its keyword defaults become ``default_cfg``.

    ``inputs`` receives the resolved config as keyword arguments (take ``**_`` for the keys it does
    not need) and returns the input specs the built model will have, without building it.
    """

    def decorator(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} registered twice")
        params = inspect.signature(builder).parameters
        default_cfg = {k: p.default for k, p in params.items()
                       if k != "num_classes" and p.default is not inspect.Parameter.empty}
        _REGISTRY[name] = ModelEntry(name, builder, summary, paper, default_cfg, inputs)
        return builder

    return decorator


def list_models() -> list[str]:
    """Names of every registered model, sorted."""
    return sorted(_REGISTRY)


def model_entry(name: str) -> ModelEntry:
    """The registry entry of ``name``; raises ``ConfigError`` (with close matches) if unknown."""
    if name not in _REGISTRY:
        close = difflib.get_close_matches(name, list(_REGISTRY), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else "; run `python -m training models` for the list"
        raise ConfigError(f"unknown model {name!r}{hint}")
    return _REGISTRY[name]


def _resolved_cfg(entry: ModelEntry, cfg: dict) -> dict:
    """The entry's default config updated by ``cfg``; ConfigError (with a close match) for an unknown key."""
    unknown = sorted(set(cfg) - set(entry.default_cfg))
    if unknown:
        close = difflib.get_close_matches(unknown[0], list(entry.default_cfg), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"model {entry.name!r} has no config key(s) {unknown}{hint} "
                          f"(valid keys: {', '.join(sorted(entry.default_cfg))})")
    return {**entry.default_cfg, **cfg}


def model_input_specs(name: str, **cfg) -> tuple[InputSpec, ...]:
    """The input specs ``build_model(name, n, **cfg)`` would have, without building the model.

    Raises ``ConfigError`` for an unknown name, an unknown config key or a value the specs reject.
    """
    entry = model_entry(name)
    resolved = _resolved_cfg(entry, cfg)
    try:
        return tuple(entry.inputs(**resolved))
    except (ValueError, TypeError, KeyError) as err:
        raise ConfigError(f"model {name!r}: bad config {cfg}: {err}") from err


def build_model(name: str, num_classes: int, **cfg) -> nn.Module:
    """Build a registered model.

    ``cfg`` overrides the entry's ``default_cfg`` (e.g. ``segments=8``, ``size=112``,
    ``backbone="resnet50"``). Raises ``ConfigError`` for an unknown name, an unknown config key,
    a non-positive ``num_classes`` or a value the builder rejects.
    """
    entry = model_entry(name)
    if not isinstance(num_classes, int) or num_classes < 1:
        raise ConfigError(f"num_classes must be a positive integer, got {num_classes!r}")
    resolved = _resolved_cfg(entry, cfg)
    try:
        model = entry.builder(num_classes=num_classes, **resolved)
    except ValueError as err:
        raise ConfigError(f"cannot build {name!r}: {err}") from err
    declared = model_input_specs(name, **cfg)
    if tuple(model.input_specs) != declared:  # the registry's promise: specs are known before building
        raise RuntimeError(f"{name!r}: built input specs {model.input_specs} differ from the declared {declared}")
    model.model_name = name
    model.default_cfg = {"num_classes": num_classes, **resolved}
    return model
