"""How well a synthetic dataset's encoded motion vectors follow its ground-truth motion, per codec.

A motion-vector model can only see the motion the encoder put in its vectors. This script measures
that, clip by clip, on a dataset made by ``edgekit synth`` (any preset, or the held-out renderer:
each clip has its exact flow in ``flow/``). For every P-frame, its own vectors (``edgekit.open(...,
residual=False, rgb=None)``, not accumulated) are compared on the 8x8-cell grid with the true motion
over the frames since the previous I/P-frame (the flow of those frames summed: the span a P-frame's
vectors cover when B-frames sit between; 4x4-block flow averaged to 8x8 cells). Intra cells are left
out. Per clip:

  tracked    share of moving cells (true motion >= 1 px) whose vector is within 1 px of it
  epe_px     median end-point error over the moving cells (px)
  spurious   share of still cells (true motion < 0.25 px) whose vector is 1 px or more

Per dataset and codec: the clips, and the median and the 10th/90th percentiles over clips of each
figure, and the same per class. Prints ONE JSON object on stdout; progress goes to stderr.

With ``--max-vector F`` (repeatable), what the reader's ``max_vector=F`` would drop, over all the
dataset's P-frame inter cells per codec (``max_vector`` of each dataset): ``dropped`` (share of
inter cells whose vector is longer than F x the picture's shorter side), and among the dropped
cells, ``lost_good`` (the vector was within 1 px of the true motion: real motion thrown away) and
``removed_wrong`` (off by more than 1 px: a vector no motion explains), and ``good_lost_share``
(the share of all the codec's good vectors that were dropped).

With ``--min-gain G`` (repeatable), the same three figures per codec for the vectors the reader gives
with ``min_gain=G`` (each clip read again with its pictures decoded): a vector no better than none
becomes 0, so ``spurious`` should fall and ``tracked`` should hold.

Example (the committed docs/results/vector-truth.json):
    python benchmarks/vector_truth.py --data data/synth-broad-motion --split test \\
        --data /tmp/edgekit-heldout/heldout-seed0-10x48f > docs/results/vector-truth.json
and of the committed docs/results/max-vector.json (held-out draws of seeds 0 and 1):
    python benchmarks/vector_truth.py --data data/synth-broad-motion --split test \\
        --data /tmp/edgekit-heldout/heldout-seed0-10x48f --data /tmp/edgekit-heldout/heldout-seed1-10x48f \\
        --max-vector 0.05 --max-vector 0.1 --max-vector 0.15 --max-vector 0.25 > docs/results/max-vector.json
"""

from __future__ import annotations

import json
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

BENCHMARKS = Path(__file__).resolve().parent
REPO_ROOT = BENCHMARKS.parent
sys.path.append(str(BENCHMARKS))  # benchmarks/_env.py, run as a script
sys.path.insert(0, str(REPO_ROOT))  # training.synth, edgekit of this tree

from _env import machine, script_parser  # noqa: E402

MOVING_PX = 1.0
STILL_PX = 0.25
TRACKED_PX = 1.0


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def cell_flow(flow_px: np.ndarray, stride: int, gh: int, gw: int) -> np.ndarray:
    """(2, gh', gw') mean of a (2, h, w) flow on a ``stride``-px grid over 8x8-px cells, cropped to
    the cells both grids cover (gh' <= gh, gw' <= gw)."""
    k = 8 // stride
    h, w = min(flow_px.shape[1] // k, gh), min(flow_px.shape[2] // k, gw)
    return flow_px[:, :h * k, :w * k].reshape(2, h, k, w, k).mean(axis=(2, 4))


def clip_figures(video: Path, truth_path: Path, fractions=(), min_gain: float | None = None) -> dict | None:
    """``tracked``, ``epe_px``, ``spurious`` of one clip (None when it has no P-frame with moving or
    still inter cells); with ``fractions``, ``long``: {fraction: {"inter", "dropped", "lost_good",
    "removed_wrong", "good"}} cell counts of what ``max_vector=fraction`` would drop. ``min_gain``:
    the vectors as the reader gives them with that option (pictures decoded, residuals on)."""
    import edgekit
    from training.synth import load_ground_truth

    truth = load_ground_truth(truth_path)
    flow, stride = truth.flow_px, truth.stride_px
    errors, spurious, still = [], 0, 0
    long = {f: {"inter": 0, "dropped": 0, "lost_good": 0, "removed_wrong": 0, "good": 0} for f in fractions}
    anchor = 0
    options = {"residual": False} if min_gain is None else {"residual": True, "min_gain": min_gain}
    with edgekit.open(str(video), rgb=None, **options) as reader:
        for f in reader:
            if f.kind == "I":
                anchor = f.index
                continue
            if f.kind != "P" or f.mv is None:
                continue
            span = flow[anchor + 1:f.index + 1].sum(axis=0)
            anchor = f.index
            gh, gw = f.mv.shape[1:]
            true = cell_flow(span, stride, gh, gw)
            h, w = true.shape[1:]
            mv, inter = f.mv[:, :h, :w], ~f.intra[:h, :w]
            speed = np.hypot(true[0], true[1])
            moving = inter & (speed >= MOVING_PX)
            resting = inter & (speed < STILL_PX)
            error = np.hypot(mv[0] - true[0], mv[1] - true[1])
            length = np.hypot(mv[0], mv[1])
            errors.append(error[moving])
            spurious += int((length[resting] >= 1.0).sum())
            still += int(resting.sum())
            if long:
                good = inter & (error < TRACKED_PX)
                n_inter, n_good, short = int(inter.sum()), int(good.sum()), min(f.height, f.width)
                for fraction, counts in long.items():
                    dropped = inter & (length > fraction * short)
                    n_dropped, n_lost = int(dropped.sum()), int((dropped & good).sum())
                    counts["inter"] += n_inter
                    counts["good"] += n_good
                    counts["dropped"] += n_dropped
                    counts["lost_good"] += n_lost
                    counts["removed_wrong"] += n_dropped - n_lost
    epe = np.concatenate(errors) if errors else np.zeros(0)
    if epe.size == 0 and still == 0:
        return None
    out = {"tracked": float((epe < TRACKED_PX).mean()) if epe.size else None,
           "epe_px": float(np.median(epe)) if epe.size else None,
           "spurious": spurious / still if still else None,
           "moving_cells": int(epe.size), "still_cells": still}
    if fractions:
        out["long"] = long
    return out


def long_vectors(rows: list[dict]) -> dict:
    """Per fraction, over ``rows``' cells: the shares ``dropped`` (of inter cells), ``lost_good`` and
    ``removed_wrong`` (of dropped cells), ``good_lost_share`` (of good vectors), and the counts."""
    out = {}
    for fraction in rows[0]["long"]:
        n = {k: sum(r["long"][fraction][k] for r in rows) for k in rows[0]["long"][fraction]}
        out[str(fraction)] = {"dropped": round(n["dropped"] / max(n["inter"], 1), 5),
                              "lost_good": round(n["lost_good"] / max(n["dropped"], 1), 4),
                              "removed_wrong": round(n["removed_wrong"] / max(n["dropped"], 1), 4),
                              "good_lost_share": round(n["lost_good"] / max(n["good"], 1), 5), "cells": n}
    return out


def summary(rows: list[dict]) -> dict:
    """Clips, and median / p10 / p90 over clips of each figure (clips without it left out)."""
    out = {"clips": len(rows)}
    for key in ("tracked", "epe_px", "spurious"):
        values = np.array([r[key] for r in rows if r[key] is not None])
        out[key] = ({"median": round(float(np.median(values)), 4), "p10": round(float(np.percentile(values, 10)), 4),
                     "p90": round(float(np.percentile(values, 90)), 4), "clips": int(values.size)}
                    if values.size else None)
    return out


def measure(root: Path, split: str | None, limit: int, fractions=(), min_gains=()) -> dict:
    """Figures of the dataset at ``root`` (its ``split`` clips, or all), by codec and by codec and class;
    with ``min_gains``, the same figures by codec for the vectors read with each ``min_gain``."""
    clips = [json.loads(line) for line in (root / "metadata.jsonl").read_text().splitlines()]
    if split:
        clips = [c for c in clips if c.get("split") == split]
    if limit:
        clips = clips[:limit]
    if not clips:
        raise SystemExit(f"--data {root}: no clips{' in split ' + split if split else ''}")
    by_codec, by_class = defaultdict(list), defaultdict(list)
    by_gain = {g: defaultdict(list) for g in min_gains}
    t0 = time.perf_counter()
    for n, clip in enumerate(clips, 1):
        row = clip_figures(root / "videos" / clip["clip"], root / "flow" / clip["flow"], fractions)
        if row is not None:
            by_codec[clip["codec"]].append(row)
            by_class[f"{clip['codec']} {clip['label']}"].append(row)
        for gain, rows in by_gain.items():
            gained = clip_figures(root / "videos" / clip["clip"], root / "flow" / clip["flow"], min_gain=gain)
            if gained is not None:
                rows[clip["codec"]].append(gained)
        if n % 50 == 0:
            log(f"{root.name}: {n}/{len(clips)} clips")
    out = {"data": str(root), "split": split, "clips": len(clips),
           "by_codec": {codec: summary(rows) for codec, rows in sorted(by_codec.items())},
           "by_codec_class": {key: summary(rows) for key, rows in sorted(by_class.items())}}
    if fractions:
        out["max_vector"] = {codec: long_vectors(rows) for codec, rows in sorted(by_codec.items())}
    if min_gains:
        out["min_gain"] = {str(g): {codec: summary(rows) for codec, rows in sorted(by.items())}
                           for g, by in by_gain.items()}
    out["seconds"] = round(time.perf_counter() - t0, 1)
    return out


def main(argv=None) -> int:
    parser = script_parser("How well encoded motion vectors follow a synthetic dataset's true motion, per codec",
                           "python benchmarks/vector_truth.py --data data/synth-broad-motion --split test")
    parser.add_argument("--data", action="append", required=True, metavar="DIR",
                        help="a dataset made by edgekit synth (repeatable)")
    parser.add_argument("--split", default=None,
                        help="only this split's clips of every --data (train, val, test; default: all; the "
                             "held-out renderer puts every clip in test)")
    parser.add_argument("--limit", type=int, default=0, metavar="N", help="at most N clips per dataset (0: all)")
    parser.add_argument("--max-vector", action="append", type=float, default=[], metavar="F",
                        help="also count what the reader's max_vector=F would drop (repeatable; 0 < F <= 1)")
    parser.add_argument("--min-gain", action="append", type=float, default=[], metavar="G",
                        help="also measure the vectors as the reader gives them with min_gain=G (repeatable; "
                             "grey levels per pixel, 0-255)")
    args = parser.parse_args(argv)
    if any(not 0 <= g <= 255 for g in args.min_gain):
        parser.error("--min-gain takes grey levels per pixel in [0, 255]")
    if any(not 0 < f <= 1 for f in args.max_vector):
        parser.error("--max-vector takes fractions of the picture's shorter side in (0, 1]")
    roots = [Path(d) for d in args.data]
    for root in roots:
        if not (root / "metadata.jsonl").is_file():
            parser.error(f"--data {root}: no metadata.jsonl (not a dataset made by edgekit synth)")
    if args.limit < 0:
        parser.error("--limit must be 0 or more")
    out = {"benchmark": "vector_truth", "command": ["vector_truth.py", *(argv if argv is not None else sys.argv[1:])],
           "env": machine(),
           "settings": {"moving_px": MOVING_PX, "still_px": STILL_PX, "tracked_px": TRACKED_PX,
                        "vectors": "each P-frame's own (not accumulated), inter cells, 8x8-px cells",
                        "truth": "flow summed over the frames since the previous I/P-frame, mean over the cell"},
           "datasets": [measure(root, args.split, args.limit, tuple(args.max_vector), tuple(args.min_gain))
                        for root in roots]}
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
