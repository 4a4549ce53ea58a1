"""Which frames a model sees: ONE selection rule for training and the runtime.

- :func:`select_frames` picks, from the frame types of a clip (training) or of a window (runtime),
  the frames of one model input: TSN segments over the eligible frames for 2D inputs, a centred run
  of consecutive frames or one GOP for 3D inputs. The training cache (``training.cache``) and
  ``edgekit.Recognizer`` both call it.
- :func:`window_due` / :func:`tail_due` decide, causally (when a frame arrives), when a window of a
  stream is complete; :func:`windows` lists the windows of a finished stream by the same rule.

Numpy only.
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


def eligible_frames(kinds: Sequence[str], frames: str) -> np.ndarray:
    """Frame indices an input may sample: I-frames when ``frames == "iframe"``, P/B frames
    otherwise (I-frames carry no motion); falls back to every frame if none qualifies."""
    kinds = np.asarray(list(kinds))
    mask = kinds == "I" if frames == "iframe" else kinds != "I"
    idx = np.flatnonzero(mask)
    return idx if idx.size else np.arange(len(kinds))


def select_frames(kinds: Sequence[str], spec, *, train: bool, rng: np.random.Generator | None = None) -> np.ndarray:
    """Indices into ``kinds`` (frame types "I"/"P"/"B", display order) of the frames that make
    ``spec`` (an ``edgekit.spec.InputSpec``), one per segment or time step (int64, (spec.segments,)).

    - layout BSCHW: TSN over the eligible frames (P/B for motion, I for "iframe"): a random frame
      in each of ``segments`` equal spans when training, each span's centre when testing;
    - layout BCTHW, motion: a run of ``segments`` consecutive P/B frames, centred when testing;
    - layout BCTHW, "gop" (MFCD-Net): the GOP at the centre (testing) or a random GOP (training),
      its I-frame first, then its P/B frames in order.
    A run shorter than ``segments`` repeats its last frame. Raises ValueError for no frames.
    """
    kinds = list(kinds)
    if not kinds:
        raise ValueError("no frames to select from")
    T = spec.segments
    if spec.layout == "BSCHW":
        idx = eligible_frames(kinds, spec.frames)
        return idx[segment_positions(len(idx), T, train=train, rng=rng)]
    if spec.frames == "gop":
        starts = [i for i, k in enumerate(kinds) if k == "I"] or [0]
        g = starts[int(segment_positions(len(starts), 1, train=train, rng=rng)[0])]
        end = next((i for i in range(g + 1, len(kinds)) if kinds[i] == "I"), len(kinds))
        run = np.arange(g, end)
    else:
        eligible = eligible_frames(kinds, spec.frames)
        start = clip_start(len(eligible), T, train=train, rng=rng)
        run = eligible[start:start + T]
    return run[np.minimum(np.arange(T), len(run) - 1)].astype(np.int64)


def clip_start(n: int, length: int, *, train: bool, rng: np.random.Generator | None = None) -> int:
    """Start index of a run of ``length`` consecutive frames in a clip of ``n`` (centred for testing)."""
    if n <= length:
        return 0
    if train:
        return int((rng or np.random.default_rng()).integers(0, n - length + 1))
    return (n - length) // 2


def window_due(n: int, length: int, stride: int) -> bool:
    """True when the ``n``-th frame of a stream (1-based count) completes a window: windows are the
    ``length`` frames ending there, every ``stride`` frames from the first full one."""
    return n >= length and (n - length) % stride == 0


def tail_due(n: int, last_end: int, length: int) -> bool:
    """At the end of a stream of ``n`` frames whose last complete window ended at frame
    ``last_end`` (0 if none): True when the last ``length`` frames form one more window, because
    the stream is shorter than a window or its unseen tail covers at least half a window."""
    return n > 0 and (last_end == 0 or n - last_end >= length // 2)


def windows(n: int, length: int, stride: int) -> list[tuple[int, int]]:
    """[start, end) frame ranges of the windows of a stream of ``n`` frames, by the rule the
    runtime applies frame by frame (:func:`window_due`, then :func:`tail_due`)."""
    if length < 1 or stride < 1:
        raise ValueError(f"need length >= 1 and stride >= 1, got {length}, {stride}")
    out = [(end - length, end) for end in range(1, n + 1) if window_due(end, length, stride)]
    if tail_due(n, out[-1][1] if out else 0, length):
        out.append((max(n - length, 0), n))
    return out
