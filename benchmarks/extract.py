"""Frames/s of edgekit.bitstream against bare PyAV decoding and motion-vector-extractor.

Encodes two deterministic clips with PyAV (cached under --workdir), then times, in one process and
one run, on each clip:

  floor                       PyAV decode with flags2=+export_mvs, MV side data to numpy
  floor_fast_mv               the same with the decoder options edgekit's MV-only mode adds
                              (skip_loop_filter=all, skip_idct=all): edgekit's own floor there
  decode_rgb                  PyAV decode + frame.to_ndarray(format="rgb24") of every frame
  mvextractor                 motion-vector-extractor's VideoCap, motion vectors only
  edgekit_mv_only             edgekit.bitstream.open(path, residual=False, rgb=None)
  edgekit_full_frame          open(path): MV + residual + I-frame RGB, per-frame representation
  edgekit_full_accumulated    open(path, accumulate=True)
  edgekit_full_*_numpy        the two above with EDGEKIT_NATIVE=0 (numpy kernels: the "before")

Timing is round-robin: every round runs each variant once, in a rotated order, so slow phases of
a shared machine spread over all variants; a variant's figure is its best round (max fps), with
the median beside it. One timed run reads the clip as many times ("passes") as it takes to last
at least --min-seconds (estimated from an untimed one-GOP warm-up), so a fast variant on the small
clip is not measured over a few milliseconds, where one scheduler hiccup changes the result.
Ratios come three ways: from the best fps (the targets use these), from the median fps, and per
CPU-second (process CPU time per frame: the throughput ratio when every core is busy).

A memory-flatness check reads a long clip in a fresh child process and compares its resident set
size at 10 % and at 100 % of the frames.

Prints ONE JSON object on stdout; progress goes to stderr.

Example:
    python benchmarks/extract.py --repeats 3 --workdir /tmp/edgekit-bench > extract.json
    python benchmarks/extract.py --quick          # smoke test: short clips, one round
"""

from __future__ import annotations

import argparse
import json
import os
import math
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import av

sys.path.append(str(Path(__file__).resolve().parent))  # benchmarks/_clips.py, run as a script

import edgekit  # noqa: E402
import edgekit.bitstream as bs  # noqa: E402
from edgekit._versions import distribution_version  # noqa: E402
from _clips import ClipSpec, encode_clip  # noqa: E402
from _env import high_water_rss_mib, machine, reset_peak_rss, script_parser  # noqa: E402

MIB = 1024 * 1024


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# -- clips ------------------------------------------------------------------------------------------

def clip_specs(quick: bool) -> dict[str, ClipSpec]:
    """The two benchmark clips; --quick keeps the codecs and GOP structures, with fewer frames."""
    if quick:
        return {
            "mpeg4_340x256": ClipSpec("mpeg4", 340, 256, frames=48, gop=12, bframes=0, qscale=3, objects=4),
            "h264_640x360_b2": ClipSpec("h264", 640, 360, frames=24, gop=12, bframes=2, crf=23, objects=6),
        }
    return {
        "mpeg4_340x256": ClipSpec("mpeg4", 340, 256, frames=600, gop=12, bframes=0, qscale=3, objects=4),
        "h264_1920x1080_b2": ClipSpec("h264", 1920, 1080, frames=120, gop=12, bframes=2, crf=23, objects=6),
    }


def memory_spec(quick: bool) -> ClipSpec:
    """A long MPEG-4 clip (same content generator as the 340x256 clip, continued)."""
    return ClipSpec("mpeg4", 340, 256, frames=240 if quick else 3000, gop=12, bframes=0, qscale=3, objects=4)


# -- variants: each reads the whole clip (or its first `limit` frames) and returns frames read --------

@contextmanager
def native_kernels(enabled: bool):
    """EDGEKIT_NATIVE as edgekit reads it when a Reader is constructed; restored afterwards."""
    old = os.environ.get("EDGEKIT_NATIVE")
    os.environ["EDGEKIT_NATIVE"] = "1" if enabled else "0"
    try:
        yield
    finally:
        if old is None:
            del os.environ["EDGEKIT_NATIVE"]
        else:
            os.environ["EDGEKIT_NATIVE"] = old


def pyav_floor(path, limit=None, fast_mv=False, stats=None) -> int:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]  # PyAV's default threading: slice threads, one per core
        if stats is not None:
            stats["thread_type"] = str(stream.thread_type)
        options = {"flags2": "+export_mvs"}
        if fast_mv:
            options.update(skip_loop_filter="all", skip_idct="all")
        stream.codec_context.options = options
        n = 0
        for frame in container.decode(stream):
            side = frame.side_data.get("MOTION_VECTORS")
            if side is not None:
                side.to_ndarray()
            n += 1
            if n == limit:
                break
    return n


def pyav_rgb(path, limit=None) -> int:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]  # as pyav_floor; to_ndarray's swscale: threads=0 (auto)
        n = 0
        for frame in container.decode(stream):
            frame.to_ndarray(format="rgb24")
            n += 1
            if n == limit:
                break
    return n


def mvextractor_read(path, limit=None) -> int:
    from mvextractor.videocap import VideoCap

    cap = VideoCap()
    if not cap.open(str(path)):
        raise RuntimeError(f"VideoCap.open failed on {path}")
    try:
        cap.set_decode_frames(False)  # motion vectors only: no BGR conversion, like edgekit's MV-only mode
        n = 0
        while n != limit:
            if not cap.read()[0]:  # (ok, frame or None, motion vectors (N, 10), frame type)
                break
            n += 1
    finally:
        cap.release()
    return n


def edgekit_read(path, limit=None, native=True, stats=None, **options) -> int:
    with native_kernels(native), bs.open(path, **options) as reader:
        n = 0
        for _frame in reader:
            n += 1
            if n == limit:
                break
        if stats is not None:
            stats.update(kinds=dict(reader.stats.kinds), damaged_frames=reader.stats.damaged_frames,
                         decoder_options=dict(reader.decoder_options),
                         thread_type=str(reader._stream.thread_type))
    return n


def variants(spec: ClipSpec, mvextractor_ok: bool, stats: dict) -> dict:
    """name -> (callable(path, limit) -> frames, description). ``stats`` receives what the floor and
    edgekit's MV-only reader report about themselves (frame kinds, thread type, decoder options)."""
    floor_stats = stats.setdefault("floor", {})
    edgekit_stats = stats.setdefault("edgekit_mv_only", {})
    out = {
        "floor": (lambda p, limit=None: pyav_floor(p, limit, stats=floor_stats),
                  "PyAV decode, flags2=+export_mvs, side_data['MOTION_VECTORS'].to_ndarray(); bare PyAV, so "
                  "reading side data leaves each frame in a reference cycle that only the cyclic garbage "
                  "collector frees (edgekit breaks it)"),
        "floor_fast_mv": (lambda p, limit=None: pyav_floor(p, limit, fast_mv=True),
                          "floor + skip_loop_filter=all, skip_idct=all (the options edgekit's MV-only mode sets)"),
        "decode_rgb": (lambda p, limit=None: pyav_rgb(p, limit),
                       "PyAV decode + frame.to_ndarray(format='rgb24') of every frame"),
    }
    if mvextractor_ok:
        out["mvextractor"] = (lambda p, limit=None: mvextractor_read(p, limit),
                              "VideoCap.read() with set_decode_frames(False): motion vectors only, no frames")
    out.update({
        "edgekit_mv_only": (lambda p, limit=None: edgekit_read(p, limit, stats=edgekit_stats, residual=False, rgb=None),
                            "edgekit.bitstream.open(path, residual=False, rgb=None)"),
        "edgekit_full_frame": (lambda p, limit=None: edgekit_read(p, limit),
                               "edgekit.bitstream.open(path): MV + residual + I-frame RGB, per frame"),
        "edgekit_full_accumulated": (lambda p, limit=None: edgekit_read(p, limit, accumulate=True),
                                     "edgekit.bitstream.open(path, accumulate=True)"),
        "edgekit_full_frame_numpy": (lambda p, limit=None: edgekit_read(p, limit, native=False),
                                     "edgekit_full_frame with EDGEKIT_NATIVE=0 (numpy kernels)"),
        "edgekit_full_accumulated_numpy": (lambda p, limit=None: edgekit_read(p, limit, native=False, accumulate=True),
                                           "edgekit_full_accumulated with EDGEKIT_NATIVE=0 (numpy kernels)"),
    })
    return out


# -- measurement ------------------------------------------------------------------------------------

def passes_for(fn, path, gop: int, frames: int, min_seconds: float, max_passes: int = 100) -> int:
    """Untimed warm-up on one GOP (lazy imports, first allocations); returns the passes over the whole
    clip that one timed run needs to last about ``min_seconds``."""
    t0 = time.perf_counter()
    n = fn(path, limit=gop)
    per_frame_s = (time.perf_counter() - t0) / max(n, 1)
    return max(1, min(max_passes, math.ceil(min_seconds / (per_frame_s * frames))))


def timed(fn, path, passes: int) -> dict:
    reset_peak_rss()
    rss_start = rss_mib()
    cpu0, t0 = time.process_time(), time.perf_counter()
    frames = [fn(path) for _ in range(passes)]
    seconds, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    peak = high_water_rss_mib()
    return {"frames": frames, "seconds": seconds, "cpu_s": cpu, "peak_rss_mib": peak,
            "rss_growth_mib": None if peak is None else peak - rss_start}


def summarize(runs: list[dict]) -> dict:
    per_pass = sorted({f for r in runs for f in r["frames"]})
    fps = [sum(r["frames"]) / r["seconds"] for r in runs]
    peaks = [r["peak_rss_mib"] for r in runs if r["peak_rss_mib"] is not None]
    growth = [r["rss_growth_mib"] for r in runs if r["rss_growth_mib"] is not None]
    return {
        "frames": per_pass[0] if len(per_pass) == 1 else per_pass,  # frames read per pass over the clip
        "passes": len(runs[0]["frames"]),
        "fps_best": round(max(fps), 2),
        "fps_median": round(statistics.median(fps), 2),
        "fps_rounds": [round(f, 2) for f in fps],
        "seconds": [round(r["seconds"], 4) for r in runs],
        # process CPU time / wall time: above 1 means several threads were busy, below 1 that the
        # process waited (for the CPU, on a shared machine, or for I/O)
        "cpu_per_wall_median": round(statistics.median(r["cpu_s"] / r["seconds"] for r in runs), 2),
        "cpu_ms_per_frame_median": round(statistics.median(r["cpu_s"] / sum(r["frames"]) * 1e3 for r in runs), 4),
        "peak_rss_mib": round(max(peaks), 1) if peaks else None,  # resident high-water mark during the run
        # how far that mark rose above the RSS the run started from (what the variant itself held)
        "peak_rss_above_start_mib": round(max(growth), 1) if growth else None,
    }


def ratio(a, b):
    return round(a / b, 3) if a and b else None


def clip_ratios(v: dict, key: str) -> dict:
    """Speed ratios from ``key``: fps_best or fps_median, or cpu_ms_per_frame_median (as frames per
    CPU-second: the throughput ratio when every core is busy, as on a shared machine)."""
    def fps(name):
        value = v.get(name, {}).get(key)
        if value and key.startswith("cpu_ms"):
            return 1e3 / value
        return value
    return {
        "mv_only_vs_mvextractor": ratio(fps("edgekit_mv_only"), fps("mvextractor")),
        "mv_only_vs_floor": ratio(fps("edgekit_mv_only"), fps("floor")),
        "mv_only_vs_floor_fast_mv": ratio(fps("edgekit_mv_only"), fps("floor_fast_mv")),
        "full_frame_vs_decode_rgb": ratio(fps("edgekit_full_frame"), fps("decode_rgb")),
        "full_accumulated_vs_decode_rgb": ratio(fps("edgekit_full_accumulated"), fps("decode_rgb")),
        "native_speedup_full_frame": ratio(fps("edgekit_full_frame"), fps("edgekit_full_frame_numpy")),
        "native_speedup_accumulated": ratio(fps("edgekit_full_accumulated"), fps("edgekit_full_accumulated_numpy")),
    }


def at_least(value, bound):
    return None if value is None else bool(value >= bound)


def clip_targets(r: dict) -> dict:
    return {
        "mv_only_ge_1.0x_mvextractor": at_least(r["mv_only_vs_mvextractor"], 1.0),
        "mv_only_ge_0.8x_floor": at_least(r["mv_only_vs_floor"], 0.8),
        "full_frame_ge_1.0x_decode_rgb": at_least(r["full_frame_vs_decode_rgb"], 1.0),
        "full_accumulated_ge_1.0x_decode_rgb": at_least(r["full_accumulated_vs_decode_rgb"], 1.0),
    }


def all_of(values):
    values = list(values)
    return None if any(v is None for v in values) else all(values)


# -- memory -----------------------------------------------------------------------------------------

def rss_mib() -> float:
    with open("/proc/self/statm") as f:
        resident_pages = int(f.read().split()[1])
    return resident_pages * os.sysconf("SC_PAGE_SIZE") / MIB


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def process_peak_rss_mib(runs: dict) -> float:
    """Peak RSS of this process over the whole benchmark."""
    peaks = [peak_rss_mib(), high_water_rss_mib() or 0.0]
    peaks += [r["peak_rss_mib"] for clip in runs.values() for v in clip.values() for r in v if r["peak_rss_mib"]]
    return max(peaks)


def memory_check(path: str, expected_frames: int) -> dict:
    """Run in a fresh child process: edgekit_full_accumulated over a long clip, RSS at every tenth."""
    marks = {max(1, round(expected_frames * k / 10)): k * 10 for k in range(1, 11)}
    samples = {}
    t0 = time.perf_counter()
    n = 0
    with bs.open(path, accumulate=True) as reader:
        for _frame in reader:
            n += 1
            if n in marks:
                samples[marks[n]] = round(rss_mib(), 2)
    seconds = time.perf_counter() - t0
    if 100 not in samples:  # the stream held fewer frames than expected: sample the end
        samples[100] = round(rss_mib(), 2)
    first = samples.get(10, samples[min(samples)])
    return {
        "variant": "edgekit_full_accumulated",
        "frames": n,
        "fps": round(n / seconds, 2),
        "rss_mib_at_10pct": first,
        "rss_mib_at_100pct": samples[100],
        "rss_delta_mib": round(samples[100] - first, 2),
        "rss_mib_by_percent": {str(k): samples[k] for k in sorted(samples)},
        "child_peak_rss_mib": round(high_water_rss_mib() or peak_rss_mib(), 2),
    }


def run_memory_check(spec: ClipSpec, workdir: Path) -> dict:
    path = encode_clip(spec, workdir)
    cmd = [sys.executable, str(Path(__file__).resolve()), "--memory-check", str(path), str(spec.frames)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    if proc.returncode != 0:
        return {"error": f"memory check exited {proc.returncode}: {proc.stderr.strip()[-500:]}"}
    result = json.loads(proc.stdout)
    return {"clip": {**spec.describe(), "bytes": path.stat().st_size},
            "method": "fresh child process; RSS from /proc/self/statm", **result}


# -- environment ------------------------------------------------------------------------------------



def mvextractor_info() -> dict:
    """Whether motion-vector-extractor imports, its version, and the FFmpeg it links statically."""
    version = distribution_version("motion-vector-extractor")
    if version is None:
        return {"available": False, "reason": "motion-vector-extractor is not installed "
                                              "(pip install motion-vector-extractor)"}
    try:
        import mvextractor.videocap as videocap
    except Exception as err:  # a broken wheel must not stop the benchmark
        return {"available": False, "version": version, "reason": f"import failed: {err!r}"}
    info = {"available": True, "version": version}
    # it bundles its own FFmpeg; the libavcodec ident string says which
    data = Path(videocap.__file__).read_bytes()
    found = re.search(rb"Lavc(\d+\.\d+\.\d+)", data)
    info["bundled_libavcodec"] = found.group(1).decode() if found else None
    return info


def environment(mvx: dict) -> dict:
    return {**machine(), "edgekit": edgekit.__version__,
            "edgekit_native_kernels": bs.kernels().__name__ == "edgekit._kernels",
            "mvextractor": mvx.get("version"), "mvextractor_bundled_libavcodec": mvx.get("bundled_libavcodec")}


# -- main -------------------------------------------------------------------------------------------

def benchmark(args) -> dict:
    t_start = time.perf_counter()
    load_start = os.getloadavg()
    repeats = 1 if args.quick else args.repeats
    mvx = mvextractor_info()
    if mvx["available"]:
        log(f"motion-vector-extractor {mvx['version']}")
    else:
        log(f"motion-vector-extractor unavailable: {mvx['reason']}")

    with tempfile.TemporaryDirectory(prefix="edgekit-bench-") as tmp:
        workdir = Path(args.workdir) if args.workdir else Path(tmp)
        specs = clip_specs(args.quick)
        clips = {}
        for name, spec in specs.items():
            t0 = time.perf_counter()
            path = encode_clip(spec, workdir)
            log(f"clip {name}: {path} ({time.perf_counter() - t0:.1f} s to encode or find)")
            clips[name] = path

        mvx_ok = mvx["available"]
        mvx_error = None
        if mvx_ok:  # a package that imports but cannot read our clips is recorded, not fatal
            try:
                mvextractor_read(next(iter(clips.values())), limit=2)
            except Exception as err:
                mvx_ok, mvx_error = False, f"{type(err).__name__}: {err}"
                log(f"motion-vector-extractor cannot read the clips: {mvx_error}")

        plans, reader_stats = {}, {}
        for name, spec in specs.items():
            reader_stats[name] = {}
            plans[name] = variants(spec, mvx_ok, reader_stats[name])
        min_seconds = args.min_seconds if args.min_seconds is not None else (0.02 if args.quick else 0.5)
        passes = {name: {v: passes_for(fn, clips[name], specs[name].gop, specs[name].frames, min_seconds)
                         for v, (fn, _) in plan.items()} for name, plan in plans.items()}

        runs = {name: {v: [] for v in plan} for name, plan in plans.items()}
        for r in range(repeats):
            for name, plan in plans.items():
                order = list(plan)
                order = order[r % len(order):] + order[:r % len(order)]  # rotate: no variant always first
                for v in order:
                    run = timed(plan[v][0], clips[name], passes[name][v])
                    runs[name][v].append(run)
                    frames = sum(run["frames"])
                    log(f"round {r + 1}/{repeats} {name} {v}: {frames} frames, {run['seconds']:.3f} s, "
                        f"{frames / run['seconds']:.1f} fps")

        clip_reports = {}
        for name, spec in specs.items():
            v = {}
            for variant, (_, description) in plans[name].items():
                v[variant] = {"description": description, **summarize(runs[name][variant])}
            if not mvx_ok:
                v["mvextractor"] = {"error": mvx_error or mvx.get("reason")}
            else:
                v["mvextractor"]["threads"] = "its own (not configurable from Python); see cpu_per_wall_median"
            best, median = clip_ratios(v, "fps_best"), clip_ratios(v, "fps_median")
            per_cpu = clip_ratios(v, "cpu_ms_per_frame_median")
            stats = reader_stats[name]["edgekit_mv_only"]
            clip_reports[name] = {
                "spec": spec.describe(),
                "bytes": clips[name].stat().st_size,
                "frame_kinds": stats.get("kinds"),
                "damaged_frames": stats.get("damaged_frames"),
                "thread_type": {"edgekit": stats.get("thread_type"),
                                "floor": reader_stats[name]["floor"].get("thread_type")},
                "threading": ("every PyAV decoder here (floor, floor_fast_mv, decode_rgb, edgekit) uses slice "
                              "threads with thread_count=0 (one per core), PyAV's default and edgekit's "
                              "threads='auto' (frame threads export wrong motion vectors while draining); "
                              "decode_rgb's swscale runs with PyAV's threads=0; edgekit's residual kernels "
                              "split rows over min(cpu_count, 4) threads at >= 640x360, one thread below"),
                "edgekit_mv_only_decoder_options": stats.get("decoder_options"),
                "variants": v,
                "ratios": best,
                "ratios_median": median,
                "ratios_per_cpu_second": per_cpu,
                "targets": clip_targets(best),
            }

        log("memory-flatness check (child process)")
        memory = run_memory_check(memory_spec(args.quick), workdir)

    targets = {key: all_of(c["targets"][key] for c in clip_reports.values())
               for key in next(iter(clip_reports.values()))["targets"]}
    targets["all"] = all_of(targets.values())
    return {
        "benchmark": "edgekit.bitstream extraction throughput (frames/s)",
        "command": [Path(sys.argv[0]).name, *sys.argv[1:]],
        "settings": {
            "repeats": repeats,
            "quick": args.quick,
            "workdir": args.workdir,
            "min_seconds": min_seconds,
            "timing": "round-robin, rotated order per round, after an untimed one-GOP warm-up of every "
                      "variant; a timed run reads the clip `passes` times to last >= min_seconds; "
                      "fps_best = max over rounds (ratios and targets use it), fps_median beside it",
        },
        "environment": environment(mvx),
        "load_average_start": [round(x, 2) for x in load_start],
        "load_average_end": [round(x, 2) for x in os.getloadavg()],
        "clips": clip_reports,
        "targets": targets,
        "memory": {"peak_rss_mib": round(process_peak_rss_mib(runs), 2),
                   "peak_rss_method": "max of getrusage ru_maxrss and the VmHWM of every timed run (each run "
                                      "resets VmHWM, which getrusage would otherwise miss)",
                   "flatness": memory},
        "elapsed_s": round(time.perf_counter() - t_start, 1),
    }


def main(argv=None) -> int:
    parser = script_parser("Benchmark edgekit.bitstream frames/s against PyAV and motion-vector-extractor",
                           "python benchmarks/extract.py --repeats 3 --workdir /tmp/edgekit-bench > extract.json")
    parser.add_argument("--repeats", type=int, default=5,
                        help="round-robin rounds per variant (default 5: the best of 5 is stable on a busy machine)")
    parser.add_argument("--min-seconds", type=float, default=None,
                        help="shortest timed run; fast variants read the clip several times (default 0.5, "
                             "0.02 with --quick)")
    parser.add_argument("--workdir", help="where encoded clips are cached (default: a temporary directory)")
    parser.add_argument("--quick", action="store_true", help="short clips and one round: a smoke test")
    parser.add_argument("--memory-check", nargs=2, metavar=("PATH", "FRAMES"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.memory_check:  # internal: the child process of the memory-flatness check
        print(json.dumps(memory_check(args.memory_check[0], int(args.memory_check[1]))))
        return 0
    if args.repeats < 1:
        parser.error("--repeats must be >= 1")
    print(json.dumps(benchmark(args), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
