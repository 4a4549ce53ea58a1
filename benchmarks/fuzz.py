"""Fuzz edgekit's readers and package loader: counts of clean runs, typed errors, untyped errors,
crashes and hangs, and the peak memory of each input.

Encodes small seed clips with PyAV (MPEG-4 .mp4/.m4v, H.264 .mp4/.h264 with and without B-frames,
an .mkv) and builds a tiny package beside the bundled default one (cached under --workdir), then
runs --inputs mutated inputs (bit flips, interesting values, truncation, duplicated, deleted and
spliced chunks, parameter sets of another picture size inserted mid-stream, MP4 box fields, zip
header fields, manifest JSON mutations, zip bombs, ONNX external data) in the reading modes of
benchmarks/_fuzzing.py (file-mv, file-residual, file-accumulated, chunks, package), one input at a
time in long-lived child processes, --workers of them: a crash or a hang kills a child, not the run.
About 40 crafted inputs (size changes mid-stream, cut files, stalling chunk producers, zip bombs, odd
zip headers, a format-1 downgrade) run first, every run (--no-crafted skips them).

Input i of a run is a pure function of (--seed, i): ``--save-failures DIR`` writes every failing
input (untyped, crash, hang, peak RSS >= 300 MiB) with a JSON sidecar holding the exact call that
reproduces it; ``--replay FILE --mode MODE`` runs one saved input in this process.

``--asan EXT`` runs the children with an AddressSanitizer build of the kernels (LD_PRELOAD'ed ASan
runtime; any report ends the child and counts as a crash), e.g. built with
``gcc -shared -fPIC -O1 -g -fsanitize=address -fno-omit-frame-pointer -I$(python -c "import sysconfig;
print(sysconfig.get_paths()['include'])") -I$(python -c "import numpy; print(numpy.get_include())")
edgekit/_kernels.c -o /tmp/asan/_kernels.so``. Peak memory is not judged under ASan.

Prints ONE JSON object on stdout; progress goes to stderr.

Example:
    python benchmarks/fuzz.py --inputs 10000 --workers 2 > docs/results/fuzz.json
    python benchmarks/fuzz.py --inputs 500 --modes chunks,package --save-failures /tmp/fuzz-failures
    python benchmarks/fuzz.py --replay /tmp/fuzz-failures/s0-000042-file-residual-untyped.h264 --mode file-residual
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.append(str(Path(__file__).resolve().parent))  # benchmarks/_fuzzing.py, run as a script

import edgekit  # noqa: E402
from _env import machine, script_parser  # noqa: E402
from _fuzzing import (CHUNK_BEHAVIOURS, CHUNK_TIMEOUT_S, CLASSES, MODES, STALL_EVERY, Runner,  # noqa: E402
                      crafted_inputs, make_seeds, message_group, run_one, summarize)


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                             cwd=Path(__file__).resolve().parent, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                               text=True, cwd=Path(__file__).resolve().parent, timeout=10).stdout.strip()
        return out.stdout.strip() + ("+dirty" if dirty else "") if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def progress(total: int, every_s: float = 10.0):
    """An on_outcome callback logging counts to stderr every ``every_s`` seconds."""
    counts = dict.fromkeys(CLASSES, 0)
    state = {"done": 0, "last": time.perf_counter(), "t0": time.perf_counter()}
    groups_seen = set()

    def on_outcome(outcome) -> None:
        counts[outcome.cls] += 1
        state["done"] += 1
        group = message_group(outcome)
        if outcome.cls in ("untyped", "crash", "hang") and group not in groups_seen:  # first of each kind
            groups_seen.add(group)
            log(f"  #{outcome.index} {outcome.mode} {outcome.seed} {list(outcome.mutators)}: {outcome.cls} "
                f"{outcome.type}: {(outcome.message or '')[:160]}")
        now = time.perf_counter()
        if now - state["last"] >= every_s or state["done"] == total:
            state["last"] = now
            rate = state["done"] / (now - state["t0"])
            log(f"{state['done']}/{total} inputs, {rate:.1f}/s: " + ", ".join(f"{k} {v}" for k, v in counts.items()))

    return on_outcome


def fuzz(args) -> dict:
    modes = tuple(args.modes.split(",")) if args.modes else MODES
    unknown = [m for m in modes if m not in MODES]
    if unknown:
        raise SystemExit(f"unknown mode(s) {unknown}; choose from {list(MODES)}")
    workdir = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="edgekit-fuzz-"))
    try:
        return fuzz_in(args, modes, workdir)
    finally:
        if not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)


def fuzz_in(args, modes: tuple[str, ...], workdir: Path) -> dict:
    t_start = time.perf_counter()
    log(f"seeds in {workdir}")
    seeds = make_seeds(workdir)
    crafted = [] if args.no_crafted else [c for c in crafted_inputs(seeds, workdir) if c.mode in modes]
    runner = Runner(seeds=seeds, workdir=workdir, run_seed=args.seed, modes=modes, workers=args.workers,
                    time_limit_s=args.time_limit_s, memory_limit_mib=args.memory_limit_mib or None,
                    asan_extension=args.asan, save_failures=args.save_failures,
                    on_outcome=progress(len(crafted) + args.inputs))
    log(f"fuzzing {len(crafted)} crafted + {args.inputs} inputs, modes {', '.join(modes)}, {args.workers} workers")
    t0 = time.perf_counter()
    outcomes = runner.run(args.inputs, crafted)
    seconds = time.perf_counter() - t0
    summary = summarize(outcomes, max_failures=args.max_failures, rss_limit_mib=runner.rss_limit_mib)
    return {
        "benchmark": "edgekit fuzzing: mutated videos in every reading mode, chunk streams, packages",
        "command": [Path(sys.argv[0]).name, *sys.argv[1:]],
        "settings": {
            "inputs": args.inputs, "crafted_inputs": len(crafted), "seed": args.seed, "workers": args.workers,
            "modes": list(modes),
            "time_limit_s": args.time_limit_s, "memory_limit_mib": args.memory_limit_mib or None,
            "asan_extension": args.asan, "kernels": runner.native, "save_failures": args.save_failures,
            "workdir": str(workdir) if args.workdir else None,
            "seeds": {s.name: {"bytes": len(s.data), "kind": s.kind, "codec": s.codec, "size": s.size}
                      for s in seeds},
            "classes": {"clean": "read to the end / package loaded and its backend ran on zeros",
                        "typed": "an edgekit.errors.EdgekitError subclass",
                        "untyped": "any other exception",
                        "crash": "the child died (signal, AddressSanitizer report, exit)",
                        "hang": "no answer within time_limit_s; the child was killed"},
            "peak_rss": "VmHWM of the child, reset (clear_refs) before each input: the process's whole resident "
                        "set including the interpreter, PyAV, numpy and ONNX Runtime (child baseline beside it)",
            "chunk_timeout_s": CHUNK_TIMEOUT_S,
            "chunk_behaviours": list(CHUNK_BEHAVIOURS),
            "stalling_producer_every": f"1 in {STALL_EVERY} chunk inputs, plus the crafted ones",
        },
        "environment": {**machine(), "edgekit": edgekit.__version__, "commit": git_commit()},
        **summary,
        "inputs_per_s": round(len(outcomes) / seconds, 1) if seconds else None,
        "child_restarts": runner.restarts,
        "fuzz_seconds": round(seconds, 1),
        "elapsed_s": round(time.perf_counter() - t_start, 1),
        "rss_limit_mib": runner.rss_limit_mib,  # None under ASan: its shadow memory alone is ~300 MiB
    }


def replay(args) -> int:
    """Run one saved input in this process; print the result and the traceback of an untyped error."""
    import traceback

    job = {"mode": args.mode, "path": args.replay, "chunk_seed": args.chunk_seed,
           "chunk_behaviour": args.chunk_behaviour}
    result = run_one(job)
    print(json.dumps(result, indent=1))
    if result["class"] == "untyped":
        from _fuzzing import _execute

        try:
            _execute(job)
        except Exception:  # noqa: BLE001 -- show the whole traceback of what the fuzzer saw
            traceback.print_exc()
    return 0 if result["class"] in ("clean", "typed") else 1


def main(argv=None) -> int:
    parser = script_parser("Fuzz edgekit's video readers and package loader with mutated inputs",
                           "python benchmarks/fuzz.py --inputs 10000 --workers 2 > docs/results/fuzz.json")
    parser.add_argument("--inputs", type=int, default=10000, help="mutated inputs to run (default 10000)")
    parser.add_argument("--seed", type=int, default=0, help="run seed: input i is a function of (seed, i)")
    parser.add_argument("--workers", type=int, default=2, help="child processes reading in parallel (default 2)")
    parser.add_argument("--modes", help=f"comma-separated subset of {','.join(MODES)} (default: all)")
    parser.add_argument("--time-limit-s", type=float, default=20.0,
                        help="wall limit per input (default 20); past it the child is killed and the input "
                             "counted a hang")
    parser.add_argument("--memory-limit-mib", type=int, default=4096,
                        help="address-space limit of each child (RLIMIT_AS), so a runaway input cannot take the "
                             "machine; 0 for none (ignored with --asan)")
    parser.add_argument("--asan", metavar="EXTENSION",
                        help="path to an AddressSanitizer-built edgekit/_kernels*.so the children load instead")
    parser.add_argument("--save-failures", metavar="DIR", help="write every failing input and its reproduction here")
    parser.add_argument("--no-crafted", action="store_true",
                        help="skip the hand-made inputs (size changes, cut files, stalls, bombs) run first")
    parser.add_argument("--max-failures", type=int, default=200, help="failures listed in the JSON (default 200)")
    parser.add_argument("--workdir", help="where seeds are cached and children work (default: a temporary folder)")
    parser.add_argument("--replay", metavar="FILE", help="run one saved input in this process and exit")
    parser.add_argument("--mode", choices=MODES, help="with --replay: the mode to run it in")
    parser.add_argument("--chunk-seed", type=int, default=0, help="with --replay --mode chunks: the chunk sizes")
    parser.add_argument("--chunk-behaviour", choices=CHUNK_BEHAVIOURS, default="plain",
                        help="with --replay --mode chunks: how the chunks arrive")
    args = parser.parse_args(argv)
    if args.replay:
        if not args.mode:
            parser.error("--replay needs --mode")
        return replay(args)
    if args.inputs < 1 or args.workers < 1 or args.time_limit_s <= 0:
        parser.error("--inputs and --workers must be >= 1, --time-limit-s > 0")
    print(json.dumps(fuzz(args), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
