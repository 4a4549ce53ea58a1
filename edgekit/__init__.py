"""edgekit: video recognition on edge devices, in the compressed domain.

    import edgekit

    with edgekit.Recognizer.default() as rec:           # the bundled default model
        pred = rec.recognize("clip.mp4")                 # -> edgekit.VideoPrediction
    with edgekit.open("clip.mp4") as reader:             # the bitstream reader: MVs, residuals, I-frames
        for frame in reader: ...

The public names (``Recognizer``, ``Prediction``, ``VideoPrediction``, ``open``, ``errors``) load
on first use, so ``import edgekit`` stays cheap: PyAV loads with the reader, ONNX Runtime when a
Recognizer is made. The runtime imports numpy, PyAV and ONNX Runtime only (never torch).
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

# public name -> (module, attribute); None: the module itself
_PUBLIC = {
    "Recognizer": ("edgekit.recognizer", "Recognizer"),
    "VideoPrediction": ("edgekit.recognizer", "VideoPrediction"),
    "StageTimes": ("edgekit.recognizer", "StageTimes"),
    "Prediction": ("edgekit.fusion", "Prediction"),
    "open": ("edgekit.bitstream", "open"),
    "errors": ("edgekit.errors", None),
}

__all__ = ["Recognizer", "Prediction", "VideoPrediction", "StageTimes", "open", "errors", "__version__"]


def __getattr__(name: str):
    if name not in _PUBLIC:
        raise AttributeError(f"module 'edgekit' has no attribute {name!r}")
    module_name, attribute = _PUBLIC[name]
    module = importlib.import_module(module_name)
    value = module if attribute is None else getattr(module, attribute)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
