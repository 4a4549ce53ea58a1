"""``edgekit profile --compare rgb-flow``: the pixel-domain pipeline a user would otherwise build, timed.

>>> from edgekit.profile import profile
>>> report = profile(synthetic="340x256@25", runs=3, compare="rgb-flow")    # needs edgekit[train]
>>> report["compare"]["speedup"]["tvl1"], report["compare"]["speedup"]["farneback"]

On the source the profile ran on, :func:`measure_rgb_flow` runs one pass of a two-stream RGB +
optical-flow recognizer, stage by stage, with the package's windowing (``window_frames`` every
``stride_frames``, :func:`edgekit.sampling.windows`) and sampling (``segments`` TSN segment centres
per window, :func:`edgekit.sampling.segment_positions`, at the package's input size):

- ``decode_rgb``: PyAV decodes every frame and converts it to RGB (``to_ndarray("rgb24")``), with the
  reader's decoder threading (slice threads, one per core);
- ``flow``: optical flow between each pair of consecutive frames, at the source's size, computed
  the way the training teachers compute it (:func:`training.flow.make_teacher`: grey conversion of
  both frames, then OpenCV): Farneback and DIS (medium preset) on every pair; TV-L1
  (``cv2.optflow.DualTVL1OpticalFlow_create``, about a second per 340x256 frame) only on the first
  ``tvl1_frames`` frames the network samples (each against its previous frame), and its median per
  frame is **extrapolated** to every pair (``flow.tvl1.extrapolated`` says so; the median, because
  on a busy machine one call of the few can take many times the others). Each method's
  first call (OpenCV's set-up: seconds for TV-L1) runs once, untimed, on the first pair;
- ``preprocess``: per window, the sampled frames' RGB and flow resized to the input size
  (``cv2.resize``), RGB normalized with the ImageNet mean/std, flow scaled to the new size;
- ``network``: a two-stream TSN of the package's backbone (``edge-mvr``'s: ResNet-18 at 3/8 width,
  patch stem, :func:`training.models.tsn.stream_classifier`), an RGB stream and a 2-channel flow
  stream with late fusion of logits, random weights (speed does not depend on them), exported to
  FP32 ONNX (:func:`training.models.export.export_onnx`) and run by ONNX Runtime on the CPU with the
  package's session options and inference threads. The network is fed the Farneback flow; its cost
  is the same for every flow method.

Every variant shares the decode, preprocess and network stages and differs in ``flow``. The
package's side comes from the profile itself: its stage totals and its measured wall time over the
measured passes (one stream), per second of source video. :func:`compare_section` puts both side by
side: milliseconds per source second and per window, per stage and end to end, and the speed-up of
the compressed-domain pipeline against each flow variant (end to end, and per paired stage:
``decode`` against ``decode_rgb``, the side-data ``kernels`` against ``flow``, ``preprocess``
against ``preprocess``, ``inference`` against ``network``).

torch, ONNX and OpenCV (the ``train`` extra) are imported inside the functions only: ``import
edgekit`` never imports them. Without them: :class:`edgekit.errors.MissingDependencyError`.
"""

from __future__ import annotations

import io
import os
import tempfile
import time
from collections import deque
from dataclasses import dataclass

import numpy as np

from edgekit.errors import ConfigError, MissingDependencyError, SourceError

COMPARISONS = ("rgb-flow",)
FLOW_METHODS = ("tvl1", "farneback", "dis")
TVL1_FRAMES = 6  # TV-L1 frames timed (~0.9 s each at 340x256 on this CPU); the rest is extrapolated
NETWORK_FLOW = "farneback"  # the flow the network is fed (its cost does not depend on which)
BASE_MODEL = "edge-mvr"  # the package's backbone, from the registry (training/models/edge.py)
RGB_MEAN = (0.485, 0.456, 0.406)
RGB_STD = (0.229, 0.224, 0.225)
PACKAGE_STAGES = ("decode", "kernels", "preprocess", "inference")
BASELINE_STAGES = ("decode_rgb", "flow", "preprocess", "network")
STAGE_PAIRS = (("decode", "decode_rgb"), ("kernels", "flow"), ("preprocess", "preprocess"), ("inference", "network"))


@dataclass(frozen=True)
class RGBFlowSpec:
    """What the baseline is fed like the package: windows of ``window_frames`` every ``stride_frames``,
    ``segments`` frames per window at ``size`` (height, width) pixels, ``num_classes`` outputs, and
    ``threads`` ONNX Runtime inference threads."""

    window_frames: int
    stride_frames: int
    segments: int
    size: tuple[int, int]
    num_classes: int
    threads: int
    tvl1_frames: int = TVL1_FRAMES

    def __post_init__(self):
        if self.window_frames < 1 or self.stride_frames < 1 or self.segments < 1 or self.num_classes < 1:
            raise ConfigError(f"rgb-flow needs positive windowing, segments and classes, got {self}")
        if isinstance(self.tvl1_frames, bool) or not isinstance(self.tvl1_frames, int) or self.tvl1_frames < 1:
            raise ConfigError(f"tvl1_frames must be a whole number >= 1, got {self.tvl1_frames!r}")


def check_comparison(name: str | None) -> None:
    """ConfigError for an unknown comparison; MissingDependencyError (naming the ``train`` extra)
    when torch, ONNX or OpenCV contrib (``cv2.optflow``) is missing. Cheap: run it before profiling."""
    if name is None:
        return
    if name not in COMPARISONS:
        raise ConfigError(f"unknown comparison {name!r}; choose from {', '.join(COMPARISONS)}")
    import importlib.util

    for module, what in (("torch", "torch"), ("onnx", "onnx"), ("cv2", "opencv-contrib-python-headless")):
        if importlib.util.find_spec(module) is None:
            raise MissingDependencyError(f"{what} (needed by --compare {name})", "train")
    import cv2

    if not hasattr(cv2, "optflow"):
        raise MissingDependencyError(f"opencv-contrib-python-headless (cv2.optflow, TV-L1; needed by --compare "
                                     f"{name})", "train")


# -- the two-stream network ---------------------------------------------------------------------------


def export_two_stream(path: str | os.PathLike, spec: RGBFlowSpec, seed: int = 0) -> dict:
    """Export the RGB + flow two-stream TSN of :data:`BASE_MODEL`'s backbone to FP32 ONNX at ``path``.
    Inputs ``iframe`` (1, S, 3, H, W) (the RGB of each sampled frame) and ``flow`` (1, S, 2, H, W);
    output ``logits`` (1, num_classes). Returns {"model", "backbone", "width", "stem", "params",
    "precision", "weights"}."""
    import torch
    from torch import nn

    from training.models.common import LateFusion
    from training.models.export import export_onnx
    from training.models.registry import model_entry
    from training.models.tsn import stream_classifier

    cfg = model_entry(BASE_MODEL).default_cfg
    size = spec.size[0] if spec.size[0] == spec.size[1] else spec.size
    streams = {name: dict(backbone="resnet18", width=cfg["width"], dropout=cfg["dropout"], stem=cfg["stem"])
               for name in ("iframe", "flow")}

    class RGBFlowTwoStream(nn.Module):
        """RGB stream + flow stream of the same backbone, late fusion of logits (weights 1, 1)."""

        def __init__(self):
            super().__init__()
            self.rgb_stream = stream_classifier("iframe", spec.num_classes, spec.segments, size, **streams["iframe"])
            self.flow_stream = stream_classifier("flow", spec.num_classes, spec.segments, size, **streams["flow"])
            self.fusion = LateFusion(("iframe", "flow"), (1.0, 1.0))
            self.input_specs = (self.rgb_stream.input_specs[0], self.flow_stream.input_specs[0])

        def forward(self, iframe, flow):
            return self.fusion({"iframe": self.rgb_stream(iframe), "flow": self.flow_stream(flow)})

    torch.manual_seed(seed)
    model = RGBFlowTwoStream().eval()
    export_onnx(model, path)
    return {"model": f"two-stream RGB + flow TSN of {BASE_MODEL}'s backbone", "backbone": "resnet18",
            "width": cfg["width"], "stem": cfg["stem"], "params": sum(p.numel() for p in model.parameters()),
            "precision": "fp32", "weights": f"random init (seed {seed}): speed does not depend on the weights"}


# -- one timed pass -----------------------------------------------------------------------------------


def _open_source(source):
    import av

    if isinstance(source, (bytes, bytearray)):
        return av.open(io.BytesIO(bytes(source)))
    return av.open(os.fspath(source))


def _decoded_rgb(source):
    """(RGB frame (H, W, 3) uint8, decode milliseconds) for every frame of ``source``."""
    import av

    try:
        container = _open_source(source)
    except (av.error.FFmpegError, OSError) as err:
        raise SourceError(f"rgb-flow cannot open the source: {err}") from None
    with container:
        stream = container.streams.video[0]
        stream.thread_type = "SLICE"  # the reader's decoder threading
        stream.codec_context.thread_count = 0
        frames = container.decode(stream)
        while True:
            t0 = time.perf_counter()
            frame = next(frames, None)
            if frame is None:
                return
            rgb = frame.to_ndarray(format="rgb24")
            yield rgb, (time.perf_counter() - t0) * 1000


def _prepare(cv2, rgbs: list, flows: list, spec: RGBFlowSpec) -> dict[str, np.ndarray]:
    """The network's inputs for one window: ``rgbs`` (H, W, 3) uint8 and ``flows`` (2, H, W) float32 of
    the sampled frames -> {"iframe": (1, S, 3, h, w), "flow": (1, S, 2, h, w)} float32."""
    height, width = spec.size
    mean, std = np.asarray(RGB_MEAN, np.float32), np.asarray(RGB_STD, np.float32)
    rgb = np.stack([(cv2.resize(x, (width, height), interpolation=cv2.INTER_AREA).astype(np.float32) / 255 - mean)
                    / std for x in rgbs]).transpose(0, 3, 1, 2)
    flow = []
    for f in flows:
        scale = np.asarray([width / f.shape[2], height / f.shape[1]], np.float32)[:, None, None]
        flow.append(np.stack([cv2.resize(c, (width, height), interpolation=cv2.INTER_AREA) for c in f]) * scale)
    return {"iframe": np.ascontiguousarray(rgb[None]), "flow": np.ascontiguousarray(np.stack(flow)[None])}


def measure_rgb_flow(source, spec: RGBFlowSpec) -> dict:
    """One pass of the RGB + flow pipeline over ``source`` (a path or bytes; see the module doc).
    Returns the measured milliseconds: per stage totals, per frame / per window statistics, the
    frames, flow pairs and windows, and how the network and TV-L1 were measured. Raises
    SourceError for a source without frames, MissingDependencyError without the ``train`` extra."""
    import cv2
    import onnxruntime as ort

    from edgekit import sampling
    from edgekit.profile import summarize
    from targets.cpu import session_options
    from training.flow import make_teacher

    teachers = {method: make_teacher(method) for method in FLOW_METHODS}
    with tempfile.TemporaryDirectory(prefix="edgekit-compare-") as folder:
        model_path = os.path.join(folder, "rgb-flow.onnx")
        network = export_two_stream(model_path, spec)
        network["bytes"] = os.path.getsize(model_path)
        session = ort.InferenceSession(model_path, sess_options=session_options(spec.threads, "all"),
                                       providers=["CPUExecutionProvider"])
    output = session.get_outputs()[0].name
    height, width = spec.size
    warm = {"iframe": np.zeros((1, spec.segments, 3, height, width), np.float32),
            "flow": np.zeros((1, spec.segments, 2, height, width), np.float32)}
    session.run([output], warm)  # first-run allocations stay out of the timing

    decode_ms, preprocess_ms, network_ms = [], [], []
    flow_ms = {method: [] for method in FLOW_METHODS}
    held: deque = deque(maxlen=spec.window_frames)  # (rgb, network flow) of the current window's frames
    previous = None
    count = last_end = 0
    tvl1_positions = []  # source frame index of each TV-L1 frame timed

    def window() -> None:
        frames = list(held)
        chosen = sampling.segment_positions(len(frames), spec.segments, train=False)
        first = count - len(frames)  # source index of frames[0]
        for p in chosen:
            if len(flow_ms["tvl1"]) < spec.tvl1_frames and first + p >= 1 and p >= 1:
                t0 = time.perf_counter()
                teachers["tvl1"](frames[p - 1][0], frames[p][0])
                flow_ms["tvl1"].append((time.perf_counter() - t0) * 1000)
                tvl1_positions.append(int(first + p))
        t0 = time.perf_counter()
        inputs = _prepare(cv2, [frames[p][0] for p in chosen], [frames[p][1] for p in chosen], spec)
        t1 = time.perf_counter()
        session.run([output], inputs)
        t2 = time.perf_counter()
        preprocess_ms.append((t1 - t0) * 1000)
        network_ms.append((t2 - t1) * 1000)

    for rgb, ms in _decoded_rgb(source):
        decode_ms.append(ms)
        if previous is not None and previous.shape != rgb.shape:
            raise SourceError("rgb-flow needs one picture size for the whole source")
        if previous is None:
            network_flow = None
        else:
            if count == 1:  # OpenCV's first call of each method sets up (TV-L1: seconds): left out
                for teacher in teachers.values():
                    teacher(previous, rgb)
            for method in ("farneback", "dis"):
                t0 = time.perf_counter()
                result = teachers[method](previous, rgb)
                flow_ms[method].append((time.perf_counter() - t0) * 1000)
                if method == NETWORK_FLOW:
                    network_flow = result
        if network_flow is None:  # the first frame has no previous one: zero flow, as at a cut
            network_flow = np.zeros((2, *rgb.shape[:2]), np.float32)
        held.append((rgb, network_flow))
        previous = rgb
        count += 1
        if sampling.window_due(count, spec.window_frames, spec.stride_frames):
            window()
            last_end = count
    if count == 0:
        raise SourceError("rgb-flow: the source holds no frames")
    if sampling.tail_due(count, last_end, spec.window_frames):
        window()  # the tail window, as the Recognizer's
    if not flow_ms["tvl1"] and count >= 2:  # every sampled frame was a first frame: time one pair anyway
        frames = list(held)
        t0 = time.perf_counter()
        teachers["tvl1"](frames[-2][0], frames[-1][0])
        flow_ms["tvl1"].append((time.perf_counter() - t0) * 1000)
        tvl1_positions.append(count - 1)

    pairs = count - 1
    flows = {}
    for method, values in flow_ms.items():
        stats = summarize(values)
        measured_ms = float(sum(values))
        extrapolated = method == "tvl1" and len(values) < pairs
        total = stats["p50"] * pairs if values and extrapolated else measured_ms
        flows[method] = {"per_frame_ms": stats, "frames_timed": len(values), "pairs": pairs,
                         "measured_total_ms": round(measured_ms, 3), "total_ms": round(total, 3),
                         "extrapolated": extrapolated}
    flows["tvl1"]["timed_frames"] = tvl1_positions
    flows["tvl1"]["timed_ms"] = [round(v, 3) for v in flow_ms["tvl1"]]
    return {"frames": count, "flow_pairs": pairs, "windows": len(network_ms),
            "frame_size": list(previous.shape[:2]) if previous is not None else None,
            "totals_ms": {"decode_rgb": round(sum(decode_ms), 3), "preprocess": round(sum(preprocess_ms), 3),
                          "network": round(sum(network_ms), 3)},
            "decode_rgb_per_frame_ms": summarize(decode_ms), "preprocess_per_window_ms": summarize(preprocess_ms),
            "network_per_window_ms": summarize(network_ms), "flow": flows,
            "network": {**network, "runtime": "onnxruntime", "provider": "CPUExecutionProvider",
                        "threads": spec.threads, "inputs": {k: list(v.shape) for k, v in warm.items()},
                        "fed_flow": NETWORK_FLOW},
            "opencv": {"version": cv2.__version__, "threads": cv2.getNumThreads()}}


# -- side by side -------------------------------------------------------------------------------------


def compare_section(report: dict, baseline: dict, spec: RGBFlowSpec) -> dict:
    """The ``compare`` section of a profile ``report`` (one stream) against ``baseline``
    (:func:`measure_rgb_flow` on the same source): milliseconds per source second and per window, per
    stage and end to end, for the package and each flow variant, and the package's speed-ups."""
    tp = report["throughput"]
    fps = float(report["source"].get("fps") or tp["source_fps"])
    video_s = tp["video_s"]  # seconds of video the measured passes covered
    totals = report["stage_totals_ms"]
    package_stages = {stage: totals[stage] / video_s for stage in PACKAGE_STAGES}
    package = {"pipeline": "compressed domain (this package)",
               "stages_ms_per_source_s": {k: round(v, 4) for k, v in package_stages.items()},
               "end_to_end_ms_per_source_s": round(tp["wall_s"] * 1000 / video_s, 4),
               "stages_ms_per_window": {k: round(totals[k] / tp["windows"], 4) for k in PACKAGE_STAGES},
               "end_to_end_ms_per_window": round(tp["wall_s"] * 1000 / tp["windows"], 4),
               "windows": tp["windows"], "video_s": video_s,
               "measured": "wall time of the profile's measured passes (decoding runs ahead in its own thread, "
                           "so the stages may add up to more than the wall time)"}
    base_video_s = baseline["frames"] / fps
    variants = {}
    for method in FLOW_METHODS:
        stage_totals = {"decode_rgb": baseline["totals_ms"]["decode_rgb"], "flow": baseline["flow"][method]["total_ms"],
                        "preprocess": baseline["totals_ms"]["preprocess"], "network": baseline["totals_ms"]["network"]}
        end_to_end = sum(stage_totals.values())
        variants[method] = {
            "pipeline": f"RGB + {method} flow + two-stream network",
            "stages_ms_per_source_s": {k: round(v / base_video_s, 4) for k, v in stage_totals.items()},
            "end_to_end_ms_per_source_s": round(end_to_end / base_video_s, 4),
            "stages_ms_per_window": {k: round(v / baseline["windows"], 4) for k, v in stage_totals.items()},
            "end_to_end_ms_per_window": round(end_to_end / baseline["windows"], 4),
            "realtime_factor": round(base_video_s * 1000 / end_to_end, 4),
            "flow_extrapolated": baseline["flow"][method]["extrapolated"]}
    package_e2e = package["end_to_end_ms_per_source_s"]
    speedup = {method: round(v["end_to_end_ms_per_source_s"] / package_e2e, 2) for method, v in variants.items()}
    per_stage = {method: {f"{ours}/{theirs}": (round(v["stages_ms_per_source_s"][theirs] / package_stages[ours], 2)
                                               if package_stages[ours] > 0 else None)
                          for ours, theirs in STAGE_PAIRS} for method, v in variants.items()}
    tvl1 = baseline["flow"]["tvl1"]
    return {"comparison": "rgb-flow", "source_fps": fps, "frames": baseline["frames"],
            "frame_size": baseline["frame_size"], "windows": baseline["windows"],
            "spec": {"window_frames": spec.window_frames, "stride_frames": spec.stride_frames,
                     "segments": spec.segments, "size": list(spec.size), "tvl1_frames": spec.tvl1_frames},
            "package": package, "rgb_flow": variants, "speedup": speedup, "speedup_per_stage": per_stage,
            "baseline": baseline,
            "method": {
                "baseline": "one pass: PyAV decode of every frame to RGB; optical flow between consecutive frames at "
                            "the source size (training.flow.make_teacher: grey conversion + OpenCV); per window "
                            f"{spec.segments} segment centres resized to {spec.size[1]}x{spec.size[0]} and a two-"
                            "stream RGB + flow network (FP32 ONNX, ONNX Runtime CPU); stages run one after another",
                "tvl1": f"TV-L1 timed on {tvl1['frames_timed']} frames the network samples (source frames "
                        f"{tvl1['timed_frames']}), its median per frame extrapolated to all {tvl1['pairs']} "
                        "consecutive pairs" if tvl1["extrapolated"] else "TV-L1 timed on every pair",
                "farneback_dis": "timed on every consecutive pair",
                "speedup": "RGB + flow end-to-end ms per source second / the package's (its measured wall time "
                           "over the measured passes per second of video)",
                "per_stage": "package stage / baseline stage, per source second: decode/decode_rgb, "
                             "kernels (side data from the bitstream)/flow, preprocess/preprocess, inference/network"}}


def rgb_flow(report: dict, source, *, tvl1_frames: int = TVL1_FRAMES) -> dict:
    """The ``compare`` section for a finished profile ``report`` of ``source`` (see the module doc)."""
    pkg = report["package"]
    from edgekit.package import load_package

    manifest = load_package(pkg["path"]).manifest
    first = manifest.inputs[0]
    threads = report["selection"]["options"].get("threads")
    if not isinstance(threads, int):
        from targets.cpu import usable_cores

        threads = max(1, usable_cores() // 2)
    spec = RGBFlowSpec(window_frames=pkg["window_frames"], stride_frames=pkg["stride_frames"],
                       segments=first.segments, size=tuple(first.shape[-2:]), num_classes=len(manifest.labels),
                       threads=threads, tvl1_frames=tvl1_frames)
    return compare_section(report, measure_rgb_flow(source, spec), spec)


def format_compare(section: dict) -> list[str]:
    """Text lines for a report's ``compare`` section."""
    pkg, variants = section["package"], section["rgb_flow"]
    height, width = section["frame_size"] or ("?", "?")
    lines = [f"compare rgb-flow: {section['frames']} frames of {width}x{height} at {section['source_fps']:g} fps, "
             f"{section['windows']} windows; network {section['baseline']['network']['model']}, "
             f"{section['baseline']['network']['precision'].upper()} on ONNX Runtime "
             f"({section['baseline']['network']['threads']} thread"
             f"{'' if section['baseline']['network']['threads'] == 1 else 's'})",
             f"  {'ms per source second':<34}{'decode':>10}{'motion':>11}{'preprocess':>11}{'network':>10}"
             f"{'end to end':>12}{'speed-up':>10}",
             f"  {'package (compressed domain)':<34}" + "".join(
                 f"{pkg['stages_ms_per_source_s'][s]:>{w}.2f}" for s, w in zip(PACKAGE_STAGES, (10, 11, 11, 10)))
             + f"{pkg['end_to_end_ms_per_source_s']:>12.2f}{'1x':>10}"]
    for method, v in variants.items():
        name = f"RGB + {method}" + (" (flow extrapolated)" if v["flow_extrapolated"] else "")
        lines.append(f"  {name:<34}" + "".join(f"{v['stages_ms_per_source_s'][s]:>{w}.2f}"
                                               for s, w in zip(BASELINE_STAGES, (10, 11, 11, 10)))
                     + f"{v['end_to_end_ms_per_source_s']:>12.2f}{section['speedup'][method]:>9.1f}x")
    tvl1 = section["baseline"]["flow"]["tvl1"]
    lines += ["  (package: decode = demux + decode, motion = side-data kernels; RGB + flow: decode = every frame "
              "to RGB, motion = optical flow between consecutive frames)",
              f"  TV-L1: {tvl1['per_frame_ms']['p50']:.1f} ms per frame (median), timed on {tvl1['frames_timed']} "
              f"of {tvl1['pairs']} pairs" + (" and extrapolated to all of them" if tvl1["extrapolated"] else ""),
              f"  per window (ms): package {pkg['end_to_end_ms_per_window']:.2f}; "
              + ", ".join(f"RGB + {m} {v['end_to_end_ms_per_window']:.1f}" for m, v in variants.items())]
    return lines
