"""What the opt-in ``residual_step=2`` costs and saves: the default model at camera resolution.

``edgekit.bitstream.open(..., residual_size=(h, w), residual_step=2)`` samples every other row and
luma column of a binned cell-trace residual (where each output cell spans at least 4 x 4 source
pixels). This script renders synthetic clips at a camera resolution with the project's generator
(``python -m training synth``, H.264 by default, every split, so there are enough clips), then
runs ``Recognizer.default()`` on every clip twice, with ``residual_step`` 1 (exact, the default)
and 2, alternating which goes first, and reports top-1 accuracy of each (the class is the clip's
folder), how many clip and window labels changed, and the wall seconds of each pass.

Prints ONE JSON object on stdout; progress goes to stderr.

Example:
    python benchmarks/residual_step.py --workdir /tmp/edgekit-step > docs/results/residual-step.json
    python benchmarks/residual_step.py --size 640x480 --clips-per-class 1 --frames 24   # smoke run
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent
REPO_ROOT = BENCHMARKS.parent
sys.path.append(str(BENCHMARKS))  # benchmarks/_env.py (appended: benchmarks/quantize.py must not shadow quantize)

import edgekit  # noqa: E402
from _env import machine, script_parser  # noqa: E402


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def generate(out: Path, size: str, codec: str, clips_per_class: int, frames: int | None, seed: int) -> dict:
    """The synthetic dataset at ``out`` (resumable: existing clips are kept)."""
    cmd = [sys.executable, "-m", "training", "synth", "--preset", "small", "--size", size, "--codec", codec,
           "--clips-per-class", str(clips_per_class), "--seed", str(seed), "--out", str(out), "--json",
           "--no-progress"]
    if frames:
        cmd += ["--frames", str(frames)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, env=env, timeout=3600)
    if proc.returncode != 0:
        raise RuntimeError(f"generating the clips exited {proc.returncode} (its stderr is above)")
    return json.loads(proc.stdout)


def clips_of(root: Path) -> list[str]:
    return [line.split()[0] for name in ("trainlist01.txt", "vallist01.txt", "testlist01.txt")
            for line in (root / name).read_text().splitlines() if line.strip()]


def recognize_all(root: Path, clips: list[str], step: int) -> tuple[dict, float]:
    with edgekit.Recognizer.default() as rec:
        rec._reader_options["residual_step"] = step  # what the reader is told for every clip
        t0 = time.perf_counter()
        out = {}
        for clip in clips:
            pred = rec.recognize(str(root / "videos" / clip))
            out[clip] = {"label": pred.label, "score": round(pred.score, 6), "windows": [w.label for w in pred.windows]}
    return out, time.perf_counter() - t0


def benchmark(args) -> dict:
    t_start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="edgekit-step-") as tmp:
        root = Path(args.workdir or tmp) / f"synth-{args.codec}-{args.size}-{args.seed}"
        log(f"generating clips in {root}")
        gen = generate(root, args.size, args.codec, args.clips_per_class, args.frames, args.seed)
        clips = clips_of(root)
        log(f"{len(clips)} clips")
        runs: dict[int, list] = {1: [], 2: []}
        for r in range(args.repeats):
            for step in ((1, 2) if r % 2 == 0 else (2, 1)):
                preds, seconds = recognize_all(root, clips, step)
                runs[step].append((preds, seconds))
                log(f"round {r + 1}: residual_step {step}: {seconds:.1f} s")
    truth = {c: c.split("/")[0] for c in clips}
    preds = {step: runs[step][0][0] for step in (1, 2)}
    for step in (1, 2):  # every repeat gives the same labels (the pipeline is deterministic)
        if any(p != preds[step] for p, _ in runs[step]):
            raise RuntimeError(f"residual_step {step}: predictions differ between repeats")
    accuracy = {step: sum(preds[step][c]["label"] == truth[c] for c in clips) / len(clips) for step in (1, 2)}
    changed = [c for c in clips if preds[1][c]["label"] != preds[2][c]["label"]]
    windows = [(a, b) for c in clips for a, b in zip(preds[1][c]["windows"], preds[2][c]["windows"])]
    seconds = {step: sorted(s for _, s in runs[step]) for step in (1, 2)}
    median = {step: seconds[step][(len(seconds[step]) - 1) // 2] for step in (1, 2)}
    return {
        "benchmark": "Recognizer.default() with residual_step 1 (exact) and 2 (every other row and luma column)",
        "command": [Path(sys.argv[0]).name, *sys.argv[1:]],
        "settings": {"size": args.size, "codec": args.codec, "clips_per_class": args.clips_per_class,
                     "frames": args.frames, "seed": args.seed, "repeats": args.repeats, "synth": gen.get("config")},
        "env": {**machine(), "edgekit": edgekit.__version__},
        "clips": len(clips),
        "accuracy": {"step1": round(accuracy[1], 4), "step2": round(accuracy[2], 4),
                     "change_points": round((accuracy[2] - accuracy[1]) * 100, 2)},
        "clips_changed": changed,
        "clip_agreement": round(1 - len(changed) / len(clips), 4),
        "window_agreement": round(sum(a == b for a, b in windows) / max(len(windows), 1), 4),
        "windows": len(windows),
        "seconds": {"step1": round(median[1], 3), "step2": round(median[2], 3),
                    "step2_speedup": round(median[1] / median[2], 3)},
        "predictions": {c: {"truth": truth[c], "step1": preds[1][c]["label"], "step2": preds[2][c]["label"]}
                        for c in clips},
        "elapsed_s": round(time.perf_counter() - t_start, 1),
    }


def main(argv=None) -> int:
    parser = script_parser("The default model with residual_step 1 and 2 on synthetic clips at camera resolution",
                           "python benchmarks/residual_step.py --workdir /tmp/edgekit-step > residual-step.json")
    parser.add_argument("--size", default="1280x720", help="clip size WxH (default 1280x720)")
    parser.add_argument("--codec", default="h264", choices=["h264", "mpeg4"])
    parser.add_argument("--clips-per-class", type=int, default=8, help="per split (default 8: 136 clips)")
    parser.add_argument("--frames", type=int, default=None, help="frames per clip (default: the preset's)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=1, help="passes of each step (default 1)")
    parser.add_argument("--workdir", help="where the clips are kept (default: a temporary folder)")
    args = parser.parse_args(argv)
    if args.clips_per_class < 1 or args.repeats < 1:
        parser.error("--clips-per-class and --repeats must be >= 1")
    print(json.dumps(benchmark(args), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
