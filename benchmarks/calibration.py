"""Calibrated scores and the "none" threshold of a package, on data it was not calibrated on (issue 13
part 4: "static and noise-only clips: at most 5 % of windows reported as an event at the shipped threshold").

A calibrated package (``edgekit calibrate``, or quantization) carries a temperature and a threshold
fitted on the synthetic benchmark's val split. This script measures them on the test split (20 clips
of each class of the ``small`` preset, MPEG-4, seed 0: the clips the default models were tested on)
and on noise-only clips with other seeds than the ones the threshold was chosen on
(``edgekit.calibration.write_noise_clip``: still scenes under sensor noise, flicker and exposure
changes, 96 frames = 3 windows each), through the real path: ``Recognizer(package).windows(clip)``
with the package's own threshold. Per clip, the windows' reported labels come from the Recognizer;
their raw logits give the figures at other thresholds and without calibration.

Figures (a window is an *event* when its reported label is neither ``static`` nor ``none``):

- ``test``: NLL (nats per clip) and ECE (15 bins) at T = 1 and at the package's temperature; top-1
  over all clips and over the event classes, without threshold and at the package's threshold
  (a clip reported ``none`` counts as wrong); the false-event rate over the windows of ``static``
  clips and of noise-only clips, without threshold and at the package's.
- ``tradeoff``: the same at thresholds 0, 0.3, ..., 0.9 and the package's.

--data points at a tree made by ``edgekit synth --preset small`` (its ``--split``); without it the
split's clips are made here, into --workdir (``training.synth.generate.write_clip``, deterministic
by seed), as benchmarks/runtime_accuracy.py does. Prints ONE JSON object on stdout; progress on stderr.

Example (the committed docs/results/calibration-edge-mvr.json and calibration-edge-mv-ref.json; the
motion-vector default is edge-mv-ref):
    python benchmarks/calibration.py --default mvr --data data/synth-small > docs/results/calibration-edge-mvr.json
    python benchmarks/calibration.py --default mv --data data/synth-small > docs/results/calibration-edge-mv-ref.json
    python benchmarks/calibration.py --limit 1 --noise-clips 2 --workdir /tmp/cal   # smoke test
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCHMARKS.parent))  # this tree's edgekit and training, run as a script
sys.path.append(str(BENCHMARKS))

from _env import machine, script_parser  # noqa: E402

TEST_NOISE_SEED = 2_000_000  # noise clips here: seeds far from edgekit calibrate's (NOISE_SEED = 1,000,000)
GRID = (0.0, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def parse_args(argv=None):
    p = script_parser("Calibration and the 'none' threshold of a package on the synthetic test split and on "
                      "noise-only clips", "python benchmarks/calibration.py --default mv --data data/synth-small")
    p.add_argument("--default", choices=("mvr", "mv"), default="mvr", help="a bundled default package (default mvr)")
    p.add_argument("--package", metavar="PKG", help="another .edgepkg (instead of --default)")
    p.add_argument("--data", metavar="DIR", help="a dataset folder (edgekit synth); default: make the split's clips")
    p.add_argument("--split", choices=("val", "test"), default="test", help="split to measure on (default test)")
    p.add_argument("--limit", type=int, metavar="N", help="at most N clips per class (a quick run)")
    p.add_argument("--noise-clips", type=int, default=60, metavar="N", help="noise-only clips (default 60)")
    p.add_argument("--workdir", default="/tmp/edgekit-calibration", metavar="DIR",
                   help="where made clips are kept and reused (default /tmp/edgekit-calibration)")
    args = p.parse_args(argv)
    if args.limit is not None and args.limit < 1 or args.noise_clips < 0:
        p.error("--limit must be >= 1 and --noise-clips >= 0")
    return args


def split_clips(args, labels) -> tuple[list[tuple[str, str]], dict]:
    """(path, class) of the split: from --data, else made into --workdir (small preset, seed 0, the
    classes of the package's ``labels`` that the benchmark has: the clips the full run makes for them)."""
    from edgekit.calibration import dataset_split, first_per_class

    if args.data:
        clips = dataset_split(args.data, args.split)
        return (first_per_class(clips, args.limit) if args.limit else clips), {"data": args.data}
    from training.synth import resolve_config
    from training.synth.classes import classes_setting
    from training.synth.generate import plan_jobs, write_clip

    config = resolve_config("small", seed=0, classes=classes_setting(labels))
    out = Path(args.workdir) / f"synth-small-seed0-{args.split}"
    jobs = [job for job in plan_jobs(config) if job.split == args.split]
    clips, made = [], 0
    for path, label in first_per_class([(job.video_relative, job.label) for job in jobs], args.limit or len(jobs)):
        job = next(j for j in jobs if j.video_relative == path)
        if not job.video_path(out).is_file():
            write_clip(job, out)
            made += 1
        clips.append((str(job.video_path(out)), label))
    return clips, {"made_in": str(out), "config": config.to_dict(), "clips_made": made}


def measure(package_path: str, clips, noise) -> tuple[object, list[dict]]:
    """Every clip through ``Recognizer(package)`` (its own threshold): per clip its windows' reported
    labels and raw logits."""
    import numpy as np

    from edgekit.recognizer import Recognizer

    rows = []
    with Recognizer(package_path) as recognizer:
        for n, (path, label) in enumerate([*clips, *noise], 1):
            windows = list(recognizer.windows(path))
            rows.append({"clip": path, "label": label, "reported": [w.label for w in windows],
                         "top_label": [w.top_label for w in windows],
                         "logits": np.stack([w.logits for w in windows])})
            if n % 50 == 0:
                log(f"  {n}/{len(clips) + len(noise)} clips")
        return recognizer, rows


def figures(rows: list[dict], labels, temperature: float, threshold: float) -> dict:
    """Top-1, event top-1 and false-event rates of ``rows`` at ``threshold`` with ``temperature``."""
    import numpy as np

    from edgekit.calibration import event_accuracy, false_event_rate, split_scores
    from edgekit.calibration import ClipLogits
    from edgekit.fusion import NONE, softmax

    results = [ClipLogits(r["clip"], r["label"], r["logits"]) for r in rows]
    negatives, events = split_scores(results, temperature)
    labelled = [r for r in results if r.label is not None]
    video = np.stack([softmax(r.window_logits, temperature).mean(axis=0) for r in labelled])  # as recognize() fuses
    reported = [labels[i] if s >= threshold else NONE for i, s in zip(video.argmax(1), video.max(1))]
    return {"threshold": round(threshold, 4),
            "top1": float(np.mean([p == r.label for p, r in zip(reported, labelled)])),
            "event_top1": event_accuracy(*events, labels, threshold),
            "none_fraction": float(np.mean([p == NONE for p in reported])),
            "false_event_rate": {name: false_event_rate(s, labels, threshold) for name, s in negatives.items()}}


def main(argv=None) -> int:
    t0 = time.perf_counter()
    args = parse_args(argv)
    import numpy as np

    from edgekit.calibration import NO_EVENT_LABELS, ece, nll, noise_clips
    from edgekit.fusion import softmax
    from edgekit.package import load_package
    from edgekit.recognizer import DEFAULT_PACKAGES

    package_path = args.package or str(DEFAULT_PACKAGES[args.default])
    package = load_package(package_path)
    calibration = package.manifest.calibration
    temperature = calibration.temperature if calibration else 1.0
    threshold = calibration.threshold if calibration else 0.0
    clips, source = split_clips(args, package.labels)
    log(f"{len(clips)} {args.split} clips; writing {args.noise_clips} noise-only clips")
    noise = noise_clips(Path(args.workdir) / "noise", args.noise_clips, first_seed=TEST_NOISE_SEED)
    recognizer, rows = measure(package_path, clips, noise)
    labels = list(recognizer.labels)

    # the Recognizer's own window labels at the package's threshold: the false events as shipped
    def shipped_rate(kind):
        reported = [lab for r in rows if (r["label"] is None if kind == "noise" else r["label"] == kind)
                    for lab in r["reported"]]
        return (sum(lab not in NO_EVENT_LABELS for lab in reported) / len(reported)) if reported else None

    labelled = [r for r in rows if r["label"] is not None]
    truth = np.array([labels.index(r["label"]) for r in labelled])
    video_logits = np.stack([r["logits"].mean(0) for r in labelled])
    at_zero, at_threshold = figures(rows, labels, temperature, 0.0), figures(rows, labels, temperature, threshold)
    report = {
        "benchmark": "calibration",
        "command": "python benchmarks/calibration.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "settings": {"package": package_path, "model": package.manifest.model, "split": args.split,
                     "limit_per_class": args.limit, "noise_clips": args.noise_clips,
                     "noise_first_seed": TEST_NOISE_SEED, "window_frames": recognizer.window_frames,
                     "stride_frames": recognizer.stride_frames, **source},
        "env": machine(),
        "package": {"integrity_sha256": package.integrity_sha256, "size_bytes": package.size_bytes},
        "calibration": calibration.to_dict() if calibration else None,
        "test": {
            "clips": len(labelled), "event_clips": sum(r["label"] not in NO_EVENT_LABELS for r in labelled),
            "windows": {"static": sum(len(r["reported"]) for r in rows if r["label"] == "static"),
                        "noise": sum(len(r["reported"]) for r in rows if r["label"] is None)},
            "nll_before": nll(video_logits, truth), "nll_after": nll(video_logits, truth, temperature),
            "ece_before": ece(softmax(video_logits), truth),
            "ece_after": ece(softmax(video_logits, temperature), truth),
            "top1": {"no_threshold": at_zero["top1"], "threshold": at_threshold["top1"]},
            "event_top1": {"no_threshold": at_zero["event_top1"], "threshold": at_threshold["event_top1"]},
            "none_fraction": at_threshold["none_fraction"],
            "false_event_rate": {"static": {"no_threshold": at_zero["false_event_rate"].get("static"),
                                            "threshold": shipped_rate("static")},
                                 "noise": {"no_threshold": at_zero["false_event_rate"].get("noise"),
                                           "threshold": shipped_rate("noise")}},
        },
        "tradeoff": [figures(rows, labels, temperature, t) for t in sorted({*GRID, threshold})],
        "per_clip": [{"clip": str(Path(r["clip"]).relative_to(Path(r["clip"]).parents[1])), "label": r["label"],
                      "reported": r["reported"], "top_label": r["top_label"]} for r in rows],
        "elapsed_s": round(time.perf_counter() - t0, 1),
    }
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
