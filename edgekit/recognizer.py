"""``edgekit.Recognizer``: a packaged model on a device, applied to a video source window by window.

>>> import edgekit
>>> with edgekit.Recognizer.default() as rec:             # the bundled default package, on its target
...     pred = rec.recognize("clip.mp4")
...     pred.label, pred.score, [w.label for w in pred.windows], pred.latency_ms.total
>>> for window in rec.stream("rtsp://camera/stream"):      # predictions while the source is read
...     print(window.start_s, window.label, window.score)

A window is ``window_frames`` consecutive frames (the clip length the model was trained on), one
every ``stride_frames`` (``edgekit.sampling.window_due`` / ``tail_due``). In each window the frames
of each model input are chosen by ``edgekit.sampling.select_frames`` and prepared by
``edgekit.preprocess`` through the modality table (``edgekit.modality``): the rule and the
preparation the training cache uses, so training and the runtime cannot disagree. ``stream`` holds
at most one window of side data. The video-level prediction averages the windows' scores.

A calibrated package (``manifest.calibration``, written by ``edgekit calibrate`` or quantization)
scores ``softmax(logits / temperature)`` and reports a window, or a video, whose top score is under
its threshold as ``"none"`` (the best real label stays in ``top_label``); ``threshold=`` overrides
it, 0 disables it. A package without calibration reports its top label always, as before.
"""

from __future__ import annotations

import os
import time
import warnings
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

import edgekit.bitstream as bs
from edgekit import preprocess, sampling
from edgekit.bitstream.reader import check_max_vector, check_min_gain
from edgekit.errors import CompatibilityWarning, ConfigError, EmptySourceError, PackageError
from edgekit.fusion import NONE, Prediction, fuse, softmax
from edgekit.modality import MODALITIES, reader_options

ASSETS = Path(__file__).parent / "assets"
DEFAULT_PACKAGE = ASSETS / "default.edgepkg"
# the bundled defaults by what they read: "mvr" motion vectors + residual (edge-mvr, the default),
# "mv" motion vectors of P-frames alone (edge-mv-ref: decodable with the loop filter and IDCT
# skipped, no B-frame ever decoded, and usable from encoder-side motion vectors)
DEFAULT_PACKAGES = {"mvr": DEFAULT_PACKAGE, "mv": ASSETS / "default-mv.edgepkg"}


@dataclass(frozen=True)
class StageTimes:
    """Milliseconds spent per stage: demux + decode + side data (``decode``), frame selection and
    tensor preparation (``preprocess``), the backend (``inference``), and wall time (``total``)."""

    decode: float = 0.0
    preprocess: float = 0.0
    inference: float = 0.0
    total: float = 0.0

    def to_dict(self) -> dict:
        return {k: round(v, 3) for k, v in vars(self).items()}

    def __str__(self) -> str:
        return ", ".join(f"{k} {v:.1f} ms" for k, v in vars(self).items())


@dataclass(frozen=True)
class Window:
    """One recognized window: its prediction, class scores (float64 (C,), one per label, calibrated
    when the package is), stage times, ``latency_ms``: milliseconds from the arrival of its last
    frame (out of the decoder) to its prediction, ``wallclock``: when its first frame was captured,
    in seconds since the Unix epoch, where the source says (RTSP; see
    ``edgekit.bitstream.CompressedFrame``), else None, and ``logits``: the model's raw output
    (float64 (C,); the log of the probabilities for a package whose graph outputs probabilities).
    ``device_ms``: where the backend times its device (TensorRT: CUDA events), the inference split
    into ``host_to_device``, ``compute`` and ``device_to_host`` milliseconds, else None."""

    prediction: Prediction
    scores: np.ndarray = field(repr=False)
    times: StageTimes
    latency_ms: float = 0.0
    wallclock: float | None = None
    logits: np.ndarray | None = field(default=None, repr=False, compare=False)
    device_ms: dict | None = field(default=None, compare=False)

    @property
    def label(self) -> str:
        """The window's label: ``"none"`` under the threshold."""
        return self.prediction.label

    @property
    def score(self) -> float:
        return self.prediction.score

    @property
    def top_label(self) -> str:
        """The best real label, also when ``label`` is ``"none"``."""
        return self.prediction.top_label


@dataclass(frozen=True)
class VideoPrediction:
    """The prediction for a whole source: the fused ``label``/``score``/``topk`` (``label`` is
    ``"none"`` when ``score`` is under ``threshold``), per-window predictions, milliseconds per
    stage (``latency_ms``: a :class:`StageTimes`), frames read, the time span covered in seconds,
    the reader's counts of frames lost to damage (``damaged_frames``) and skipped for want of an
    I-frame to start from (``skipped_frames``), and the threshold the labels were decided with."""

    source: str
    label: str
    score: float
    topk: tuple[tuple[str, float], ...]
    windows: tuple[Prediction, ...]
    latency_ms: StageTimes = field(default_factory=StageTimes)
    frames: int = 0
    duration_s: float = 0.0
    damaged_frames: int = 0
    skipped_frames: int = 0
    threshold: float = 0.0

    @property
    def top_label(self) -> str:
        """The best real label, also when ``label`` is ``"none"``."""
        return self.topk[0][0]

    def __repr__(self) -> str:
        return (f"VideoPrediction({self.source!r}: {self.label} {self.score:.2f}, {len(self.windows)} windows, "
                f"{self.frames} frames, {self.duration_s:.2f} s, {self.latency_ms.total:.0f} ms)")

    def to_dict(self) -> dict:
        return {"source": self.source, "label": self.label, "score": self.score, "top_label": self.top_label,
                "threshold": self.threshold, "topk": [{"label": lab, "score": s} for lab, s in self.topk],
                "windows": [{k: v for k, v in w.to_dict().items() if k != "topk"} for w in self.windows],
                "latency_ms": self.latency_ms.to_dict(),
                "frames": self.frames, "duration_s": round(self.duration_s, 3),
                "damaged_frames": self.damaged_frames, "skipped_frames": self.skipped_frames}


class Recognizer:
    """A verified ``.edgepkg`` loaded on a backend.

    ``package``: a path or a loaded ``edgekit.package.Package``. ``device`` names the hardware —
    "cpu", "gpu", "npu" or a device profile ("intel-cpu", "x86-cpu", "generic-arm64",
    "jetson-orin-nano", or a profile ``.toml``) — and ``backend`` the runtime — "onnxruntime",
    "openvino" or "tensorrt"; both default to the package's own target. ``threads``: inference
    threads (default: the profile's, else half the cores: decoding takes the rest).
    ``window_frames`` / ``stride_frames`` override the package's windowing; ``topk``: how many
    (label, score) pairs predictions keep. ``threshold``: the top score (calibrated, in [0, 1])
    under which a window or video is labelled ``"none"``; None: the package's calibrated threshold
    (0 for a package without calibration), 0: never ``"none"``.
    ``trusted_keys``: Ed25519 public keys (PEM paths or bytes); when given, the package must be
    signed by one of them (needs ``edgekit[sign]``).

    Raises ``PackageError`` for a package that fails verification (or is not signed by a trusted
    key), ``ConfigError`` for a bad option, ``MissingDependencyError`` when the chosen backend's
    runtime is not installed.
    """

    def __init__(self, package: str | os.PathLike | object, *, device: str | None = None, backend: str | None = None,
                 threads: int | None = None, window_frames: int | None = None, stride_frames: int | None = None,
                 topk: int = 5, trusted_keys=None, threshold: float | None = None):
        from edgekit.package import Package, load_package

        if isinstance(package, str) and package in ("openvino", "cpu", "gpu", "npu") and not Path(package).exists():
            raise ConfigError(f"the first argument is the package; pass device= or backend= by keyword "
                              f"(got {package!r})")
        for name, value in (("threads", threads), ("window_frames", window_frames), ("stride_frames", stride_frames),
                            ("topk", topk)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise ConfigError(f"{name} must be an integer, got {value!r}")
        if isinstance(package, Package):
            if trusted_keys and package.signed_by is None:
                raise PackageError(f"{package.path}: trusted_keys were given but this package was loaded without "
                                   "verifying a signature; pass its path, or load it with trusted_keys")
            self.package = package
        else:
            self.package = load_package(package, trusted_keys=trusted_keys)
        manifest = self.package.manifest
        self.labels = manifest.labels
        self.specs = manifest.inputs
        self.window_frames = window_frames if window_frames is not None else manifest.preprocessing.window_frames
        self.stride_frames = stride_frames if stride_frames is not None else manifest.preprocessing.stride_frames
        if self.window_frames < 2 or self.stride_frames < 1 or topk < 1:
            raise ConfigError(f"need window_frames >= 2, stride_frames >= 1 and topk >= 1, got "
                              f"{self.window_frames}, {self.stride_frames}, {topk}")
        self.topk = topk
        self._output = manifest.score_output
        self._softmax = manifest.fusion.scores == "softmax"
        calibration = manifest.calibration
        self.temperature = calibration.temperature if calibration is not None else 1.0
        if threshold is None:
            threshold = calibration.threshold if calibration is not None else 0.0
        if (isinstance(threshold, bool) or not isinstance(threshold, (int, float))
                or not 0 <= threshold <= 1):  # NaN fails too
            raise ConfigError(f"threshold must be a number in [0, 1] (0: never 'none'), got {threshold!r}")
        if threshold > 0 and NONE in self.labels:
            raise ConfigError(f"this package has a class named {NONE!r}, so a threshold cannot report "
                              "'none'; pass threshold=0")
        self.threshold = float(threshold)
        self.selection = self.package.select(device, backend, threads)
        if threads is None and "threads" not in self.selection.options and self.selection.backend != "tensorrt":
            # a video pipeline: decoding takes the other cores (edgekit.bitstream decodes ahead in a
            # thread with FFmpeg's slice threads), so inference takes half of them (1 on 2 cores:
            # measured 2-6 % faster end to end than 2 there, benchmarks/recognizer.py)
            from targets.cpu import usable_cores

            self.selection.options["threads"] = max(1, usable_cores() // 2)
        self.backend = self.package.backend(selection=self.selection)
        self._reader_options = {**reader_options(s.modality for s in self.specs),
                                "accumulate": any(s.representation == "accumulated" for s in self.specs)}
        # consumed side data only: residuals are computed for the frames some window samples
        # (sampling.CausalPlan), straight at the model's size, and accumulated traces per 8x8 cell
        self._residual_specs = [s for s in self.specs if MODALITIES[s.modality].reads_residual]
        # inputs made of per-frame motion data: the frames they sample are the ones the reader computes
        self._planned_specs = [s for s in self.specs if {"mv", "residual"} & set(MODALITIES[s.modality].parts)]
        sizes = {tuple(s.size) for s in self._residual_specs}
        if self._reader_options["accumulate"]:
            self._reader_options["trace"] = "block"  # as the training cache traces (CacheSpec.trace)
        cache_spec = self.package.manifest.preprocessing.extra.get("cache_spec")
        cache_spec = cache_spec if isinstance(cache_spec, Mapping) else {}
        if (self._reader_options["accumulate"] and cache_spec.get("trace", "block") == "block"
                and cache_spec.get("format_version") == 1):
            warnings.warn(f"{self.package.path}: this model was trained on cache format 1, whose cell traces "
                          "rounded every vector; this runtime adds them exactly (format 2), so it sees inputs "
                          "it was not trained on (README, 'What exact traces bought', measures what that did "
                          "to the previous defaults): retrain it to be sure of its accuracy",
                          CompatibilityWarning, stacklevel=2)
        # the vectors the model was trained on (CacheSpec.max_vector, .min_gain; 0 or absent: every
        # vector, as packages before the options were trained)
        for key, check in (("max_vector", check_max_vector), ("min_gain", check_min_gain)):
            if cache_spec.get(key):
                try:
                    self._reader_options[key] = check(cache_spec[key])
                except ConfigError as err:
                    raise PackageError(f"{self.package.path}: preprocessing.cache_spec.{err}") from None
        if "min_gain" in self._reader_options and not self._reader_options["residual"]:
            # it compares pictures with their references: a package without residuals decodes them in full
            if not self._reader_options["accumulate"]:
                raise PackageError(f"{self.package.path}: preprocessing.cache_spec.min_gain needs residual or "
                                   "accumulated inputs (the reader compares each picture with its reference)")
            self._reader_options["fast"] = False
        if self._reader_options["residual"]:
            if len(sizes) == 1:
                self._reader_options["residual_size"] = sizes.pop()

    @classmethod
    def default(cls, kind: str = "mvr", *, device: str | None = None, backend: str | None = None,
                threads: int | None = None, window_frames: int | None = None, stride_frames: int | None = None,
                topk: int = 5, trusted_keys=None, threshold: float | None = None) -> "Recognizer":
        """A default model shipped inside the installed package: ``kind="mvr"`` (motion vectors +
        residual, edgekit/assets/default.edgepkg) or ``"mv"`` (motion vectors alone,
        default-mv.edgepkg: the cheapest to read, and it runs on encoder-side motion vectors)."""
        if kind not in DEFAULT_PACKAGES:
            raise ConfigError(f"unknown default {kind!r}; choose from {', '.join(map(repr, DEFAULT_PACKAGES))}")
        path = DEFAULT_PACKAGES[kind]
        if not path.exists():
            raise ConfigError(f"the default package is missing from this installation ({path})")
        return cls(path, device=device, backend=backend, threads=threads, window_frames=window_frames,
                   stride_frames=stride_frames, topk=topk, trusted_keys=trusted_keys, threshold=threshold)

    def __repr__(self) -> str:
        return (f"Recognizer({self.package.manifest.model!r}, {self.package.manifest.precision}, "
                f"{self.selection}, window {self.window_frames} frames every {self.stride_frames}, "
                f"{len(self.labels)} labels" + (f", 'none' under {self.threshold:g}" if self.threshold else "")
                + ")")

    # -- life cycle --------------------------------------------------------------------------------

    def __enter__(self) -> "Recognizer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.backend.close()

    # -- recognition -------------------------------------------------------------------------------

    def stream(self, source, *, timeout_s: float = 10.0, transcode: str | None = None,
               reconnect=None) -> Iterator[Prediction]:
        """Yield one Prediction per window while ``source`` is read: a path, URL (rtsp/rtp/udp/tcp/
        http), bytes, a binary file object or an iterable of encoded chunks (see ``edgekit.open``).
        ``timeout_s``: how long a live source may stall; ``transcode``: "mpeg4" or "h264" to read
        codecs without motion vectors (HEVC, VP9, AV1) by re-encoding them; ``reconnect``: True,
        False, an ``edgekit.bitstream.Reconnect`` policy, or None for the source kind's default (on
        for network URLs: a camera or server that restarts is reopened with backoff)."""
        for window in self.windows(source, timeout_s=timeout_s, transcode=transcode, reconnect=reconnect):
            yield window.prediction

    def windows(self, source, *, timeout_s: float = 10.0, transcode: str | None = None,
                reconnect=None) -> "WindowRun":
        """Like :meth:`stream`, but each item is a :class:`Window` (prediction, scores, stage
        times); after the loop, the returned run's ``frames`` holds how many frames were read."""
        return WindowRun(self, source, {"timeout_s": timeout_s, "transcode": transcode, "reconnect": reconnect})

    def recognize(self, source, *, timeout_s: float = 10.0, transcode: str | None = None,
                  reconnect=None) -> VideoPrediction:
        """Recognize a whole source (any source :meth:`stream` takes, ``reconnect`` as there): every
        window's prediction and their fused result. Raises ``SourceError`` subclasses for bad input."""
        t0 = time.perf_counter()
        run = self.windows(source, timeout_s=timeout_s, transcode=transcode, reconnect=reconnect)
        results = list(run)
        total = (time.perf_counter() - t0) * 1000
        times = StageTimes(*(sum(getattr(w.times, k) for w in results) for k in ("decode", "preprocess", "inference")),
                           total=total)
        windows = tuple(w.prediction for w in results)
        fused = Prediction.from_scores(fuse([w.scores for w in results]), self.labels, windows[0].start_s,
                                       windows[-1].end_s, self.topk, self.threshold)
        stats = run.reader.stats
        return VideoPrediction(source=run.description, label=fused.label, score=fused.score, topk=fused.topk, windows=windows,
                               latency_ms=times, frames=run.frames,
                               duration_s=windows[-1].end_s - windows[0].start_s,
                               damaged_frames=stats.damaged_frames, skipped_frames=stats.skipped_frames,
                               threshold=self.threshold)

    def predict_window(self, frames, frame_hw: tuple[int, int], iframes, fps: float, *, tail: bool = False) -> Window:
        """Recognize one window of ``CompressedFrame`` (display order). ``iframes``: GOP index ->
        that GOP's I-frame RGB, for inputs that read I-frames. ``tail``: a window off the window
        grid (the end of a stream), whose chosen frames may lack a residual: the nearest frames
        that have one stand in (``sampling.nearest_available``)."""
        frames = list(frames)
        t0 = time.perf_counter()
        inputs = self.prepare_inputs(frames, frame_hw, iframes, tail=tail)
        t1 = time.perf_counter()
        outputs = np.asarray(self.backend.run(inputs)[self._output][0], np.float64)
        t2 = time.perf_counter()
        split = getattr(self.backend, "last_timings", None)  # TensorRT: this inference's CUDA-event split
        device_ms = None if split is None else {"host_to_device": split.host_to_device_ms,
                                                "compute": split.compute_ms, "device_to_host": split.device_to_host_ms}
        # a probabilities graph: its log is a logit vector (softmax(log p) = p), so one temperature serves both
        logits = outputs if self._softmax else np.log(np.clip(outputs, 1e-30, None))
        if self._softmax or self.temperature != 1.0:
            scores = softmax(logits, self.temperature)
        else:
            scores = outputs
        prediction = Prediction.from_scores(scores, self.labels, frames[0].pts, frames[-1].pts + 1 / fps, self.topk,
                                            self.threshold)
        return Window(prediction, scores, StageTimes(preprocess=(t1 - t0) * 1000, inference=(t2 - t1) * 1000),
                      logits=logits, device_ms=device_ms)

    def prepare_inputs(self, frames, frame_hw: tuple[int, int], iframes, *,
                       tail: bool = False) -> dict[str, np.ndarray]:
        """The arrays the backend is fed for one window: per input, the frames
        ``sampling.select_frames`` picks (test-time rule), prepared by ``preprocess.prepare``."""
        kinds = [f.kind for f in frames]
        inputs = {}
        for spec in self.specs:
            chosen = sampling.select_frames(kinds, spec, train=False)
            if spec in self._planned_specs:
                reads_residual = spec in self._residual_specs
                available = [(f.residual if reads_residual else f.mv) is not None for f in frames]
                if not all(available[i] for i in chosen):  # a tail window, or a plan the stream outran
                    chosen = sampling.nearest_available(kinds, available, spec)
            inputs[spec.name] = preprocess.prepare(spec, [frames[i] for i in chosen], frame_hw, iframes)
        return inputs


class WindowRun:
    """One pass of a Recognizer over a source: iterate for :class:`Window` items; ``frames`` is the
    number of frames read once the iteration has finished."""

    def __init__(self, recognizer: Recognizer, source, open_options: dict):
        self._recognizer, self._source, self._open_options = recognizer, source, open_options
        self.frames = 0
        self.reader = None  # the edgekit.bitstream.Reader, once iteration has started (its stats)
        self.description = str(source) if isinstance(source, (str, Path)) else type(source).__name__

    def __iter__(self) -> Iterator[Window]:
        rec = self._recognizer
        length, stride = rec.window_frames, rec.stride_frames
        held: deque = deque(maxlen=length)  # the one window of side data held
        iframes: dict[int, np.ndarray] = {}
        n = 0  # frames read
        count = last_end = 0  # frames since the picture size last changed; end of the last window
        decode_ms = 0.0
        options = dict(rec._reader_options)
        plan = None
        if rec._planned_specs:
            plan = sampling.CausalPlan(rec._planned_specs, length, stride)
            options["wants"] = plan.arrive
            # non-reference pictures no window reads are not even decoded (local files)
            options["unused"] = plan.surely_unused
        with bs.open(self._source, **options, **self._open_options) as reader:
            self.reader = reader
            if plan is not None:  # a file says how many frames it holds: its tail window is planned too
                plan.expect(reader.info.frame_count)
            self.description = reader.description  # what the reader calls it: the path, URL or "stdin"
            fps = reader.info.fps or 25.0
            frame_hw = None
            frames = iter(reader)
            while True:
                t0 = time.perf_counter()
                frame = next(frames, None)
                decode_ms += (time.perf_counter() - t0) * 1000
                if frame is None:
                    break
                if (frame.height, frame.width) != frame_hw:  # a new picture size starts new windows
                    if count and sampling.tail_due(count, last_end, length):
                        yield self._timed(rec.predict_window(held, frame_hw, iframes, fps, tail=True), decode_ms,
                                          held)
                        decode_ms = 0.0
                    frame_hw, count, last_end = (frame.height, frame.width), 0, 0
                    held.clear()
                    iframes.clear()
                held.append(frame)
                if frame.rgb is not None:
                    iframes[frame.gop_index] = frame.rgb
                n += 1
                count += 1
                self.frames = n
                if sampling.window_due(count, length, stride):
                    yield self._timed(rec.predict_window(held, frame_hw, iframes, fps), decode_ms, held)
                    decode_ms, last_end = 0.0, count
                    oldest = held[0].gop_index
                    for g in [g for g in iframes if g < oldest]:  # drop GOPs no longer in the window
                        del iframes[g]
            if n == 0:
                raise EmptySourceError(f"{reader.description}: no frames")
            if sampling.tail_due(count, last_end, length):
                yield self._timed(rec.predict_window(held, frame_hw, iframes, fps, tail=True), decode_ms, held)

    @staticmethod
    def _timed(window: Window, decode_ms: float, held) -> Window:
        t, last = window.times, held[-1]
        latency = (time.monotonic() - last.arrival) * 1000 if last.arrival else 0.0
        return Window(window.prediction, window.scores, StageTimes(decode_ms, t.preprocess, t.inference,
                                                                   decode_ms + t.preprocess + t.inference), latency,
                      held[0].wallclock, window.logits)
