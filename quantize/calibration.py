"""Calibration data for static INT8: real side-data clips from the training split of the cache.

ONNX Runtime's ``CalibrationDataReader`` is one method, ``get_next() -> dict | None``; this reader
yields batch-1 inputs prepared exactly as in training and on the device (test-mode sampling).
"""

from __future__ import annotations

import numpy as np
from onnxruntime.quantization import CalibrationDataReader

from edgekit.spec import InputSpec


def cache_inputs(cache, specs: list[InputSpec], split: str, limit: int | None = None, seed: int = 0):
    """Yield ({input name: (1, ...) float32}, label) for up to ``limit`` clips of ``split``, spread over
    every class (clips taken in a seeded random order)."""
    from training.cache import CachedClips

    ds = CachedClips.for_specs(cache, split, specs, train=False)
    order = np.random.default_rng(seed).permutation(len(ds))
    for i in order[:limit] if limit else order:
        arrays = ds.arrays(int(i))
        yield {name: np.ascontiguousarray(x[None]) for name, x in arrays.items()}, int(ds.clips[i]["label"])


class CacheCalibrationReader(CalibrationDataReader):
    """``limit`` training clips of the cache, one batch-1 input dict per ``get_next``."""

    def __init__(self, cache, specs: list[InputSpec], limit: int = 128, seed: int = 0):
        self._it = cache_inputs(cache, specs, "train", limit, seed)

    def get_next(self):
        item = next(self._it, None)
        return None if item is None else item[0]
