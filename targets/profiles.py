"""Device profiles: which backend, device, precision and budget suit a kind of edge device, what the
device has, and how its engine is built, as data.

Each profile is a TOML file in ``targets/profiles/`` (:func:`list_profiles`: ``jetson-orin-nano``,
``jetson-orin-nx``, ``jetson-agx-orin``, ``nvidia-gpu``, ``intel-cpu``, ``intel-gpu``, ``intel-npu``,
``x86-cpu``, ``arm64-cpu``); a user's own profile is any ``.toml`` file with the same keys::

    backend = "openvino"        # a targets backend name: onnxruntime | openvino | tensorrt
    device = "CPU"              # the backend's device string
    precision = "int8"          # preferred model precision: int8 | fp16 | fp32
    threads = 0                 # CPU threads; 0 = every physical core available
    memory_budget_mb = 1024     # what the recognizer may use on this device
    notes = "..."

    [hardware]                  # what the device has (optional; export checks requests against it)
    arch = "aarch64"            # x86_64 | aarch64
    cpu = "6x Cortex-A78AE"
    gpu = "Ampere, 1024 CUDA cores"   # "" when none
    nvidia_gpu = true           # TensorRT needs one
    dla_cores = 0               # NVIDIA Deep Learning Accelerators
    npu = false                 # an NPU OpenVINO can use
    encoder_motion_vectors = false    # a hardware video encoder that reports motion vectors

    [tensorrt]                  # engine build settings (targets.tensorrt.BuildConfig), TensorRT profiles only
    workspace_mb = 1024
    optimization_level = 3
    dla_core = -1               # -1: the GPU
    gpu_fallback = true
    cuda_graph = true

A profile is data: it is used by name wherever edgekit takes a ``device``: ``Recognizer(pkg,
device="intel-cpu")``, ``edgekit recognize --device intel-cpu``, ``edgekit export --device
jetson-orin-nx`` (``targets.backend.select_backend`` resolves them; :func:`request_warnings` says
what a request asks of a device that it lacks).
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path

from edgekit.errors import ConfigError

PROFILE_BACKENDS = ("onnxruntime", "openvino", "tensorrt", "cpu")  # "cpu": the older name of onnxruntime
PROFILE_PRECISIONS = ("int8", "fp16", "fp32")
_KEYS = {"backend": str, "device": str, "precision": str, "threads": int, "memory_budget_mb": int, "notes": str,
         "hardware": dict, "tensorrt": dict}
_OPTIONAL = {"notes", "hardware", "tensorrt"}
ARCHES = ("x86_64", "aarch64")
# older profile names, still accepted (packages exported before the rename record them)
PROFILE_ALIASES = {"generic-arm64": "arm64-cpu"}


@dataclass(frozen=True)
class Hardware:
    """What a device has. Defaults describe a plain CPU with nothing else."""

    arch: str = "x86_64"
    cpu: str = ""
    gpu: str = ""
    nvidia_gpu: bool = False
    dla_cores: int = 0
    npu: bool = False
    encoder_motion_vectors: bool = False

    @classmethod
    def from_dict(cls, name: str, data: dict) -> "Hardware":
        kinds = {"arch": str, "cpu": str, "gpu": str, "nvidia_gpu": bool, "dla_cores": int, "npu": bool,
                 "encoder_motion_vectors": bool}
        unknown = sorted(set(data) - set(kinds))
        if unknown:
            raise ConfigError(f"device profile {name!r}: unknown [hardware] key(s) {unknown}; keys are {list(kinds)}")
        for key, kind in kinds.items():
            if key in data and (not isinstance(data[key], kind) or (kind is int and isinstance(data[key], bool))):
                raise ConfigError(f"device profile {name!r}: hardware.{key} must be "
                                  f"{ {str: 'a string', bool: 'true or false', int: 'an integer'}[kind]}, got {data[key]!r}")
        if data.get("arch", "x86_64") not in ARCHES:
            raise ConfigError(f"device profile {name!r}: hardware.arch must be one of {list(ARCHES)}, got {data['arch']!r}")
        if data.get("dla_cores", 0) < 0:
            raise ConfigError(f"device profile {name!r}: hardware.dla_cores must be >= 0")
        return cls(**data)


@dataclass(frozen=True)
class DeviceProfile:
    """One device profile. ``threads == 0`` means every physical core available to the process.
    ``tensorrt`` holds the engine build settings (a ``targets.tensorrt.BuildConfig`` as a dict,
    ``dla_core`` -1 for the GPU) of TensorRT profiles, else ``{}``."""

    name: str
    backend: str
    device: str
    precision: str
    threads: int
    memory_budget_mb: int
    notes: str = ""
    hardware: Hardware = field(default_factory=Hardware)
    tensorrt: dict = field(default_factory=dict)

    def backend_options(self) -> dict:
        """Keyword options for ``load_backend(profile.backend, model, **options)``."""
        if self.backend == "tensorrt":
            return {"device": self.device, **tensorrt_options(self.tensorrt)}
        return {"device": self.device, **({"threads": self.threads} if self.threads else {})}

    @classmethod
    def from_dict(cls, data) -> "DeviceProfile":
        """From :meth:`to_dict`'s data (a manifest's ``target.profile``). Raises :class:`ConfigError`."""
        data = dict(data)
        name = str(data.pop("name", "profile"))
        data["hardware"] = dict(data.get("hardware", {}))
        if "tensorrt" in data:
            data["tensorrt"] = dict(data["tensorrt"])
        return _validate(name, data)

    def to_dict(self) -> dict:
        """JSON data, as a package manifest records it (``target.profile``)."""
        values = asdict(self)
        if not self.tensorrt:
            values.pop("tensorrt")
        return values


def tensorrt_options(settings: dict) -> dict:
    """``targets.tensorrt.load`` keyword options from a profile's or manifest's ``tensorrt`` table."""
    from targets.tensorrt import BuildConfig

    config = BuildConfig.from_dict(settings)
    return {"workspace_mb": config.workspace_mb, "optimization_level": config.optimization_level,
            "dla_core": config.dla_core, "gpu_fallback": config.gpu_fallback, "cuda_graph": config.cuda_graph,
            "timing_cache": config.timing_cache}


def _builtin_dir():
    return resources.files("targets") / "profiles"


def list_profiles() -> list[str]:
    """Names of the built-in profiles, sorted."""
    return sorted(entry.name[:-5] for entry in _builtin_dir().iterdir() if entry.name.endswith(".toml"))


def is_profile_name(name: str) -> bool:
    """Whether ``name`` is a built-in profile or one of its older names."""
    return PROFILE_ALIASES.get(name, name) in list_profiles()


def load_profile(name: str | os.PathLike) -> DeviceProfile:
    """A built-in profile by name (see :func:`list_profiles`; older names in :data:`PROFILE_ALIASES`
    still work), or a profile from a ``.toml`` path.

    Raises :class:`ConfigError` for an unknown name, an unreadable file, or a missing/invalid key.
    """
    text = os.fspath(name)
    if text.endswith(".toml") or os.sep in text:
        path = Path(text)
        try:
            source, profile_name = path.read_text(encoding="utf-8"), path.stem
        except OSError as err:
            raise ConfigError(f"cannot read device profile {path}: {err.strerror or err}") from None
    else:
        text = PROFILE_ALIASES.get(text, text)
        entry = _builtin_dir() / f"{text}.toml"
        if not entry.is_file():
            raise ConfigError(f"unknown device profile {text!r}; available: {', '.join(list_profiles())}")
        source, profile_name = entry.read_text(encoding="utf-8"), text
    try:
        data = tomllib.loads(source)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"device profile {text!r} is not valid TOML: {err}") from None
    return _validate(profile_name, data)


def _validate(name: str, data: dict) -> DeviceProfile:
    unknown = sorted(set(data) - set(_KEYS))
    missing = sorted(set(_KEYS) - set(data) - _OPTIONAL)
    if unknown or missing:
        problems = [f"unknown key(s) {unknown}"] if unknown else []
        problems += [f"missing key(s) {missing}"] if missing else []
        raise ConfigError(f"device profile {name!r}: {'; '.join(problems)}; keys are {list(_KEYS)}")
    for key, kind in _KEYS.items():
        if key in data and (not isinstance(data[key], kind) or isinstance(data[key], bool)):
            what = {int: "an integer", str: "a string", dict: "a table"}[kind]
            raise ConfigError(f"device profile {name!r}: {key} must be {what}, got {data[key]!r}")
    if data["backend"] not in PROFILE_BACKENDS:
        raise ConfigError(f"device profile {name!r}: backend must be one of {list(PROFILE_BACKENDS)}, "
                          f"got {data['backend']!r}")
    if data["precision"] not in PROFILE_PRECISIONS:
        raise ConfigError(f"device profile {name!r}: precision must be one of {list(PROFILE_PRECISIONS)}, "
                          f"got {data['precision']!r}")
    if data["threads"] < 0 or data["memory_budget_mb"] <= 0:
        raise ConfigError(f"device profile {name!r}: threads must be >= 0 and memory_budget_mb > 0")
    values = {k: data[k] for k in _KEYS if k not in _OPTIONAL}
    values["backend"] = "onnxruntime" if values["backend"] == "cpu" else values["backend"]
    hardware = Hardware.from_dict(name, data.get("hardware", {}))
    tensorrt = data.get("tensorrt", {})
    if tensorrt and values["backend"] != "tensorrt":
        raise ConfigError(f"device profile {name!r}: a [tensorrt] table needs backend 'tensorrt'")
    if values["backend"] == "tensorrt":
        from targets.tensorrt import BuildConfig

        try:
            tensorrt = BuildConfig.from_dict(tensorrt).to_dict()
        except ConfigError as err:
            raise ConfigError(f"device profile {name!r}: {err}") from None
    return DeviceProfile(name=name, notes=data.get("notes", "").strip(), hardware=hardware, tensorrt=tensorrt,
                         **values)


def request_warnings(profile: DeviceProfile, backend: str, precision: str) -> list[str]:
    """What a package for ``profile`` asks of the device that the profile says it lacks: TensorRT
    without an NVIDIA GPU, a DLA core the device does not have, an NPU device string on a device
    without one, FP16 on a CPU backend. One sentence each; empty when the request fits."""
    hw, warnings = profile.hardware, []
    if backend == "tensorrt" and not hw.nvidia_gpu:
        warnings.append(f"{profile.name} has no NVIDIA GPU, which TensorRT needs")
    dla_core = profile.tensorrt.get("dla_core", -1) if backend == "tensorrt" else -1
    if dla_core is not None and dla_core >= 0 and dla_core >= hw.dla_cores:
        has = f"{hw.dla_cores} DLA core{'s' if hw.dla_cores != 1 else ''}" if hw.dla_cores else "no DLA"
        warnings.append(f"DLA core {dla_core} requested, but {profile.name} has {has}")
    if backend == "openvino" and profile.device.upper().startswith("NPU") and not hw.npu:
        warnings.append(f"{profile.name} has no NPU")
    if backend == "openvino" and profile.device.upper().startswith("GPU") and not hw.gpu:
        warnings.append(f"{profile.name} has no GPU OpenVINO can use")
    if precision == "fp16":
        warnings.append("fp16 packages are not made by edgekit quantize (int8 and fp32 are)")
    return warnings
