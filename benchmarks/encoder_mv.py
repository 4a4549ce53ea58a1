"""Encoder-side motion vectors: source frames/s per CPU core from Jetson-style MVInfo buffers.

What a camera application pays to run edgekit on the motion vectors its own encoder reports
(``edgekit.bitstream.EncoderMotion``), with no decoding at all. The input is what an NVIDIA Jetson
encoder hands over per frame at 1280x720: one 4-byte ``MVInfo`` record (bit fields mv_x:16, mv_y:14,
weight:2) per 16x16 macroblock, 80 x 45 records, I-frames every ``--gop`` frames. The records are
synthetic but shaped like a camera's: a static background with +-1 px jitter on a few blocks and
several objects moving at constant speeds. They are made before timing (they stand for the
encoder's buffers); each timed pass does everything after that: ``MotionFrame.from_mvinfo`` on the
raw bytes, then the reader (or the Recognizer) up to CompressedFrames (or predictions).

Measured, each a warm-up pass then ``--repeats`` timed passes over ``--frames`` frames:

- ``reader``: ``EncoderMotion(...).open(...)`` iterated to the end, per frame (``accumulate=False``)
  and accumulated with ``trace="block"`` (8x8 cells) and ``trace="pixel"`` (every pixel).
- ``recognizer``: ``Recognizer(package, threads=1).windows(source)`` end to end (reader, frame
  selection, preprocessing, ONNX Runtime) for a motion-vector-only model of each representation.
  The model is a small real CNN built here with ``onnx.helper`` (3 TSN segments of 2x112x112 MV,
  conv 2->16 s2, conv 16->32 s2, global pool, linear, segment mean; random weights; FP32),
  packaged with ``edgekit.package.write_package``, windows of 48 frames every 24 (the default
  model's). Its inference cost is model-specific: ``stage_ms_per_window`` separates it.
  ``accumulated_block_trace`` runs the accumulated model with the Recognizer's reader options set to
  ``trace="block"`` (what the training cache uses by default), labelled as such: the Recognizer
  itself passes ``trace="block"`` only to models that read residuals.

Per core: the process is pinned to one CPU (``os.sched_setaffinity``; ``--core``) and ONNX Runtime
runs one thread. ``fps_cpu`` = frames / process CPU seconds (what one core spends, whatever else
shares it), ``fps_wall`` = frames / wall seconds; medians over the repeats and the best pass.
``core_share_at_25fps_percent`` = 25 / fps_cpu x 100: the share of one core a 25 fps camera costs.
Target: >= 5,000 frames/s per core from encoder MVs (a 25 fps camera < 0.5 % of a core).

Prints ONE JSON object on stdout; progress goes to stderr.

Example:
    python benchmarks/encoder_mv.py > docs/results/encoder-mv.json
    python benchmarks/encoder_mv.py --size 320x240 --frames 60 --repeats 1   # smoke test
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

BENCHMARKS = Path(__file__).resolve().parent
sys.path.append(str(BENCHMARKS))  # benchmarks/_env.py, run as a script

from _env import machine, script_parser  # noqa: E402

TARGET_FPS_PER_CORE = 5000
MB = 16
LABELS = ["idle", "walk", "run", "wave", "fall", "enter", "leave", "crowd"]
SEGMENTS, INPUT = 3, 112
WINDOW_FRAMES, STRIDE_FRAMES = 48, 24


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# -- input: Jetson MVInfo buffers ------------------------------------------------------------------------

def mvinfo_records(mv_x: np.ndarray, mv_y: np.ndarray) -> bytes:
    words = (mv_x.astype(np.int64) & 0xFFFF) | ((mv_y.astype(np.int64) & 0x3FFF) << 16)
    return words.astype("<u4").tobytes()


def synthetic_encoder(frames: int, width: int, height: int, fps: float, gop: int, seed: int = 0) -> list[tuple]:
    """(kind, pts, MVInfo bytes or None) per frame: a camera's worth of motion, deterministic by seed."""
    rng = np.random.default_rng(seed)
    rows, cols = -(-height // MB), -(-width // MB)
    objects = [{"pos": rng.uniform([0, 0], [cols, rows]), "vel": rng.uniform(-0.25, 0.25, 2),
                "size": rng.integers(3, 9, 2)} for _ in range(4)]
    out = []
    for i in range(frames):
        pts = i / fps
        if i % gop == 0:
            out.append(("I", pts, None))
        else:
            mv_x, mv_y = np.zeros((rows, cols), np.int64), np.zeros((rows, cols), np.int64)
            jitter = rng.random((rows, cols)) < 0.05
            mv_x[jitter], mv_y[jitter] = rng.integers(-1, 2, jitter.sum()), rng.integers(-1, 2, jitter.sum())
            for ob in objects:
                ob["pos"] = (ob["pos"] + ob["vel"]) % [cols, rows]
                c0, r0 = ob["pos"].astype(int)
                step = np.rint(-ob["vel"] * MB).astype(int)  # coded sign: from the block to its reference
                mv_x[r0:r0 + ob["size"][1], c0:c0 + ob["size"][0]] = step[0]
                mv_y[r0:r0 + ob["size"][1], c0:c0 + ob["size"][0]] = step[1]
            out.append(("P", pts, mvinfo_records(mv_x, mv_y)))
    return out


def motion_frames(records):
    from edgekit.bitstream import MotionFrame

    for kind, pts, raw in records:
        yield MotionFrame(kind, pts) if raw is None else MotionFrame.from_mvinfo(kind, pts, raw, block=MB)


# -- a motion-vector-only model --------------------------------------------------------------------------

def mv_model_onnx(seed: int = 0) -> bytes:
    """A small TSN over motion vectors, built with onnx.helper (needs the ``onnx`` package: edgekit[train])."""
    try:
        import onnx
        from onnx import TensorProto, helper, numpy_helper
    except ImportError:
        raise SystemExit("the benchmark model is built with the onnx package: pip install onnx (or edgekit[train])")
    rng = np.random.default_rng(seed)

    def weight(name, shape, fan_in):
        return numpy_helper.from_array((rng.standard_normal(shape) * np.sqrt(2 / fan_in)).astype(np.float32), name)

    k = len(LABELS)
    inits = [weight("w1", (16, 2, 3, 3), 18), numpy_helper.from_array(np.zeros(16, np.float32), "b1"),
             weight("w2", (32, 16, 3, 3), 144), numpy_helper.from_array(np.zeros(32, np.float32), "b2"),
             weight("w3", (32, k), 32), numpy_helper.from_array(np.zeros(k, np.float32), "b3"),
             numpy_helper.from_array(np.array([SEGMENTS, 2, INPUT, INPUT], np.int64), "folded"),
             numpy_helper.from_array(np.array([1, SEGMENTS, k], np.int64), "unfolded")]
    nodes = [helper.make_node("Reshape", ["motion", "folded"], ["x0"]),
             helper.make_node("Conv", ["x0", "w1", "b1"], ["x1"], strides=[2, 2], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["x1"], ["x2"]),
             helper.make_node("Conv", ["x2", "w2", "b2"], ["x3"], strides=[2, 2], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["x3"], ["x4"]),
             helper.make_node("GlobalAveragePool", ["x4"], ["x5"]),
             helper.make_node("Flatten", ["x5"], ["x6"]),
             helper.make_node("Gemm", ["x6", "w3", "b3"], ["x7"]),
             helper.make_node("Reshape", ["x7", "unfolded"], ["x8"]),
             helper.make_node("ReduceMean", ["x8"], ["logits"], axes=[1], keepdims=0)]
    graph = helper.make_graph(nodes, "mv-tsn", [helper.make_tensor_value_info("motion", TensorProto.FLOAT,
                                                                             [1, SEGMENTS, 2, INPUT, INPUT])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, k])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="edgekit-bench")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def mv_package(workdir: Path, representation: str) -> Path:
    from edgekit.package import write_package
    from edgekit.spec import InputSpec

    model_dir = workdir / f"mv-{representation}"
    model_dir.mkdir(parents=True, exist_ok=True)
    (model_dir / "fp32.onnx").write_bytes(mv_model_onnx())
    spec = InputSpec("motion", "mv", (1, SEGMENTS, 2, INPUT, INPUT), representation=representation)
    (model_dir / "model.json").write_text(json.dumps({
        "model": f"mv-tsn-{representation}", "labels": LABELS, "inputs": [spec.to_dict()], "outputs": ["logits"],
        "preprocessing": {"window_frames": WINDOW_FRAMES, "stride_frames": STRIDE_FRAMES},
        "fusion": {"softmax": True}}))
    return write_package(model_dir, workdir / f"mv-{representation}.edgepkg", precision="fp32")


# -- timing ---------------------------------------------------------------------------------------------

def timed(run) -> dict:
    w0, c0 = time.perf_counter(), time.process_time()
    extra = run()
    return {"wall_s": time.perf_counter() - w0, "cpu_s": time.process_time() - c0, **extra}


def summarize(frames: int, runs: list[dict]) -> dict:
    wall = statistics.median(r["wall_s"] for r in runs)
    cpu = statistics.median(r["cpu_s"] for r in runs)
    fps_cpu = frames / cpu
    return {
        "frames": frames,
        "fps_cpu": round(fps_cpu, 1),
        "fps_wall": round(frames / wall, 1),
        "fps_cpu_best": round(frames / min(r["cpu_s"] for r in runs), 1),
        "us_per_frame_cpu": round(cpu / frames * 1e6, 2),
        "core_share_at_25fps_percent": round(25 / fps_cpu * 100, 3),
        "meets_target": fps_cpu >= TARGET_FPS_PER_CORE,
        "runs": [{"wall_s": round(r["wall_s"], 4), "cpu_s": round(r["cpu_s"], 4)} for r in runs],
    }


def reader_pass(records, width, height, fps, options) -> dict:
    from edgekit.bitstream import EncoderMotion

    n = 0
    with EncoderMotion(motion_frames(records), width=width, height=height, fps=fps).open(**options) as reader:
        for _ in reader:
            n += 1
    if n != len(records):
        raise RuntimeError(f"the reader yielded {n} frames of {len(records)}")
    return {}


def recognizer_pass(recognizer, records, width, height, fps) -> dict:
    from edgekit.bitstream import EncoderMotion

    run = recognizer.windows(EncoderMotion(motion_frames(records), width=width, height=height, fps=fps))
    stages = {"decode": 0.0, "preprocess": 0.0, "inference": 0.0}
    windows = 0
    for window in run:
        windows += 1
        for k in stages:
            stages[k] += getattr(window.times, k)
    if run.frames != len(records):
        raise RuntimeError(f"the Recognizer read {run.frames} frames of {len(records)}")
    return {"windows": windows, "stage_ms": stages, "trace": run.reader.trace, "accumulate": run.reader.accumulate}


def measure(label, frames, repeats, run) -> dict:
    run()  # warm-up
    runs = [timed(run) for _ in range(repeats)]
    result = summarize(frames, runs)
    last = runs[-1]
    if "windows" in last:
        median = sorted(runs, key=lambda r: r["cpu_s"])[(len(runs) - 1) // 2]
        result.update(windows=median["windows"], reader_trace=median["trace"], reader_accumulate=median["accumulate"],
                      stage_ms_per_window={k: round(v / median["windows"], 3) for k, v in median["stage_ms"].items()})
    log(f"{label}: {result['fps_cpu']:,.0f} frames/s per core (CPU), {result['fps_wall']:,.0f} wall, "
        f"{result['core_share_at_25fps_percent']} % of a core at 25 fps")
    return result


def tree_revision(tree: Path) -> str | None:
    try:
        proc = subprocess.run(["git", "-C", str(tree), "describe", "--always", "--dirty"], capture_output=True,
                              text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout.strip() or None if proc.returncode == 0 else None


def benchmark(args) -> dict:
    t_start = time.perf_counter()
    pinned = None
    if not args.no_pin and hasattr(os, "sched_setaffinity"):
        allowed = sorted(os.sched_getaffinity(0))
        core = allowed[-1] if args.core is None else args.core
        if core not in allowed:
            raise SystemExit(f"--core {core} is not among the CPUs this process may use: {allowed}")
        os.sched_setaffinity(0, {core})  # before ONNX Runtime makes its threads: they inherit it
        pinned = core
    import onnxruntime

    import edgekit
    import edgekit.bitstream as bs
    from edgekit import Recognizer

    width, height = args.width, args.height
    fps, frames = 25.0, args.frames
    load_start = os.getloadavg()
    log(f"pinned to CPU {pinned}; {frames} frames of {width}x{height} MVInfo ({-(-width // MB)}x{-(-height // MB)} "
        f"records of 4 bytes), I-frame every {args.gop}")
    records = synthetic_encoder(frames, width, height, fps, args.gop)
    reader = {}
    modes = {"per_frame": {"accumulate": False},
             "accumulated_block_trace": {"accumulate": True, "trace": "block"},
             "accumulated_pixel_trace": {"accumulate": True, "trace": "pixel"}}
    for name, options in modes.items():
        options = {**options, "threads": 1}
        reader[name] = {"options": options, **measure(f"reader {name}", frames, args.repeats,
                                                       lambda o=options: reader_pass(records, width, height, fps, o))}
    recognizer = {}
    with tempfile.TemporaryDirectory(prefix="edgekit-encoder-mv-") as tmp:
        packages = {r: mv_package(Path(tmp), r) for r in ("frame", "accumulated")}
        variants = [("frame", "frame", None), ("accumulated", "accumulated", None),
                    ("accumulated_block_trace", "accumulated", "block")]
        for name, representation, trace in variants:
            with Recognizer(packages[representation], threads=1) as rec:
                if trace is not None:
                    rec._reader_options["trace"] = trace  # see the module docstring: labelled, not the default
                description = repr(rec)
                result = measure(f"recognizer {name}", frames, args.repeats,
                                 lambda r=rec: recognizer_pass(r, records, width, height, fps))
            recognizer[name] = {"package": description, "representation": representation,
                                "reader_options_patched": trace is not None, **result}
    tree = Path(edgekit.__file__).resolve().parents[1]
    headline = reader["per_frame"]["fps_cpu"]
    return {
        "benchmark": "encoder-side motion vectors (Jetson MVInfo) -> CompressedFrames / predictions, frames/s per core",
        "command": [Path(sys.argv[0]).name, *sys.argv[1:]],
        "settings": {"width": width, "height": height, "frames": frames, "gop": args.gop, "repeats": args.repeats,
                     "fps": fps, "mvinfo": f"{MB}x{MB} blocks, 4-byte records, scale -1 (whole pixels, coded sign)",
                     "pinned_cpu": pinned, "inference_threads": 1,
                     "model": f"mv TSN {SEGMENTS}x2x{INPUT}x{INPUT} (onnx.helper, FP32), window {WINDOW_FRAMES} "
                              f"every {STRIDE_FRAMES}",
                     "timing": "warm-up pass, then `repeats` passes; fps_cpu = frames / median process CPU seconds; "
                               "each pass builds MotionFrames from the raw MVInfo bytes and reads them to the end"},
        "env": {**machine(), "onnxruntime": onnxruntime.__version__, "edgekit": edgekit.__version__,
                "edgekit_file": edgekit.__file__, "edgekit_tree_revision": tree_revision(tree),
                "edgekit_native_kernels": bs.kernels().__name__ == "edgekit._kernels"},
        "target_fps_per_core": TARGET_FPS_PER_CORE,
        "summary": {"reader_per_frame_fps_per_core": headline,
                    "reader_accumulated_block_fps_per_core": reader["accumulated_block_trace"]["fps_cpu"],
                    "recognizer_frame_fps_per_core": recognizer["frame"]["fps_cpu"],
                    "recognizer_accumulated_fps_per_core": recognizer["accumulated"]["fps_cpu"],
                    "camera_25fps_core_share_percent": reader["per_frame"]["core_share_at_25fps_percent"]},
        "reader": reader,
        "recognizer": recognizer,
        "load_average_start": [round(x, 2) for x in load_start],
        "load_average_end": [round(x, 2) for x in os.getloadavg()],
        "elapsed_s": round(time.perf_counter() - t_start, 1),
    }


def main(argv=None) -> int:
    parser = script_parser("Benchmark encoder-side motion vectors (Jetson MVInfo) through edgekit, per CPU core",
                           "python benchmarks/encoder_mv.py > docs/results/encoder-mv.json")
    parser.add_argument("--size", default="1280x720", help="picture size WxH (default 1280x720)")
    parser.add_argument("--frames", type=int, default=1500, help="frames per pass (default 1500: 60 s at 25 fps)")
    parser.add_argument("--gop", type=int, default=30, help="I-frame interval (default 30, the Jetson encoder's)")
    parser.add_argument("--repeats", type=int, default=5, help="timed passes per measurement (default 5)")
    parser.add_argument("--core", type=int, default=None, help="CPU to pin to (default: the last one allowed)")
    parser.add_argument("--no-pin", action="store_true", help="do not pin the process to one CPU")
    args = parser.parse_args(argv)
    try:
        args.width, args.height = (int(v) for v in args.size.lower().split("x"))
    except ValueError:
        parser.error(f"--size must be WxH, e.g. 1280x720, got {args.size!r}")
    if not (16 <= args.width <= 8192 and 16 <= args.height <= 8192):
        parser.error("--size must be between 16x16 and 8192x8192")
    if args.frames < args.gop or args.gop < 1 or args.repeats < 1:
        parser.error("need --gop >= 1, --frames >= --gop and --repeats >= 1")
    print(json.dumps(benchmark(args), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
