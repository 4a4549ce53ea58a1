"""Accuracy of ``Recognizer.default().recognize(clip)`` on the synthetic test split the default model
was evaluated on, for the current runtime path against the release before it (issue 10: "accuracy of
the default model unchanged, test split within 0.5 point, after the switch to consumed-only side data").

The default package (edgekit/assets/default.edgepkg, model edge-mvr) was trained and tested on the
synthetic benchmark's ``small`` preset, MPEG-4, seed 0 (docs/models.md, training/configs/edge-mvr.toml):
its test split is 20 clips of each of the 17 classes, 340 clips (today's default knows the 15 motion
classes: 300 clips, see ``synth_config``). The generator is deterministic by
seed (clip i draws from SeedSequence([seed, i])), so this script makes exactly those clips, and only
those (``training.synth.generate.write_clip`` for the test jobs of ``plan_jobs``), into --workdir,
where later runs reuse them. --dataset points at a tree made by ``python -m training synth`` instead.

Variants, each run in its own child process that prints one JSON line per clip (predicted label, score,
top 2, windows, seconds; the parent reads them, --keep-jsonl keeps them beside the clips as
<variant>-<clips>.jsonl); the report lists each clip's label, predicted label and score per variant:

  current  this tree, Recognizer.default() as shipped: causal frame selection (sampling.CausalPlan),
           accumulated motion traced per 8x8 cell (reader trace="block"), residuals computed only
           for the frames some window samples, area-binned straight to 112x112 (residual_size)
  pixel    this tree, the same Recognizer with the reader's trace="pixel" (the exact per-pixel
           accumulation the model was trained on); everything else as in current. current vs pixel
           is the effect of the block trace alone
  before   the tree at --before-tree (release 357d452, before the switch), imported from there
           (PYTHONPATH=<tree>, cwd=<tree>): frame selection over the eligible frames, per-pixel
           traces, full-resolution residuals for every frame, no tail-window change

Diagnostic variants (this tree; not run unless named), to tell the changes apart:

  pixel-oldsel  as pixel, but with 357d452's select_frames (TSN centres over the P/B frames) and a
                residual for every frame (no CausalPlan): pixel vs pixel-oldsel is the selection
                and the residual planning that follows it
  pixel-full    as pixel, but residuals at full resolution, resized by edgekit.preprocess (no
                residual_size): pixel vs pixel-full is the binning straight to 112x112
  pixel-allres  as pixel, but a residual for every frame (no CausalPlan): a tail window then uses
                the frames select_frames picks instead of the nearest ones that have a residual
                (pixel-allres vs pixel-oldsel is the selection rule alone)
  allres        as current (block traces), with a residual for every frame

The test split's clips are 48 frames, exactly one window of the default (48 frames, stride 24), so
no clip there has a tail window; --frames 60 makes other clips (not the ones the model was tested
on) whose second window is a tail window, to measure that change.

A clip's label is its class in the generator's plan (the folder it is listed under); a prediction
is the fused label of ``recognize`` (windows averaged). Figures per variant: top-1 accuracy,
per-class accuracy, the confusions; between variants: agreement (same predicted label) and the
clips whose prediction changed; differences in points (100 x accuracy difference).

Prints ONE JSON object on stdout; progress goes to stderr.

Examples: the committed docs/results/runtime-accuracy.json (today's default on its clean test split,
data/synth-small-motion made by ``python -m training synth --preset small --classes motion``), and
runtime-accuracy-357d452.json (the switch itself, measured when the default was still 357d452's):
    python benchmarks/runtime_accuracy.py --dataset data/synth-small-motion \\
        --variants current,pixel,pixel-oldsel,pixel-full,allres --keep-jsonl > docs/results/runtime-accuracy.json
    git worktree add --detach /tmp/edgekit-before 357d452
    (cd /tmp/edgekit-before && python setup.py build_ext --inplace)
    python benchmarks/runtime_accuracy.py --workdir /tmp/edgekit-accuracy --before-tree /tmp/edgekit-before \\
        --variants current,pixel,before,pixel-oldsel,pixel-full --keep-jsonl > docs/results/runtime-accuracy-357d452.json
    python benchmarks/runtime_accuracy.py --variants current,pixel --clips 3   # smoke test, this tree only
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent
REPO_ROOT = BENCHMARKS.parent  # the tree this script belongs to (it makes the clips)
SCRIPT = Path(__file__).resolve()
sys.path.append(str(BENCHMARKS))  # benchmarks/_env.py, run as a script

from _env import machine, script_parser  # noqa: E402  (numpy and av only: any tree can be measured)

BEFORE_REVISION = "357d452"
VARIANTS = {
    "current": "this tree, Recognizer.default() as shipped: causal frame selection, 8x8-cell traces "
               "(trace='block'), residuals of the sampled frames only, binned straight to 112x112",
    "pixel": "this tree, Recognizer.default() with the reader's trace='pixel' (exact per-pixel "
             "accumulation); everything else as current",
    "before": f"the release before the switch ({BEFORE_REVISION}), imported from --before-tree in a child "
              "process (PYTHONPATH and cwd = that tree)",
    "pixel-oldsel": f"diagnostic: as pixel, with {BEFORE_REVISION}'s select_frames (TSN centres over the P/B "
                    "frames) and a residual for every frame (no CausalPlan)",
    "pixel-full": "diagnostic: as pixel, with full-resolution residuals resized by edgekit.preprocess "
                  "(no residual_size)",
    "pixel-allres": "diagnostic: as pixel, with a residual for every frame (no CausalPlan), so a tail window "
                    "uses the frames select_frames picks, not the nearest ones that have a residual",
    "allres": "diagnostic: as current (trace='block'), with a residual for every frame (no CausalPlan)",
}
DEFAULT_VARIANTS = ("current", "pixel", "before")
SPLIT = "test"


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# -- the test clips (this tree's generator) ---------------------------------------------------------

def synth_config(args):
    """The preset's settings, restricted to the classes of this tree's default package (the clips the
    full run makes for them: ``synth --classes``). The default of 357d452, which the committed
    docs/results/runtime-accuracy.json measured, knew all 17 classes; today's knows the 15 motion
    classes, and the ``before`` variant then reads another model (its tree's default): it is
    refused for other labels, so compare ``before`` only against a tree whose default it shares."""
    from edgekit.package import load_package
    from edgekit.recognizer import DEFAULT_PACKAGE
    from training.synth.classes import classes_setting
    from training.synth.config import resolve_config

    return resolve_config(args.preset, codec=args.codec, seed=args.seed, frames=args.frames,
                          classes=classes_setting(load_package(DEFAULT_PACKAGE).labels))


def stratified(clips: list[dict], n: int | None) -> list[dict]:
    """The first ``n`` clips taking one clip of each class in turn (by clip number within its class),
    so any prefix is class-balanced; all of them, in that order, when ``n`` is None."""
    by_class: dict[str, list[dict]] = {}
    for clip in sorted(clips, key=lambda c: c["clip"]):
        by_class.setdefault(clip["label"], []).append(clip)
    order = [c for k in range(max(map(len, by_class.values()), default=0))
             for label in by_class for c in by_class[label][k:k + 1]]
    return order if n is None else order[:n]


def generated_clips(args, workdir: Path) -> tuple[list[dict], dict]:
    """Make (or find) the test clips of the preset under ``workdir``; returns the selected clips
    ({"clip", "path", "label", "clip_index"}) and what generation did."""
    from concurrent.futures import ProcessPoolExecutor
    import multiprocessing

    from training.synth.files import remove_partials
    from training.synth.generate import plan_jobs, write_clip

    config = synth_config(args)
    out = workdir / f"synth-{config.preset}-{config.codec}-seed{config.seed}-{config.frames}f-{SPLIT}"
    out.mkdir(parents=True, exist_ok=True)
    settings = out / "subset.json"
    expected = {"generator": "training.synth", "split": SPLIT, **config.to_dict()}
    if settings.is_file() and json.loads(settings.read_text()) != expected:
        raise SystemExit(f"{out} holds clips made with other settings ({settings}); use another --workdir")
    settings.write_text(json.dumps(expected, indent=1) + "\n")
    for folder in ("videos", "flow"):
        remove_partials(out / folder)

    jobs = {job.video_relative: job for job in plan_jobs(config) if job.split == SPLIT}
    chosen = stratified([{"clip": rel, "path": str(job.video_path(out)), "label": job.label,
                          "clip_index": job.index} for rel, job in jobs.items()], args.clips)
    pending = [jobs[c["clip"]] for c in chosen
               if not (jobs[c["clip"]].video_path(out).is_file() and jobs[c["clip"]].flow_path(out).is_file())]
    t0 = time.perf_counter()
    if pending:
        log(f"generating {len(pending)} of {len(chosen)} {SPLIT} clips into {out} ({args.workers} workers)")
        if args.workers == 1 or len(pending) == 1:
            for job in pending:
                write_clip(job, out)
        else:
            context = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(min(args.workers, len(pending)), mp_context=context) as pool:
                for done, _ in enumerate(pool.map(write_clip, pending, [str(out)] * len(pending)), 1):
                    if done % 20 == 0 or done == len(pending):
                        log(f"  {done}/{len(pending)} clips")
    generation = {"dir": str(out), "config": config.to_dict(), "clips_in_split": len(jobs),
                  "clips_generated": len(pending), "clips_reused": len(chosen) - len(pending),
                  "seconds": round(time.perf_counter() - t0, 1)}
    return chosen, generation


def dataset_clips(args) -> tuple[list[dict], dict]:
    """The test clips of an existing tree made by ``python -m training synth`` (--dataset)."""
    from training.datasets import open_dataset

    root = Path(args.dataset)
    found = json.loads((root / "synth.json").read_text())
    config = synth_config(args).to_dict()

    def setting(value):  # synth.json lists the classes; the config names them in one string
        return ",".join(value) if isinstance(value, list) else value

    differing = [k for k in config if setting(found.get(k)) != setting(config[k])]
    if differing:
        raise SystemExit(f"{root} was generated with other settings ({', '.join(differing)} differ from "
                         f"--preset/--codec/--seed)")
    split = open_dataset(root, split=SPLIT)
    clips = [{"clip": f"{s.label_name}/{Path(s.path).name}", "path": str(s.path), "label": s.label_name}
             for s in split]
    return stratified(clips, args.clips), {"dir": str(root), "config": config, "clips_in_split": len(clips),
                                           "clips_generated": 0, "clips_reused": len(clips), "seconds": 0.0}


# -- one variant: the child process ---------------------------------------------------------------------

def old_select_frames(kinds, spec, *, train: bool, rng=None):
    """select_frames of 357d452, copied: TSN over the eligible frames (BSCHW) or a centred run of them."""
    import numpy as np

    from edgekit.sampling import clip_start, eligible, segment_positions

    def eligible_frames(kinds, frames):  # 357d452's helper (gone from edgekit.sampling): every frame if none is
        idx = np.asarray([i for i, kind in enumerate(kinds) if eligible(kind, frames)], np.int64)
        return idx if idx.size else np.arange(len(kinds))

    kinds = list(kinds)
    if not kinds:
        raise ValueError("no frames to select from")
    T = spec.segments
    if spec.layout == "BSCHW":
        idx = eligible_frames(kinds, spec.frames)
        return idx[segment_positions(len(idx), T, train=train, rng=rng)]
    if spec.frames == "gop":
        starts = [i for i, k in enumerate(kinds) if k == "I"] or [0]
        g = starts[int(segment_positions(len(starts), 1, train=train, rng=rng)[0])]
        end = next((i for i in range(g + 1, len(kinds)) if kinds[i] == "I"), len(kinds))
        run = np.arange(g, end)
    else:
        idx = eligible_frames(kinds, spec.frames)
        start = clip_start(len(idx), T, train=train, rng=rng)
        run = idx[start:start + T]
    return run[np.minimum(np.arange(T), len(run) - 1)].astype(np.int64)


class _EveryFrame:
    """Stands in for sampling.CausalPlan: every frame gets its residual."""

    def __init__(self, *args, **kwargs):
        pass

    def arrive(self, kind, size=None) -> bool:
        return True

    def expect(self, total) -> None:
        pass

    def surely_unused(self, p, kinds=None, margin=1) -> bool:
        return False  # every picture is decoded


def make_recognizer(variant: str, threads: int | None):
    """Recognizer.default() set up as ``variant`` says (in this process's edgekit)."""
    import edgekit

    options = {} if threads is None else {"threads": threads}
    rec = edgekit.Recognizer.default(**options)
    if variant in ("before", "current"):
        return rec
    reader = getattr(rec, "_reader_options", None)
    if reader is None or reader.get("trace") != "block":
        raise SystemExit(f"variant {variant!r} needs a tree whose Recognizer traces per block (trace='block'); "
                         f"this one ({edgekit.__file__}) reads with {reader}")
    from edgekit import sampling

    if variant != "allres":
        reader["trace"] = "pixel"
    if variant in ("pixel-oldsel", "pixel-allres", "allres"):
        sampling.CausalPlan = _EveryFrame  # WindowRun makes its plan through the module: every frame gets a residual
    if variant == "pixel-oldsel":
        sampling.select_frames = old_select_frames  # the Recognizer (and nearest_available) call it through the module
    elif variant == "pixel-full":
        reader.pop("residual_size", None)
    return rec


def _git(tree: Path, *args: str) -> str | None:
    try:
        proc = subprocess.run(["git", "-C", str(tree), *args], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if proc.returncode != 0:
        return None
    return proc.stdout.strip() or None


def tree_revision(tree: Path) -> str | None:
    """``git describe --always --dirty`` of a tree, None outside a git checkout."""
    return _git(tree, "describe", "--always", "--dirty", "--abbrev=7")


def tree_commit(tree: Path) -> str | None:
    """The full commit a tree is checked out at, None outside a git checkout."""
    return _git(tree, "rev-parse", "HEAD")


def run_variant(variant: str, clip_list: str, threads: int | None) -> int:
    """The child: one JSON line describing the set-up, then one per clip, on stdout."""
    import edgekit
    import edgekit.bitstream as bs
    import onnxruntime

    clips = json.loads(Path(clip_list).read_text())
    t0 = time.perf_counter()
    rec = make_recognizer(variant, threads)
    tree = Path(edgekit.__file__).resolve().parents[1]
    header = {"variant": variant, "edgekit_file": edgekit.__file__, "edgekit_tree_revision": tree_revision(tree),
              "edgekit_tree_commit": tree_commit(tree),
              "edgekit_native_kernels": bs.kernels().__name__ == "edgekit._kernels",
              "onnxruntime": onnxruntime.__version__, "recognizer": repr(rec),
              "reader_options": {k: v for k, v in getattr(rec, "_reader_options", {}).items() if not callable(v)},
              "window_frames": rec.window_frames, "stride_frames": rec.stride_frames,
              "labels": list(rec.labels), "inference_threads": getattr(rec.backend, "threads", None),
              "load_s": round(time.perf_counter() - t0, 3)}
    print(json.dumps(header), flush=True)
    with rec:
        for clip in clips:
            t = time.perf_counter()
            pred = rec.recognize(clip["path"])
            print(json.dumps({"clip": clip["clip"], "pred": pred.label, "score": round(float(pred.score), 6),
                              "top2": [[lab, round(float(s), 6)] for lab, s in pred.topk[:2]],
                              "windows": len(pred.windows), "frames": pred.frames,
                              "seconds": round(time.perf_counter() - t, 4)}), flush=True)
    return 0


def spawn_variant(variant: str, clip_list: Path, args, jsonl: Path | None) -> tuple[dict, dict[str, dict], float]:
    """Run one variant in a child process; (its header, clip -> its line, wall seconds)."""
    env = dict(os.environ)
    cwd = None
    if variant == "before":
        tree = Path(args.before_tree).resolve()
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(tree), os.environ.get("PYTHONPATH")]))
        cwd = str(tree)  # so nothing of this tree is found first
    else:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
    cmd = [sys.executable, str(SCRIPT), "--run-variant", variant, str(clip_list)]
    if args.threads is not None:
        cmd += ["--threads", str(args.threads)]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env, cwd=cwd)  # stderr: passed on
    lines = []
    sink = jsonl.open("w") if jsonl else None
    try:
        for line in proc.stdout:
            if sink:
                sink.write(line)
            lines.append(json.loads(line))
            if len(lines) > 1 and (len(lines) - 1) % 20 == 0:
                log(f"  {variant}: {len(lines) - 1} clips, {time.perf_counter() - t0:.0f} s")
    finally:
        if sink:
            sink.close()
    if proc.wait() != 0:
        raise RuntimeError(f"variant {variant} exited {proc.returncode} (its stderr is above)")
    seconds = time.perf_counter() - t0
    header, rows = lines[0], {row["clip"]: row for row in lines[1:]}
    return header, rows, seconds


# -- figures ----------------------------------------------------------------------------------------

def accuracy_of(clips: list[dict], preds: dict[str, str], classes: list[str]) -> dict:
    """Top-1 accuracy, per-class accuracy and confusions of one variant from its per-clip predictions."""
    correct = [c for c in clips if preds[c["clip"]] == c["label"]]
    per_class = {}
    for label in classes:
        of_class = [c for c in clips if c["label"] == label]
        if of_class:
            per_class[label] = round(sum(preds[c["clip"]] == label for c in of_class) / len(of_class), 4)
    confusions = Counter((c["label"], preds[c["clip"]]) for c in clips if preds[c["clip"]] != c["label"])
    return {"top1": round(len(correct) / len(clips), 6), "correct": len(correct), "clips": len(clips),
            "per_class_top1": per_class,
            "confusions": [{"label": a, "predicted": b, "clips": n} for (a, b), n in sorted(confusions.items())]}


def compare(clips: list[dict], preds: dict[str, dict[str, str]], a: str, b: str) -> dict:
    """How two variants' predictions differ: agreement, the clips that changed, the points gained."""
    changed = [{"clip": c["clip"], "label": c["label"], a: preds[a][c["clip"]], b: preds[b][c["clip"]]}
               for c in clips if preds[a][c["clip"]] != preds[b][c["clip"]]]
    right = {v: sum(preds[v][c["clip"]] == c["label"] for c in clips) for v in (a, b)}
    fixed = sum(1 for ch in changed if ch[a] == ch["label"])   # right in a, wrong in b
    broken = sum(1 for ch in changed if ch[b] == ch["label"])  # right in b, wrong in a
    return {"agreement": round(1 - len(changed) / len(clips), 6), "changed": len(changed),
            "points": round(100 * (right[a] - right[b]) / len(clips), 3),  # a minus b
            f"right_in_{a}_only": fixed, f"right_in_{b}_only": broken, "changed_clips": changed}


def environment(headers: dict[str, dict], args) -> dict:
    import edgekit

    env = {**machine(), "edgekit": edgekit.__version__, "this_tree": str(REPO_ROOT),
           "this_tree_revision": tree_revision(REPO_ROOT),
           "this_tree_modified": (_git(REPO_ROOT, "diff", "--name-only", "HEAD") or "").split()}
    env["variants"] = {v: {k: h[k] for k in ("edgekit_file", "edgekit_tree_revision", "edgekit_tree_commit",
                                             "edgekit_native_kernels",
                                             "onnxruntime", "recognizer", "reader_options", "inference_threads",
                                             "load_s")}
                       for v, h in headers.items()}
    return env


def benchmark(args) -> dict:
    t_start = time.perf_counter()
    load_start = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="edgekit-accuracy-") as tmp:
        workdir = Path(args.workdir) if args.workdir else Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        clips, generation = dataset_clips(args) if args.dataset else generated_clips(args, workdir)
        if not clips:
            raise SystemExit("no test clips selected")
        clip_list = workdir / f"clips-{len(clips)}.json"
        clip_list.write_text(json.dumps([{"clip": c["clip"], "path": c["path"]} for c in clips]))
        log(f"{len(clips)} clips of {generation['clips_in_split']} in the {SPLIT} split; variants {args.variants}")

        headers, rows, seconds = {}, {}, {}
        for variant in args.variants:
            jsonl = workdir / f"{variant}-{len(clips)}.jsonl" if args.keep_jsonl else None
            headers[variant], rows[variant], seconds[variant] = spawn_variant(variant, clip_list, args, jsonl)
            log(f"{variant}: {len(rows[variant])} clips in {seconds[variant]:.1f} s")

    if args.before_tree and "before" in headers:
        found = Path(headers["before"]["edgekit_file"]).resolve()
        if Path(args.before_tree).resolve() not in found.parents:
            raise RuntimeError(f"the 'before' child imported {found}, not the tree at {args.before_tree}")
        commit = headers["before"]["edgekit_tree_commit"] or ""
        if not commit.startswith(BEFORE_REVISION):
            log(f"warning: --before-tree is at {commit or 'an unknown revision'}, not {BEFORE_REVISION}")
    classes = headers[args.variants[0]]["labels"]
    for variant, header in headers.items():
        if header["labels"] != classes:
            raise RuntimeError(f"variant {variant} has other labels: {header['labels']}")
        missing = [c["clip"] for c in clips if c["clip"] not in rows[variant]]
        if missing:
            raise RuntimeError(f"variant {variant} gave no prediction for {missing[:5]}")
    unknown = sorted({c["label"] for c in clips} - set(classes))
    if unknown:
        raise RuntimeError(f"clip labels {unknown} are not labels of the default model ({classes})")

    preds = {v: {clip: row["pred"] for clip, row in rows[v].items()} for v in args.variants}
    results = {}
    for v in args.variants:
        times = [rows[v][c["clip"]]["seconds"] for c in clips]
        results[v] = {"description": VARIANTS[v], **accuracy_of(clips, preds[v], classes),
                      "seconds": round(seconds[v], 1), "recognize_s_per_clip": round(sum(times) / len(times), 4),
                      "windows_per_clip": dict(Counter(rows[v][c["clip"]]["windows"] for c in clips))}
    pairs = [(a, b) for i, a in enumerate(args.variants) for b in args.variants[i + 1:]]
    per_clip = [{"clip": c["clip"], "label": c["label"],
                 **({"clip_index": c["clip_index"]} if "clip_index" in c else {}),
                 "pred": {v: rows[v][c["clip"]]["pred"] for v in args.variants},
                 "score": {v: rows[v][c["clip"]]["score"] for v in args.variants}}
                for c in clips]
    subset = ("the whole test split" if len(clips) == generation["clips_in_split"]
              else f"a stratified subset: the first {len(clips)} clips taking one of each class in turn")
    return {
        "benchmark": "top-1 accuracy of Recognizer.default().recognize(clip) on the synthetic test split "
                     "the default model was evaluated on: current runtime path vs the release before it",
        "command": [Path(sys.argv[0]).name, *sys.argv[1:]],
        "settings": {"preset": args.preset, "codec": args.codec, "seed": args.seed,
                     "frames": generation["config"]["frames"], "split": SPLIT, "clips": len(clips),
                     "clips_in_split": generation["clips_in_split"], "subset": subset,
                     "variants": {v: VARIANTS[v] for v in args.variants},
                     "before_tree": args.before_tree, "threads": args.threads, "workdir": args.workdir,
                     "dataset": args.dataset,
                     "label": "the clip's class in the generator's plan (its folder in the UCF-101 layout)",
                     "prediction": "VideoPrediction.label: windows' scores averaged (softmax), top-1",
                     "window_frames": headers[args.variants[0]]["window_frames"],
                     "stride_frames": headers[args.variants[0]]["stride_frames"]},
        "env": environment(headers, args),
        "generation": generation,
        "load_average_start": [round(x, 2) for x in load_start],
        "load_average_end": [round(x, 2) for x in os.getloadavg()],
        "results": results,
        "comparisons": {f"{a} vs {b}": compare(clips, preds, a, b) for a, b in pairs},
        "per_clip": per_clip,
        "elapsed_s": round(time.perf_counter() - t_start, 1),
    }


def parse_variants(text: str, parser: argparse.ArgumentParser) -> list[str]:
    variants = list(dict.fromkeys(v.strip() for v in text.split(",") if v.strip()))
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown or not variants:
        parser.error(f"unknown variant(s) {unknown}; choose from {', '.join(VARIANTS)}")
    return variants


def main(argv=None) -> int:
    parser = script_parser("Top-1 accuracy of Recognizer.default() on the synthetic test split, current runtime "
                           f"path vs {BEFORE_REVISION}",
                           "python benchmarks/runtime_accuracy.py --workdir /tmp/edgekit-accuracy "
                           "--before-tree /tmp/edgekit-before > runtime-accuracy.json")
    parser.add_argument("--variants", default=",".join(DEFAULT_VARIANTS),
                        help=f"comma-separated, from {', '.join(VARIANTS)} (default: {','.join(DEFAULT_VARIANTS)}); "
                             "'before' needs --before-tree")
    parser.add_argument("--before-tree",
                        help=f"a checkout of {BEFORE_REVISION} with its kernels built (git worktree add --detach "
                             f"DIR {BEFORE_REVISION}; python setup.py build_ext --inplace)")
    parser.add_argument("--clips", type=int, default=None,
                        help="a stratified subset of this many test clips (default: the whole split)")
    parser.add_argument("--preset", default="small", help="synthetic preset the default was tested on (default: small)")
    parser.add_argument("--codec", default="mpeg4", help="(default: mpeg4)")
    parser.add_argument("--seed", type=int, default=0, help="(default: 0)")
    parser.add_argument("--frames", type=int, default=None,
                        help="diagnostic: frames per clip instead of the preset's (other clips than the default was "
                             "tested on; clips longer than a window exercise the tail window)")
    parser.add_argument("--dataset", help="an existing tree made by `python -m training synth` with these settings "
                                          "(default: generate the test clips only, under --workdir)")
    parser.add_argument("--workdir", help="where the clips are made and reused (default: a temporary directory)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="generator processes (default: CPUs)")
    parser.add_argument("--threads", type=int, default=None,
                        help="the Recognizers' inference threads (default: the backend's own)")
    parser.add_argument("--keep-jsonl", action="store_true",
                        help="keep each variant's per-clip JSON lines in --workdir (<variant>-<clips>.jsonl)")
    parser.add_argument("--run-variant", nargs=2, metavar=("VARIANT", "CLIPS_JSON"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.run_variant:  # internal: the child process of spawn_variant()
        return run_variant(*args.run_variant, args.threads)
    args.variants = parse_variants(args.variants, parser)
    if "before" in args.variants:
        if not args.before_tree:
            parser.error(f"variant 'before' needs --before-tree (a checkout of {BEFORE_REVISION})")
        if not (Path(args.before_tree) / "edgekit" / "__init__.py").is_file():
            parser.error(f"--before-tree {args.before_tree} holds no edgekit/ package")
    if args.clips is not None and args.clips < 1:
        parser.error("--clips must be >= 1")
    if args.workers < 1 or (args.threads is not None and args.threads < 1):
        parser.error("--workers and --threads must be >= 1")
    print(json.dumps(benchmark(args), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
