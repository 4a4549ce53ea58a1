"""End to end: frames/s of ``Recognizer.default().recognize(clip)`` against decoding the clip to RGB.

The path users run (bitstream reading, preprocessing and ONNX Runtime inference, window by window)
is timed beside the cheapest thing a pixel-domain recognizer must do first: decode every frame of
the same clip to RGB with PyAV (extract.py's "decode_rgb" baseline). Clips, one per --sizes entry:

  340x256     MPEG-4 Part 2, 500 frames, GOP 12, no B-frames
  1280x720    H.264 (x264), 250 frames, GOP 12, 2 B-frames
  1920x1080   H.264 (x264), 150 frames, GOP 12, 2 B-frames

Timing: one untimed warm-up of each command per clip, then --repeats rounds; every round runs both,
alternating which goes first, so a slow phase of a shared machine hits both alike. Per clip: the
median and the minimum of the wall seconds of each, fps from those, the ratio recognizer/decode_rgb
(also per round, where both saw the same load), and the Recognizer's own milliseconds per stage
(its ``latency_ms``) in the median run, per run and per window; ``cores_used``, the median of
each command's process CPU seconds over its wall seconds (how much of the machine it kept busy);
``reader``, what the Recognizer's reader did with the clip (pictures by type, packets decoded,
pictures never decoded because no window reads them).

Works against any edgekit tree on the path, including the older API of c38edf8 (``latency_ms`` a
dict, no ``edgekit.Recognizer``): the tree measured is the one ``import edgekit`` finds, e.g.

    PYTHONPATH=/tmp/edgekit-before python benchmarks/recognizer.py --repeats 3 > before.json

Clips are encoded by benchmarks/_clips.py in a child process that imports this script's own tree,
so every tree is measured on byte-identical clips (cache them with --workdir) and the encoder's
memory stays out of the measured process's peak RSS.

Beside the default model, in the same rounds (``--variants``):

  mv_only      a motion-vector-only package (the file decoded with the loop filter and the IDCT
               skipped, no residual): the bundled ``Recognizer.default("mv")`` (``edge-mv-ref``:
               P-frames only, so no B-frame is decoded), or
               ``--mv-package PKG``; trees without a bundled one build one on the fly with
               random weights (speed does not depend on the weights; needs the ``train`` extra)
  offline_420  ``edgekit.bitstream.open(clip, rgb=None, residual_layout="420")``: every frame's motion
               vectors and full-size residual (Y full size, U/V half size), as cache builders read

Prints ONE JSON object on stdout; progress goes to stderr.

Example:
    python benchmarks/recognizer.py --repeats 5 --workdir /tmp/edgekit-bench > recognizer.json
    python benchmarks/recognizer.py --sizes 340x256 --frames-scale 0.1 --repeats 1   # smoke test
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

import av

BENCHMARKS = Path(__file__).resolve().parent
REPO_ROOT = BENCHMARKS.parent  # the tree this script belongs to (it encodes the clips)
sys.path.append(str(BENCHMARKS))  # benchmarks/_env.py, run as a script

import edgekit  # noqa: E402
import edgekit.bitstream as bs  # noqa: E402
# edgekit.Recognizer is this class; c38edf8 exposed it only here
from edgekit.recognizer import DEFAULT_PACKAGE, Recognizer  # noqa: E402
from _env import machine, script_parser  # noqa: E402

STAGES = ("decode", "preprocess", "inference", "total")

# size -> the ClipSpec arguments of its clip (benchmarks/_clips.py); objects as in extract.py's clips
CLIPS = {
    "340x256": dict(codec="mpeg4", width=340, height=256, frames=500, gop=12, bframes=0, qscale=3, objects=4),
    "1280x720": dict(codec="h264", width=1280, height=720, frames=250, gop=12, bframes=2, crf=23, objects=6),
    "1920x1080": dict(codec="h264", width=1920, height=1080, frames=150, gop=12, bframes=2, crf=23, objects=6),
}


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# -- clips ------------------------------------------------------------------------------------------

def scaled_clip(size: str, frames_scale: float) -> dict:
    """The ClipSpec arguments for ``size``, frames scaled (at least one GOP, so P-frames are read)."""
    spec = dict(CLIPS[size])
    spec["frames"] = max(spec["gop"], round(spec["frames"] * frames_scale))
    return spec


def encode_clips(specs: dict[str, dict], workdir: Path) -> dict[str, dict]:
    """size -> {"path", "spec" (ClipSpec.describe()), "bytes"}, encoded (or found in ``workdir``) by a
    child process that imports this script's own tree: _clips.py needs that tree's encoder helpers,
    which an older edgekit under test may lack."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))}
    cmd = [sys.executable, str(Path(__file__).resolve()), "--encode-clips", str(workdir), json.dumps(specs)]
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, env=env, timeout=3600)  # stderr: progress
    if proc.returncode != 0:
        raise RuntimeError(f"clip encoding exited {proc.returncode} (its stderr is above)")
    return json.loads(proc.stdout)


def encode_clips_child(workdir: str, specs_json: str) -> dict[str, dict]:
    """The child process of :func:`encode_clips`."""
    from _clips import ClipSpec, encode_clip

    log(f"encoding clips with {Path(edgekit.__file__).parent}")
    clips = {}
    for size, arguments in json.loads(specs_json).items():
        spec = ClipSpec(**arguments)
        t0 = time.perf_counter()
        path = encode_clip(spec, workdir)
        log(f"clip {size}: {path} ({time.perf_counter() - t0:.1f} s to encode or find)")
        clips[size] = {"path": str(path), "spec": spec.describe(), "bytes": path.stat().st_size}
    return clips


# -- the two measured commands ------------------------------------------------------------------------

def decode_rgb(path) -> int:
    """extract.py's decode_rgb baseline (its ``pyav_rgb``): PyAV decode + to_ndarray("rgb24") of every
    frame, with the reader's decoder threading (slice threads, thread_count 0 = one per core; swscale
    at PyAV's threads=0). Written out, not imported: extract.py imports edgekit modules that the
    older trees this script measures lack. Returns the frames decoded."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "SLICE"
        stream.codec_context.thread_count = 0
        n = 0
        for frame in container.decode(stream):
            frame.to_ndarray(format="rgb24")
            n += 1
    return n


def stage_ms(pred) -> dict:
    """The Recognizer's milliseconds per stage (decode, preprocess, inference, total) of one
    ``recognize`` result: ``latency_ms`` is a StageTimes (to_dict()) now, a plain dict in c38edf8."""
    latency = pred.latency_ms
    values = latency if isinstance(latency, Mapping) else latency.to_dict()
    return {stage: float(values[stage]) for stage in STAGES}


def clocked(fn, *args):
    """(fn(*args), wall seconds, process CPU seconds)."""
    t0, c0 = time.perf_counter(), time.process_time()
    result = fn(*args)
    return result, time.perf_counter() - t0, time.process_time() - c0


def timed_decode_rgb(path) -> dict:
    frames, seconds, cpu = clocked(decode_rgb, path)
    return {"seconds": seconds, "cpu_seconds": cpu, "frames": frames}


def timed_offline_420(path) -> dict:
    """Every frame's MVs and full-size 4:2:0 residual (the offline all-frames mode)."""
    def read_all():
        with bs.open(str(path), rgb=None, residual_layout="420") as reader:
            return sum(1 for _ in reader)

    frames, seconds, cpu = clocked(read_all)
    return {"seconds": seconds, "cpu_seconds": cpu, "frames": frames}


def build_mv_package(workdir: Path) -> dict:
    """A random-init ``edge-mv`` INT8 package with the default package's labels and windowing, built
    in a child process (torch stays out of the measured process). {"path", "model"}."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))}
    cmd = [sys.executable, str(Path(__file__).resolve()), "--build-mv-package", str(workdir)]
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, env=env, timeout=1800)
    if proc.returncode != 0:
        raise RuntimeError(f"building the edge-mv package exited {proc.returncode} (its stderr is above)")
    return json.loads(proc.stdout)


def build_mv_package_child(workdir: str) -> dict:
    import importlib.util

    from edgekit.package import load_package, write_package

    # benchmarks/quantize.py, loaded under another name: it imports the `quantize` package, which
    # its own file name would shadow with this folder first on sys.path
    sys.path.remove(str(BENCHMARKS))
    sys.path[:0] = [str(REPO_ROOT)]
    sys.path.append(str(BENCHMARKS))
    spec = importlib.util.spec_from_file_location("bench_quantize", BENCHMARKS / "quantize.py")
    bench_quantize = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench_quantize)
    build_model_dir = bench_quantize.build_model_dir

    out = Path(workdir) / "edge-mv-random"
    pkg = out.with_suffix(".edgepkg")
    default = load_package(DEFAULT_PACKAGE).manifest
    if not pkg.exists():
        info = build_model_dir(out, "edge-mv", len(default.labels), calib=16, seed=0, bn_clips=16)
        meta = json.loads((out / "model.json").read_text())
        meta.update(labels=list(default.labels), preprocessing=default.preprocessing.to_dict(),
                    fusion=default.fusion.to_dict())
        (out / "model.json").write_text(json.dumps(meta))
        write_package(out, pkg, device="cpu", precision="int8")
        (out / "info.json").write_text(json.dumps(info))
    return {"path": str(pkg), "model": json.loads((out / "info.json").read_text())}


def preprocess_alone_ms(recognizer, path, repeats: int = 50) -> dict:
    """Milliseconds to prepare one window's inputs (frame selection + preprocessing) on its own,
    outside the running pipeline (where the decoding thread shares the cores): the first complete
    window of the clip, read as the Recognizer reads it; median and minimum of ``repeats``."""
    from edgekit import sampling

    options = dict(recognizer._reader_options)
    length, stride = recognizer.window_frames, recognizer.stride_frames
    if recognizer._planned_specs:
        options["wants"] = sampling.CausalPlan(recognizer._planned_specs, length, stride).arrive
    frames = []
    with bs.open(str(path), **options) as reader:
        for frame in reader:
            frames.append(frame)
            if len(frames) == length:
                break
    hw = (frames[0].height, frames[0].width)
    iframes = {f.gop_index: f.rgb for f in frames if f.rgb is not None}
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        recognizer.prepare_inputs(frames, hw, iframes, tail=len(frames) < length)
        times.append((time.perf_counter() - t0) * 1000)
    return {"median": round(statistics.median(times), 4), "min": round(min(times), 4), "frames": len(frames),
            "repeats": repeats}


def timed_recognize(recognizer, path) -> dict:
    pred, seconds, cpu = clocked(recognizer.recognize, str(path))
    return {"seconds": seconds, "cpu_seconds": cpu, "frames": pred.frames,
            "windows": len(pred.windows), "stage_ms": stage_ms(pred), "label": pred.label}


def cores_used(runs: list[dict]) -> float | None:
    """Median over runs of process CPU seconds / wall seconds: how many cores a command kept busy."""
    if not runs or "cpu_seconds" not in runs[0]:
        return None
    return round(statistics.median(r["cpu_seconds"] / r["seconds"] for r in runs), 3)


def reader_counts(recognizer, path) -> dict | None:
    """What the Recognizer's reader did with the clip (one untimed pass): pictures by type, packets
    decoded and pictures never decoded (no window reads them). None on trees without reader stats."""
    if not hasattr(recognizer, "windows"):
        return None
    run = recognizer.windows(str(path))
    list(run)
    stats = getattr(getattr(run, "reader", None), "stats", None)
    if stats is None:
        return None
    return {"frames": stats.frames, "kinds": dict(stats.kinds), "packets_decoded": stats.packets,
            "undecoded_frames": getattr(stats, "undecoded_frames", 0)}


# -- summaries --------------------------------------------------------------------------------------

def peak_rss_mib() -> float:
    """Peak RSS of this process so far (ru_maxrss: KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def median_run(runs: list[dict]) -> dict:
    """The run of median wall time (the lower middle one for an even count)."""
    return sorted(runs, key=lambda r: r["seconds"])[(len(runs) - 1) // 2]


def summarize_size(frames: int, rgb_runs: list[dict], rec_runs: list[dict]) -> dict:
    rgb_median, rgb_min = statistics.median(r["seconds"] for r in rgb_runs), min(r["seconds"] for r in rgb_runs)
    rec_median, rec_min = statistics.median(r["seconds"] for r in rec_runs), min(r["seconds"] for r in rec_runs)
    decode_rgb_fps, recognizer_fps = frames / rgb_median, frames / rec_median
    median = median_run(rec_runs)
    windows = median["windows"]
    # rounds are interleaved, so each round's own ratio saw the same load on both sides
    paired = [a["seconds"] / b["seconds"] for a, b in zip(rgb_runs, rec_runs)]
    return {
        "frames": frames,
        "decode_rgb_fps": round(decode_rgb_fps, 2),
        "recognizer_fps": round(recognizer_fps, 2),
        "ratio": round(recognizer_fps / decode_rgb_fps, 3),  # from the median seconds of each
        "decode_rgb_fps_best": round(frames / rgb_min, 2),
        "recognizer_fps_best": round(frames / rec_min, 2),
        "ratio_best": round(rgb_min / rec_min, 3),
        "ratio_paired_median": round(statistics.median(paired), 3),
        "ratio_per_repeat": [round(x, 3) for x in paired],
        "seconds": {"decode_rgb": {"median": round(rgb_median, 4), "min": round(rgb_min, 4),
                                   "runs": [round(r["seconds"], 4) for r in rgb_runs]},
                    "recognizer": {"median": round(rec_median, 4), "min": round(rec_min, 4),
                                   "runs": [round(r["seconds"], 4) for r in rec_runs]}},
        "cores_used": {"decode_rgb": cores_used(rgb_runs), "recognizer": cores_used(rec_runs)},
        "windows": windows,
        "stage_ms": {k: round(v, 3) for k, v in median["stage_ms"].items()},  # the median run's
        "stage_ms_per_window": {k: round(v / windows, 3) for k, v in median["stage_ms"].items()},
        "label": median["label"],
        "peak_rss_mib": round(peak_rss_mib(), 1),  # of the process so far (sizes run smallest first)
    }


def summarize_variant(frames: int, rgb_runs: list[dict], runs: list[dict]) -> dict:
    """fps and ratio against decode_rgb of one more command measured in the same rounds."""
    rgb_median = statistics.median(r["seconds"] for r in rgb_runs)
    median = statistics.median(r["seconds"] for r in runs)
    paired = [a["seconds"] / b["seconds"] for a, b in zip(rgb_runs, runs)]
    out = {"fps": round(frames / median, 2), "fps_best": round(frames / min(r["seconds"] for r in runs), 2),
           "ratio": round(rgb_median / median, 3), "ratio_paired_median": round(statistics.median(paired), 3),
           "ratio_per_repeat": [round(x, 3) for x in paired],
           "cores_used": cores_used(runs),
           "seconds": {"median": round(median, 4), "runs": [round(r["seconds"], 4) for r in runs]}}
    if "stage_ms" in runs[0]:
        m = median_run(runs)
        out.update(windows=m["windows"], stage_ms={k: round(v, 3) for k, v in m["stage_ms"].items()},
                   stage_ms_per_window={k: round(v / m["windows"], 3) for k, v in m["stage_ms"].items()})
    return out


# -- environment ------------------------------------------------------------------------------------

def tree_revision(tree: Path) -> str | None:
    """``git describe --always --dirty`` of the measured tree, None outside a git checkout."""
    try:
        proc = subprocess.run(["git", "-C", str(tree), "describe", "--always", "--dirty"],
                              capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if proc.returncode != 0:
        return None
    return proc.stdout.strip() or None


def environment() -> dict:
    import onnxruntime

    tree = Path(edgekit.__file__).resolve().parents[1]
    return {**machine(), "onnxruntime": onnxruntime.__version__, "edgekit": edgekit.__version__,
            "edgekit_file": edgekit.__file__,  # which tree was measured
            "edgekit_tree_revision": tree_revision(tree),
            "edgekit_native_kernels": bs.kernels().__name__ == "edgekit._kernels"}


# -- main -------------------------------------------------------------------------------------------

def benchmark(args) -> dict:
    t_start = time.perf_counter()
    load_start = os.getloadavg()
    log(f"measuring edgekit from {edgekit.__file__}")
    specs = {size: scaled_clip(size, args.frames_scale) for size in args.sizes}
    with tempfile.TemporaryDirectory(prefix="edgekit-bench-") as tmp:
        workdir = Path(args.workdir) if args.workdir else Path(tmp)
        clips = encode_clips(specs, workdir)

        t0 = time.perf_counter()
        options = {} if args.threads is None else {"threads": args.threads}
        recognizer = Recognizer.default(**options)
        load_s = time.perf_counter() - t0
        backend = repr(recognizer.backend)  # before close() turns it into "closed"
        log(f"{backend} loaded in {load_s:.2f} s")

        variants, mv_model = {}, None
        if "mv_only" in args.variants:
            mv_recognizer = None
            if args.mv_package:
                mv_recognizer = Recognizer(args.mv_package, **options)
            else:
                try:  # the bundled motion-vector-only default, where this tree ships one
                    mv_recognizer = Recognizer.default("mv", **options)
                    mv_model = {"source": "bundled", "package": "Recognizer.default('mv')",
                                "model": mv_recognizer.package.manifest.model, "classes": len(mv_recognizer.labels)}
                except Exception as err:  # noqa: BLE001 - older trees: no such default
                    log(f"no bundled mv default ({type(err).__name__}): building a random-init edge-mv (speed only)")
            if mv_recognizer is None:
                built = build_mv_package(workdir)
                mv_recognizer, mv_model = Recognizer(built["path"], **options), built["model"]
            variants["mv_only"] = lambda path: timed_recognize(mv_recognizer, path)
        if "offline_420" in args.variants:
            variants["offline_420"] = timed_offline_420

        results = {}
        with recognizer:
            for size in args.sizes:
                path = clips[size]["path"]
                warm_rgb, warm_rec = timed_decode_rgb(path), timed_recognize(recognizer, path)  # untimed warm-up
                if warm_rgb["frames"] != warm_rec["frames"]:
                    raise RuntimeError(f"{size}: PyAV decoded {warm_rgb['frames']} frames, the Recognizer read "
                                       f"{warm_rec['frames']}")
                for name, run in variants.items():
                    if run(path)["frames"] != warm_rgb["frames"]:
                        raise RuntimeError(f"{size}: {name} read another number of frames than PyAV decoded")
                commands = {"decode_rgb": timed_decode_rgb, "recognizer": lambda p: timed_recognize(recognizer, p),
                            **variants}
                runs: dict[str, list] = {name: [] for name in commands}
                order = list(commands)
                for r in range(args.repeats):
                    # rotate which goes first: none always runs right after another's allocations
                    for name in order[r % len(order):] + order[:r % len(order)]:
                        runs[name].append(commands[name](path))
                    log(f"round {r + 1}/{args.repeats} {size}: "
                        + ", ".join(f"{name} {runs[name][-1]['seconds']:.3f} s" for name in order))
                results[size] = {"clip": {**clips[size]["spec"], "bytes": clips[size]["bytes"]},
                                 **summarize_size(warm_rgb["frames"], runs["decode_rgb"], runs["recognizer"]),
                                 "preprocess_ms_per_window_alone": preprocess_alone_ms(recognizer, path),
                                 "reader": reader_counts(recognizer, path),
                                 "variants": {name: summarize_variant(warm_rgb["frames"], runs["decode_rgb"], runs[name])
                                              for name in variants}}
                if "mv_only" in variants:
                    results[size]["variants"]["mv_only"]["reader"] = reader_counts(mv_recognizer, path)
                log(f"{size}: decode_rgb {results[size]['decode_rgb_fps']} fps, recognizer "
                    f"{results[size]['recognizer_fps']} fps, ratio {results[size]['ratio']}")
            backend_threads = getattr(recognizer.backend, "threads", None)

    return {
        "benchmark": "Recognizer.default().recognize(clip) vs PyAV decode to RGB (frames/s)",
        "command": [Path(sys.argv[0]).name, *sys.argv[1:]],
        "settings": {
            "sizes": args.sizes,
            "frames_scale": args.frames_scale,
            "repeats": args.repeats,
            "threads": args.threads,
            "workdir": args.workdir,
            "timing": "per clip: one untimed warm-up of each command, then `repeats` rounds running both, "
                      "alternating which goes first; fps = frames / median (or min: *_best) wall seconds; "
                      "ratio = recognizer_fps / decode_rgb_fps; ratio_paired_median = median over rounds of "
                      "that round's ratio; stage_ms from the median recognize() run",
            "decoders": "both sides decode with slice threads, thread_count 0 (one per core): the reader's "
                        "threads='auto', which recognize() uses; --threads sets only the Recognizer's "
                        "inference threads",
            "recognizer": repr(recognizer),
            "backend": backend,
            "inference_threads": backend_threads,
            "window_frames": recognizer.window_frames,
            "stride_frames": recognizer.stride_frames,
            "load_s": round(load_s, 3),
            "variants": list(args.variants),
            "mv_only_model": mv_model or args.mv_package,
        },
        "env": environment(),
        "load_average_start": [round(x, 2) for x in load_start],
        "load_average_end": [round(x, 2) for x in os.getloadavg()],
        "results": results,
        "peak_rss_mib": round(peak_rss_mib(), 1),
        "elapsed_s": round(time.perf_counter() - t_start, 1),
    }


def parse_sizes(values: list[str], parser: argparse.ArgumentParser) -> list[str]:
    sizes = [s for value in values for s in value.split(",") if s]
    unknown = [s for s in sizes if s not in CLIPS]
    if unknown or not sizes:
        parser.error(f"unknown size(s) {unknown}; choose from {', '.join(CLIPS)}")
    return sorted(dict.fromkeys(sizes), key=list(CLIPS).index)  # smallest first: peak RSS grows with size


def main(argv=None) -> int:
    parser = script_parser("Benchmark Recognizer.default().recognize(clip) against PyAV decoding to RGB",
                           "python benchmarks/recognizer.py --repeats 5 --workdir /tmp/edgekit-bench > recognizer.json")
    parser.add_argument("--sizes", nargs="+", default=list(CLIPS), metavar="WxH",
                        help=f"clips to measure, space- or comma-separated (default: {' '.join(CLIPS)})")
    parser.add_argument("--frames-scale", type=float, default=1.0,
                        help="multiply every clip's frame count (at least one GOP is kept), e.g. 0.1 for a smoke run")
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds per clip (default 5)")
    parser.add_argument("--threads", type=int, default=None,
                        help="the Recognizer's inference threads (default: its backend's own)")
    parser.add_argument("--workdir", help="where encoded clips are cached (default: a temporary directory)")
    parser.add_argument("--variants", default="mv_only,offline_420",
                        help="more commands timed in the same rounds: mv_only, offline_420, or 'none' "
                             "(default: mv_only,offline_420)")
    parser.add_argument("--mv-package", metavar="PKG",
                        help="the motion-vector-only package for mv_only (default: the bundled Recognizer.default('mv'); "
                             "a random-init edge-mv, built, in trees without one)")
    parser.add_argument("--encode-clips", nargs=2, metavar=("WORKDIR", "SPECS"), help=argparse.SUPPRESS)
    parser.add_argument("--build-mv-package", metavar="WORKDIR", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.encode_clips:  # internal: the child process of encode_clips()
        print(json.dumps(encode_clips_child(*args.encode_clips)))
        return 0
    if args.build_mv_package:  # internal: the child process of build_mv_package()
        print(json.dumps(build_mv_package_child(args.build_mv_package)))
        return 0
    args.variants = [] if args.variants == "none" else [v for v in args.variants.split(",") if v]
    if any(v not in ("mv_only", "offline_420") for v in args.variants):
        parser.error(f"unknown --variants {args.variants}; choose from mv_only, offline_420, none")
    args.sizes = parse_sizes(args.sizes, parser)
    if args.repeats < 1:
        parser.error("--repeats must be >= 1")
    if args.frames_scale <= 0:
        parser.error("--frames-scale must be > 0")
    if args.threads is not None and args.threads < 1:
        parser.error("--threads must be >= 1")
    print(json.dumps(benchmark(args), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
