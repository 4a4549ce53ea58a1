"""Calibrated scores and the "none" threshold: temperature scaling, a threshold chosen against false
events, and the clips both are measured on.

A trained classifier always answers with one of its labels, with scores that are often too sure.
Two numbers fix that, stored in a package's ``manifest.calibration`` (:class:`edgekit.manifest.Calibration`)
and applied by ``edgekit.Recognizer``:

- the **temperature** T: scores are ``softmax(logits / T)``, T fitted on the validation split by
  minimising the negative log-likelihood (NLL) of the clips' true labels (:func:`fit_temperature`:
  a 1-D search; NLL is convex in 1/T, so a golden-section search on 1/T finds the minimum);
- the **threshold**: a window or video whose top calibrated score is under it is reported as
  ``"none"``. :func:`choose_threshold` takes the lowest threshold under which at most
  ``max_false_event_rate`` of the windows of every *negative* set (clips with no motion event:
  the ``static`` class, :func:`write_noise_clip`'s noise-only clips, and any folders of such clips
  the caller gives) are reported as an event
  (any label other than ``static`` and ``none``): the lowest threshold loses the fewest correct
  event windows.

:func:`calibrate_package` does both through the real Recognizer path on a dataset folder and
returns the new :class:`~edgekit.manifest.Calibration` with a report; ``edgekit calibrate`` writes
it into a new package. Runtime dependencies only: numpy, PyAV, ONNX Runtime.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path

import numpy as np

from edgekit.errors import ConfigError, SourceError
from edgekit.fusion import NONE, softmax

NO_EVENT_LABELS = ("static", NONE)  # labels that are not a motion event
ECE_BINS = 15
TEMPERATURE_RANGE = (0.05, 20.0)
THRESHOLD_DECIMALS = 4  # thresholds are rounded up to this many decimals (readable; never lets more through)
NOISE_SIZE_PX, NOISE_FRAMES, NOISE_FPS = (340, 256), 96, 25  # the synthetic benchmark's frame size, 4 windows
NOISE_SEED = 1_000_000  # noise clip i uses seed NOISE_SEED + i (far from the benchmark's clip seeds)


# ------------------------------------------------------------------------------ temperature scaling


def nll(logits: np.ndarray, labels: np.ndarray, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood (nats) of ``labels`` (N,) int under ``softmax(logits / T)``,
    ``logits`` (N, C)."""
    z = np.asarray(logits, np.float64) / temperature
    z = z - z.max(axis=1, keepdims=True)
    log_norm = np.log(np.exp(z).sum(axis=1))
    return float(np.mean(log_norm - z[np.arange(len(z)), labels]))


def ece(scores: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS) -> float:
    """Expected calibration error of ``scores`` (N, C) probabilities against ``labels`` (N,): the
    clip-weighted mean |accuracy - confidence| over ``bins`` equal-width bins of the top score."""
    scores = np.asarray(scores, np.float64)
    confidence, predicted = scores.max(axis=1), scores.argmax(axis=1)
    correct = predicted == np.asarray(labels)
    which = np.minimum((confidence * bins).astype(int), bins - 1)
    total = 0.0
    for b in range(bins):
        in_bin = which == b
        if in_bin.any():
            total += in_bin.sum() * abs(correct[in_bin].mean() - confidence[in_bin].mean())
    return float(total / len(scores))


def fit_temperature(logits: np.ndarray, labels: np.ndarray, *, low: float = TEMPERATURE_RANGE[0],
                    high: float = TEMPERATURE_RANGE[1], tolerance: float = 1e-6) -> float:
    """The temperature in [low, high] minimising :func:`nll` of ``labels`` (N,) under ``logits``
    (N, C). NLL is convex in the inverse temperature, so a golden-section search on 1/T (after a
    coarse log-spaced grid that brackets the minimum) converges to it. Raises ConfigError for
    empty or mismatched inputs."""
    logits, labels = np.asarray(logits, np.float64), np.asarray(labels)
    if logits.ndim != 2 or len(logits) == 0 or labels.shape != (len(logits),):
        raise ConfigError(f"need logits (N, C) and labels (N,) with N >= 1, got {logits.shape} and {labels.shape}")
    if not np.isfinite(logits).all():
        raise ConfigError("the logits hold NaN or infinite values; the model's output is broken")
    grid = np.geomspace(1 / high, 1 / low, 41)  # inverse temperatures
    losses = [nll(logits, labels, 1 / beta) for beta in grid]
    best = int(np.argmin(losses))
    a, b = grid[max(best - 1, 0)], grid[min(best + 1, len(grid) - 1)]
    ratio = (math.sqrt(5) - 1) / 2
    c, d = b - ratio * (b - a), a + ratio * (b - a)
    fc, fd = nll(logits, labels, 1 / c), nll(logits, labels, 1 / d)
    while b - a > tolerance * max(a, 1e-12):
        if fc <= fd:
            b, d, fd = d, c, fc
            c = b - ratio * (b - a)
            fc = nll(logits, labels, 1 / c)
        else:
            a, c, fc = c, d, fd
            d = a + ratio * (b - a)
            fd = nll(logits, labels, 1 / d)
    return float(1 / ((a + b) / 2))


@dataclass(frozen=True)
class TemperatureFit:
    """A fitted temperature and what it did on the ``clips`` it was fitted on: NLL (nats per
    clip) and ECE (a fraction) before (T = 1) and after."""

    temperature: float
    clips: int
    nll_before: float
    nll_after: float
    ece_before: float
    ece_after: float


def fit(logits: np.ndarray, labels: np.ndarray) -> TemperatureFit:
    """:func:`fit_temperature` on ``logits`` (N, C) and ``labels`` (N,), with NLL/ECE before and after."""
    temperature = fit_temperature(logits, labels)
    return TemperatureFit(temperature, len(labels), nll(logits, labels), nll(logits, labels, temperature),
                          ece(softmax(logits), labels), ece(softmax(logits, temperature), labels))


# ----------------------------------------------------------------------------------------- threshold


def is_event(top_scores: np.ndarray, top_labels: Sequence[str], threshold: float) -> np.ndarray:
    """(N,) bool: windows reported as a motion event at ``threshold``: top label not ``static``
    and top score not under the threshold."""
    top_scores = np.asarray(top_scores, np.float64)
    moving = np.array([label not in NO_EVENT_LABELS for label in top_labels], bool)
    return moving & (top_scores >= threshold)


def false_event_rate(scores: np.ndarray, labels: Sequence[str], threshold: float) -> float:
    """The fraction of windows (``scores`` (N, C) calibrated, over class ``labels``) of clips with
    no motion event that are reported as an event at ``threshold``."""
    scores = np.asarray(scores, np.float64)
    if len(scores) == 0:
        return 0.0
    top = [labels[i] for i in scores.argmax(axis=1)]
    return float(is_event(scores.max(axis=1), top, threshold).mean())


def set_thresholds(negatives: Mapping[str, np.ndarray], labels: Sequence[str],
                   max_false_event_rate: float) -> dict[str, tuple[float, int]]:
    """Each negative set's own lowest threshold and how many of its windows may stay events:
    name -> (threshold, allowed), threshold 0 when the set is already within
    ``max_false_event_rate``, unrounded; empty sets are left out. :func:`choose_threshold` takes the
    highest of them. A set of fewer than 1 / ``max_false_event_rate`` windows allows none, so its
    single highest-scoring event window sets its threshold."""
    out = {}
    for name, scores in negatives.items():
        scores = np.asarray(scores, np.float64)
        if len(scores) == 0:
            continue
        top = [labels[i] for i in scores.argmax(axis=1)]
        event_scores = np.sort(scores.max(axis=1)[is_event(scores.max(axis=1), top, 0.0)])[::-1]
        allowed = int(math.floor(max_false_event_rate * len(scores) + 1e-9))
        # silence every event window scoring at most the (allowed+1)-th highest
        out[name] = (float(np.nextafter(event_scores[allowed], np.inf)) if len(event_scores) > allowed else 0.0,
                     allowed)
    return out


def choose_threshold(negatives: Mapping[str, np.ndarray], labels: Sequence[str],
                     max_false_event_rate: float) -> float:
    """The lowest threshold at which at most ``max_false_event_rate`` of the windows of every set in
    ``negatives`` (name -> calibrated scores (N, C) of windows with no motion event) are reported
    as an event; 0 when every set is already under the rate. Rounded up to
    :data:`THRESHOLD_DECIMALS` decimals; at most 1 (a set whose events all score 1.0 stays over the
    rate: the report says so). Raises ConfigError for a rate outside [0, 1] or no negative windows."""
    if not 0 <= max_false_event_rate <= 1:
        raise ConfigError(f"the false-event rate is a fraction in [0, 1], got {max_false_event_rate!r}")
    if not any(len(s) for s in negatives.values()):
        raise ConfigError("no windows without a motion event to choose a threshold on (static or noise-only "
                          "clips); give a fixed threshold instead")
    threshold = max((t for t, _ in set_thresholds(negatives, labels, max_false_event_rate).values()), default=0.0)
    scale = 10 ** THRESHOLD_DECIMALS
    return min(math.ceil(threshold * scale) / scale, 1.0)


def binding_set(negatives: Mapping[str, np.ndarray], labels: Sequence[str],
                max_false_event_rate: float) -> dict | None:
    """The negative set that sets :func:`choose_threshold`'s threshold (the first, on a tie):
    ``set``, ``windows`` and ``events_allowed`` (how many of its windows may stay events: with 0,
    its one highest-scoring event window sets the threshold). None when every set is already within
    the rate (threshold 0)."""
    own = set_thresholds(negatives, labels, max_false_event_rate)
    name = max(own, key=lambda n: own[n][0], default=None)
    if name is None or own[name][0] == 0.0:
        return None
    return {"set": name, "windows": len(negatives[name]), "events_allowed": own[name][1]}


def event_accuracy(scores: np.ndarray, truth: Sequence[str], labels: Sequence[str], threshold: float) -> float:
    """Top-1 over clips of event classes (``scores`` (N, C) calibrated, ``truth`` (N,) class
    names): a clip counts when its reported label, ``"none"`` under the threshold, is its class."""
    scores = np.asarray(scores, np.float64)
    if len(scores) == 0:
        return float("nan")
    reported = [labels[i] if s >= threshold else NONE for i, s in zip(scores.argmax(axis=1), scores.max(axis=1))]
    return float(np.mean([r == t for r, t in zip(reported, truth)]))


def tradeoff(events: tuple[np.ndarray, Sequence[str]], negatives: Mapping[str, np.ndarray], labels: Sequence[str],
             thresholds: Iterable[float]) -> list[dict]:
    """One row per threshold: ``threshold``, ``event_top1`` (:func:`event_accuracy` of the event
    clips ``events`` = (scores (N, C), class names)) and ``false_event_rate`` per negative set."""
    scores, truth = events
    return [{"threshold": round(float(t), THRESHOLD_DECIMALS), "event_top1": event_accuracy(scores, truth, labels, t),
             "false_event_rate": {name: false_event_rate(s, labels, t) for name, s in negatives.items()}}
            for t in sorted(set(thresholds))]


# ---------------------------------------------------------------------------- scores through the Recognizer


@dataclass(frozen=True)
class ClipLogits:
    """One clip through a Recognizer: its path, class name (None for noise-only clips) and its
    windows' raw logits, float64 (W, C)."""

    path: str
    label: str | None
    window_logits: np.ndarray

    @property
    def video_logits(self) -> np.ndarray:
        """(C,): the mean of the windows' logits, the clip-level logits the temperature is fitted on."""
        return self.window_logits.mean(axis=0)


def clip_logits(recognizer, clips: Iterable[tuple[str, str | None]],
                progress: Callable[[int], None] | None = None) -> list[ClipLogits]:
    """Each ``(path, class name or None)`` through ``recognizer`` (``edgekit.Recognizer``): the raw
    logits of every window. Raises the Recognizer's ``SourceError`` for a clip it cannot read."""
    out = []
    for n, (path, label) in enumerate(clips, 1):
        windows = list(recognizer.windows(path))
        out.append(ClipLogits(str(path), label, np.stack([w.logits for w in windows])))
        if progress is not None:
            progress(n)
    return out


def dataset_split(data: str | os.PathLike, split: str) -> list[tuple[str, str]]:
    """``(path, class name)`` of every clip of ``split`` of a dataset folder (UCF-101 layout, as
    ``edgekit synth`` writes it). Raises ConfigError / SourceError for a folder that is not one."""
    from training.datasets import open_dataset  # file listing only: no torch

    clips = [(str(sample.path), sample.label_name) for sample in open_dataset(data, layout="auto", split=split)]
    if not clips:
        raise SourceError(f"{data}: the {split} split holds no clips")
    return clips


VIDEO_SUFFIXES = (".mp4", ".m4v", ".mkv", ".mov", ".avi", ".webm", ".ts", ".264", ".h264")


def negative_clips(folder: str | os.PathLike) -> list[tuple[str, None]]:
    """``(path, None)`` for every video file (:data:`VIDEO_SUFFIXES`) under ``folder``, recursively,
    in path order: clips with no motion event to choose a threshold on. Raises SourceError for a
    folder that does not exist or holds no video."""
    folder = Path(folder)
    if not folder.is_dir():
        raise SourceError(f"{folder}: no such folder of clips without a motion event")
    clips = sorted(p for p in folder.rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES and p.is_file())
    if not clips:
        raise SourceError(f"{folder}: holds no video ({', '.join(VIDEO_SUFFIXES)}) to use as clips without a "
                          "motion event")
    return [(str(p), None) for p in clips]


def negative_set_names(folders: Sequence[str | os.PathLike]) -> list[str]:
    """The negative set's name of each folder: ``negatives:<folder name>``, made unique with ``#2``..."""
    names: list[str] = []
    for folder in folders:
        base = f"negatives:{Path(folder).resolve().name}"
        name, n = base, 1
        while name in names:
            n += 1
            name = f"{base}#{n}"
        names.append(name)
    return names


def first_per_class(clips: Sequence[tuple[str, str]], limit: int) -> list[tuple[str, str]]:
    """The first ``limit`` clips of each class, in their order (a quick run)."""
    seen: dict[str, int] = {}
    kept = []
    for path, label in clips:
        seen[label] = seen.get(label, 0) + 1
        if seen[label] <= limit:
            kept.append((path, label))
    return kept


# --------------------------------------------------------------------------------------- noise-only clips


def noise_frames(seed: int, size: tuple[int, int] = NOISE_SIZE_PX,
                 frames: int = NOISE_FRAMES) -> tuple[np.ndarray, dict]:
    """uint8 (T, H, W, 3) frames in which nothing moves: a still scene (a smooth texture, a gradient,
    or a flat low-texture surface) under sensor noise (Gaussian, 1-8 levels), lighting flicker
    (random or mains-like periodic, up to 8 %) and exposure changes (a ramp of up to +-40 %, and
    in half the clips one sudden auto-exposure step). Returns the frames and the drawn settings."""
    from edgekit.synthetic import smooth_texture

    w, h = size
    rng = np.random.default_rng(seed)
    scene = ("texture", "gradient", "flat")[int(rng.integers(3))]
    if scene == "texture":
        still = smooth_texture(rng, h, w, cell=int(rng.integers(6, 40))).astype(np.float32)
    elif scene == "gradient":
        a, b = rng.uniform(30, 225, 3), rng.uniform(30, 225, 3)
        angle = rng.uniform(0, 2 * np.pi)
        ramp = (np.cos(angle) * np.linspace(0, 1, w)[None, :] + np.sin(angle) * np.linspace(0, 1, h)[:, None])
        ramp = (ramp - ramp.min()) / max(np.ptp(ramp), 1e-6)
        still = (a + (b - a) * ramp[..., None]).astype(np.float32)
    else:  # a low-texture surface: a wall, a floor at night
        still = (rng.uniform(40, 200, 3) + rng.normal(0, 2, (h, w, 1)) * np.ones(3)).astype(np.float32)
    exposure = np.linspace(1.0, rng.uniform(0.6, 1.4), frames)
    if rng.random() < 0.5:  # auto-exposure settling: one sudden step
        exposure[int(rng.integers(frames // 4, 3 * frames // 4)):] *= rng.uniform(0.75, 1.3)
    flicker_amplitude = rng.uniform(0.0, 0.08)
    if rng.random() < 0.5:
        flicker = flicker_amplitude * np.sin(2 * np.pi * rng.uniform(0.05, 0.45) * np.arange(frames)
                                             + rng.uniform(0, 2 * np.pi))
    else:
        flicker = rng.normal(0, flicker_amplitude / 2, frames)
    gain = exposure * (1 + flicker)
    noise_sigma = rng.uniform(1.0, 8.0)
    out = np.empty((frames, h, w, 3), np.uint8)
    for t in range(frames):
        image = still * gain[t] + rng.normal(0, noise_sigma, (h, w, 3)).astype(np.float32)
        np.clip(image + 0.5, 0, 255, out=image)
        out[t] = image.astype(np.uint8)
    settings = {"scene": scene, "noise_sigma": round(float(noise_sigma), 3),
                "flicker_amplitude": round(float(flicker_amplitude), 4),
                "exposure_end": round(float(exposure[-1]), 3)}
    return out, settings


def write_noise_clip(path: str | os.PathLike, seed: int, *, size: tuple[int, int] = NOISE_SIZE_PX,
                     frames: int = NOISE_FRAMES, fps: int = NOISE_FPS) -> dict:
    """Encode :func:`noise_frames` to ``path`` (.mp4) as the synthetic benchmark encodes its clips
    (MPEG-4 Part 2, GOP 12, no B-frames, quantiser 2, four vectors per macroblock). Returns the
    drawn settings. Raises ConfigError for a bad size."""
    import av

    from edgekit._fileio import atomic_output
    from edgekit.bitstream.encode import EncoderSettings, add_video_stream, open_output

    w, h = size
    if w % 2 or h % 2 or w < 16 or h < 16 or frames < 2:
        raise ConfigError(f"noise clips need an even size of at least 16x16 and 2 frames, got {w}x{h}, {frames}")
    images, settings = noise_frames(seed, size, frames)
    encoder = EncoderSettings("mpeg4", gop=12, bframes=0, qscale=2, vectors_per_8x8_block=True, threads=1,
                              bitexact=True)
    with atomic_output(path) as tmp, open_output(tmp, encoder, format="mp4") as container:
        stream = add_video_stream(container, encoder, w, h, Fraction(fps))
        for rgb in images:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
        container.mux(stream.encode(None))
    return settings


def noise_clips(folder: str | os.PathLike, count: int, *, first_seed: int = NOISE_SEED,
                size: tuple[int, int] = NOISE_SIZE_PX, frames: int = NOISE_FRAMES) -> list[tuple[str, None]]:
    """Write ``count`` noise-only clips (seeds ``first_seed`` ...) into ``folder``: ``(path, None)`` each."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    clips = []
    for i in range(count):
        path = folder / f"noise_{first_seed + i:07d}.mp4"
        if not path.is_file():
            write_noise_clip(path, first_seed + i, size=size, frames=frames)
        clips.append((str(path), None))
    return clips


# --------------------------------------------------------------------------------------- calibrate a package


@dataclass(frozen=True)
class CalibrationRun:
    """What :func:`calibrate_package` found: the new ``calibration`` (an
    ``edgekit.manifest.Calibration``), the trade-off table on the fitting split (rows of
    :func:`tradeoff`), the windows of each negative set, and the set that set the threshold
    (:func:`binding_set`; None for a fixed threshold or one of 0)."""

    calibration: object
    tradeoff: list
    negative_windows: dict
    binding: dict | None = None

    def to_dict(self) -> dict:
        return {"calibration": self.calibration.to_dict(), "tradeoff": self.tradeoff,
                "negative_windows": self.negative_windows, "binding": self.binding}


def split_scores(results: Sequence[ClipLogits], temperature: float,
                 extra: Mapping[str, Sequence[ClipLogits]] | None = None) -> tuple[dict, tuple[np.ndarray, list[str]]]:
    """Calibrated window scores of the negative sets (``static`` clips, noise-only clips, and each
    ``extra`` set by its name) and the calibrated clip-level scores and class names of the event
    clips, from ``results``."""
    def windows(items):
        stacked = [softmax(r.window_logits, temperature) for r in items]
        return np.concatenate(stacked) if stacked else np.zeros((0, 0))

    negatives = {"static": windows([r for r in results if r.label == "static"]),
                 "noise": windows([r for r in results if r.label is None]),
                 **{name: windows(items) for name, items in (extra or {}).items()}}
    events = [r for r in results if r.label is not None and r.label not in NO_EVENT_LABELS]
    # a clip's scores as the Recognizer fuses them: the mean of its windows' calibrated scores
    event_scores = (np.stack([softmax(r.window_logits, temperature).mean(axis=0) for r in events]) if events
                    else np.zeros((0, 0)))
    return negatives, (event_scores, [r.label for r in events])


def calibrate_package(package, data: str | os.PathLike, *, split: str = "val", threshold: float | None = None,
                      max_false_event_rate: float = 0.05, noise: int = 40, noise_dir: str | os.PathLike | None = None,
                      limit: int | None = None, device: str | None = None, backend: str | None = None,
                      threads: int | None = None, progress: Callable[[str], None] | None = None,
                      negatives: Sequence[str | os.PathLike] = ()) -> CalibrationRun:
    """Fit a temperature and choose a threshold for ``package`` (a path or loaded
    ``edgekit.package.Package``) on ``split`` of the dataset folder ``data``, through the Recognizer.

    The temperature is fitted on the clip-level logits of every clip of the split. The threshold
    is ``threshold`` when given, else :func:`choose_threshold` at ``max_false_event_rate`` over the
    windows of the split's ``static`` clips and of ``noise`` noise-only clips (written to
    ``noise_dir``, default a temporary folder), and of each folder in ``negatives`` (every video
    under it: :func:`negative_clips`; a negative set of its own, ``negatives:<folder name>``, that the
    rate must hold on too; not used for the temperature). ``limit``: at most this many clips per class (a
    quick run). Returns a :class:`CalibrationRun`; the package is not changed. Raises ConfigError /
    SourceError for bad arguments or data, PackageError for a package that fails verification."""
    from edgekit.manifest import Calibration
    from edgekit.recognizer import Recognizer

    say = progress or (lambda message: None)
    if threshold is not None and not (isinstance(threshold, (int, float)) and 0 <= threshold <= 1):
        raise ConfigError(f"threshold must be a number in [0, 1], got {threshold!r}")
    if not 0 <= max_false_event_rate <= 1:
        raise ConfigError(f"max_false_event_rate must be a fraction in [0, 1], got {max_false_event_rate!r}")
    if isinstance(noise, bool) or not isinstance(noise, int) or noise < 0:
        raise ConfigError(f"noise must be a whole number of clips >= 0, got {noise!r}")
    clips = dataset_split(data, split)
    if limit is not None:
        clips = first_per_class(clips, limit)
    extra = {name: negative_clips(folder) for name, folder in zip(negative_set_names(negatives), negatives)}
    with Recognizer(package, device=device, backend=backend, threads=threads, threshold=0) as recognizer:
        labels = recognizer.labels
        unknown = sorted({label for _, label in clips} - set(labels))
        if unknown:
            raise ConfigError(f"{data}: the {split} split has classes the package does not know: {unknown[:5]}; "
                              "calibrate on the data the model was trained for")
        say(f"scoring {len(clips)} {split} clips")
        results = clip_logits(recognizer, clips)
        if noise:
            with tempfile.TemporaryDirectory(prefix="edgekit-noise-") as scratch:
                folder = Path(noise_dir) if noise_dir is not None else Path(scratch)
                say(f"writing and scoring {noise} noise-only clips")
                results += clip_logits(recognizer, noise_clips(folder, noise))
        extra_results = {}
        for name, negative in extra.items():
            say(f"scoring {len(negative)} clips of {name}")
            extra_results[name] = clip_logits(recognizer, negative)
    labelled = [r for r in results if r.label is not None]
    truth = np.array([labels.index(r.label) for r in labelled])
    fitted = fit(np.stack([r.video_logits for r in labelled]), truth)
    negatives, events = split_scores(results, fitted.temperature, extra_results)
    negatives = {name: s for name, s in negatives.items() if len(s)}
    binding = None
    if threshold is None:
        chosen, rule = choose_threshold(negatives, labels, max_false_event_rate), \
            f"max_false_event_rate={max_false_event_rate:g}"
        binding = binding_set(negatives, labels, max_false_event_rate)
    else:
        chosen, rule = float(threshold), "fixed"
    rates = {name: round(false_event_rate(s, labels, chosen), 6) for name, s in negatives.items()}
    calibration = Calibration(temperature=round(fitted.temperature, 6), threshold=chosen, split=split,
                              clips=fitted.clips, nll_before=round(fitted.nll_before, 6),
                              nll_after=round(fitted.nll_after, 6), ece_before=round(fitted.ece_before, 6),
                              ece_after=round(fitted.ece_after, 6), rule=rule, false_event_rate=rates)
    rows = tradeoff(events, negatives, labels, [0.0, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, chosen])
    return CalibrationRun(calibration, rows, {name: len(s) for name, s in negatives.items()}, binding)


def with_calibration(manifest, calibration):
    """``manifest`` (an ``edgekit.manifest.Manifest``) with ``calibration`` in place of its own."""
    return replace(manifest, calibration=calibration)
