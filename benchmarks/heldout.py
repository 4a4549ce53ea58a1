"""The bundled defaults on the held-out renderer: the project's own domain-shift check.

The held-out renderer (training/synth/heldout/, docs/datasets.md) draws the 12 fixed classes with
code that shares nothing with the training renderer's appearance and motion generators (vector
sprites, other backdrops, eased trajectories, another sensor model, other encoder settings). No
model is trained on it. This script generates its clips (``--clips-per-class`` per class, default 10:
120 clips; deterministic by ``--seed``; reused from ``--workdir`` when already there) and runs
``edgekit.Recognizer.default(kind)`` for each ``--kinds`` (default: mvr and mv), or each
``--package`` given instead, on every clip.

A prediction is the fused video label restricted to the 12 fixed classes (the defaults have 15
labels: the argmax over the 12 of the fused scores). Figures per kind: top-1 over the 12 classes,
the per-class table, the confusions, slices by codec and backdrop, and ``none_share``: the share of
clips whose fused top score is under the package's shipped threshold (what ``recognize`` would
call "none"; not counted against top-1 here).

Several ``--seed`` values measure several independent draws in one run: ``results`` are then the
figures over all their clips pooled (with a 95 % Wilson interval of top-1), ``draws`` has each draw's
own top-1, and every ``per_clip`` entry names its seed. One draw of 120 clips moves by 0.83 points
per clip; the pooled figure is the one to hold a target against.

Prints ONE JSON object on stdout; progress goes to stderr.

Example (the committed docs/results/heldout-default.json and heldout-draws.json):
    python benchmarks/heldout.py --workdir /tmp/edgekit-heldout > docs/results/heldout-default.json
    python benchmarks/heldout.py --seed 0 1 2 3 --workdir /tmp/edgekit-heldout > docs/results/heldout-draws.json
    python benchmarks/heldout.py --clips-per-class 1 --kinds mv     # smoke test: 12 clips
    python benchmarks/heldout.py --package models/edge-mvr-cpu.edgepkg   # a package of your own
"""

from __future__ import annotations

import hashlib
import json
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent
REPO_ROOT = BENCHMARKS.parent
sys.path.append(str(BENCHMARKS))  # benchmarks/_env.py, run as a script
sys.path.insert(0, str(REPO_ROOT))  # training.synth, edgekit of this tree

from _env import machine, script_parser, wilson  # noqa: E402

KINDS = ("mvr", "mv")


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def restricted_prediction(topk: tuple[tuple[str, float], ...], classes: tuple[str, ...]) -> tuple[str, float]:
    """The best (label, score) of ``topk`` (all labels, best first) among ``classes``.

    Raises ValueError when none of ``classes`` is in ``topk``."""
    for label, score in topk:
        if label in classes:
            return label, float(score)
    raise ValueError(f"none of {classes} among the predicted labels {[lab for lab, _ in topk]}")


def accuracy_of(clips: list[dict], predictions: dict[str, str], classes: tuple[str, ...]) -> dict:
    """Top-1, the per-class table ({label: {"correct", "clips", "top1"}}) and the confusions of
    ``predictions`` (clip -> label) against each clip's ``label``."""
    per_class = {c: {"correct": 0, "clips": 0} for c in classes}
    wrong = Counter()
    for clip in clips:
        row = per_class[clip["label"]]
        row["clips"] += 1
        predicted = predictions[clip["clip"]]
        if predicted == clip["label"]:
            row["correct"] += 1
        else:
            wrong[(clip["label"], predicted)] += 1
    for row in per_class.values():
        row["top1"] = round(row["correct"] / row["clips"], 4) if row["clips"] else None
    correct = sum(r["correct"] for r in per_class.values())
    return {"top1": round(correct / len(clips), 4) if clips else None, "correct": correct, "clips": len(clips),
            "per_class": per_class,
            "confusions": [{"label": a, "predicted": b, "clips": n} for (a, b), n in wrong.most_common()]}


def quality_band(clip: dict) -> str:
    """The clip's codec and how coarsely it was quantised: MPEG-4 qscale 2-6 or 7-12 (of 2-31),
    x264 CRF up to 26 or above (the held-out renderer's settings span both)."""
    encoder = clip["encoder"]
    if clip["codec"] == "mpeg4":
        return "mpeg4 qscale " + ("2-6" if encoder["qscale"] <= 6 else "7+")
    return "h264 crf " + ("<=26" if encoder.get("crf", 0) <= 26 else ">26")


def sliced(clips: list[dict], predictions: dict[str, str], key) -> dict:
    """Top-1 per value of ``key(clip)``: {value: {"correct", "clips", "top1"}}."""
    groups: dict[str, list[dict]] = defaultdict(list)
    for clip in clips:
        groups[str(key(clip))].append(clip)
    out = {}
    for value, members in sorted(groups.items()):
        correct = sum(predictions[c["clip"]] == c["label"] for c in members)
        out[value] = {"correct": correct, "clips": len(members), "top1": round(correct / len(members), 4)}
    return out


def generate_clips(args, workdir: Path, seed: int) -> tuple[list[dict], dict]:
    """Generate (or reuse) the held-out set of ``seed`` under ``workdir``; returns its clips (metadata
    lines with ``path``) and what generation did."""
    from training.synth import resolve_config
    from training.synth.generate import generate

    config = resolve_config(None, renderer="heldout", seed=seed, clips_per_class=args.clips_per_class,
                            frames=args.frames)
    out = workdir / f"heldout-seed{config.seed}-{config.clips_per_class}x{config.frames}f"
    report = generate(config, out, workers=args.workers, progress=False)
    clips = [json.loads(line) for line in (out / "metadata.jsonl").read_text().splitlines()]
    for clip in clips:
        clip["path"] = str(out / "videos" / clip["clip"])
    return clips, {"out_dir": str(out), "config": config.to_dict(), "clips_generated": report.clips_written,
                   "clips_reused": report.clips_skipped, "seconds": report.seconds}


def package_path(kind: str) -> Path:
    """The package a ``--kinds`` entry or ``--package`` names: a bundled default (mvr, mv) or a file."""
    from edgekit.recognizer import DEFAULT_PACKAGES

    return DEFAULT_PACKAGES[kind] if kind in DEFAULT_PACKAGES else Path(kind)


def evaluate(kind: str, clips: list[dict], classes: tuple[str, ...]) -> tuple[dict, dict]:
    """Run the package ``kind`` names (:func:`package_path`) on every clip: (figures, {clip: per-clip
    record})."""
    import edgekit
    from edgekit.package import load_package

    path = package_path(kind)
    package = load_package(path)  # loaded (and verified) once: the Recognizer takes it as it is
    recognizer = edgekit.Recognizer(package, topk=len(package.labels))
    manifest = recognizer.package.manifest
    missing = [c for c in classes if c not in recognizer.labels]
    if missing:
        raise SystemExit(f"the {kind} default lacks the classes {missing}; it cannot be scored on the held-out set")
    records, predictions = {}, {}
    t0 = time.perf_counter()
    with recognizer:
        for n, clip in enumerate(clips, 1):
            result = recognizer.recognize(clip["path"])
            label, score = restricted_prediction(result.topk, classes)
            predictions[clip["clip"]] = label
            records[clip["clip"]] = {"pred": label, "score": round(score, 4), "top_label": result.top_label,
                                     "none": result.label == "none", "windows": len(result.windows)}
            if n % 20 == 0:
                log(f"{kind}: {n}/{len(clips)} clips")
    seconds = time.perf_counter() - t0
    figures = accuracy_of(clips, predictions, classes)
    figures.update(
        model=manifest.model, precision=manifest.precision, labels=len(recognizer.labels),
        package=path.name, package_sha256=hashlib.sha256(path.read_bytes()).hexdigest(),
        threshold=recognizer.threshold,
        none_share=round(sum(r["none"] for r in records.values()) / len(clips), 4),
        top_label_outside_12=sum(r["top_label"] not in classes for r in records.values()),
        by_codec=sliced(clips, predictions, lambda c: c["codec"]),
        by_backdrop=sliced(clips, predictions, lambda c: c["heldout"]["backdrop"]),
        by_codec_gop=sliced(clips, predictions, lambda c: f"{c['codec']} gop {c['encoder']['gop']:03d}"),
        by_codec_quality=sliced(clips, predictions, quality_band),
        seconds=round(seconds, 2))
    return figures, records


def draw_figures(seed: int, generation: dict, clips: list[dict], per_clip: dict, kinds: list[str]) -> dict:
    """One draw's own figures in a pooled run: per kind its top-1, correct clips and none share."""
    from training.synth.classes import FIXED_CLASS_NAMES

    mine = [c for c in clips if c["seed"] == seed]
    out = {"seed": seed, "out_dir": generation["out_dir"], "clips": len(mine), "results": {}}
    for kind in kinds:
        figures = accuracy_of(mine, {c["clip"]: per_clip[c["clip"]]["pred"][kind] for c in mine}, FIXED_CLASS_NAMES)
        out["results"][kind] = {"top1": figures["top1"], "correct": figures["correct"], "clips": figures["clips"],
                                "none_share": round(sum(per_clip[c["clip"]]["none"][kind] for c in mine) / len(mine), 4)}
    return out


def main(argv=None) -> int:
    parser = script_parser("Top-1 of the bundled defaults on the held-out renderer's 12 fixed classes",
                           "python benchmarks/heldout.py --workdir /tmp/edgekit-heldout > docs/results/heldout-default.json")
    parser.add_argument("--clips-per-class", type=int, default=10, metavar="N", help="clips per class (default 10)")
    parser.add_argument("--seed", type=int, nargs="+", default=[0], metavar="N",
                        help="generator seed; several measure several draws, pooled (default 0)")
    parser.add_argument("--frames", type=int, default=48, metavar="N", help="frames per clip (default 48)")
    parser.add_argument("--kinds", default=",".join(KINDS), help="defaults to run: mvr, mv (default: both)")
    parser.add_argument("--package", action="append", default=[], metavar="PKG",
                        help="an .edgepkg to run instead of the defaults (repeatable; keyed by its path)")
    parser.add_argument("--workers", type=int, default=2, metavar="N", help="generator processes (default 2)")
    parser.add_argument("--workdir", default=None, metavar="DIR",
                        help="where the clips are made and reused (default: a temporary folder)")
    args = parser.parse_args(argv)
    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    unknown = [k for k in kinds if k not in KINDS]
    if unknown or not kinds:
        parser.error(f"--kinds: unknown {unknown or kinds}; choose from {', '.join(KINDS)}")
    if args.package:
        missing = [p for p in args.package if not Path(p).is_file()]
        if missing:
            parser.error(f"--package: no such file {missing[0]}")
        kinds = list(args.package)
    if args.clips_per_class < 1 or args.workers < 1:
        parser.error("--clips-per-class and --workers must be at least 1")
    if min(args.seed) < 0 or len(set(args.seed)) != len(args.seed):
        parser.error(f"--seed: seeds must be distinct and >= 0, not {args.seed}")
    pooled = len(args.seed) > 1

    from edgekit.errors import EdgekitError
    from training.synth.classes import FIXED_CLASS_NAMES

    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as temporary:
        workdir = Path(args.workdir) if args.workdir else Path(temporary)
        clips, generations = [], []
        for seed in args.seed:
            try:
                draw, generation = generate_clips(args, workdir, seed)
            except EdgekitError as err:
                parser.error(str(err))
            log(f"{len(draw)} held-out clips in {generation['out_dir']}")
            for clip in draw:
                clip["seed"] = seed
                if pooled:  # one key per clip over the draws
                    clip["clip"] = f"seed{seed}/{clip['clip']}"
            clips += draw
            generations.append(generation)
        results, per_clip = {}, {c["clip"]: {"clip": c["clip"], "label": c["label"], "codec": c["codec"],
                                             "size": f"{c['width_px']}x{c['height_px']}", "fps": c["fps"],
                                             "pred": {}, "score": {}, "none": {}, **({"seed": c["seed"]} if pooled else {})}
                                 for c in clips}
        for kind in kinds:
            figures, records = evaluate(kind, clips, FIXED_CLASS_NAMES)
            if pooled:
                figures["ci95"] = [round(x, 4) for x in wilson(figures["correct"], figures["clips"])]
            results[kind] = figures
            for name, record in records.items():
                per_clip[name]["pred"][kind] = record["pred"]
                per_clip[name]["score"][kind] = record["score"]
                per_clip[name]["none"][kind] = record["none"]
            log(f"{kind}: top-1 {figures['top1']:.3f} over the 12 fixed classes"
                + (f" ({len(args.seed)} draws pooled)" if pooled else ""))

    report = {
        "benchmark": "heldout",
        "command": "python benchmarks/heldout.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "settings": {"kinds": kinds, "clips_per_class": args.clips_per_class,
                     "seed": args.seed if pooled else args.seed[0],
                     "frames": args.frames, "classes": list(FIXED_CLASS_NAMES), "renderer": "heldout",
                     "prediction": "fused video scores, argmax over the 12 fixed classes"},
        "env": machine(),
        "generation": generations if pooled else generations[0],
    }
    if pooled:
        report["draws"] = [draw_figures(seed, generation, clips, per_clip, kinds)
                           for seed, generation in zip(args.seed, generations)]
    report.update(results=results, per_clip=list(per_clip.values()), elapsed_s=round(time.perf_counter() - t0, 2))
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
