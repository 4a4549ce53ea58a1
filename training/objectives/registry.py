"""The objective registry, beside the model registry and built the same way: one name -> one
builder ``builder(label_smoothing, **params) -> Objective`` whose keyword defaults are the paper's
weights (``[objective]`` keys in the config override them; an unknown key is refused with the
closest name)."""

from __future__ import annotations

import difflib
import inspect
from dataclasses import dataclass, field
from typing import Callable

from edgekit.errors import ConfigError


@dataclass(frozen=True)
class ObjectiveEntry:
    name: str
    builder: Callable
    summary: str
    paper: str
    defaults: dict = field(default_factory=dict)


_OBJECTIVES: dict[str, ObjectiveEntry] = {}


def register_objective(name: str, *, summary: str, paper: str):
    """Decorator: register ``builder(label_smoothing, **params)`` under ``name``."""

    def decorator(builder: Callable) -> Callable:
        if name in _OBJECTIVES:
            raise ValueError(f"objective {name!r} registered twice")
        params = inspect.signature(builder).parameters
        defaults = {k: p.default for k, p in params.items()
                    if k != "label_smoothing" and p.default is not inspect.Parameter.empty}
        _OBJECTIVES[name] = ObjectiveEntry(name, builder, summary, paper, defaults)
        return builder

    return decorator


def list_objectives() -> list[str]:
    return sorted(_OBJECTIVES)


def objective_entry(name: str) -> ObjectiveEntry:
    """The entry of ``name``; ConfigError with close matches if unknown."""
    if name not in _OBJECTIVES:
        close = difflib.get_close_matches(name, list(_OBJECTIVES), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"unknown objective {name!r}{hint} (objectives: {', '.join(list_objectives())})")
    return _OBJECTIVES[name]


def build_objective(name: str, label_smoothing: float = 0.0, **params):
    """The objective ``name`` with the paper's weights updated by ``params``. Raises ConfigError for an
    unknown name or key, or a value the builder refuses."""
    entry = objective_entry(name)
    unknown = sorted(set(params) - set(entry.defaults))
    if unknown:
        dotted = [f"objective.{k}" for k in entry.defaults]
        close = difflib.get_close_matches(f"objective.{unknown[0]}", dotted, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"objective {name!r} has no key 'objective.{unknown[0]}'{hint} "
                          f"(its keys: {', '.join(sorted(entry.defaults)) or 'none'})")
    for key, value in params.items():
        default = entry.defaults[key]
        if isinstance(default, float) and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise ConfigError(f"objective.{key} must be a number, got {value!r}")
        if isinstance(default, float) and value < 0:
            raise ConfigError(f"objective.{key} must be >= 0, got {value!r}")
    try:
        return entry.builder(label_smoothing=label_smoothing, **{k: float(v) if isinstance(entry.defaults[k], float)
                                                                  else v for k, v in params.items()})
    except ValueError as err:
        raise ConfigError(f"objective {name!r}: {err}") from None
