"""What ``edgekit profile`` costs, and whether its figures agree with benchmarks/recognizer.py.

One Recognizer (the bundled default package), one clip (benchmarks/recognizer.py's 340x256 clip:
MPEG-4 Part 2, 500 frames, GOP 12, encoded by its child process, so both scripts measure the same
bytes), three commands timed in the same rounds (plain and profiled swap places every round, so
each follows the other and the benchmark equally often; the benchmark runs third):

  plain      ``for w in recognizer.windows(clip)``, keeping each ``w.times`` (a reference): the loop
             ``edgekit profile`` instruments, with nothing added
  profiled   ``edgekit.profile.run_pass(recognizer, clip)``: that loop under the profile's
             instrumentation (per-window stage split, side-data kernel accounting, first-window and
             thread samples), exactly what ``profile()`` runs for every measured pass
  benchmark  benchmarks/recognizer.py's ``timed_recognize`` (``recognizer.recognize(clip)``)

Overhead: the profiled pass's wall seconds against the plain pass's, from the medians, the minima
and the median of each round's own ratio (the rounds are interleaved, so a slow phase of a shared
machine hits both; ``met`` reads the paired median). Target: < 2 %. Beside it, ``self_measured``:
the time the profile's per-window bookkeeping itself took (``PassResult.instrumentation_ms``, what
every report's ``profiling_overhead`` gives) over the profiled passes' wall time; unlike the
end-to-end difference, a loaded machine barely moves it.

Agreement (target: within 10 %): the profile's per-window p50s (``edgekit.profile.summarize`` over
the profiled passes' windows, as ``profile()`` computes them; its ``decode`` + ``kernels`` is the
Recognizer's ``decode``) against the p50s of the plain passes' own ``Window.times``; and where
benchmarks/recognizer.py reports figures (frames/s from the median ``recognize()`` wall time, ms per
window per stage from its median run), the profile's against them. Then ``edgekit.profile.profile()``
itself is run once on the clip (``--profile-runs`` passes) and its p50s are listed beside.
``met`` reads the p50s and frames/s; per-window means (recognize() gives stage sums only, so no
p50) are listed beside, informational.

Prints ONE JSON object on stdout; progress goes to stderr.

Example:
    python benchmarks/profile_overhead.py --repeats 60 > docs/results/profile-overhead.json
    python benchmarks/profile_overhead.py --frames-scale 0.1 --repeats 2     # smoke test
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent
sys.path.append(str(BENCHMARKS))  # benchmarks/_env.py and recognizer.py, run as a script

import recognizer as bench_recognizer  # noqa: E402  (benchmarks/recognizer.py: its clip and its timing)
from _env import machine, script_parser  # noqa: E402

from edgekit.profile import profile, run_pass, summarize  # noqa: E402
from edgekit.recognizer import Recognizer  # noqa: E402

TARGET_OVERHEAD = 0.02
TARGET_AGREEMENT = 0.10
SIZE = "340x256"
# the profile's stage -> the Recognizer's StageTimes field it corresponds to
STAGE_FIELDS = {"decode+kernels": "decode", "preprocess": "preprocess", "inference": "inference", "window": "total"}


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def timed_plain(recognizer, path) -> dict:
    t0 = time.perf_counter()
    run = recognizer.windows(str(path))
    times = [window.times for window in run]
    return {"seconds": time.perf_counter() - t0, "frames": run.frames, "times": times}


def timed_profiled(recognizer, path) -> dict:
    t0 = time.perf_counter()
    result = run_pass(recognizer, str(path))
    return {"seconds": time.perf_counter() - t0, "frames": result.frames, "windows": result.windows,
            "instrumentation_ms": result.instrumentation_ms}


def seconds_summary(runs: list[dict]) -> dict:
    values = [r["seconds"] for r in runs]
    return {"median": round(statistics.median(values), 5), "min": round(min(values), 5),
            "runs": [round(v, 5) for v in values]}


def diff(ours: float, theirs: float) -> float | None:
    """ours / theirs - 1 (a fraction), None when theirs is 0."""
    return round(ours / theirs - 1, 4) if theirs else None


def profile_p50s(windows: list[dict]) -> dict:
    """The profile's p50 per Recognizer stage over ``windows`` (run_pass dicts)."""
    out = {}
    for name in STAGE_FIELDS:
        if name == "decode+kernels":
            values = [w["decode"] + w["kernels"] for w in windows]
        else:
            values = [w[name] for w in windows]
        out[name] = summarize(values)["p50"]
    return out


def benchmark(args) -> dict:
    t_start = time.perf_counter()
    load_start = os.getloadavg()
    spec = bench_recognizer.scaled_clip(SIZE, args.frames_scale)
    with tempfile.TemporaryDirectory(prefix="edgekit-profile-overhead-") as tmp:
        workdir = Path(args.workdir) if args.workdir else Path(tmp)
        clip = bench_recognizer.encode_clips({SIZE: spec}, workdir)[SIZE]
        path = clip["path"]
        options = {} if args.threads is None else {"threads": args.threads}
        with Recognizer.default(**options) as recognizer:
            commands = {"plain": lambda: timed_plain(recognizer, path),
                        "profiled": lambda: timed_profiled(recognizer, path),
                        "benchmark": lambda: bench_recognizer.timed_recognize(recognizer, path)}
            warm = {name: run() for name, run in commands.items()}  # untimed warm-up of each
            frames = warm["plain"]["frames"]
            if {warm["profiled"]["frames"], warm["benchmark"]["frames"]} != {frames}:
                raise RuntimeError("the three commands read different numbers of frames")
            runs: dict[str, list] = {name: [] for name in commands}
            order = list(commands)
            for r in range(args.repeats):
                # plain and profiled swap places every round (each follows the other as often, and the
                # benchmark as often); the benchmark runs third
                for name in (("plain", "profiled") if r % 2 == 0 else ("profiled", "plain")) + ("benchmark",):
                    runs[name].append(commands[name]())
                log(f"round {r + 1}/{args.repeats}: " + ", ".join(f"{n} {runs[n][-1]['seconds'] * 1000:.1f} ms"
                                                                   for n in order))
            selection = repr(recognizer.selection)
        log(f"edgekit.profile.profile() on the clip, {args.profile_runs} runs")
        full = profile(source=path, runs=args.profile_runs, **options)

    plain, profiled, bench = runs["plain"], runs["profiled"], runs["benchmark"]
    plain_s, profiled_s = seconds_summary(plain), seconds_summary(profiled)
    paired = [p["seconds"] / q["seconds"] - 1 for p, q in zip(profiled, plain)]
    overhead = {"plain_s": plain_s, "profiled_s": profiled_s,
                "overhead_median": diff(profiled_s["median"], plain_s["median"]),
                "overhead_best": diff(profiled_s["min"], plain_s["min"]),
                "overhead_paired_median": round(statistics.median(paired), 4),
                "overhead_per_round": [round(x, 4) for x in paired], "target": TARGET_OVERHEAD}
    overhead["self_measured"] = round(sum(r["instrumentation_ms"] for r in profiled)
                                      / sum(r["seconds"] * 1000 for r in profiled), 6)
    overhead["met"] = overhead["overhead_paired_median"] < TARGET_OVERHEAD

    pooled = [w for r in profiled for w in r["windows"]]
    ours = profile_p50s(pooled)
    plain_times = [t for r in plain for t in r["times"]]
    plain_p50 = {name: summarize(getattr(t, field) for t in plain_times)["p50"] for name, field in STAGE_FIELDS.items()}
    # benchmarks/recognizer.py's figures, by its own summary of the same rounds
    bench_fps = frames / statistics.median(r["seconds"] for r in bench)  # recognizer.py's recognizer_fps
    profiled_fps = frames / profiled_s["median"]
    bench_windows = sum(r["windows"] for r in bench)
    bench_means = {field: sum(r["stage_ms"][field] for r in bench) / bench_windows for field in STAGE_FIELDS.values()}
    profile_means = {name: (sum(w["decode"] + w["kernels"] for w in pooled) if name == "decode+kernels"
                            else sum(w[name] for w in pooled)) / len(pooled) for name in STAGE_FIELDS}
    agreement = {
        "p50_ms_per_window": {name: {"profile": ours[name], "plain": plain_p50[name],
                                     "difference": diff(ours[name], plain_p50[name])} for name in STAGE_FIELDS},
        "recognizer_benchmark": {
            "frames_per_s": {"profile": round(profiled_fps, 2), "benchmark": round(bench_fps, 2),
                             "difference": diff(profiled_fps, bench_fps)},
            "ms_per_window_mean": {name: {"profile": round(profile_means[name], 4),
                                          "benchmark": round(bench_means[field], 4),
                                          "difference": diff(profile_means[name], bench_means[field])}
                                   for name, field in STAGE_FIELDS.items()},
            "ms_per_window_mean_note": "means, not p50s (recognize() reports stage sums only): informational, "
                                       "not in `met`; the benchmark's over all its rounds"},
        "target": TARGET_AGREEMENT}
    figures = [v["difference"] for v in agreement["p50_ms_per_window"].values()]
    figures.append(agreement["recognizer_benchmark"]["frames_per_s"]["difference"])
    agreement["largest_difference"] = max(abs(x) for x in figures if x is not None)
    agreement["met"] = agreement["largest_difference"] <= TARGET_AGREEMENT
    full_stages = full["stages_ms"]
    return {
        "benchmark": "edgekit profile's instrumentation cost, and its p50s against benchmarks/recognizer.py",
        "command": [Path(sys.argv[0]).name, *sys.argv[1:]],
        "settings": {"size": SIZE, "frames_scale": args.frames_scale, "repeats": args.repeats,
                     "threads": args.threads, "profile_runs": args.profile_runs, "selection": selection,
                     "timing": "one untimed warm-up of each command, then `repeats` rounds of plain and profiled "
                               "(swapping places every round), then benchmark; overhead = profiled / plain wall seconds - 1 "
                               "(medians, minima, and the median of each round's own ratio; met: the paired "
                               "median); differences are fractions (0.05 = 5 %)"},
        "env": {**machine(), "load_average_start": [round(x, 2) for x in load_start],
                "load_average_end": [round(x, 2) for x in os.getloadavg()]},
        "clip": {**clip["spec"], "bytes": clip["bytes"], "frames": frames,
                 "windows": len(warm["plain"]["times"])},
        "overhead": overhead,
        "agreement": agreement,
        "profile_command": {"runs": args.profile_runs,
                            "p50_ms": {stage: full_stages[stage]["p50"] for stage in full_stages},
                            "frames_per_s": full["throughput"]["frames_per_s"],
                            "realtime_factor": full["throughput"]["realtime_factor"]},
        "elapsed_s": round(time.perf_counter() - t_start, 1),
    }


def main(argv=None) -> int:
    parser = script_parser("Measure edgekit profile's instrumentation overhead and compare its p50s with "
                           "benchmarks/recognizer.py", "python benchmarks/profile_overhead.py --repeats 60")
    parser.add_argument("--repeats", type=int, default=60, help="timed rounds (default 60)")
    parser.add_argument("--frames-scale", type=float, default=1.0,
                        help="multiply the clip's 500 frames (at least one GOP is kept), e.g. 0.1 for a smoke run")
    parser.add_argument("--profile-runs", type=int, default=5, help="passes of the final profile() call (default 5)")
    parser.add_argument("--threads", type=int, default=None, help="inference threads (default: the Recognizer's)")
    parser.add_argument("--workdir", help="where the clip is cached (default: a temporary directory)")
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.profile_runs < 1:
        parser.error("--repeats and --profile-runs must be >= 1")
    if args.frames_scale <= 0:
        parser.error("--frames-scale must be > 0")
    if args.threads is not None and args.threads < 1:
        parser.error("--threads must be >= 1")
    print(json.dumps(benchmark(args), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
