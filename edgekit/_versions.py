"""Producer versions: which software wrote an artefact (package manifest, quantization report,
benchmark JSON). One function, so every artefact records the same fields."""

from __future__ import annotations

import os
import platform
from datetime import datetime, timezone
from importlib import metadata

DISTRIBUTIONS = ("onnx", "onnxruntime", "openvino", "torch", "av", "numpy")


def distribution_version(name: str) -> str | None:
    """The installed version of a distribution, or None when it is not installed (never imports it)."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def created_timestamp() -> str:
    """UTC creation time, ISO 8601 to the second; ``SOURCE_DATE_EPOCH`` pins it (reproducible builds)."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    moment = datetime.fromtimestamp(int(epoch), timezone.utc) if epoch and epoch.isdigit() else datetime.now(timezone.utc)
    return moment.isoformat(timespec="seconds")


def producer_versions(**extra) -> dict:
    """{"edgekit", "python", one key per installed distribution of :data:`DISTRIBUTIONS` (None
    when absent), "created"} plus ``extra``."""
    import edgekit

    versions = {"edgekit": edgekit.__version__, "python": platform.python_version()}
    versions.update({name: distribution_version(name) for name in DISTRIBUTIONS})
    versions["created"] = created_timestamp()
    versions.update(extra)
    return versions
