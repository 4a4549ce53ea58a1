"""``edgekit profile``: a package measured on this device, stage by stage, on the path users run.

>>> from edgekit.profile import profile
>>> report = profile(synthetic="640x480@25", runs=3)          # the bundled default package
>>> report["stages_ms"]["inference"]["p99"], report["throughput"]["frames_per_s"]

Everything is measured through ``edgekit.Recognizer(...).windows(source)``, the call users make:

- cold start: package load and verification (``edgekit.package.load_package``), backend load (the
  Recognizer's construction), first inference (the first window's inference) and first window (from
  opening the source to the first window's prediction), in the first pass over the source, which is
  never counted in the statistics;
- per window and stage, in milliseconds: ``decode`` (demux + decode, side-data kernels excluded),
  ``kernels`` (the reader's side-data kernels: ``ReaderStats.kernel_ms`` between two windows),
  ``preprocess`` (frame selection + tensor preparation), ``inference``, ``window`` (their sum: the
  Recognizer's ``Window.times.total``) and ``latency`` (``Window.latency_ms``: from the arrival of
  the window's last frame to its prediction). Each stage: count, mean and std of the values within
  median +- 5 x 1.4826 x MAD (a robust sigma; no clipping when the MAD is 0), and min, p50, p90,
  p95, p99, max of all values (linear interpolation); where the backend times its device
  (TensorRT, ``Window.device_ms``), ``inference_split_ms`` splits inference the same way into
  ``host_to_device``, ``compute`` and ``device_to_host`` (CUDA events);
- throughput: windows/s, source frames/s and the real-time factor (seconds of video processed per
  second of wall time: frames / source fps / wall), for ``streams`` real concurrent streams (threads,
  each with its own Recognizer and reader on the same source); ``streams="auto"`` runs 1, 2, 4, ...
  streams until one falls below the source's frame rate and reports the largest count that kept up;
- resources: peak RSS (VmHWM, reset after a synthetic clip is encoded where Linux allows), model
  memory (RSS after the Recognizer loads minus before the package loads), CPU time per usable core
  over the measured passes, Python and OS threads;
- the environment: CPU model and ISA features, cores, runtime versions, the package's SHA-256 and
  manifest, and where the model runs (``Recognizer.selection``).

- profiling overhead (``profiling_overhead``): the milliseconds the per-window bookkeeping itself took
  over the measured passes and their share of the wall time (benchmarks/profile_overhead.py measures
  the overhead end to end);
- with ``compare="rgb-flow"`` (the ``train`` extra): the same source through the RGB + optical-flow
  pipeline a user would otherwise build, and the speed-ups (:mod:`edgekit.compare`).

The result is one JSON-ready dict; :func:`format_text` renders it for people. Runtime dependencies
only (numpy, PyAV, ONNX Runtime; never torch: ``compare`` imports it inside its functions).
"""

from __future__ import annotations

import hashlib
import math
import numbers
import os
import platform
import re
import resource
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgekit.errors import ConfigError
from targets.cpu import usable_cores

FORMAT_VERSION = 1
STAGES = ("decode", "kernels", "preprocess", "inference", "window", "latency")
DEVICE_SPLIT = ("host_to_device", "compute", "device_to_host")  # parts of "inference" a GPU backend times
DEFAULT_RUNS = 5
SYNTHETIC_SECONDS = 4.0
MAX_AUTO_STREAMS = 64
MAD_CLIP = 5.0  # mean and std drop values beyond median +- MAD_CLIP robust sigmas
MAD_TO_SIGMA = 1.4826  # MAD of a normal distribution x this = its standard deviation
LIVE_SCHEMES = ("rtsp", "rtsps", "rtp", "udp", "tcp", "srt")
ISA_FLAGS = {  # /proc/cpuinfo names of the features that decide inference speed
    "x86": ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_tile", "amx_int8", "amx_bf16"),
    "arm": ("asimd", "asimddp", "sve", "i8mm"),
}
_SYNTHETIC = re.compile(r"^(\d+)x(\d+)@(\d+)$")


@dataclass(frozen=True)
class SyntheticClip:
    """A clip ``profile`` encodes itself: ``width`` x ``height`` pixels at ``fps``, ``seconds`` long."""

    width: int
    height: int
    fps: int
    seconds: float = SYNTHETIC_SECONDS

    @classmethod
    def parse(cls, text: str, seconds: float = SYNTHETIC_SECONDS) -> "SyntheticClip":
        """``"640x480@25"`` -> SyntheticClip(640, 480, 25). ConfigError for anything else."""
        match = _SYNTHETIC.match(str(text).strip().lower())
        if match is None:
            raise ConfigError(f"a synthetic clip is WxH@FPS, e.g. 640x480@25, got {text!r}")
        width, height, fps = (int(v) for v in match.groups())
        return cls(width, height, fps, seconds)

    def __post_init__(self):
        if self.width % 2 or self.height % 2 or self.width < 16 or self.height < 16 or self.width * self.height > 8192 * 4352:
            raise ConfigError(f"a synthetic clip needs an even size from 16x16 to 8192x4352, got "
                              f"{self.width}x{self.height}")
        if not 1 <= self.fps <= 240:
            raise ConfigError(f"a synthetic clip's frame rate must be 1 to 240 fps, got {self.fps}")
        if not (isinstance(self.seconds, numbers.Real) and math.isfinite(self.seconds) and 0 < self.seconds <= 60):
            raise ConfigError(f"a synthetic clip lasts more than 0 and at most 60 s, got {self.seconds!r}")

    @property
    def frames(self) -> int:
        return max(2, round(self.fps * self.seconds))

    def __str__(self) -> str:
        return f"{self.width}x{self.height}@{self.fps}"

    def write(self, path: str | os.PathLike) -> dict:
        """Encode the clip to ``path``: H.264, GOP 12 with 2 B-frames, a textured square moving 4 px
        per frame over a background panning 2 px right and 1 px down per frame."""
        from edgekit.synthetic import make_clip

        make_clip(path, "right", speed_px=4, codec="h264", size=(self.width, self.height), frames=self.frames,
                  fps=self.fps, gop=12, bframes=2, square=max(16, min(self.width, self.height) // 4), pan=(2, 1))
        return {"synthetic": str(self), "codec": "h264", "gop": 12, "bframes": 2, "seconds": self.seconds}


# -- statistics -------------------------------------------------------------------------------------


def summarize(values) -> dict:
    """Statistics of ``values`` (milliseconds): count; mean and std of the values within median +-
    5 x 1.4826 x MAD (``clipped``: how many were left out; none when the MAD is 0); min, p50, p90,
    p95, p99 and max of all values. Empty input: count 0 and None elsewhere."""
    data = np.asarray(list(values), np.float64)
    keys = ("mean", "std", "min", "p50", "p90", "p95", "p99", "max")
    if data.size == 0:
        return {"count": 0, "clipped": 0, **dict.fromkeys(keys)}
    median = float(np.median(data))
    mad = float(np.median(np.abs(data - median)))
    kept = data if mad == 0 else data[np.abs(data - median) <= MAD_CLIP * MAD_TO_SIGMA * mad]
    p50, p90, p95, p99 = np.percentile(data, [50, 90, 95, 99])
    stats = {"mean": kept.mean(), "std": kept.std(ddof=1) if kept.size > 1 else 0.0, "min": data.min(),
             "p50": p50, "p90": p90, "p95": p95, "p99": p99, "max": data.max()}
    return {"count": int(data.size), "clipped": int(data.size - kept.size),
            **{k: round(float(v), 3) for k, v in stats.items()}}


# -- one pass over the source ------------------------------------------------------------------------


@dataclass
class PassResult:
    """One pass of a Recognizer over the source: per-window stage milliseconds (keys of
    :data:`STAGES`), frames read, wall seconds, and whether it ran to the end of the source."""

    windows: list[dict] = field(default_factory=list)
    frames: int = 0
    wall_s: float = 0.0
    complete: bool = True
    first_window_ms: float | None = None
    first_inference_ms: float | None = None
    info: object = None  # the reader's edgekit.bitstream.StreamInfo
    instrumentation_ms: float = 0.0  # spent in the profile's own per-window bookkeeping


def run_pass(recognizer, source, *, deadline: float | None = None, samples: list | None = None) -> PassResult:
    """Read ``source`` once through ``recognizer.windows`` and time every window. ``deadline``
    (``time.perf_counter()`` value): stop after the first window past it (``complete`` False).
    ``samples``: a list the thread counts are appended to at the first window."""
    result = PassResult()
    start = time.perf_counter()
    run = recognizer.windows(source)
    windows = iter(run)
    kernel_before = 0.0
    try:
        for window in windows:
            now = time.perf_counter()
            kernel_total = run.reader.stats.kernel_ms
            kernels = kernel_total - kernel_before
            kernel_before = kernel_total
            times = window.times
            result.windows.append({"decode": max(times.decode - kernels, 0.0), "kernels": kernels,
                                   "preprocess": times.preprocess, "inference": times.inference,
                                   "window": times.total, "latency": window.latency_ms,
                                   **(window.device_ms or {})})
            if result.first_window_ms is None:
                result.first_window_ms = (now - start) * 1000
                result.first_inference_ms = times.inference
                if samples is not None:
                    samples.append(thread_counts())
            result.instrumentation_ms += (time.perf_counter() - now) * 1000
            if deadline is not None and now >= deadline:
                result.complete = False
                break
    finally:
        windows.close()  # a pass stopped early closes its reader now
    result.wall_s = time.perf_counter() - start
    result.frames = run.frames
    result.info = run.reader.info if run.reader is not None else None
    return result


@dataclass
class StreamResult:
    """One stream's measured passes."""

    passes: list[PassResult] = field(default_factory=list)
    wall_s: float = 0.0
    started: float = 0.0
    ended: float = 0.0

    @property
    def frames(self) -> int:
        return sum(p.frames for p in self.passes)

    @property
    def windows(self) -> int:
        return sum(len(p.windows) for p in self.passes)


def _measure_stream(recognizer, source, warmup: int, runs: int | None, seconds: float | None,
                    barrier: threading.Barrier | None, samples: list) -> StreamResult:
    for _ in range(warmup):
        run_pass(recognizer, source)
    if barrier is not None:
        barrier.wait()
    result = StreamResult(started=time.perf_counter())
    deadline = result.started + seconds if seconds is not None else None
    while (len(result.passes) < runs) if runs is not None else (time.perf_counter() < deadline):
        result.passes.append(run_pass(recognizer, source, deadline=deadline, samples=samples))
    result.ended = time.perf_counter()
    result.wall_s = result.ended - result.started
    return result


def measure_streams(recognizers, warmups, source, *, runs: int | None, seconds: float | None) -> dict:
    """Run one stream per recognizer at once (threads), each after its ``warmups[i]`` passes; the
    measured passes start together. Returns {"streams": [StreamResult], "wall_s", "cpu_s", "threads"}."""
    count = len(recognizers)
    barrier = threading.Barrier(count + 1)
    results: list = [None] * count
    errors: list = []
    samples: list = []

    def work(i: int) -> None:
        try:
            results[i] = _measure_stream(recognizers[i], source, warmups[i], runs, seconds, barrier, samples)
        except BaseException as err:  # re-raised in the caller's thread
            errors.append(err)
            barrier.abort()

    threads = [threading.Thread(target=work, args=(i,), name=f"edgekit-profile-{i}", daemon=True)
               for i in range(count)]
    for thread in threads:
        thread.start()
    try:
        barrier.wait()
    except threading.BrokenBarrierError:
        pass
    usage_before, started = _cpu_seconds(), time.perf_counter()
    for thread in threads:
        thread.join()
    wall_s, cpu_s = time.perf_counter() - started, _cpu_seconds() - usage_before
    if errors:
        raise errors[0]
    return {"streams": results, "wall_s": wall_s, "cpu_s": cpu_s, "threads": samples}


# -- resources and environment -----------------------------------------------------------------------


def _proc_status() -> dict:
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as f:
            return dict(line.split(":", 1) for line in f if ":" in line)
    except OSError:
        return {}


def _status_mb(status: dict, key: str) -> float | None:
    value = status.get(key, "").split()
    return round(int(value[0]) / 1024, 1) if value and value[0].isdigit() else None  # kB


def rss_mb() -> float | None:
    """Resident memory now, in MiB (None where /proc is absent)."""
    return _status_mb(_proc_status(), "VmRSS")


def peak_rss_mb() -> float:
    """Peak resident memory of this process, in MiB (VmHWM, else getrusage's maximum)."""
    peak = _status_mb(_proc_status(), "VmHWM")
    return peak if peak is not None else round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (Linux's /proc/self/clear_refs "5"); False where not allowed."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
            f.write("5")
        return True
    except OSError:
        return False


def thread_counts() -> dict:
    """{"python": live Python threads, "os": the process's OS threads (ONNX Runtime's and FFmpeg's
    included; None without /proc)}."""
    threads = _proc_status().get("Threads", "").strip()
    return {"python": len(threading.enumerate()), "os": int(threads) if threads.isdigit() else None}


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def cpu_info() -> dict:
    """{"model", "architecture", "isa": {feature: bool}, "cores", "usable_cores"} from /proc/cpuinfo."""
    machine = platform.machine().lower()
    family = "arm" if machine.startswith(("arm", "aarch64")) else "x86"
    model, flags = None, set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = (part.strip() for part in line.partition(":"))
                if key in ("model name", "Model", "Hardware", "cpu model") and model is None and value:
                    model = value
                elif key in ("flags", "Features") and not flags:
                    flags = set(value.split())
    except OSError:
        pass
    return {"model": model or platform.processor() or None, "architecture": platform.machine(),
            "isa": {name: name in flags for name in ISA_FLAGS[family]},
            "cores": os.cpu_count(), "usable_cores": usable_cores()}


def runtime_versions() -> dict:
    """Versions of what the measured path runs on (openvino: None when not installed)."""
    import av

    from edgekit import __version__
    from edgekit._versions import distribution_version

    return {"edgekit": __version__, "python": platform.python_version(), "numpy": np.__version__,
            "onnxruntime": distribution_version("onnxruntime"), "openvino": distribution_version("openvino"),
            "av": av.__version__, "ffmpeg": getattr(av, "ffmpeg_version_info", None)}


def file_sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# -- the profile -------------------------------------------------------------------------------------


def _check_options(source, synthetic, warmup, runs, seconds, streams, max_streams):
    if source is not None and synthetic is not None:
        raise ConfigError("give a source or a synthetic clip, not both")
    if source is not None and not isinstance(source, (str, os.PathLike, bytes, bytearray)):
        raise ConfigError(f"the source is read several times: give a path, URL or bytes, not a "
                          f"{type(source).__name__}")
    if isinstance(source, str) and source == "-":
        raise ConfigError("stdin cannot be read several times; save the stream to a file, or profile a URL")
    if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0:
        raise ConfigError(f"warmup must be a whole number >= 0, got {warmup!r}")
    if runs is not None and seconds is not None:
        raise ConfigError("give runs or seconds, not both")
    if runs is not None and (isinstance(runs, bool) or not isinstance(runs, int) or runs < 1):
        raise ConfigError(f"runs must be a whole number >= 1, got {runs!r}")
    if seconds is not None and (isinstance(seconds, bool) or not isinstance(seconds, numbers.Real)
                                or not math.isfinite(seconds) or seconds <= 0):
        raise ConfigError(f"seconds must be a number > 0, got {seconds!r}")
    if streams != "auto" and (isinstance(streams, bool) or not isinstance(streams, int) or streams < 1):
        raise ConfigError(f"streams must be a whole number >= 1 or 'auto', got {streams!r}")
    if isinstance(max_streams, bool) or not isinstance(max_streams, int) or max_streams < 1:
        raise ConfigError(f"max_streams must be a whole number >= 1, got {max_streams!r}")
    from edgekit.bitstream.source import url_scheme

    scheme = url_scheme(source)
    if scheme in LIVE_SCHEMES and seconds is None:
        raise ConfigError(f"a live {scheme}:// source never ends: give seconds (--seconds S) instead of runs")


def profile(package=None, *, device: str | None = None, backend: str | None = None, threads: int | None = None,
            source=None, synthetic: "str | SyntheticClip | None" = None, synthetic_seconds: float = SYNTHETIC_SECONDS,
            warmup: int = 1, runs: int | None = None, seconds: float | None = None, streams: "int | str" = 1,
            max_streams: int = MAX_AUTO_STREAMS, layers: bool = False, per_window: bool = False,
            compare: str | None = None) -> dict:
    """Profile ``package`` (a path; None: the bundled default) on this device; returns one JSON-ready dict.

    ``device``/``backend``/``threads``: as ``edgekit.Recognizer``. ``source``: a path, URL or bytes
    (read once per pass); ``synthetic``: "WxH@FPS" (or a :class:`SyntheticClip`), a clip of
    ``synthetic_seconds`` encoded to a temporary folder; neither: the bundled sample clip.
    ``warmup``: passes each stream runs and discards before it is measured (the cold pass is
    stream 0's first); ``runs``: measured passes per
    stream (default 5), or ``seconds``: measure for that long (a pass in progress stops at its next
    window). ``streams``: concurrent streams, or "auto" (1, 2, 4, ... up to ``max_streams``).
    ``layers``: add a ``layers`` section, the backend's per-layer profile of the inference stage
    (:func:`layer_profile`, after the measured passes, on a separate session). ``per_window``: add
    ``per_window_ms``, every measured window's stage milliseconds in order (what the HTML report plots).
    ``compare="rgb-flow"``: add a ``compare`` section, the same source through the RGB + optical flow
    pipeline a user would otherwise build, timed after the profile (:mod:`edgekit.compare`; the measuring
    is :mod:`training.rgb_flow`, which needs the ``train`` extra; one stream and a finite source).
    Raises ConfigError for bad options, PackageError, SourceError and the Recognizer's errors, and
    MissingDependencyError for ``compare`` without the ``train`` extra."""
    from edgekit.recognizer import ASSETS, DEFAULT_PACKAGE

    _check_options(source, synthetic, warmup, runs, seconds, streams, max_streams)
    if compare is not None:
        from edgekit.bitstream.source import url_scheme
        from edgekit.compare import check_comparison

        if streams != 1:
            raise ConfigError(f"--compare {compare} measures one stream: leave out --streams")
        if url_scheme(source) is not None:
            raise ConfigError(f"--compare {compare} reads the source twice and decodes it to RGB: give a file, "
                              "not a URL (save the stream first)")
        check_comparison(compare)  # a missing extra fails before the measuring
    if runs is None and seconds is None:
        runs = DEFAULT_RUNS
    if isinstance(synthetic, str):
        synthetic = SyntheticClip.parse(synthetic, synthetic_seconds)
    elif synthetic is not None and not isinstance(synthetic, SyntheticClip):
        raise ConfigError(f"synthetic must be 'WxH@FPS' or a SyntheticClip, got {synthetic!r}")
    package_path = Path(package) if package is not None else DEFAULT_PACKAGE
    if package is None and not DEFAULT_PACKAGE.exists():
        raise ConfigError(f"the default package is missing from this installation ({DEFAULT_PACKAGE})")
    with tempfile.TemporaryDirectory(prefix="edgekit-profile-") as scratch:
        source_meta: dict = {}
        if synthetic is not None:
            source = os.path.join(scratch, f"synthetic-{synthetic}.mp4")
            source_meta = synthetic.write(source)
        elif source is None:
            source = str(ASSETS / "demo.mp4")
            source_meta = {"bundled": "demo.mp4"}
        report = _profile(package_path, source, source_meta, device=device, backend=backend, threads=threads,
                          warmup=warmup, runs=runs, seconds=seconds, streams=streams, max_streams=max_streams,
                          layers=layers, per_window=per_window)
        if compare is not None:  # after the profile: torch and OpenCV stay out of its measurements
            from edgekit.compare import rgb_flow

            report["settings"]["compare"] = compare
            report["compare"] = rgb_flow(report, source)
        return report


def _profile(package_path: Path, source, source_meta: dict, *, device, backend, threads, warmup, runs, seconds,
             streams, max_streams, layers: bool = False, per_window: bool = False) -> dict:
    from edgekit.package import load_package
    from edgekit.recognizer import Recognizer

    peak_reset = reset_peak_rss()
    rss_before = rss_mb()
    t0 = time.perf_counter()
    package = load_package(package_path)
    t1 = time.perf_counter()
    options = {"device": device, "backend": backend, "threads": threads}
    recognizers = [Recognizer(package, **options)]
    t2 = time.perf_counter()
    rss_loaded = rss_mb()
    layers_section = None
    try:
        if layers and recognizers[0].selection.backend not in ("onnxruntime", "openvino"):
            raise ConfigError(f"--layers supports the onnxruntime and openvino backends, not "
                              f"{recognizers[0].selection.backend!r}")
        # a live source never ends: with seconds, the cold pass stops then too
        cold = run_pass(recognizers[0], source, deadline=(time.perf_counter() + seconds) if seconds else None)
        info = cold.info
        fps = (info.fps if info is not None else None) or 25.0
        warmed = [1]  # passes each recognizer has run

        def trial(count: int) -> dict:
            while len(recognizers) < count:
                recognizers.append(Recognizer(package, **options))
                warmed.append(0)
            needed = [max(warmup - warmed[i], 0) for i in range(count)]
            measured = measure_streams(recognizers[:count], needed, source, runs=runs, seconds=seconds)
            for i in range(count):
                warmed[i] += needed[i] + len(measured["streams"][i].passes)
            return measured

        trials = []
        if streams == "auto":
            count, capped = 1, False
            while True:
                measured = trial(count)
                trials.append(measured)
                if not all(_stream_fps(s) >= fps for s in measured["streams"]):
                    break
                if count >= max_streams:
                    capped = True
                    break
                count = min(count * 2, max_streams)
            main = trials[0]
        else:
            main = trial(streams)
            trials = [main]
        selection = recognizers[0].selection
        manifest = package.manifest
        windows_meta = (recognizers[0].window_frames, recognizers[0].stride_frames)
        if layers:  # after the measured passes, so it cannot disturb them
            layers_section = layer_profile(package, selection, capture_inputs(recognizers[0], source))
    finally:
        for recognizer in recognizers:
            recognizer.close()

    pooled = [w for s in main["streams"] for p in s.passes for w in p.windows]
    report = {
        "format_version": FORMAT_VERSION,
        "package": {"path": str(package_path), "sha256": file_sha256(package_path), "bytes": package_path.stat().st_size,
                    "model": manifest.model, "precision": manifest.precision,
                    "target": {"device": manifest.target.device, "backend": manifest.target.backend},
                    "window_frames": windows_meta[0], "stride_frames": windows_meta[1]},
        "selection": {"backend": selection.backend, "device": selection.device,
                      "options": {k: v for k, v in selection.options.items() if isinstance(v, (str, int, float, bool))},
                      "profile": selection.profile},
        "source": {"path": str(source) if isinstance(source, (str, os.PathLike)) else type(source).__name__,
                   **source_meta, **_info_dict(info), "frames_per_pass": cold.frames if cold.complete else None},
        "settings": {"warmup": warmup, "runs": runs, "seconds": seconds, "streams": streams},
        "cold_start_ms": {"package_load": round((t1 - t0) * 1000, 3), "backend_load": round((t2 - t1) * 1000, 3),
                          "first_inference": _round(cold.first_inference_ms),
                          "first_window": _round(cold.first_window_ms)},
        "stages_ms": {stage: summarize(w[stage] for w in pooled) for stage in STAGES},
        "stage_totals_ms": {stage: round(sum(w[stage] for w in pooled), 3) for stage in STAGES if stage != "latency"},
        "throughput": _throughput(main, fps),
        "profiling_overhead": _overhead(main),
        "streams": _streams_section(_widest_kept_up(trials, fps), fps),
        "resources": {"rss_before_load_mb": rss_before, "rss_after_load_mb": rss_loaded,
                      "model_memory_mb": round(rss_loaded - rss_before, 1) if None not in (rss_loaded, rss_before) else None,
                      "peak_rss_mb": peak_rss_mb(), "peak_rss_since": "package load" if peak_reset else "process start",
                      "cpu_s": round(main["cpu_s"], 3), "cores_busy": round(main["cpu_s"] / main["wall_s"], 3),
                      "cpu_per_core": round(main["cpu_s"] / main["wall_s"] / usable_cores(), 3),
                      "usable_cores": usable_cores(),
                      "threads_python": max((t["python"] for t in main["threads"]), default=None),
                      "threads_os": max((t["os"] for t in main["threads"] if t["os"] is not None), default=None)},
        "environment": {"cpu": cpu_info(), "versions": runtime_versions(),
                        "onnxruntime_providers": _ort_providers()},
        "method": {"outliers": f"mean and std leave out values beyond median +- {MAD_CLIP:g} x {MAD_TO_SIGMA} x MAD "
                               "(none when the MAD is 0); percentiles, min and max use every value",
                   "decode": "demux + decode, side-data kernels excluded (kernels: ReaderStats.kernel_ms between "
                             "windows); decode + kernels + preprocess + inference = window",
                   "realtime_factor": "seconds of video processed per second of wall time (frames / fps / wall)",
                   "streams_auto": "stages, throughput, resources: the 1-stream trial; streams: the widest "
                                   "trial that kept up",
                   "cold_pass": "the first pass gives the cold-start figures and is not in the statistics; "
                                "it counts as stream 0's first warmup pass"},
    }
    if pooled and all(part in w for w in pooled for part in DEVICE_SPLIT):
        # TensorRT: each inference split by CUDA events into host-to-device, compute and device-to-host
        report["inference_split_ms"] = {part: summarize(w[part] for w in pooled) for part in DEVICE_SPLIT}
    if layers_section is not None:
        report["layers"] = layers_section
    if per_window:
        report["per_window_ms"] = {stage: [round(w[stage], 4) for w in pooled] for stage in STAGES}
    if streams == "auto":
        kept = [len(t["streams"]) for t in trials if all(_stream_fps(s) >= fps for s in t["streams"])]
        report["streams"]["auto"] = {
            "max_streams_kept_up": max(kept, default=0), "capped": capped, "max_streams": max_streams,
            "trials": [{"streams": len(t["streams"]), "total_frames_per_s": _throughput(t, fps)["frames_per_s"],
                        "slowest_stream_frames_per_s": round(min(_stream_fps(s) for s in t["streams"]), 3),
                        "all_kept_up": all(_stream_fps(s) >= fps for s in t["streams"])} for t in trials]}
    return report


def _overhead(measured: dict) -> dict:
    """The profile's own per-window bookkeeping over the measured passes, in ms and as a share of the
    streams' wall time (what it measures); benchmarks/profile_overhead.py measures it end to end."""
    spent_ms = sum(p.instrumentation_ms for s in measured["streams"] for p in s.passes)
    wall_ms = sum(s.wall_s for s in measured["streams"]) * 1000
    return {"instrumentation_ms": round(spent_ms, 4), "share_of_wall": round(spent_ms / wall_ms, 6) if wall_ms else None}


def _widest_kept_up(trials: list[dict], fps: float) -> dict:
    """The trial with the most streams that all kept up with ``fps`` (else the first trial)."""
    kept = [t for t in trials if all(_stream_fps(s) >= fps for s in t["streams"])]
    return max(kept, key=lambda t: len(t["streams"])) if kept else trials[0]


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


def _info_dict(info) -> dict:
    if info is None:
        return {}
    return {"codec": info.codec, "width": info.width, "height": info.height, "fps": info.fps,
            "frame_count": info.frame_count, "duration_s": info.duration_s}


def _ort_providers() -> list[str] | None:
    try:
        import onnxruntime
    except ImportError:
        return None
    return list(onnxruntime.get_available_providers())


def _stream_fps(stream: StreamResult) -> float:
    return stream.frames / stream.wall_s if stream.wall_s > 0 else 0.0


def _throughput(measured: dict, fps: float) -> dict:
    """Totals of a measured phase: every stream's frames and windows over the phase's wall time."""
    frames = sum(s.frames for s in measured["streams"])
    windows = sum(s.windows for s in measured["streams"])
    wall_s = measured["wall_s"]
    return {"streams": len(measured["streams"]), "passes": sum(len(s.passes) for s in measured["streams"]),
            "windows": windows, "frames": frames, "wall_s": round(wall_s, 6),
            "windows_per_s": round(windows / wall_s, 3), "frames_per_s": round(frames / wall_s, 3),
            "source_fps": fps, "video_s": round(frames / fps, 3),
            "realtime_factor": round(frames / fps / wall_s, 3)}


def _streams_section(measured: dict, fps: float) -> dict:
    per_stream = [{"stream": i, "passes": len(s.passes), "complete_passes": sum(p.complete for p in s.passes),
                   "frames": s.frames, "frames_per_pass": [p.frames for p in s.passes], "windows": s.windows,
                   "wall_s": round(s.wall_s, 6), "frames_per_s": round(_stream_fps(s), 3),
                   "realtime_factor": round(_stream_fps(s) / fps, 3), "kept_up": _stream_fps(s) >= fps}
                  for i, s in enumerate(measured["streams"])]
    return {"count": len(per_stream), "source_fps": fps, "per_stream": per_stream,
            "total_frames_per_s": _throughput(measured, fps)["frames_per_s"],
            "all_kept_up": all(s["kept_up"] for s in per_stream)}


# -- per-layer profile (--layers) --------------------------------------------------------------------

LAYER_RUNS = 10  # profiled inferences (after one unprofiled warm-up inference)
LAYER_INPUTS = 4  # distinct windows' inputs captured from the source and cycled through
TOP_LAYERS = 15  # layers shown in the text output (the JSON has every layer)


class _RecordingBackend:
    """Stands in for a Recognizer's backend for one short pass: runs the real backend and keeps a copy
    of the inputs of the first ``limit`` windows."""

    def __init__(self, backend, limit: int):
        self._backend, self._limit, self.inputs = backend, limit, []

    def run(self, inputs):
        if len(self.inputs) < self._limit:
            self.inputs.append({name: np.array(value, copy=True) for name, value in inputs.items()})
        return self._backend.run(inputs)

    def __getattr__(self, name):
        return getattr(self._backend, name)


def capture_inputs(recognizer, source, count: int = LAYER_INPUTS) -> list[dict]:
    """The backend inputs of the first ``count`` windows of ``source``, prepared by ``recognizer``
    exactly as on the measured path (one short pass after the measured ones)."""
    original = recognizer.backend
    recorder = _RecordingBackend(original, count)
    recognizer.backend = recorder
    try:
        run = recognizer.windows(source)
        windows = iter(run)
        try:
            for _ in windows:
                if len(recorder.inputs) >= count:
                    break
        finally:
            windows.close()
    finally:
        recognizer.backend = original
    return recorder.inputs


def _aggregate_layers(records, inference_us: float, runs: int) -> list[dict]:
    """records: (layer name, op type, microseconds) per execution -> one row per layer, slowest first."""
    layers: dict[str, dict] = {}
    for name, op_type, micros in records:
        row = layers.setdefault(name, {"name": name, "op_type": op_type, "count": 0, "total_us": 0.0})
        row["count"] += 1
        row["total_us"] += micros
    rows = sorted(layers.values(), key=lambda r: -r["total_us"])
    for row in rows:
        row["mean_us"] = round(row["total_us"] / row["count"], 3)
        row["per_inference_us"] = round(row["total_us"] / runs, 3)
        row["share"] = round(row["total_us"] / inference_us, 5) if inference_us > 0 else None
        row["total_us"] = round(row["total_us"], 3)
    return rows


def _op_types(rows: list[dict], inference_us: float) -> list[dict]:
    kinds: dict[str, dict] = {}
    for row in rows:
        kind = kinds.setdefault(row["op_type"], {"op_type": row["op_type"], "layers": 0, "count": 0, "total_us": 0.0})
        kind["layers"] += 1
        kind["count"] += row["count"]
        kind["total_us"] += row["total_us"]
    out = sorted(kinds.values(), key=lambda k: -k["total_us"])
    for kind in out:
        kind["total_us"] = round(kind["total_us"], 3)
        kind["share"] = round(kind["total_us"] / inference_us, 5) if inference_us > 0 else None
    return out


def _ort_layers(package, selection, inputs: list[dict], runs: int) -> dict:
    """ONNX Runtime's profiler on a separate session of the same model, with the Recognizer's options."""
    import json

    import onnxruntime as ort

    from targets.cpu import physical_cores, session_options

    threads = selection.options.get("threads") or physical_cores()
    options = session_options(threads, selection.options.get("graph_optimization", "all"))
    with tempfile.TemporaryDirectory(prefix="edgekit-layers-") as folder:
        options.enable_profiling = True
        options.profile_file_prefix = os.path.join(folder, "ort-profile")
        try:
            session = ort.InferenceSession(package.onnx_bytes, sess_options=options, providers=["CPUExecutionProvider"])
        except Exception as err:  # onnxruntime's own pybind exception types
            raise ConfigError(f"ONNX Runtime cannot load the model for the layer profile: "
                              f"{str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__}") from None
        names = [o.name for o in session.get_outputs()]
        feeds = [{a.name: window[a.name] for a in session.get_inputs()} for window in inputs]
        session.run(names, feeds[0])  # warm-up, left out below
        for i in range(runs):
            session.run(names, feeds[i % len(feeds)])
        trace_path = session.end_profiling()
        try:
            with open(trace_path, encoding="utf-8") as f:
                trace = json.load(f)
        finally:
            Path(trace_path).unlink(missing_ok=True)
    events = trace["traceEvents"] if isinstance(trace, dict) else trace
    model_runs = sorted((e for e in events if e.get("cat") == "Session" and e.get("name") == "model_run"),
                        key=lambda e: e["ts"])[-runs:]  # the profiled runs, not the warm-up
    if not model_runs:
        raise ConfigError("ONNX Runtime's profile trace holds no inference (model_run) events")
    start = model_runs[0]["ts"]
    records = [(e["name"].removesuffix("_kernel_time"), e.get("args", {}).get("op_name", "?"), float(e["dur"]))
               for e in events if e.get("cat") == "Node" and e.get("name", "").endswith("_kernel_time")
               and e["ts"] >= start]
    inference_us = float(sum(e["dur"] for e in model_runs))
    return {"threads": threads, "inference_us": inference_us, "records": records,
            "method": "ONNX Runtime profiler (SessionOptions.enable_profiling) on a separate session with the "
                      "Recognizer's options; share: of the profiled runs' model_run time"}


def _openvino_layers(package, selection, inputs: list[dict], runs: int) -> dict:
    """OpenVINO's performance counters (PERF_COUNT) on a separate compile of the same model."""
    backend = package.backend(selection=selection, profiling=True, cache=False)
    try:
        backend.run(inputs[0])  # warm-up, left out below
        records, wall_us = [], 0.0
        for i in range(runs):
            t0 = time.perf_counter()
            backend.run(inputs[i % len(inputs)])
            wall_us += (time.perf_counter() - t0) * 1e6
            records += [(c["name"], c["type"], c["real_us"]) for c in backend.profiling_info()
                        if c["status"] == "EXECUTED"]
    finally:
        backend.close()
    # the counters' real times overlap and need not add up to the wall time: shares are of their sum
    return {"threads": selection.options.get("threads"), "inference_us": sum(r[2] for r in records),
            "wall_us": wall_us, "records": records,
            "method": "OpenVINO performance counters (PERF_COUNT, real time of executed layers) on a separate "
                      "compile with the Recognizer's options; share: of the executed layers' total real time"}


def layer_profile(package, selection, inputs: list[dict], runs: int = LAYER_RUNS) -> dict:
    """The backend's per-layer profile of the inference stage: ``runs`` inferences of ``inputs``
    (cycled) after one warm-up, aggregated per layer (op type, count, total/mean microseconds, share
    of inference) and per op type. ConfigError for a backend without a layer profiler."""
    if not inputs:
        raise ConfigError("the source gave no window to profile the layers with")
    if selection.backend == "onnxruntime":
        raw = _ort_layers(package, selection, inputs, runs)
    elif selection.backend == "openvino":
        raw = _openvino_layers(package, selection, inputs, runs)
    else:
        raise ConfigError(f"--layers supports the onnxruntime and openvino backends, not {selection.backend!r}")
    rows = _aggregate_layers(raw["records"], raw["inference_us"], runs)
    layered_us = sum(r["total_us"] for r in rows)
    return {"backend": selection.backend, "device": selection.device, "threads": raw["threads"], "runs": runs,
            "windows": len(inputs),
            "inference_mean_us": round(raw.get("wall_us", raw["inference_us"]) / runs, 3),
            "layers_mean_us": round(layered_us / runs, 3),
            "layer_share": round(layered_us / raw["inference_us"], 5) if raw["inference_us"] > 0 else None,
            "layers": rows, "op_types": _op_types(rows, raw["inference_us"]), "method": raw["method"]}


def format_layers(section: dict, top: int = TOP_LAYERS) -> list[str]:
    """Text lines for a report's ``layers`` section: the ``top`` slowest layers."""
    rows = section["layers"]
    lines = [f"layers: {section['backend']}/{section['device']}, {section['runs']} inferences of "
             f"{section['windows']} windows: {section['inference_mean_us'] / 1000:.3f} ms per inference, "
             f"{section['layers_mean_us'] / 1000:.3f} ms in {len(rows)} layers",
             f"  {'layer':<44}{'op type':<22}{'count':>6}{'total µs':>11}{'mean µs':>10}{'share':>7}"]
    for row in rows[:top]:
        name = row["name"] if len(row["name"]) <= 42 else "…" + row["name"][-41:]
        share = f"{row['share']:.1%}" if row["share"] is not None else "?"
        lines.append(f"  {name:<44}{row['op_type'][:21]:<22}{row['count']:>6}{row['total_us']:>11.1f}"
                     f"{row['mean_us']:>10.1f}{share:>7}")
    if len(rows) > top:
        rest = rows[top:]
        share = sum(r["share"] or 0 for r in rest)
        lines.append(f"  ({len(rest)} more layers: {sum(r['total_us'] for r in rest):.1f} µs, {share:.1%})")
    kinds = section["op_types"][:6]
    lines.append("  by op type: " + ", ".join(f"{k['op_type']} {k['share']:.0%}" for k in kinds if k["share"] is not None))
    return lines


# -- text --------------------------------------------------------------------------------------------

_STAGE_LABELS = {"decode": "decode", "kernels": "side-data kernels", "preprocess": "preprocess",
                 "inference": "inference", "window": "window total", "latency": "latency"}


def format_text(report: dict) -> str:
    """A short human-readable rendering of a :func:`profile` report."""
    pkg, sel, src, res = report["package"], report["selection"], report["source"], report["resources"]
    env, tp, streams = report["environment"], report["throughput"], report["streams"]
    cpu, versions = env["cpu"], env["versions"]
    what = f"synthetic {src['synthetic']}, " if "synthetic" in src else ""
    isa = " ".join(name for name, present in cpu["isa"].items() if present) or "none of interest"
    threads = f", inference threads {sel['options']['threads']}" if "threads" in sel["options"] else ""
    lines = [
        f"edgekit profile: {pkg['model']} {pkg['precision']} ({Path(pkg['path']).name}, sha256 {pkg['sha256'][:12]}) "
        f"on {sel['backend']}/{sel['device']}" + threads,
        f"  source  {what}{src.get('codec')} {src.get('width')}x{src.get('height')} @ {src.get('fps')} fps, "
        f"{src['frames_per_pass'] or src.get('frame_count') or '?'} frames; "
        f"window {pkg['window_frames']} frames every {pkg['stride_frames']}",
        f"  cpu     {cpu['model']} ({cpu['usable_cores']} of {cpu['cores']} cores usable; {isa})",
        "  runtime " + ", ".join(f"{k} {v}" for k, v in versions.items() if v is not None),
        "",
        "cold start (ms): " + ", ".join(f"{k.replace('_', ' ')} {v:.1f}" for k, v in report["cold_start_ms"].items()
                                        if v is not None),
        "",
        f"{'per window (ms)':<20}{'count':>6}{'mean':>9}{'± std':>8}{'p50':>9}{'p90':>9}{'p95':>9}{'p99':>9}{'max':>9}",
    ]
    for stage, stats in report["stages_ms"].items():
        if stats["count"]:
            lines.append(f"  {_STAGE_LABELS[stage]:<18}{stats['count']:>6}{stats['mean']:>9.2f}{stats['std']:>8.2f}"
                         + "".join(f"{stats[k]:>9.2f}" for k in ("p50", "p90", "p95", "p99", "max")))
    for part, stats in report.get("inference_split_ms", {}).items():
        lines.append(f"    {part.replace('_', '-'):<16}{stats['count']:>6}{stats['mean']:>9.2f}{stats['std']:>8.2f}"
                     + "".join(f"{stats[k]:>9.2f}" for k in ("p50", "p90", "p95", "p99", "max")))
    lines += [
        "  (decode excludes the side-data kernels; mean ± std leave out values beyond median ± 5 robust sigmas)",
        "",
        f"throughput: {tp['frames']} frames, {tp['windows']} windows in {tp['wall_s']:.2f} s over {tp['passes']} "
        f"passes: {tp['frames_per_s']:.1f} frames/s, {tp['windows_per_s']:.1f} windows/s, "
        f"{tp['realtime_factor']:.1f}x real time ({tp['source_fps']:g} fps source)",
    ]
    overhead = report.get("profiling_overhead")
    if overhead and overhead["share_of_wall"] is not None:
        lines.append(f"profiling overhead: {overhead['instrumentation_ms']:.2f} ms of bookkeeping, "
                     f"{overhead['share_of_wall']:.3%} of the measured wall time")
    if streams["count"] > 1 or "auto" in streams:
        lines.append(f"streams: {streams['count']} at once, {streams['total_frames_per_s']:.1f} frames/s in total")
        for s in streams["per_stream"]:
            lines.append(f"  stream {s['stream']}: {s['frames_per_s']:.1f} frames/s ({s['realtime_factor']:.1f}x real "
                         f"time) {'kept up' if s['kept_up'] else 'FELL BEHIND'}")
    if "auto" in streams:
        auto = streams["auto"]
        for t in auto["trials"]:
            lines.append(f"  {t['streams']:>3} streams: slowest {t['slowest_stream_frames_per_s']:.1f} frames/s, total "
                         f"{t['total_frames_per_s']:.1f} frames/s, {'all kept up' if t['all_kept_up'] else 'fell behind'}")
        lines.append(f"  streams sustained at {streams['source_fps']:g} fps: {auto['max_streams_kept_up']}"
                     + (f" (stopped at the cap of {auto['max_streams']})" if auto["capped"] else ""))
    model_memory = f"{res['model_memory_mb']:.1f} MB" if res["model_memory_mb"] is not None else "?"
    lines.append(f"resources: peak RSS {res['peak_rss_mb']:.1f} MB, model memory {model_memory}, CPU "
                 f"{res['cores_busy']:.2f} cores busy ({res['cpu_per_core']:.0%} per usable core), threads "
                 f"{res['threads_python']} Python / {res['threads_os']} OS")
    if "layers" in report:
        lines += [""] + format_layers(report["layers"])
    if "compare" in report:
        from edgekit.compare import format_compare

        lines += [""] + format_compare(report["compare"])
    return "\n".join(lines)
