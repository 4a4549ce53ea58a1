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

Example (the committed docs/results/vector-truth.json):
    python benchmarks/vector_truth.py --data data/synth-broad-motion --split test \\
        --data /tmp/edgekit-heldout/heldout-seed0-10x48f > docs/results/vector-truth.json
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


def clip_figures(video: Path, truth_path: Path) -> dict | None:
    """``tracked``, ``epe_px``, ``spurious`` of one clip (None when it has no P-frame with moving or
    still inter cells)."""
    import edgekit
    from training.synth import load_ground_truth

    truth = load_ground_truth(truth_path)
    flow, stride = truth.flow_px, truth.stride_px
    errors, spurious, still = [], 0, 0
    anchor = 0
    with edgekit.open(str(video), residual=False, rgb=None) as reader:
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
            errors.append(np.hypot(mv[0] - true[0], mv[1] - true[1])[moving])
            spurious += int((np.hypot(mv[0], mv[1])[resting] >= 1.0).sum())
            still += int(resting.sum())
    epe = np.concatenate(errors) if errors else np.zeros(0)
    if epe.size == 0 and still == 0:
        return None
    return {"tracked": float((epe < TRACKED_PX).mean()) if epe.size else None,
            "epe_px": float(np.median(epe)) if epe.size else None,
            "spurious": spurious / still if still else None,
            "moving_cells": int(epe.size), "still_cells": still}


def summary(rows: list[dict]) -> dict:
    """Clips, and median / p10 / p90 over clips of each figure (clips without it left out)."""
    out = {"clips": len(rows)}
    for key in ("tracked", "epe_px", "spurious"):
        values = np.array([r[key] for r in rows if r[key] is not None])
        out[key] = ({"median": round(float(np.median(values)), 4), "p10": round(float(np.percentile(values, 10)), 4),
                     "p90": round(float(np.percentile(values, 90)), 4), "clips": int(values.size)}
                    if values.size else None)
    return out


def measure(root: Path, split: str | None, limit: int) -> dict:
    """Figures of the dataset at ``root`` (its ``split`` clips, or all), by codec and by codec and class."""
    clips = [json.loads(line) for line in (root / "metadata.jsonl").read_text().splitlines()]
    if split:
        clips = [c for c in clips if c.get("split") == split]
    if limit:
        clips = clips[:limit]
    if not clips:
        raise SystemExit(f"--data {root}: no clips{' in split ' + split if split else ''}")
    by_codec, by_class = defaultdict(list), defaultdict(list)
    t0 = time.perf_counter()
    for n, clip in enumerate(clips, 1):
        row = clip_figures(root / "videos" / clip["clip"], root / "flow" / clip["flow"])
        if row is not None:
            by_codec[clip["codec"]].append(row)
            by_class[f"{clip['codec']} {clip['label']}"].append(row)
        if n % 50 == 0:
            log(f"{root.name}: {n}/{len(clips)} clips")
    return {"data": str(root), "split": split, "clips": len(clips),
            "by_codec": {codec: summary(rows) for codec, rows in sorted(by_codec.items())},
            "by_codec_class": {key: summary(rows) for key, rows in sorted(by_class.items())},
            "seconds": round(time.perf_counter() - t0, 1)}


def main(argv=None) -> int:
    parser = script_parser("How well encoded motion vectors follow a synthetic dataset's true motion, per codec",
                           "python benchmarks/vector_truth.py --data data/synth-broad-motion --split test")
    parser.add_argument("--data", action="append", required=True, metavar="DIR",
                        help="a dataset made by edgekit synth (repeatable)")
    parser.add_argument("--split", default=None,
                        help="only this split's clips of every --data (train, val, test; default: all; the "
                             "held-out renderer puts every clip in test)")
    parser.add_argument("--limit", type=int, default=0, metavar="N", help="at most N clips per dataset (0: all)")
    args = parser.parse_args(argv)
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
           "datasets": [measure(root, args.split, args.limit) for root in roots]}
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
