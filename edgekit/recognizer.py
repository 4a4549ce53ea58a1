"""``edgekit.Recognizer``: a packaged model on a device, applied to a video source window by window.

>>> import edgekit
>>> with edgekit.Recognizer.default() as rec:             # the bundled default package, on the CPU
...     pred = rec.recognize("clip.mp4")
...     pred.label, pred.score, [w.label for w in pred.windows], pred.latency_ms
>>> for window in rec.stream("rtsp://camera/stream"):      # predictions while the source is read
...     print(window.start_s, window.label, window.score)

A window is ``window_frames`` consecutive frames (the clip length the model was trained on), taken
every ``stride_frames``; in each window, the model's TSN segments are placed at the centres of equal
spans of the eligible frames (P/B frames for motion streams, I-frames for RGB): the same rule
(edgekit.sampling) and the same tensor preparation (edgekit.preprocess) as in training. ``stream``
holds at most one window of side data. The video-level prediction averages the windows' scores.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

import edgekit.bitstream as bs
from edgekit import preprocess, sampling
from edgekit.errors import ConfigError, EmptySourceError
from edgekit.fusion import Prediction, fuse, softmax
from edgekit.spec import InputSpec

ASSETS = Path(__file__).parent / "assets"
DEFAULT_PACKAGE = ASSETS / "default.edgepkg"


@dataclass(frozen=True)
class VideoPrediction:
    """The prediction for a whole source: the fused ``label``/``score``/``topk``, per-window
    predictions, and latency in milliseconds per stage (decode, preprocess, inference, total)."""

    source: str
    label: str
    score: float
    topk: tuple[tuple[str, float], ...]
    windows: tuple[Prediction, ...]
    latency_ms: dict = field(default_factory=dict)
    frames: int = 0
    duration_s: float = 0.0

    def to_dict(self) -> dict:
        return {"source": self.source, "label": self.label, "score": self.score,
                "topk": [{"label": lab, "score": s} for lab, s in self.topk],
                "windows": [{k: v for k, v in w.to_dict().items() if k != "topk"} for w in self.windows],
                "latency_ms": {k: round(v, 3) for k, v in self.latency_ms.items()},
                "frames": self.frames, "duration_s": round(self.duration_s, 3)}


class Recognizer:
    """A loaded ``.edgepkg`` on a backend. ``device``: "cpu" (ONNX Runtime) or "openvino" (or the
    package's own target when None); extra keyword options go to the backend (e.g. threads=2)."""

    def __init__(self, package, device: str | None = "cpu", *, window_frames: int | None = None,
                 stride_frames: int | None = None, topk: int = 5, **backend_options):
        from edgekit.package import Package, load_package

        self.package = package if isinstance(package, Package) else load_package(package)
        m = self.package.manifest
        self.labels = list(m["labels"])
        self.specs = [InputSpec.from_dict(d) for d in m["inputs"]]
        pre = m.get("preprocessing", {})
        self.window_frames = int(window_frames or pre.get("window_frames", 48))
        self.stride_frames = int(stride_frames or pre.get("stride_frames", max(self.window_frames // 2, 1)))
        if self.window_frames < 2 or self.stride_frames < 1:
            raise ConfigError(f"need window_frames >= 2 and stride_frames >= 1, got {self.window_frames}, {self.stride_frames}")
        self.topk = topk
        self.backend = self.package.backend(device, **backend_options)
        streams = {s.stream for s in self.specs}
        self._reader_options = {
            "residual": bool(streams & {"residual", "mv_residual", "gop_clip"}),
            "rgb": "iframes" if streams & {"iframe", "gop_clip"} else None,
            "accumulate": any(s.representation == "accumulated" for s in self.specs),
        }

    @classmethod
    def default(cls, device: str | None = "cpu", **options) -> "Recognizer":
        """The default model shipped inside the installed package (edgekit/assets/default.edgepkg)."""
        if not DEFAULT_PACKAGE.exists():
            raise ConfigError(f"the default package is missing from this installation ({DEFAULT_PACKAGE})")
        return cls(DEFAULT_PACKAGE, device, **options)

    # -- life cycle --------------------------------------------------------------------------------

    def __enter__(self) -> "Recognizer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.backend.close()

    # -- recognition -------------------------------------------------------------------------------

    def stream(self, source, *, timings: dict | None = None, **open_options) -> Iterator[Prediction]:
        """Yield one Prediction per window while ``source`` is read (any source edgekit.bitstream
        opens). ``timings``, if given, accumulates milliseconds per stage."""
        for prediction, _ in self._windows(source, timings, open_options):
            yield prediction

    def _windows(self, source, timings, open_options, frames_read=None) -> Iterator[tuple[Prediction, np.ndarray]]:
        t = timings if timings is not None else {}
        frames_read = frames_read if frames_read is not None else [0]  # set to the frame count at the end
        for key in ("decode", "preprocess", "inference"):
            t.setdefault(key, 0.0)
        W, S = self.window_frames, self.stride_frames
        buf: deque = deque(maxlen=W)  # the one window of side data held
        iframes: dict[int, np.ndarray] = {}
        n = 0
        last_end = 0
        with bs.open(source, **self._reader_options, **open_options) as reader:
            hw = (reader.info.height, reader.info.width)
            fps = reader.info.fps or 25.0
            it = iter(reader)
            while True:
                t0 = time.perf_counter()
                frame = next(it, None)
                t["decode"] += (time.perf_counter() - t0) * 1000
                if frame is None:
                    break
                buf.append(frame)
                if frame.rgb is not None:
                    iframes[frame.gop_index] = frame.rgb
                n += 1
                if n >= W and (n - W) % S == 0:
                    yield self._window(buf, iframes, hw, fps, t)
                    last_end = n
                    oldest = buf[0].gop_index
                    for g in [g for g in iframes if g < oldest]:  # drop GOPs no longer in the window
                        del iframes[g]
            if n == 0:
                raise EmptySourceError(f"{reader.description}: no frames")
            frames_read[0] = n
            if last_end == 0 or n - last_end >= W // 2:  # short source, or a long enough tail
                yield self._window(buf, iframes, hw, fps, t)

    def _window(self, frames, iframes, hw, fps, t) -> tuple[Prediction, np.ndarray]:
        frames = list(frames)
        kinds = [f.kind for f in frames]
        t0 = time.perf_counter()
        inputs = {}
        for spec in self.specs:
            if spec.layout == "BCTHW":
                idx = _clip_indices(kinds, spec)
            else:
                idx = sampling.sample_frames(kinds, spec.stream, spec.segments, train=False)
            inputs[spec.name] = preprocess.prepare(spec, [frames[i] for i in idx], hw, iframes)
        t1 = time.perf_counter()
        logits = self.backend.run(inputs)["logits"][0]
        t2 = time.perf_counter()
        t["preprocess"] += (t1 - t0) * 1000
        t["inference"] += (t2 - t1) * 1000
        scores = softmax(logits)
        return Prediction.from_scores(scores, self.labels, frames[0].pts, frames[-1].pts + 1 / fps, self.topk), scores

    def recognize(self, source, **open_options) -> VideoPrediction:
        """Recognize a whole source: every window's prediction and their fused result."""
        timings: dict = {}
        t0 = time.perf_counter()
        frames_read = [0]
        results = list(self._windows(source, timings, open_options, frames_read))
        timings["total"] = (time.perf_counter() - t0) * 1000
        windows = tuple(p for p, _ in results)
        fused = Prediction.from_scores(fuse([s for _, s in results]), self.labels, windows[0].start_s,
                                       windows[-1].end_s, self.topk)
        name = str(source) if isinstance(source, (str, Path)) else type(source).__name__
        return VideoPrediction(source=name, label=fused.label, score=fused.score, topk=fused.topk, windows=windows,
                               latency_ms=timings, frames=frames_read[0],
                               duration_s=windows[-1].end_s - windows[0].start_s)


def _clip_indices(kinds, spec: InputSpec) -> list[int]:
    """Frames of a clip input, by the rule the training cache uses: for a GOP clip, the centre GOP
    that starts in the window, its I-frame first; otherwise a centred run of ``spec.segments``
    consecutive eligible (P/B) frames, the last repeated if the window is short."""
    n, T = len(kinds), spec.segments
    if spec.stream == "gop_clip":
        starts = [i for i, k in enumerate(kinds) if k == "I"] or [0]
        g = starts[int(sampling.segment_positions(len(starts), 1, train=False)[0])]
        end = next((i for i in range(g + 1, n) if kinds[i] == "I"), n)
        run = list(range(g, end))
    else:
        eligible = sampling.eligible_frames(kinds, spec.stream).tolist()
        start = sampling.clip_start(len(eligible), T, train=False)
        run = eligible[start:start + T]
    return [run[min(i, len(run) - 1)] for i in range(T)]
