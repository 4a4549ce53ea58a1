"""``edgekit profile --compare rgb-flow``: the pixel-domain pipeline a user would otherwise build, timed.

>>> from edgekit.profile import profile
>>> report = profile(synthetic="340x256@25", runs=3, compare="rgb-flow")    # needs edgekit[train]
>>> report["compare"]["speedup"]["tvl1"], report["compare"]["speedup"]["farneback"]

On the source the profile ran on, :func:`training.rgb_flow.measure_rgb_flow` runs one pass of a two-stream RGB +
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

The measuring itself needs torch, ONNX and OpenCV (the ``train`` extra) and lives on the training
side, :mod:`training.rgb_flow`, which :func:`rgb_flow` imports only when a comparison is asked for:
the runtime never imports torch. Without them: :class:`edgekit.errors.MissingDependencyError`.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgekit.errors import ConfigError, MissingDependencyError

COMPARISONS = ("rgb-flow",)
FLOW_METHODS = ("tvl1", "farneback", "dis")
TVL1_FRAMES = 6  # TV-L1 frames timed (~0.9 s each at 340x256 on this CPU); the rest is extrapolated
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


# -- side by side -------------------------------------------------------------------------------------


def compare_section(report: dict, baseline: dict, spec: RGBFlowSpec) -> dict:
    """The ``compare`` section of a profile ``report`` (one stream) against ``baseline``
    (:func:`training.rgb_flow.measure_rgb_flow` on the same source): milliseconds per source second and per window, per
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
    from edgekit.package import load_package
    from training.rgb_flow import measure_rgb_flow  # the train extra (torch, ONNX, OpenCV contrib)

    pkg = report["package"]
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
