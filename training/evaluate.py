"""Video-level accuracy of a checkpoint with the seeds' test protocol: N segments at their centres,
the whole frame (our centre "crop" is the full picture: inputs are resized, not cropped).

Reads the checkpoint's side-data cache (test-mode sampling: segment centres, exactly the frames
edgekit.Recognizer picks), reports top-1/top-5 and per-class accuracy, writes a confusion-matrix PNG.

examples:
  python -m training eval --checkpoint runs/edge-mvr/best.json
  python -m training eval --checkpoint runs/edge-mvr/best.json --split val --json
  python -m training eval --checkpoint runs/edge-mvr/best.json --confusion runs/edge-mvr/confusion.png
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from edgekit import visualize


def confusion_matrix(labels: np.ndarray, preds: np.ndarray, n: int) -> np.ndarray:
    """(n, n) int64 counts: rows are true classes, columns predictions."""
    m = np.zeros((n, n), np.int64)
    np.add.at(m, (labels, preds), 1)
    return m


def confusion_png(matrix: np.ndarray, classes, path, cell: int = 24) -> None:
    """A heat map of row-normalised ``matrix`` with class names down the left, written as PNG."""
    n = len(classes)
    rows = matrix / np.maximum(matrix.sum(1, keepdims=True), 1)
    heat = np.repeat(np.repeat(rows, cell, 0), cell, 1)
    img = np.stack([255 * (1 - heat), 255 * (1 - heat * 0.6), np.full_like(heat, 255)], -1).astype(np.uint8)
    img[::cell, :] = 200
    img[:, ::cell] = 200
    label_w = 6 * max(len(c) for c in classes) + 8
    names = np.full((n * cell, label_w, 3), 255, np.uint8)
    for i, name in enumerate(classes):
        strip = visualize.label(np.zeros((0, label_w, 3), np.uint8), name)[:12]
        names[i * cell + (cell - 12) // 2:i * cell + (cell - 12) // 2 + 12] = strip
    visualize.write_png(path, np.concatenate([names, img], axis=1))


def evaluate_checkpoint(checkpoint, split: str = "test", batch_size: int = 32, workers: int = 0,
                        confusion: str | Path | None = None) -> dict:
    import contextlib

    import torch

    from edgekit.errors import ConfigError
    from edgekit.spec import InputSpec
    from training.cache import CachedClips, is_complete
    from training.checkpoint import build_from_checkpoint
    from training.train import evaluate_loader, make_loader

    model, meta = build_from_checkpoint(checkpoint)
    specs = [InputSpec.from_dict(d) for d in meta["input_specs"]]
    cache = Path(meta["cache"])
    if not is_complete(cache):
        spec = meta.get("cache_spec", {})
        dataset = meta.get("config", {}).get("data", {}).get("dataset", "DATASET")
        raise ConfigError(f"the cache {cache} this checkpoint was trained on is missing or incomplete; rebuild it "
                          f"(same dataset, same folder): python -m training cache {dataset} --out {cache.parent} "
                          f"--representation {spec.get('representation', 'accumulated')} "
                          f"--size {spec.get('size', 112)} --flow {spec.get('flow', 'none')} "
                          f"--max-frames {spec.get('max_frames', 0)}")
    ds = CachedClips.for_specs(cache, split, specs, train=False)
    loader = make_loader(ds, batch_size, False, 0, workers)
    result = evaluate_loader(model, loader, torch.device("cpu"), [s.name for s in specs], contextlib.nullcontext)
    labels = result["labels"].numpy()
    preds = result["logits"].argmax(1).numpy()
    classes = meta["classes"]
    matrix = confusion_matrix(labels, preds, len(classes))
    per_class = {c: float(matrix[i, i] / max(matrix[i].sum(), 1)) for i, c in enumerate(classes)}
    out = {"checkpoint": str(checkpoint), "model": meta["model"], "split": split, "videos": int(len(labels)),
           "segments": max(s.segments for s in ds.specs), "top1": result["top1"], "top5": result["top5"], "per_class_top1": per_class,
           "confusion": matrix.tolist()}
    if confusion:
        confusion_png(matrix, classes, confusion)
        out["confusion_png"] = str(confusion)
    return out


def add_arguments(p) -> None:
    p.add_argument("--checkpoint", required=True, help="checkpoint JSON (runs/<name>/best.json)")
    p.add_argument("--split", default="test", choices=["train", "val", "test"])
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--confusion", help="confusion-matrix PNG path (default: beside the checkpoint)")
    p.add_argument("--json", action="store_true")


def run(args) -> int:
    confusion = args.confusion or str(Path(args.checkpoint).with_name(f"confusion-{args.split}.png"))
    out = evaluate_checkpoint(args.checkpoint, args.split, args.batch_size, confusion=confusion)
    if args.json:
        print(json.dumps(out))
        return 0
    print(f"{out['model']} on {out['split']} ({out['videos']} videos, {out['segments']} segments, centre):"
          f" top-1 {out['top1']:.3f}  top-5 {out['top5']:.3f}")
    worst = sorted(out["per_class_top1"].items(), key=lambda kv: kv[1])[:5]
    print("  weakest classes: " + ", ".join(f"{c} {a:.2f}" for c, a in worst))
    print(f"  confusion matrix: {out['confusion_png']}")
    return 0
