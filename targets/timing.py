"""Latency of repeated calls (an inference, a stage): the one way quantize and the benchmarks time a
model, summarised as a :class:`LatencyStats`. Standard library and numpy only.

    with load_backend("cpu", "int8.onnx", threads=1) as backend:
        stats = measure_latency(lambda: backend.run(inputs), runs=50, warmup=5, threads=1)
    stats.median, stats.p90                              # milliseconds
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class LatencyStats:
    """Summary of ``runs`` timed calls, in milliseconds. ``threads``: the thread count they ran with,
    when known."""

    median: float
    mean: float
    p10: float
    p90: float
    min: float
    runs: int
    threads: int | None = None

    @classmethod
    def from_times(cls, times_ms: Sequence[float], threads: int | None = None) -> LatencyStats:
        """Statistics of per-call times in ms. Raises ValueError when ``times_ms`` is empty."""
        t = np.asarray(times_ms, np.float64)
        if t.size == 0:
            raise ValueError("no timed runs to summarise")
        return cls(median=float(np.median(t)), mean=float(t.mean()), p10=float(np.percentile(t, 10)),
                   p90=float(np.percentile(t, 90)), min=float(t.min()), runs=int(t.size), threads=threads)

    def to_dict(self, ndigits: int = 4) -> dict:
        """The fields as JSON-ready numbers, times rounded to ``ndigits`` decimals of a millisecond."""
        return {k: round(v, ndigits) if isinstance(v, float) else v for k, v in asdict(self).items()}


def timed_calls_ms(call: Callable[[], object], runs: int) -> list[float]:
    """Call ``call()`` ``runs`` times in a row; the wall time of each call in milliseconds."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        call()
        times.append((time.perf_counter() - start) * 1e3)
    return times


def measure_latency(call: Callable[[], object], runs: int = 50, warmup: int = 5,
                    threads: int | None = None) -> LatencyStats:
    """``warmup`` untimed calls (lazy initialisation, caches), then ``runs`` timed ones."""
    for _ in range(warmup):
        call()
    return LatencyStats.from_times(timed_calls_ms(call, runs), threads)
