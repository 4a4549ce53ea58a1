"""Which frames a model sees: ONE selection rule for training and the runtime.

- :func:`select_frames` picks, from the frame types of a clip (training) or of a window (runtime),
  the frames of one model input: per TSN segment the first eligible frame at or after the
  segment's target for 2D inputs, a run of P/B frames or one GOP for 3D inputs. The rule is causal
  (decided as frames arrive). The training cache (``training.cache``) and ``edgekit.Recognizer``
  both call it.
- :class:`CausalPlan` applies that rule to a live stream: which frames some window will use.
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


def eligible(kind: str, frames: str) -> bool:
    """Whether a frame of type ``kind`` may be sampled by an input of ``frames``: an I-frame for
    "iframe" inputs, a P-frame for "reference" inputs (B-frames are never reference pictures, so a
    reader need not decode them), a P/B frame otherwise (I-frames carry no motion)."""
    if frames == "iframe":
        return kind == "I"
    if frames == "reference":
        return kind == "P"
    return kind != "I"


class _Rule:
    """Which frames of a window of ``n`` frames make one input of ``spec``, decided frame by frame
    as they arrive (:meth:`offer`), so that a live reader knows on arrival whether a frame will be
    used. Segment targets and run starts depend only on ``n`` (and the random draw when training),
    never on frames not yet seen."""

    def __init__(self, spec, n: int, *, train: bool, rng: np.random.Generator | None = None):
        self.n, self.T, self.frames = n, spec.segments, spec.frames
        self.tsn = spec.layout == "BSCHW"
        self.gop = not self.tsn and spec.frames == "gop"
        self.picked: list[int] = []
        if self.tsn:
            edges = np.floor(np.linspace(0, n, self.T + 1)).astype(np.int64)
            self.ends = edges[1:]
            self.targets = np.maximum(segment_positions(n, self.T, train=train, rng=rng), edges[:-1])
            self.found = [None] * self.T
        elif not self.gop:
            self.start = clip_start(n, self.T, train=train, rng=rng)

    def offer(self, p: int, kind: str) -> bool:
        """Whether frame ``p`` (0-based in the window, offered in order) is one this input uses."""
        if self.gop:
            return True  # the GOP at the centre is known only once the window is complete
        ok = eligible(kind, self.frames)
        if self.tsn:
            hit = False
            for k in range(self.T):
                if self.found[k] is None and self.targets[k] <= p < self.ends[k] and (ok or p == self.ends[k] - 1):
                    self.found[k] = p
                    hit = True
            return hit
        if p >= self.start and len(self.picked) < self.T and (ok or (p == self.n - 1 and not self.picked)):
            self.picked.append(p)
            return True
        return False

    def result(self) -> np.ndarray:
        if self.tsn:
            found = list(self.found)
            for k in range(self.T):  # an empty span (fewer frames than segments): its neighbour's frame
                if found[k] is None:
                    found[k] = next((found[j] for j in range(k - 1, -1, -1) if found[j] is not None),
                                    next((f for f in found[k + 1:] if f is not None), self.n - 1))
            return np.asarray(found, np.int64)
        run = self.picked or [self.n - 1]
        return np.asarray(run, np.int64)[np.minimum(np.arange(self.T), len(run) - 1)]


def select_frames(kinds: Sequence[str], spec, *, train: bool, rng: np.random.Generator | None = None) -> np.ndarray:
    """Indices into ``kinds`` (frame types "I"/"P"/"B", display order) of the frames that make
    ``spec`` (an ``edgekit.spec.InputSpec``), one per segment or time step (int64, (spec.segments,)).

    The rule is causal: whether a frame is used is decided when it arrives, from the window length
    and the frames seen so far (:class:`CausalPlan` applies it to a live stream).

    - layout BSCHW (TSN): the window is cut into ``segments`` equal spans; each span has a target,
      its centre when testing or a uniformly random frame of it when training. A span uses the
      first frame at or after its target that is eligible (P/B for motion inputs, P for "reference"
      inputs, I for "iframe"),
      or its last frame if none is;
    - layout BCTHW, motion: the first ``segments`` P/B frames from a start frame (centred run when
      testing, random when training); a run cut short repeats its last frame;
    - layout BCTHW, "gop" (MFCD-Net): the GOP at the centre (testing) or a random GOP (training),
      its I-frame first, then its P/B frames in order. This one is decided once the window is
      complete (a live reader computes every frame's residual for it).
    Raises ValueError for no frames.
    """
    kinds = list(kinds)
    if not kinds:
        raise ValueError("no frames to select from")
    T = spec.segments
    if spec.layout != "BSCHW" and spec.frames == "gop":
        starts = [i for i, k in enumerate(kinds) if k == "I"] or [0]
        g = starts[int(segment_positions(len(starts), 1, train=train, rng=rng)[0])]
        end = next((i for i in range(g + 1, len(kinds)) if kinds[i] == "I"), len(kinds))
        run = np.arange(g, end)
        return run[np.minimum(np.arange(T), len(run) - 1)].astype(np.int64)
    rule = _Rule(spec, len(kinds), train=train, rng=rng)
    for p, kind in enumerate(kinds):
        rule.offer(p, kind)
    return rule.result()


class CausalPlan:
    """Which frames of a stream some window will use, decided as each frame arrives.

    Windows are ``length`` frames, one every ``stride`` (:func:`window_due`), counted from the
    start or the last picture-size change. :meth:`arrive` is told each frame's type and picture
    size in display order and answers whether any window's input among ``specs`` uses it (by the
    :func:`select_frames` rule, test time).

    The tail window (the last ``length`` frames, :func:`tail_due`) ends where the stream ends: when
    the number of frames is known beforehand (:meth:`expect`, a file's frame count), its frames are
    planned like any other window's; otherwise the Recognizer fills it with the nearest frames that
    were computed (:func:`nearest_available`), and the first eligible frame of each picture size is
    always used, so that even a stream shorter than one window has data.
    """

    def __init__(self, specs, length: int, stride: int):
        self.specs, self.length, self.stride = list(specs), length, stride
        self.size = None
        self.tail: tuple[int, int] | None = None  # (start, frames) of the planned tail window
        self._templates: dict[int, list[_Rule]] = {}  # window length -> its rules, untouched (targets only)
        self._reset()

    def _reset(self) -> None:
        self.count = 0
        self.first_done = False
        self.active: list[tuple[int, int, list[_Rule]]] = []  # (start, frames, rules) of open windows

    def _template(self, n: int) -> list[_Rule]:
        if n not in self._templates:
            self._templates[n] = [_Rule(spec, n, train=False) for spec in self.specs]
        return self._templates[n]

    def expect(self, total: int | None) -> None:
        """The stream will have ``total`` frames (of its first picture size): plan its tail window
        too. Call before the first :meth:`arrive`; None (unknown) plans no tail."""
        if self.count:
            raise ValueError("expect() must be called before the first frame arrives")
        self.tail = None
        if total and total > 0:
            ends = range(self.length, total + 1, self.stride)
            if tail_due(total, ends[-1] if len(ends) else 0, self.length):
                self.tail = (max(total - self.length, 0), min(self.length, total))

    def surely_unused(self, p: int, kinds=None, margin: int = 1) -> bool:
        """Whether no window will use the frame at display position ``p`` (0-based, in the first
        picture size) unless more than ``margin`` I-frames in a row stand where a window looks: a
        reader may then leave it undecoded when nothing is predicted from it. Used are: a frame
        within ``margin`` after any span's target (the target, or the P/B frame after an I-frame
        there), twice the run of a 3D input plus ``margin``, every frame of "gop" inputs and the first
        ``margin + 1`` frames. A stream that puts more I-frames in a row there (a scene cut on a
        keyframe) only costs that window the exact frame: the Recognizer takes the nearest one
        read (``nearest_available``).

        ``kinds`` (optional): position -> frame type ("I", "P", "B") of the pictures the reader has
        already seen (a mapping; missing or None: not known). A frame after a span's target is then
        called used only if every frame from the target up to it is known to be one the input
        cannot take (an I-frame for motion inputs), as the selection rule picks the first eligible
        frame at or after the target: with frame types known, only the frames a window reads are
        decoded. A reader asks about pictures nothing is predicted from (B-frames) only: for
        "reference" inputs the answer for a P-frame after an I-frame may be True although a window
        reads it; no reader skips a P-frame."""
        if not self.specs:
            return p > margin
        if p <= margin:
            return False
        lowest = max(0, p - self.length + 1)  # windows holding p start at multiples of stride from here
        windows = [(start, self.length) for start in range(-(-lowest // self.stride) * self.stride, p + 1, self.stride)]
        if self.tail is not None and self.tail[0] <= p < self.tail[0] + self.tail[1]:
            windows.append(self.tail)
        for start, n in windows:
            q = p - start
            for rule in self._template(n):
                if rule.gop:
                    return False
                if rule.tsn:
                    for t, end in zip(rule.targets, rule.ends):
                        if t <= q <= t + margin and not _passed_over(kinds, start + t, p, rule.frames) \
                                and not _passed_by(kinds, p, rule.frames, q == end - 1):
                            return False
                elif rule.start <= q <= rule.start + 2 * rule.T + margin:  # I-frames may sit between
                    return False
        return True

    def arrive(self, kind: str, size=None) -> bool:
        if size != self.size:
            if self.size is not None:
                self.tail = None  # a size change: the frame count no longer says where this run ends
            self.size = size
            self._reset()
        n = self.count
        self.count += 1
        if n % self.stride == 0:  # windows start at 0, stride, 2 * stride, ... (window_due)
            self.active.append((n, self.length, [_Rule(spec, self.length, train=False) for spec in self.specs]))
        if self.tail is not None and n == self.tail[0]:
            self.active.append((n, self.tail[1], [_Rule(spec, self.tail[1], train=False) for spec in self.specs]))
        used = False
        for start, _, rules in self.active:
            for rule in rules:
                used |= rule.offer(n - start, kind)
        self.active = [(s, frames, r) for s, frames, r in self.active if n - s < frames - 1]
        if not self.first_done and any(eligible(kind, spec.frames) for spec in self.specs):
            self.first_done = True
            used = True
        return used


def _passed_over(kinds, first: int, p: int, frames: str) -> bool:
    """Whether the selection rule surely stops before position ``p`` when it looks from ``first``:
    some frame in [first, p) is known (``kinds``) to be eligible for an input of ``frames``."""
    if kinds is None:
        return False
    for q in range(first, p):
        kind = kinds.get(q)
        if kind is not None and eligible(kind, frames):
            return True
    return False


def _passed_by(kinds, p: int, frames: str, span_end: bool) -> bool:
    """Whether the selection rule surely does not take the frame at ``p`` itself: its type is known
    (``kinds``) and not eligible for ``frames``, and it is not its span's last frame (the fallback
    when a span has no eligible frame)."""
    kind = None if kinds is None else kinds.get(p)
    return kind is not None and not eligible(kind, frames) and not span_end


def nearest_available(kinds: Sequence[str], available: Sequence[bool], spec) -> np.ndarray:
    """:func:`select_frames` (test time) for a window whose frames do not all carry data (a tail
    window, not on the window grid): each chosen frame without data is replaced by the nearest
    frame with data (eligible ones first); kept if there is none."""
    chosen = select_frames(kinds, spec, train=False)
    have = [i for i, a in enumerate(available) if a]
    if not have:
        return chosen
    preferred = [i for i in have if eligible(kinds[i], spec.frames)] or have
    return np.asarray([c if available[c] else min(preferred, key=lambda i: (abs(i - c), i)) for c in chosen],
                      np.int64)


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
    ``last_end`` (0 if none): True when frames after that window exist, so that the last
    ``length`` frames (all of them in a stream shorter than a window) form one more window and
    the windows cover the whole stream. ``length`` is accepted for symmetry with window_due."""
    return n > last_end


def windows(n: int, length: int, stride: int) -> list[tuple[int, int]]:
    """[start, end) frame ranges of the windows of a stream of ``n`` frames, by the rule the
    runtime applies frame by frame (:func:`window_due`, then :func:`tail_due`)."""
    if length < 1 or stride < 1:
        raise ValueError(f"need length >= 1 and stride >= 1, got {length}, {stride}")
    out = [(end - length, end) for end in range(1, n + 1) if window_due(end, length, stride)]
    if tail_due(n, out[-1][1] if out else 0, length):
        out.append((max(n - length, 0), n))
    return out
