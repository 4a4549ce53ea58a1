"""Which frames a model sees: TSN segment sampling over a clip, and sliding windows over a stream.

Numpy only; training and the runtime import these same functions, so the frames a model was trained
on and the frames it is shown on a device are chosen by the same rule.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def segment_positions(n: int, segments: int, *, train: bool, rng: np.random.Generator | None = None) -> np.ndarray:
    """Indices into a sequence of length ``n``, one per TSN segment (int64, shape (segments,)).

    The sequence is split into ``segments`` equal spans; training draws a uniformly random position in
    each span, testing takes each span's centre (TSN's protocol). With fewer items than segments,
    positions repeat (each segment still gets one). Raises ValueError for n < 1 or segments < 1.
    """
    if n < 1 or segments < 1:
        raise ValueError(f"need n >= 1 and segments >= 1, got n={n}, segments={segments}")
    edges = np.linspace(0, n, segments + 1)
    if train:
        rng = rng or np.random.default_rng()
        pos = edges[:-1] + rng.random(segments) * (edges[1:] - edges[:-1])
    else:
        pos = (edges[:-1] + edges[1:]) / 2
    return np.clip(np.floor(pos).astype(np.int64), 0, n - 1)


def eligible_frames(kinds: Sequence[str], stream: str) -> np.ndarray:
    """Frame indices a stream may sample: I-frames for "iframe", P/B frames for motion streams
    (I-frames carry no motion); falls back to every frame if none qualifies."""
    kinds = np.asarray(list(kinds))
    mask = kinds == "I" if stream == "iframe" else kinds != "I"
    idx = np.flatnonzero(mask)
    return idx if idx.size else np.arange(len(kinds))


def sample_frames(kinds: Sequence[str], stream: str, segments: int, *, train: bool,
                  rng: np.random.Generator | None = None) -> np.ndarray:
    """Frame indices (display order) of one TSN sample of ``stream`` from a clip with these frame kinds."""
    idx = eligible_frames(kinds, stream)
    return idx[segment_positions(len(idx), segments, train=train, rng=rng)]


def clip_start(n: int, length: int, *, train: bool, rng: np.random.Generator | None = None) -> int:
    """Start index of a run of ``length`` consecutive frames in a clip of ``n`` (centred for testing)."""
    if n <= length:
        return 0
    if train:
        return int((rng or np.random.default_rng()).integers(0, n - length + 1))
    return (n - length) // 2


def windows(n: int, length: int, stride: int) -> list[tuple[int, int]]:
    """[start, end) frame ranges of sliding windows over ``n`` frames. The last window is kept if it
    covers at least half a window, so a short clip still yields one window."""
    if length < 1 or stride < 1:
        raise ValueError(f"need length >= 1 and stride >= 1, got {length}, {stride}")
    out = [(s, s + length) for s in range(0, max(n - length, 0) + 1, stride)]
    if not out or (out[-1][1] < n and n - out[-1][1] >= length // 2):
        start = max(n - length, 0)
        if not out or start > out[-1][0]:
            out.append((start, n))
    return [(s, min(e, n)) for s, e in out]
