"""The model registry: one name -> one builder, timm-style.

A builder is a plain function ``builder(num_classes, **cfg) -> nn.Module`` whose keyword defaults
*are* the model's default config (segments, input size, backbone, fusion weights, ...). The built
module carries ``model_name``, ``default_cfg`` (the resolved config) and ``input_specs``.
"""

from __future__ import annotations

import difflib
import inspect
from dataclasses import dataclass, field
from typing import Callable

from torch import nn

from edgekit.errors import ConfigError


@dataclass(frozen=True)
class ModelEntry:
    """What the registry knows about one architecture."""

    name: str
    builder: Callable[..., nn.Module]
    summary: str
    paper: str
    default_cfg: dict = field(default_factory=dict)


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(name: str, *, summary: str, paper: str):
    """Decorator: register ``builder`` under ``name``; its keyword defaults become ``default_cfg``."""

    def decorator(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} registered twice")
        params = inspect.signature(builder).parameters
        default_cfg = {k: p.default for k, p in params.items()
                       if k != "num_classes" and p.default is not inspect.Parameter.empty}
        _REGISTRY[name] = ModelEntry(name, builder, summary, paper, default_cfg)
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


def build_model(name: str, num_classes: int, **cfg) -> nn.Module:
    """Build a registered model.

    ``cfg`` overrides the entry's ``default_cfg`` (e.g. ``segments=8``, ``size=112``,
    ``backbone="resnet50"``). Raises ``ConfigError`` for an unknown name, an unknown config key,
    a non-positive ``num_classes`` or a value the builder rejects.
    """
    entry = model_entry(name)
    if not isinstance(num_classes, int) or num_classes < 1:
        raise ConfigError(f"num_classes must be a positive integer, got {num_classes!r}")
    unknown = sorted(set(cfg) - set(entry.default_cfg))
    if unknown:
        raise ConfigError(f"model {name!r} has no config key(s) {unknown}; "
                          f"valid keys: {sorted(entry.default_cfg)}")
    resolved = {**entry.default_cfg, **cfg}
    try:
        model = entry.builder(num_classes=num_classes, **resolved)
    except ValueError as err:
        raise ConfigError(f"cannot build {name!r}: {err}") from err
    model.model_name = name
    model.default_cfg = {"num_classes": num_classes, **resolved}
    return model
