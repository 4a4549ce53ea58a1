"""What FFmpeg's decoder options save on the benchmark clips: wall and CPU seconds of decoding.

The motion-vector-only path decodes reference pictures with motion-vector export and asks FFmpeg to
skip what it can (``edgekit.bitstream`` with ``residual=False, rgb=None``). This measures, on the
same clips as ``benchmarks/recognizer.py`` (x264 with 2 B-frames, GOP 12), plain PyAV decoding of
every picture under each option set, side by side in interleaved rounds, with FFmpeg's slice
threads (one per core) as the reader uses them:

  plain              no option
  export_mvs         flags2=+export_mvs (what every edgekit read asks)
  no_loop_filter     + skip_loop_filter=all
  no_loop_filter_idct  + skip_idct=all as well (the reader's motion-vector-only setting)
  references_only    the last, with non-reference pictures not decoded (skip_frame=nonref)
  rgb                plain decoding and conversion of every picture to RGB (the baseline)
  offline_420        edgekit's offline all-frames pass, ``edgekit.bitstream.open(clip, rgb=None,
                     residual_layout="420")``: every picture decoded with motion-vector export and
                     its motion-compensated residual computed (Y full size, U/V half size)

The CPU milliseconds say what the whole of each costs the machine, whatever the threading: the
offline pass needs ``export_mvs``'s decoding plus the residuals, the baseline plain decoding plus
the colour conversion (``offline_420_cpu_vs_rgb``).

Per option set: wall and process CPU seconds (medians over --repeats rounds), pictures decoded,
CPU milliseconds per decoded picture, and the ratio of each to ``export_mvs``. Prints ONE JSON
object on stdout; progress goes to stderr.

Example:
    python benchmarks/decoder_options.py --workdir /tmp/edgekit-bench > decoder-options.json
    python benchmarks/decoder_options.py --sizes 1280x720 --frames-scale 0.2 --repeats 1   # smoke test
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import av

sys.path.append(str(Path(__file__).resolve().parent))  # benchmarks/_env.py, run as a script

from _env import machine  # noqa: E402
from recognizer import CLIPS, encode_clips, log, scaled_clip  # noqa: E402

MVS = {"flags2": "+export_mvs"}
OPTION_SETS = {
    "plain": ({}, None),
    "export_mvs": (MVS, None),
    "no_loop_filter": ({**MVS, "skip_loop_filter": "all"}, None),
    "no_loop_filter_idct": ({**MVS, "skip_loop_filter": "all", "skip_idct": "all"}, None),
    "references_only": ({**MVS, "skip_loop_filter": "all", "skip_idct": "all"}, "NONREF"),
    "rgb": ({}, None),
    "offline_420": (None, None),  # edgekit's reader, not plain PyAV: see the module docstring
}


def decode(path: str, options: dict, skip_frame: str | None, rgb: bool) -> dict:
    """Decode every packet of ``path`` with ``options``; wall and CPU seconds, pictures out."""
    with av.open(path) as container:
        stream = container.streams.video[0]
        ctx = stream.codec_context
        ctx.thread_type, ctx.thread_count = "SLICE", 0
        ctx.options = dict(options)
        if skip_frame:
            ctx.skip_frame = skip_frame
        t0, c0 = time.perf_counter(), time.process_time()
        pictures = 0
        for frame in container.decode(stream):
            if rgb:
                frame.to_ndarray(format="rgb24")
            pictures += 1
        return {"seconds": time.perf_counter() - t0, "cpu_seconds": time.process_time() - c0, "pictures": pictures}


def offline_420(path: str) -> dict:
    """edgekit's offline all-frames pass over ``path`` (4:2:0 residuals): wall and CPU seconds (both
    process-wide: the reader's decoder and kernel threads included), pictures out."""
    import edgekit.bitstream as bs

    t0, c0 = time.perf_counter(), time.process_time()
    pictures = 0
    with bs.open(path, rgb=None, residual_layout="420") as reader:
        for _ in reader:
            pictures += 1
    return {"seconds": time.perf_counter() - t0, "cpu_seconds": time.process_time() - c0, "pictures": pictures}


def measure(name: str, path: str) -> dict:
    """One timed run of option set ``name`` on ``path``."""
    if name == "offline_420":
        return offline_420(path)
    return decode(path, *OPTION_SETS[name], rgb=name == "rgb")


def summarize(runs: dict[str, list[dict]]) -> dict:
    out = {}
    for name, items in runs.items():
        wall = statistics.median(r["seconds"] for r in items)
        cpu = statistics.median(r["cpu_seconds"] for r in items)
        pictures = items[0]["pictures"]
        out[name] = {"options": OPTION_SETS[name][0], "skip_frame": OPTION_SETS[name][1],
                     "wall_ms": round(1000 * wall, 2), "cpu_ms": round(1000 * cpu, 2), "pictures": pictures,
                     "cpu_ms_per_picture": round(1000 * cpu / pictures, 3), "cores_used": round(cpu / wall, 3)}
    base = out["export_mvs"]
    for item in out.values():
        item["wall_vs_export_mvs"] = round(item["wall_ms"] / base["wall_ms"], 3)
        item["cpu_vs_export_mvs"] = round(item["cpu_ms"] / base["cpu_ms"], 3)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="example:\n  python benchmarks/decoder_options.py --workdir /tmp/edgekit-bench")
    parser.add_argument("--sizes", default="1280x720,1920x1080",
                        help="comma-separated H.264 clip sizes of benchmarks/recognizer.py (default 1280x720,1920x1080)")
    parser.add_argument("--frames-scale", type=float, default=1.0, help="scale the clips' frame counts")
    parser.add_argument("--repeats", type=int, default=7, help="interleaved rounds (default 7)")
    parser.add_argument("--workdir", help="where encoded clips are cached (default: a temporary directory)")
    args = parser.parse_args(argv)
    sizes = [s.strip() for s in args.sizes.split(",") if s.strip()]
    unknown = [s for s in sizes if s not in CLIPS or CLIPS[s]["codec"] != "h264"]
    if unknown or args.repeats < 1:
        parser.error(f"sizes must be among {[s for s in CLIPS if CLIPS[s]['codec'] == 'h264']} and repeats >= 1")
    with tempfile.TemporaryDirectory(prefix="edgekit-bench-") as tmp:
        workdir = Path(args.workdir) if args.workdir else Path(tmp)
        clips = encode_clips({s: scaled_clip(s, args.frames_scale) for s in sizes}, workdir)
        results = {}
        for size in sizes:
            path = clips[size]["path"]
            runs: dict[str, list] = {name: [] for name in OPTION_SETS}
            names = list(OPTION_SETS)
            for name in names:  # untimed warm-up
                measure(name, path)
            for r in range(args.repeats):
                for name in names[r % len(names):] + names[:r % len(names)]:
                    runs[name].append(measure(name, path))
                log(f"round {r + 1}/{args.repeats} {size}")
            options = summarize(runs)
            results[size] = {"clip": {**clips[size]["spec"], "bytes": clips[size]["bytes"]}, "options": options,
                             "offline_420_cpu_vs_rgb": round(options["offline_420"]["cpu_ms"] / options["rgb"]["cpu_ms"], 3),
                             "offline_420_wall_vs_rgb": round(options["offline_420"]["wall_ms"] / options["rgb"]["wall_ms"], 3)}
    print(json.dumps({"benchmark": "decoder_options", "command": ["decoder_options.py", *(argv or sys.argv[1:])],
                      "settings": {"repeats": args.repeats, "frames_scale": args.frames_scale,
                                   "threads": "slice threads, thread_count 0 (one per core)"},
                      "env": machine(), "results": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
