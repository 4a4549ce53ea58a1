"""The one small ``Backend`` protocol every inference target implements, and the factory that loads one.

A backend is *loaded* (:func:`load_backend`), *run* on a dict of named numpy arrays, and *closed*::

    from targets import load_backend

    with load_backend("cpu", "int8.onnx", threads=2) as backend:
        logits = backend.run({"mv_residual": x})["logits"]   # x: float32 (1, S, 5, H, W)

Backends are registered by name and imported lazily, so a missing optional runtime (OpenVINO,
TensorRT) only matters when that backend is asked for.
"""

from __future__ import annotations

import importlib
import inspect
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from edgekit.errors import ConfigError

# name -> module implementing ``load(model, **options) -> Backend``
_BACKENDS = {"cpu": "targets.cpu", "openvino": "targets.openvino"}
# names device profiles may use whose backend this build does not ship yet
_NOT_IN_THIS_BUILD = {"tensorrt": "NVIDIA TensorRT (Jetson)"}

PRECISIONS = ("int8", "fp32")

ModelSource = bytes | str | os.PathLike


@runtime_checkable
class Backend(Protocol):
    """A loaded model on one device.

    ``name``: the backend ("cpu", "openvino"); ``device``: what actually runs it ("CPU", "GPU.0", ...);
    ``precision``: "int8" if the graph is quantized (QDQ / QLinear nodes), else "fp32".
    ``run`` takes and returns arrays keyed by the model's input / output names and raises
    :class:`ConfigError` on a missing or extra input, or one of the wrong shape or dtype.
    A backend is not thread-safe: use one per thread.
    """

    name: str
    device: str
    precision: str
    input_names: tuple[str, ...]
    output_names: tuple[str, ...]

    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]: ...

    def close(self) -> None: ...

    def __enter__(self) -> "Backend": ...

    def __exit__(self, *exc) -> None: ...


@dataclass(frozen=True)
class TensorInfo:
    """Name, shape (``None`` for a dynamic dimension) and numpy dtype name of a model input or output."""

    name: str
    shape: tuple[int | None, ...]
    dtype: str


def available_backends() -> tuple[str, ...]:
    """Names :func:`load_backend` accepts in this build (their runtimes may still need installing)."""
    return tuple(_BACKENDS)


def load_backend(name: str, model: ModelSource, **options) -> Backend:
    """Load ``model`` (ONNX bytes or a path; for "openvino" also an IR ``.xml``) on backend ``name``.

    ``options`` are the backend's keyword options: see ``targets.cpu.load`` (``threads``,
    ``graph_optimization``) and ``targets.openvino.load`` (``device``, ``cache_dir``, ...).

    Raises :class:`ConfigError` for an unknown backend, one not available in this build, an unknown
    option or an unreadable model; :class:`MissingDependencyError` when the backend's runtime is not
    installed.
    """
    if name not in _BACKENDS:
        available = ", ".join(_BACKENDS)
        if name in _NOT_IN_THIS_BUILD:
            raise ConfigError(f"backend {name!r} ({_NOT_IN_THIS_BUILD[name]}) is not available in this build "
                              f"of edgekit; available backends: {available}")
        raise ConfigError(f"unknown backend {name!r}; available backends: {available}")
    loader = importlib.import_module(_BACKENDS[name]).load
    accepted = [p.name for p in inspect.signature(loader).parameters.values() if p.kind == p.KEYWORD_ONLY]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ConfigError(f"unknown option(s) {unknown} for backend {name!r}; accepted: {accepted}")
    return loader(model, **options)


def read_model_source(model: ModelSource) -> tuple[bytes, Path | None]:
    """(bytes, path or None) of a model given as bytes or a path. Raises :class:`ConfigError`."""
    if isinstance(model, (bytes, bytearray, memoryview)):
        data = bytes(model)
        if not data:
            raise ConfigError("the model bytes are empty; pass the bytes or path of an .onnx file")
        return data, None
    if not isinstance(model, (str, os.PathLike)):
        raise ConfigError(f"model must be bytes or a path, got {type(model).__name__}")
    path = Path(model)
    if not path.is_file():
        raise ConfigError(f"model file not found: {path}")
    try:
        return path.read_bytes(), path
    except OSError as err:
        raise ConfigError(f"cannot read model file {path}: {err.strerror or err}") from None


def check_inputs(inputs: Mapping[str, np.ndarray], expected: Sequence[TensorInfo]) -> None:
    """Raise :class:`ConfigError` unless ``inputs`` has exactly the ``expected`` names, shapes and dtypes."""
    if not isinstance(inputs, Mapping):
        raise ConfigError(f"inputs must be a dict of name -> numpy array, got {type(inputs).__name__}")
    names = [info.name for info in expected]
    missing = [n for n in names if n not in inputs]
    extra = sorted(str(n) for n in inputs if n not in names)
    if missing or extra:
        parts = [f"missing input(s) {missing}"] if missing else []
        parts += [f"unexpected input(s) {extra}"] if extra else []
        raise ConfigError(f"{'; '.join(parts)}; the model takes {names}")
    for info in expected:
        array = inputs[info.name]
        if not isinstance(array, np.ndarray):
            raise ConfigError(f"input {info.name!r} must be a numpy array, got {type(array).__name__}")
        if array.dtype != np.dtype(info.dtype):
            raise ConfigError(f"input {info.name!r} is {array.dtype}, the model expects {info.dtype}; "
                              f"convert it with .astype(np.{info.dtype})")
        shape_ok = len(array.shape) == len(info.shape) and all(
            want is None or got == want for got, want in zip(array.shape, info.shape))
        if not shape_ok:
            want = tuple("?" if d is None else d for d in info.shape)
            raise ConfigError(f"input {info.name!r} has shape {tuple(array.shape)}, the model expects "
                              f"{want}".replace("'?'", "?"))
