"""Device profiles: which backend, device, precision and budget suit a kind of edge device, as data.

Each profile is a TOML file in ``targets/profiles/`` (``jetson-orin-nano``, ``intel-cpu``,
``generic-arm64``, ``x86-cpu``); a user's own profile is any ``.toml`` file with the same keys::

    backend = "openvino"        # a targets backend name: onnxruntime | openvino | tensorrt
    device = "CPU"              # the backend's device string
    precision = "int8"          # preferred model precision: int8 | fp16 | fp32
    threads = 0                 # CPU threads; 0 = every physical core available
    memory_budget_mb = 1024     # what the recognizer may use on this device
    notes = "..."

A profile is data only: naming a backend this build does not ship (``tensorrt``) is allowed;
``load_backend`` says so when it is asked to run it. Profiles are used by name wherever edgekit
takes a ``device``: ``Recognizer(pkg, device="intel-cpu")``, ``edgekit recognize --device
intel-cpu``, ``edgekit export --device intel-cpu`` (``targets.backend.select_backend`` resolves
them).
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from edgekit.errors import ConfigError

PROFILE_BACKENDS = ("onnxruntime", "openvino", "tensorrt", "cpu")  # "cpu": the older name of onnxruntime
PROFILE_PRECISIONS = ("int8", "fp16", "fp32")
_KEYS = {"backend": str, "device": str, "precision": str, "threads": int, "memory_budget_mb": int, "notes": str}


@dataclass(frozen=True)
class DeviceProfile:
    """One device profile. ``threads == 0`` means every physical core available to the process."""

    name: str
    backend: str
    device: str
    precision: str
    threads: int
    memory_budget_mb: int
    notes: str = ""

    def backend_options(self) -> dict:
        """Keyword options for ``load_backend(profile.backend, model, **options)``."""
        return {"device": self.device, **({"threads": self.threads} if self.threads else {})}


def _builtin_dir():
    return resources.files("targets") / "profiles"


def list_profiles() -> list[str]:
    """Names of the built-in profiles, sorted."""
    return sorted(entry.name[:-5] for entry in _builtin_dir().iterdir() if entry.name.endswith(".toml"))


def load_profile(name: str | os.PathLike) -> DeviceProfile:
    """A built-in profile by name (see :func:`list_profiles`), or a profile from a ``.toml`` path.

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
    missing = sorted(set(_KEYS) - set(data) - {"notes"})
    if unknown or missing:
        problems = [f"unknown key(s) {unknown}"] if unknown else []
        problems += [f"missing key(s) {missing}"] if missing else []
        raise ConfigError(f"device profile {name!r}: {'; '.join(problems)}; keys are {list(_KEYS)}")
    for key, kind in _KEYS.items():
        if key in data and (not isinstance(data[key], kind) or isinstance(data[key], bool)):
            raise ConfigError(f"device profile {name!r}: {key} must be {'an integer' if kind is int else 'a string'}, "
                              f"got {data[key]!r}")
    if data["backend"] not in PROFILE_BACKENDS:
        raise ConfigError(f"device profile {name!r}: backend must be one of {list(PROFILE_BACKENDS)}, "
                          f"got {data['backend']!r}")
    if data["precision"] not in PROFILE_PRECISIONS:
        raise ConfigError(f"device profile {name!r}: precision must be one of {list(PROFILE_PRECISIONS)}, "
                          f"got {data['precision']!r}")
    if data["threads"] < 0 or data["memory_budget_mb"] <= 0:
        raise ConfigError(f"device profile {name!r}: threads must be >= 0 and memory_budget_mb > 0")
    values = {k: data[k] for k in _KEYS if k != "notes"}
    values["backend"] = "onnxruntime" if values["backend"] == "cpu" else values["backend"]
    return DeviceProfile(name=name, notes=data.get("notes", "").strip(), **values)
