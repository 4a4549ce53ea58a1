"""Accuracy and latency of exported models (FP32, INT8) through the inference backends.

A backend that cannot run here (OpenVINO not installed, an unsupported device) is reported with its
error, not fatal: the report says what was measured and what could not be.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from targets.timing import LatencyStats, measure_latency


@dataclass(frozen=True)
class BackendResult:
    """One model through one backend: top-1 over the samples and latency at batch 1, or ``error``
    (the first line of why the backend could not load it) and nothing else."""

    top1: float | None = None
    latency: LatencyStats | None = None
    error: str | None = None


def load_session(path: Path, backend: str, threads: int | None = None):
    """The model at ``path`` loaded by ``targets.<backend>`` (a Backend: ``run(inputs) -> outputs``)."""
    from targets import load_backend

    options = {"threads": threads} if (threads and backend == "cpu") else {}
    return load_backend(backend, path, **options)


def accuracy(backend, samples: Iterable[tuple[dict, int]]) -> float:
    """Top-1 of ``backend`` over ``(inputs, label)`` samples (NaN when there are none)."""
    hits = [int(np.argmax(backend.run(x)["logits"])) == y for x, y in samples]
    return float(np.mean(hits)) if hits else float("nan")


def evaluate_models(models: Mapping[str, Path], samples: list[tuple[dict, int]], backends: Iterable[str],
                    latency_runs: int = 50) -> dict[str, BackendResult]:
    """Each of ``models`` ({precision: ONNX path}) through each backend: ``{"<backend>_<precision>":
    BackendResult}``. Latency is timed on the first sample's inputs."""
    x = samples[0][0]
    results = {}
    for backend_name in backends:
        for precision, path in models.items():
            key = f"{backend_name}_{precision}"
            try:
                backend = load_session(path, backend_name)
            except Exception as err:  # a backend that cannot run here is reported, not fatal
                results[key] = BackendResult(error=str(err).splitlines()[0])
                continue
            with backend:
                top1 = accuracy(backend, samples)
                latency = measure_latency(lambda: backend.run(x), latency_runs, threads=getattr(backend, "threads", None))
            results[key] = BackendResult(top1=top1, latency=latency)
    return results
