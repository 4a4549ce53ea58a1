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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from edgekit.errors import ConfigError

# name -> module implementing ``load(model, **options) -> Backend``
_BACKENDS = {"onnxruntime": "targets.cpu", "openvino": "targets.openvino", "tensorrt": "targets.tensorrt"}
# older names of a backend (packages and profiles written before 0.2 say "cpu" for ONNX Runtime)
BACKEND_ALIASES = {"cpu": "onnxruntime", "ort": "onnxruntime"}
BACKEND_NAMES = ("onnxruntime", "openvino", "tensorrt")
# hardware classes a user names with ``device=``, and the backends that run each in this build
DEVICE_CLASSES = {"cpu": ("onnxruntime", "openvino"), "gpu": ("openvino", "tensorrt"), "npu": ("openvino",)}

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


def canonical_backend(name: str) -> str:
    """The backend's name ("onnxruntime", "openvino", "tensorrt") for a name or older alias ("cpu").
    Raises :class:`ConfigError` for an unknown name."""
    name = BACKEND_ALIASES.get(name, name)
    if name not in BACKEND_NAMES:
        raise ConfigError(f"unknown backend {name!r}; backends are {', '.join(BACKEND_NAMES)}")
    return name


@dataclass(frozen=True)
class Selection:
    """Where a model runs: ``backend`` (runtime name), ``device`` (hardware class "cpu", "gpu",
    "npu"), ``options`` for :func:`load_backend` (the backend's own device string, threads), and the
    device profile it came from, if any: its name and its settings (what a package manifest records)."""

    backend: str
    device: str
    options: dict
    profile: str | None = None
    profile_settings: dict = field(default_factory=dict)

    def __str__(self) -> str:
        via = f" (profile {self.profile})" if self.profile else ""
        return f"{self.backend} on {self.device}{via}"


def _device_class(backend_device: str) -> str:
    """"CPU" -> "cpu", "GPU.0" -> "gpu", "NPU" -> "npu" (OpenVINO / profile device strings)."""
    head = backend_device.split(".")[0].split(":")[0].lower()
    return head if head in DEVICE_CLASSES else "cpu"


def select_backend(device: str | None = None, backend: str | None = None, *,
                   default: tuple[str, str] = ("onnxruntime", "cpu"), threads: int | None = None) -> Selection:
    """Resolve the user's words into a backend and its options.

    ``device`` names hardware: "cpu", "gpu", "npu", a device profile (``targets/profiles``:
    ``targets.profiles.list_profiles()``: "intel-cpu", "jetson-orin-nx", ...) or a profile ``.toml`` path.
    ``backend`` names the runtime: "onnxruntime", "openvino" or "tensorrt". ``default``: the
    (backend, device) a package was made for, used for whatever the user leaves out. A profile
    brings its backend, backend device string and thread count; explicit arguments win.

    Raises :class:`ConfigError` for an unknown word, a backend given as the device, or a pair this
    build cannot run (ONNX Runtime on a GPU).
    """
    from targets.profiles import is_profile_name, list_profiles, load_profile

    profile = None
    if device is not None and not isinstance(device, str):
        raise ConfigError(f"device must be a string, got {type(device).__name__}")
    if device in BACKEND_NAMES or device in BACKEND_ALIASES and device != "cpu":
        raise ConfigError(f"{device!r} is a backend, not a device: pass backend={device!r} (CLI: --backend "
                          f"{device}); device names hardware: {', '.join(DEVICE_CLASSES)} or a profile")
    if device is not None and device not in DEVICE_CLASSES:
        if device.endswith(".toml") or os.sep in device or is_profile_name(device):
            profile = load_profile(device)
        else:
            raise ConfigError(f"unknown device {device!r}; devices are {', '.join(DEVICE_CLASSES)} or a profile: "
                              f"{', '.join(list_profiles())}")
    default_backend, default_device = canonical_backend(default[0]), default[1]
    if profile is not None:
        device_class = _device_class(profile.device)
        name = canonical_backend(backend) if backend else canonical_backend(profile.backend)
    else:
        device_class = device or default_device
        if device_class not in DEVICE_CLASSES:
            device_class = "cpu"
        if backend:
            name = canonical_backend(backend)
        elif default_backend in DEVICE_CLASSES[device_class]:
            name = default_backend
        else:
            name = DEVICE_CLASSES[device_class][0]
    if name not in DEVICE_CLASSES[device_class] and name != "tensorrt":
        runs = [d for d, names in DEVICE_CLASSES.items() if name in names]
        raise ConfigError(f"backend {name!r} runs on {', '.join(runs)} in this build, not on {device_class!r}; "
                          f"choose another device or backend ({device_class}: "
                          f"{', '.join(DEVICE_CLASSES[device_class])})")
    options: dict = {}
    if name == "openvino":
        options["device"] = profile.device if profile is not None else device_class.upper()
    if name == "tensorrt" and profile is not None and profile.backend == "tensorrt":
        options.update(profile.backend_options())  # the GPU and the engine build settings
    if profile is not None and profile.threads and name != "tensorrt":
        options["threads"] = profile.threads
    if threads is not None:
        options["threads"] = int(threads)
    if profile is None:
        return Selection(name, device_class, options)
    return Selection(name, device_class, options, profile.name, profile.to_dict())


def load_backend(name: str, model: ModelSource, **options) -> Backend:
    """Load ``model`` (ONNX bytes or a path; for "openvino" also an IR ``.xml``) on backend ``name``
("onnxruntime" — also accepted as "cpu" —, "openvino", "tensorrt"; see :func:`select_backend` for
choosing one).

    ``options`` are the backend's keyword options: see ``targets.cpu.load`` (``threads``,
    ``graph_optimization``), ``targets.openvino.load`` (``device``, ``cache_dir``, ...) and
    ``targets.tensorrt.load`` (``device``, ``dla_core``, ``workspace_mb``, ...).

    Raises :class:`ConfigError` for an unknown backend, an unknown option or an unreadable model;
    :class:`MissingDependencyError` when the backend's runtime is not installed.
    """
    name = BACKEND_ALIASES.get(name, name)
    if name not in _BACKENDS:
        raise ConfigError(f"unknown backend {name!r}; available backends: {', '.join(_BACKENDS)}")
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
