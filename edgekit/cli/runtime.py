"""Runtime commands: ``recognize``, ``demo``, ``profile``, ``benchmark``, ``inspect``, ``sample``, ``transcode``.

They mirror the Python API word for word: ``edgekit recognize SOURCE --device D --backend B``
is ``edgekit.Recognizer(package, device=D, backend=B).recognize(SOURCE)``. Runtime dependencies
only (numpy, PyAV, ONNX Runtime), each imported when its command runs.
"""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from dataclasses import dataclass
from typing import TYPE_CHECKING

from edgekit.cli.common import (add_command, backend_help, device_help, number_in, positive_int, positive_seconds,
                                seconds, whole_number)
from edgekit.errors import ConfigError

if TYPE_CHECKING:
    from edgekit.recognizer import VideoPrediction

RECOGNIZE_EXAMPLES = """examples:
  edgekit recognize clip.mp4                         # the bundled default model, on its own target
  edgekit recognize clip.mp4 --json                  # one JSON object: label, score, topk, windows, latency_ms
  edgekit recognize clip.mp4 --stream                # each window as soon as it is decided
  edgekit recognize clip.mp4 --backend openvino --threads 2
  edgekit recognize rtsp://camera/stream --package my.edgepkg --device intel-cpu   # the profile picks OpenVINO
  edgekit recognize "rtsp://camera/stream?tcp" --stream --json   # RTSP over TCP; reopened if the camera restarts
  edgekit recognize udp://0.0.0.0:5000 --stream --no-reconnect   # MPEG-TS over UDP; a stall ends the run
  edgekit recognize hevc.mp4 --transcode h264        # codecs without motion vectors: re-encoded on the fly
  edgekit recognize clip.mp4 --threshold 0.8         # 'none' under a calibrated score of 0.8 (0: never 'none')
  ffmpeg -i in.mp4 -c:v libx264 -f h264 - | edgekit recognize - --json   # raw H.264 on stdin"""

DEMO_EXAMPLES = """examples:
  edgekit demo                       # both bundled defaults on the bundled sample clip, side by side
  edgekit demo --model mv            # edge-mv-ref alone: P-frames' motion vectors (loop filter and IDCT skipped)
  edgekit demo --json                # {"truth": [...], "models": {"mvr": {...}, "mv": {...}}}
  edgekit demo --model mvr --json    # one model: its prediction + "package" + "truth" in one object
  edgekit demo --backend openvino --threads 1
  edgekit demo --threshold 0         # never 'none': the top label of every window

--json prints one object. With --model mvr or --model mv: the object of 'edgekit recognize --json'
(source, label, score, top_label, threshold, topk, windows, latency_ms, frames, duration_s,
damaged_frames, skipped_frames) plus "package" (the .edgepkg path) and "truth" (the clip's events:
start_s, end_s, label). With --model both (the default): {"truth": [...], "models": {"mvr": {...},
"mv": {...}}}, each model's object that same prediction plus "package"."""

INSPECT_EXAMPLES = """examples:
  edgekit inspect clip.mp4                    # codec, size, frame types, GOPs, MV statistics
  edgekit inspect clip.mp4 --json             # the same as one JSON object
  edgekit inspect clip.mp4 --render sheet.png # I-frame | MV colour wheel | residual, for 4 frames
  edgekit inspect rtsp://camera/stream --timeout 5"""

SAMPLE_EXAMPLES = """examples:
  edgekit sample clip.mp4                          # 48 frames, a square moving right 4 px/frame
  edgekit sample clip.mp4 --motion up --codec h264 --bframes 2
  edgekit sample pan.mp4 --motion none --pan=-3x0 # camera pans: content moves 3 px/frame left"""

TRANSCODE_EXAMPLES = """examples:
  edgekit transcode in.mkv out.mp4                        # MPEG-4, GOP 12, no B, 340x256 (CoViAR)
  edgekit transcode in.mp4 out.mp4 --codec h264 --bframes 2 --size 640x360
  edgekit transcode hevc.mp4 out.mp4 --size keep --json"""

PROFILE_EXAMPLES = """examples:
  edgekit profile                                   # the bundled default model on the bundled sample clip
  edgekit profile --synthetic 640x480@25 --runs 3   # a clip made on the fly: no input file needed
  edgekit profile my.edgepkg --source clip.mp4 --device intel-cpu --json
  edgekit profile --synthetic 1280x720@30 --streams 4         # 4 concurrent streams: did each keep up?
  edgekit profile --synthetic 1280x720@30 --streams auto      # how many 30 fps streams this device sustains
  edgekit profile --source rtsp://camera/stream --seconds 30  # a live source: measure for 30 s
  edgekit profile --source clip.mp4 --compare rgb-flow  # against RGB + optical flow (TV-L1, Farneback, DIS)"""

BENCHMARK_EXAMPLES = """examples:
  edgekit benchmark models/edge-mvr                       # fp32 and int8 on the CPU, speed on the demo clip
  edgekit benchmark models/edge-mvr --devices onnxruntime,openvino --data data/synth-small-motion --format markdown
  edgekit benchmark my.edgepkg --data data/synth-small-motion --floor 0.8 --json       # a CI gate: exit 3 if under 80 %
  edgekit benchmark models/edge-mvr --data data/synth-small-motion --max-int8-drop 1   # INT8 may lose at most 1 point

exit codes: 0 every row passed; 2 bad arguments; 3 a row failed, fell under --floor, or INT8 lost more
than --max-int8-drop points against FP32 (the same model and device)."""

TRANSCODE_CODECS = ("mpeg4", "h264")


def add_commands(subparsers) -> None:
    add_command(subparsers, "recognize", "Recognize motion events in a video from its compressed-domain side data.",
                RECOGNIZE_EXAMPLES, add_arguments=_recognize_arguments).set_defaults(run=recognize)
    add_command(subparsers, "demo", "Run the bundled default models (edge-mvr, edge-mv) on the bundled sample "
                "clip: per-window predictions beside the truth, and what each costs.", DEMO_EXAMPLES,
                add_arguments=_demo_arguments).set_defaults(run=demo)
    add_command(subparsers, "profile", "Profile a package on this device: cold start, per-stage latency "
                "percentiles, throughput, concurrent streams, memory, CPU.", PROFILE_EXAMPLES,
                add_arguments=_profile_arguments).set_defaults(run=profile)
    add_command(subparsers, "benchmark", "Benchmark packages or model folders by device and precision: status, "
                "size, top-1, latency, throughput in one table; exit 3 when a row fails a gate (CI).",
                BENCHMARK_EXAMPLES, add_arguments=_benchmark_arguments).set_defaults(run=benchmark)
    add_command(subparsers, "inspect", "Show what a video's bitstream holds: frame types, GOPs, motion vectors.",
                INSPECT_EXAMPLES, add_arguments=_inspect_arguments).set_defaults(run=inspect)
    add_command(subparsers, "sample", "Write a sample clip with known motion (no download needed).",
                SAMPLE_EXAMPLES, add_arguments=_sample_arguments).set_defaults(run=sample)
    add_command(subparsers, "transcode", "Re-encode a video into the CoViAR/DMC-Net training format.",
                TRANSCODE_EXAMPLES, add_arguments=_transcode_arguments).set_defaults(run=transcode)


def _size(text: str) -> tuple[int, int] | None:
    """``340x256`` -> (340, 256); ``keep`` -> None."""
    if text == "keep":
        return None
    try:
        width, height = (int(v) for v in text.lower().split("x", 1))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must look like 340x256 or 'keep', got {text!r}") from None
    return (width, height)


def _add_threshold_argument(p: argparse.ArgumentParser) -> None:
    """``--threshold``: the ``threshold=`` of ``edgekit.Recognizer``."""
    p.add_argument("--threshold", type=number_in("--threshold", 0, 1, "a calibrated score"), metavar="X",
                   help="report a window (and the video) as 'none' when its top calibrated score is under X; "
                   "0 never does (default: the package's calibrated threshold, else 0)")


def _add_runtime_arguments(p: argparse.ArgumentParser) -> None:
    """``--device`` / ``--backend`` / ``--threads``: the keywords of ``edgekit.Recognizer``."""
    p.add_argument("--device", metavar="D", help=device_help("the package's target"))
    p.add_argument("--backend", metavar="B", help=backend_help("the device's usual runtime"))
    p.add_argument("--threads", type=int, metavar="N", help="inference threads (default: the profile's, else half the cores)")


def _recognize_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", metavar="SOURCE", help="path, URL (rtsp/http) or '-' for a raw H.264/MPEG-4 stream "
                   "on stdin")
    p.add_argument("--package", metavar="PKG", help="an .edgepkg (default: the bundled default model)")
    _add_runtime_arguments(p)
    _add_threshold_argument(p)
    p.add_argument("--timeout", type=positive_seconds, default=10.0, metavar="S",
                   help="seconds to wait for data before giving up: first byte, between chunks, a silent "
                   "server or pipe (default 10)")
    p.add_argument("--transcode", choices=TRANSCODE_CODECS, help="re-encode codecs without MVs (HEVC, VP9, AV1)")
    p.add_argument("--no-reconnect", action="store_true", help="a network source (rtsp, rtp, udp, tcp, http) that "
                   "ends, breaks or stalls ends the run (default: it is reopened with backoff, as a camera restarts)")
    p.add_argument("--reconnect-attempts", type=positive_int("--reconnect-attempts"), metavar="N",
                   help="reopening attempts per outage of a network source (default 10: waits of 0.5, 1, 2, 4, "
                   "then 8 s)")
    p.add_argument("--stream", action="store_true", help="print each window as soon as it is decided "
                   "(with --json: one JSON object per line)")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def _demo_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", type=_demo_model, default="both", metavar="{" + ",".join(_demo_models()) + "}",
                   help="which bundled default to run: mvr (edge-mvr: motion vectors + residual), mv (edge-mv: "
                   "motion vectors only) or both, side by side (default both); --device, --backend, --threads "
                   "and --threshold apply to each")
    _add_runtime_arguments(p)
    _add_threshold_argument(p)
    p.add_argument("--json", action="store_true", help="print one JSON object")


def _demo_models() -> tuple[str, ...]:
    """The ``--model`` words of ``edgekit demo``: "both", then each bundled default's kind, as
    ``edgekit.Recognizer.default(kind)`` takes it (``edgekit.recognizer.DEFAULT_PACKAGES``)."""
    from edgekit.recognizer import DEFAULT_PACKAGES

    return ("both", *DEFAULT_PACKAGES)


def _demo_model(text: str) -> str:
    """An argparse type for ``--model``; ConfigError (one line, exit 2) for a word it does not know."""
    choices = _demo_models()
    if text not in choices:
        raise ConfigError(f"--model must be one of {', '.join(choices)}, got {text!r}")
    return text


def _profile_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("package", metavar="PKG", nargs="?", help="an .edgepkg (default: the bundled default model)")
    _add_runtime_arguments(p)
    p.add_argument("--source", metavar="VIDEO", help="a path or URL, as 'edgekit recognize' takes (default: the "
                   "bundled sample clip)")
    p.add_argument("--synthetic", metavar="WxH@FPS", help="profile on a clip made on the fly (H.264 with B-frames, "
                   "moving content), e.g. 640x480@25")
    p.add_argument("--synthetic-seconds", type=seconds("--synthetic-seconds"), default=None, metavar="S",
                   help="length of the --synthetic clip (default 4)")
    p.add_argument("--warmup", type=whole_number("--warmup", 0), default=1, metavar="N",
                   help="passes per stream run and discarded before measuring; the cold pass is the first "
                   "(default 1)")
    p.add_argument("--runs", type=whole_number("--runs", 1), metavar="N", help="measured passes over the source, per "
                   "stream (default 5)")
    p.add_argument("--seconds", type=seconds("--seconds"), metavar="S", help="measure for S seconds instead of "
                   "--runs (a live source needs it)")
    p.add_argument("--streams", type=_streams, default=1, metavar="N|auto", help="concurrent streams, each its own "
                   "Recognizer and reader (default 1); 'auto': 1, 2, 4, ... until one falls below the source's "
                   "frame rate")
    p.add_argument("--layers", action="store_true", help="add the backend's per-layer profile of inference "
                   "(ONNX Runtime profiler, OpenVINO performance counters): the 15 slowest layers")
    from edgekit.compare import COMPARISONS

    p.add_argument("--compare", choices=COMPARISONS, help="also time, on the same source, the pipeline a user "
                   "would otherwise build: every frame decoded to RGB, optical flow (TV-L1 on a few sampled frames, "
                   "extrapolated; Farneback and DIS on all), a two-stream RGB + flow network of the same backbone; "
                   "and the speed-up (needs the train extra)")
    p.add_argument("--report", metavar="OUT.html", help="also write a self-contained HTML report with plots, and "
                   "the plots as PNGs beside it (OUT_stages.png, ...); needs matplotlib")
    p.add_argument("--json", action="store_true", help="print one JSON object")




def _streams(text: str) -> int | str:
    if text == "auto":
        return text
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise ConfigError(f"--streams must be a whole number >= 1 or 'auto', got {text!r}")
    return value


def _inspect_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("video", metavar="VIDEO", help="path or URL of the video")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--render", metavar="OUT.png", help="also write a picture of I-frame, MV field and residual")
    p.add_argument("--frames", type=positive_int("--frames"), default=4,
                   help="frames in the --render sheet (default 4)")
    p.add_argument("--accumulate", action="store_true", help="render accumulated (CoViAR) MV/residual")
    p.add_argument("--transcode", choices=TRANSCODE_CODECS, help="re-encode codecs without MVs (HEVC, VP9, AV1)")
    p.add_argument("--timeout", type=positive_seconds, default=10.0, metavar="S",
                   help="seconds to wait for data before giving up: first byte, between chunks, a silent "
                   "server or pipe (default 10)")


def _sample_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("out", metavar="OUT", help="output file (.mp4, .mkv, .avi, .mov; .m4v raw MPEG-4, .h264 raw H.264)")
    p.add_argument("--motion", default="right", choices=["right", "left", "up", "down", "none"])
    p.add_argument("--speed", type=int, default=4, help="object speed in px/frame (default 4)")
    p.add_argument("--pan", type=_size, default=(0, 0), help="background motion DXxDY px/frame, e.g. --pan=-3x0")
    p.add_argument("--codec", choices=TRANSCODE_CODECS, default="mpeg4")
    p.add_argument("--bframes", type=int, default=0, help="B-frames between anchors (h264 only)")
    p.add_argument("--size", type=_size, default=(320, 240), help="WxH (default 320x240)")
    p.add_argument("--frames", type=positive_int("--frames"), default=48, help="frames to write (default 48)")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def _transcode_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("src", metavar="SRC", help="input video")
    p.add_argument("dst", metavar="DST", help="output file (.mp4, .mkv, .avi, .mov; .m4v raw MPEG-4, .h264 raw H.264)")
    p.add_argument("--codec", choices=TRANSCODE_CODECS, default="mpeg4")
    p.add_argument("--gop", type=int, default=12)
    p.add_argument("--bframes", type=int, default=0)
    p.add_argument("--size", type=_size, default=(340, 256), help="WxH or 'keep' (default 340x256)")
    p.add_argument("--fps", type=float, help="output frame rate (default: the source's)")
    p.add_argument("--json", action="store_true", help="print one JSON object")


# ------------------------------------------------------------------------------------------- recognize


def open_recognizer(package: str | None, args: argparse.Namespace, *, default: str = "mvr"):
    """``edgekit.Recognizer`` for ``package`` (None: the bundled default of kind ``default``, as
    ``Recognizer.default`` takes it) with the user's ``--device``, ``--backend`` and ``--threads``;
    one left out means the package's own choice."""
    from edgekit.recognizer import Recognizer

    options = {"device": args.device, "backend": args.backend, "threads": args.threads,
               "threshold": getattr(args, "threshold", None)}
    return Recognizer(package, **options) if package else Recognizer.default(default, **options)


def recognize(args: argparse.Namespace) -> int:
    source = sys.stdin.buffer if args.source == "-" else args.source
    read_options = {"timeout_s": args.timeout, "transcode": args.transcode, "reconnect": _reconnect(args)}
    with open_recognizer(args.package, args) as recognizer:
        if args.stream:
            for window in recognizer.windows(source, **read_options):
                print(json.dumps(_window_json(window)) if args.json else _window_line(window.prediction), flush=True)
            return 0
        prediction = recognizer.recognize(source, **read_options)
    if args.json:
        print(json.dumps(prediction.to_dict()))
    else:
        _print_prediction(prediction, prediction.source)
    return 0


def _window_json(window) -> dict:
    """One ``--stream --json`` line: the window's prediction, milliseconds from the arrival of its
    last frame to its prediction, and its capture time where the source says (RTSP)."""
    out = {**window.prediction.to_dict(), "latency_ms": round(window.latency_ms, 3)}
    if window.wallclock is not None:
        out["wallclock"] = round(window.wallclock, 3)
    return out


def _reconnect(args: argparse.Namespace):
    """The ``reconnect=`` of ``--no-reconnect`` / ``--reconnect-attempts``: False, a policy, or None (the
    source kind's default). A source that cannot be reopened refuses a policy (ConfigError, exit 2)."""
    if args.no_reconnect and args.reconnect_attempts:
        raise ConfigError("--no-reconnect and --reconnect-attempts contradict each other; give one of them")
    if args.no_reconnect:
        return False
    if args.reconnect_attempts:
        from edgekit.bitstream.source import Reconnect

        return Reconnect(attempts=args.reconnect_attempts)
    return None


@dataclass(frozen=True)
class DemoRun:
    """One bundled default's run on the sample clip: ``kind`` ("mvr", "mv"), the model's name
    (``edge-mvr``), one line saying what it reads and where it runs, its package path, and its
    ``edgekit.recognizer.VideoPrediction`` (its own reading path: each Recognizer reads the clip)."""

    kind: str
    model: str
    description: str
    package: str
    prediction: VideoPrediction


def demo(args: argparse.Namespace) -> int:
    from edgekit.recognizer import ASSETS, DEFAULT_PACKAGES

    clip = ASSETS / "demo.mp4"
    truth = json.loads((ASSETS / "demo.json").read_text())["segments"]
    kinds = tuple(DEFAULT_PACKAGES) if args.model == "both" else (args.model,)
    runs = [_demo_run(kind, clip, args) for kind in kinds]
    if args.json:
        models = {run.kind: {**run.prediction.to_dict(), "package": run.package} for run in runs}
        # one model: the object 'edgekit demo --json' has always printed; both: one entry per model
        print(json.dumps({**models[args.model], "truth": truth} if args.model != "both"
                         else {"truth": truth, "models": models}))
        return 0
    for line in _demo_lines(runs, truth):
        print(line)
    return 0


def _demo_run(kind: str, clip, args: argparse.Namespace) -> DemoRun:
    with open_recognizer(None, args, default=kind) as recognizer:
        prediction = recognizer.recognize(clip)
        inputs = ", ".join(spec.name for spec in recognizer.specs)
        description = (f"reads {inputs}: {recognizer.package.manifest.precision}, {recognizer.selection}, window "
                       f"{recognizer.window_frames} frames every {recognizer.stride_frames}, "
                       + (f"'none' under {recognizer.threshold:g}" if recognizer.threshold else "never 'none'"))
        return DemoRun(kind, recognizer.package.manifest.model, description, str(recognizer.package.path),
                       prediction)


DEMO_WIDTH = 100  # columns the text output keeps within


def _demo_lines(runs: list[DemoRun], truth: list[dict]) -> list[str]:
    """The text of ``edgekit demo``: a header per model, the truth line, one table of windows (time
    span | truth | each model's label and score) and one latency row per model."""
    first = runs[0].prediction
    lines = _wrap(f"edgekit demo: the bundled sample clip ({first.duration_s:.1f} s, {first.frames} frames, "
                  f"{len(truth)} motion events) with " + " and ".join(run.model for run in runs), "", "  ")
    model_width = max(len(run.model) for run in runs)
    for run in runs:
        lines += _wrap(f"{run.model:<{model_width}}  {run.description}", "  ", " " * (model_width + 4))
    lines += _wrap("truth: " + ", ".join(f"{t['start_s']:.1f}-{t['end_s']:.1f} s {t['label']}" for t in truth),
                   "  ", "         ")
    by_span = [{(round(w.start_s, 2), round(w.end_s, 2)): w for w in run.prediction.windows} for run in runs]
    spans = sorted({span for windows in by_span for span in windows})
    rows = [["time span", "truth", *(run.model for run in runs)]]
    for start_s, end_s in spans:
        cells = [_label_cell(windows[(start_s, end_s)]) if (start_s, end_s) in windows else "-"
                 for windows in by_span]
        rows.append([f"{start_s:.2f}-{end_s:.2f} s", _truth_of(start_s, end_s, truth), *cells])
    rows.append(["whole clip", "", *(_label_cell(run.prediction) for run in runs)])
    lines += _table(rows)
    lines.append("  latency: the whole clip, each model reading it along its own decoding path")
    latency_rows = [["model", "latency", "x real time", "decode/window", "preprocess/window", "inference/window"]]
    for run in runs:
        total_ms, real_time, per_window = _latency_figures(run.prediction)
        latency_rows.append([run.model, f"{total_ms:.0f} ms", f"{real_time:.0f}x",
                             *(f"{ms:.1f} ms" for ms in per_window.values())])
    lines += _table(latency_rows, right_from=1)
    return lines


def _wrap(text: str, indent: str, continuation: str) -> list[str]:
    """``text`` as lines of at most ``DEMO_WIDTH`` columns, the first indented by ``indent``."""
    return textwrap.wrap(text, DEMO_WIDTH, initial_indent=indent, subsequent_indent=continuation,
                         break_on_hyphens=False)


def _label_cell(prediction) -> str:
    """``move_right 0.97``; a window (or video) under the threshold: ``none (best: wave) 0.35``."""
    from edgekit.fusion import NONE

    label = f"{NONE} (best: {prediction.top_label})" if prediction.label == NONE else prediction.label
    return f"{label} {prediction.score:.2f}"


def _truth_of(start_s: float, end_s: float, truth: list[dict], tolerance_s: float = 0.05) -> str:
    """The event a window lies inside (within ``tolerance_s``), else the events it overlaps, ``a/b``."""
    for event in truth:
        if event["start_s"] - tolerance_s <= start_s and end_s <= event["end_s"] + tolerance_s:
            return event["label"]
    overlapped = [event["label"] for event in truth if event["start_s"] < end_s and start_s < event["end_s"]]
    return "/".join(overlapped) or "-"


def _table(rows: list[list[str]], right_from: int | None = None) -> list[str]:
    """Rows of cells as aligned lines, indented by 2, columns 2 apart; columns from ``right_from``
    on are right-aligned (numbers)."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  " + "  ".join(cell.rjust(width) if right_from is not None and i >= right_from else cell.ljust(width)
                             for i, (cell, width) in enumerate(zip(row, widths))).rstrip() for row in rows]


def _window_line(window) -> str:
    return f"{window.start_s:6.2f}-{window.end_s:6.2f} s  {window.label:<14} {window.score:.2f}"


def _print_prediction(prediction, title: str) -> None:
    print(f"{title}: {prediction.label} ({prediction.score:.2f})   top-3: "
          + ", ".join(f"{label} {score:.2f}" for label, score in prediction.topk[:3]))
    for window in prediction.windows:
        print("  " + _window_line(window))
    total_ms, real_time, per_window = _latency_figures(prediction)
    print(f"  latency: total {total_ms:.0f} ms for {prediction.duration_s:.1f} s of video "
          f"({real_time:.0f}x real time); per window: "
          + ", ".join(f"{stage} {ms:.1f} ms" for stage, ms in per_window.items()))


def _latency_figures(prediction) -> tuple[float, float, dict[str, float]]:
    """A video prediction's latency: total ms, times real time, and ms per window of decode,
    preprocess and inference (its ``latency_ms``, an ``edgekit.recognizer.StageTimes``)."""
    latency = prediction.latency_ms
    windows = max(len(prediction.windows), 1)
    per_window = {stage: getattr(latency, stage) / windows for stage in ("decode", "preprocess", "inference")}
    return latency.total, prediction.duration_s * 1000 / max(latency.total, 1e-9), per_window


# ---------------------------------------------------------------------------------------------- profile


def profile(args: argparse.Namespace) -> int:
    from edgekit.profile import SYNTHETIC_SECONDS, format_text, profile as run_profile

    if args.source is not None and args.synthetic is not None:
        raise ConfigError("give --source or --synthetic, not both")
    if args.synthetic_seconds is not None and args.synthetic is None:
        raise ConfigError("--synthetic-seconds needs --synthetic")
    if args.runs is not None and args.seconds is not None:
        raise ConfigError("give --runs or --seconds, not both")
    if args.report is not None:
        from edgekit.profile_report import check_report_path

        check_report_path(args.report)  # a bad path fails before the measuring
    report = run_profile(args.package, device=args.device, backend=args.backend, threads=args.threads,
                         source=args.source, synthetic=args.synthetic,
                         synthetic_seconds=args.synthetic_seconds or SYNTHETIC_SECONDS, warmup=args.warmup,
                         runs=args.runs, seconds=args.seconds, streams=args.streams, layers=args.layers,
                         per_window=args.report is not None, compare=args.compare)
    if args.report is not None:
        from edgekit.profile_report import write_report

        written = write_report(report, args.report)
        report.pop("per_window_ms", None)
        report["report"] = {name: str(path) for name, path in written.items()}
    print(json.dumps(report) if args.json else format_text(report))
    if args.report is not None and not args.json:
        print(f"report: {report['report']['html']} (plots: "
              + ", ".join(v for k, v in report["report"].items() if k != "html") + ")")
    return 0


# ---------------------------------------------------------------------------------------------- inspect


def inspect(args: argparse.Namespace) -> int:
    from edgekit.bitstream import inspect as bitstream_inspect

    read_options = {"transcode": args.transcode, "timeout_s": args.timeout}
    summary = bitstream_inspect.summarize(args.video, progress=False if args.json else None, **read_options)
    if args.render:
        summary["render"] = bitstream_inspect.render(args.video, args.render, frames=args.frames,
                                                     accumulate=args.accumulate, **read_options)
    if args.json:
        print(json.dumps(summary))
        return 0
    mv = summary["mv"]
    print(f"{summary['source']}: {summary['codec']} {summary['width']}x{summary['height']}"
          f" @ {summary['fps'] or '?'} fps, {summary['frames']} frames")
    if summary["source_codec"] != summary["codec"]:
        print(f"  transcoded from {summary['source_codec']}")
    print(f"  frame types  {summary['frame_types']}")
    print(f"  pattern      {summary['pattern']}")
    print(f"  GOP lengths  {summary['gop_summary']}")
    print(f"  MV grid      {mv['grid'][0]}x{mv['grid'][1]} blocks of 8x8; median {mv['median_px']:.2f} px, "
          f"p95 {mv['p95_px']:.2f} px, max {mv['max_px']:.1f} px; mean (dx, dy) = "
          f"({mv['mean_dx_px']:+.2f}, {mv['mean_dy_px']:+.2f}) px")
    print(f"  blocks       {mv['intra_fraction']:.1%} intra, {mv['zero_fraction']:.1%} zero vectors")
    print(f"  damaged      {summary['damaged_frames']} frames ({summary['decode_errors']} decode errors)")
    if args.render:
        print(f"  wrote        {summary['render']['path']} (frames {summary['render']['frames']})")
    return 0


# ---------------------------------------------------------------------------------------------- benchmark


def _benchmark_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("models", metavar="MODEL_DIR|PKG", nargs="*", help="quantization output folders (model.json, "
                   "fp32.onnx, int8.onnx: a package is written per device and precision) or .edgepkg files "
                   "(default: the bundled default model)")
    p.add_argument("--devices", metavar="D,...", help="comma-separated backends (onnxruntime, openvino, tensorrt) "
                   "or devices (cpu, gpu, npu, a profile) as 'edgekit recognize' takes them (default: a "
                   "package's own target; cpu for a MODEL_DIR)")
    p.add_argument("--precisions", metavar="P,...", help="for MODEL_DIRs: fp32, int8 or both (default: those the "
                   "folder holds); a package has its own")
    p.add_argument("--data", metavar="DIR", help="a dataset in the UCF-101 layout ('edgekit synth' "
                   "writes one): top-1 on its test split (default: speed only, on the bundled demo clip)")
    p.add_argument("--floor", type=number_in("--floor", 0, 1, "a top-1 fraction (0.8 for 80 %)"), metavar="X",
                   help="the least top-1, a fraction (0.8 = 80 %%); a "
                   "row under it fails (exit 3; needs --data)")
    p.add_argument("--max-int8-drop", type=number_in("--max-int8-drop", 0, 100, "in points"), metavar="P",
                   help="the most points INT8 may lose against "
                   "FP32 of the same model and device (exit 3; needs --data)")
    p.add_argument("--runs", type=whole_number("--runs", 1), default=1, metavar="N", help="measured passes over the "
                   "clips (default 1)")
    p.add_argument("--warmup", type=whole_number("--warmup", 0), default=1, metavar="N", help="passes over the first "
                   "clip before measuring (default 1)")
    p.add_argument("--threads", type=int, metavar="N", help="inference threads (default: the profile's, else "
                   "half the cores)")
    p.add_argument("--format", choices=("text", "markdown", "json"), default=None, help="output (default text)")
    p.add_argument("--json", action="store_true", help="the same as --format json")


def benchmark(args: argparse.Namespace) -> int:
    from edgekit.benchmark import GATE_EXIT_CODE, benchmark as run_benchmark, format_json, format_markdown, \
        format_text, parse_list

    if args.json and args.format not in (None, "json"):
        raise ConfigError(f"give --json or --format {args.format}, not both")
    output = "json" if args.json else (args.format or "text")
    report = run_benchmark(args.models, devices=parse_list(args.devices, "--devices"),
                           precisions=parse_list(args.precisions, "--precisions"), data=args.data, floor=args.floor,
                           max_int8_drop=args.max_int8_drop, runs=args.runs, warmup=args.warmup, threads=args.threads)
    formatter = {"text": format_text, "markdown": format_markdown, "json": format_json}[output]
    print(formatter(report))
    return 0 if report["passed"] else GATE_EXIT_CODE


# ------------------------------------------------------------------------------------ sample, transcode


def sample(args: argparse.Namespace) -> int:
    from edgekit.synthetic import make_clip

    if args.bframes and args.codec != "h264":
        raise ConfigError("--bframes needs --codec h264 (MPEG-4 Part 2 samples have no B-frames)")
    meta = make_clip(args.out, args.motion, speed_px=args.speed, codec=args.codec, size=args.size,
                     frames=args.frames, bframes=args.bframes, pan=args.pan)
    if args.json:
        print(json.dumps({"path": args.out, **{k: list(v) if isinstance(v, tuple) else v for k, v in meta.items()}}))
    else:
        print(f"wrote {args.out}: {args.frames} frames, object moves {meta['motion']} px/frame, pan {meta['pan']}")
    return 0


def transcode(args: argparse.Namespace) -> int:
    from edgekit._progress import Progress
    from edgekit.bitstream import transcode as transcode_video

    with Progress(None, "transcode", enabled=False if args.json else None) as bar:
        result = transcode_video(args.src, args.dst, codec=args.codec, gop=args.gop, bframes=args.bframes,
                                 size=args.size, fps=args.fps, progress=lambda n: bar.update())
    if args.json:
        print(json.dumps({"path": result.path, "codec": result.codec, "width": result.width, "height": result.height,
                          "frames": result.frames, "gop": result.gop, "bframes": result.bframes}))
    else:
        print(f"wrote {result.path}: {result.codec} {result.width}x{result.height}, {result.frames} frames, "
              f"GOP {result.gop}, {result.bframes} B-frames")
    return 0
