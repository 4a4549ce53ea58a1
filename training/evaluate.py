"""Video-level accuracy of a checkpoint: top-1/top-5, per-class accuracy and a confusion-matrix PNG.

Reads the checkpoint's side-data cache. By default one view per video: the model's segments at
their centres, exactly the frames edgekit.Recognizer picks, the whole stored picture (inputs are
resized, not cropped). --protocol NAME or --segments/--crops/--flip/--clips score several views per
video, the papers' test protocols (training.protocols): N segments in groups of the model's S,
crops of the cached picture, left-right flips read back through the mirror map, K clips of a 3D
input; softmax probabilities averaged.

examples:
  python -m training eval --checkpoint runs/edge-mvr/best.json
  python -m training eval --checkpoint runs/edge-mvr/best.json --split val --json
  python -m training eval --checkpoint runs/edge-mvr/best.json --confusion runs/edge-mvr/confusion.png
  python -m training eval --checkpoint runs/edge-mvr/best.json --segments 24 --crops 10 --json
  python -m training eval --checkpoint runs/dmc-r18/best.json --protocol dmc
  python -m training eval --checkpoint runs/mfcd/best.json --protocol mfcd --clips 5
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


def _mirror_for_flips(meta: dict, classes) -> np.ndarray:
    """The horizontal mirror map of the checkpoint's classes (``training.augment.mirror_table``):
    the synthetic benchmark's table, or the ``augment.hflip_labels`` of its training config."""
    from edgekit.errors import ConfigError
    from training.augment import mirror_table

    explicit = meta.get("config", {}).get("augment", {}).get("hflip_labels") or None
    try:
        return mirror_table("hflip", classes, explicit)
    except ConfigError as err:
        raise ConfigError(f"flipped test views need each class's mirror image and this checkpoint gives none ({err}); "
                          "evaluate without --flip and with --crops 1, 3 or 5") from None


def _view_batches(loader, names, batch_size: int):
    """Rows of consecutive clips' views, ``batch_size`` rows at a time: (dict name -> tensor, labels
    of the clips that were complete so far). A single-view plan gives the batches of the plain loader."""
    import torch

    pending = {n: [] for n in names}
    rows = 0
    for views, label in loader:
        for n in names:
            pending[n].append(torch.as_tensor(views[n]))
        rows += pending[names[0]][-1].shape[0]
        yield None, int(label)
        while rows >= batch_size:
            joined = {n: torch.cat(pending[n]) for n in names}
            yield {n: t[:batch_size] for n, t in joined.items()}, None
            pending = {n: [t[batch_size:]] for n, t in joined.items()}
            rows -= batch_size
    if rows:
        yield {n: torch.cat(pending[n]) for n in names}, None


def score_views(model, views, batch_size: int = 32, workers: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Logits of every view of every clip, (clips, views, classes) float32, and the labels (clips,)
    int64. ``views``: a :class:`training.protocols.ClipViews`. Views of consecutive clips are
    batched ``batch_size`` rows at a time (with one view per clip: the batches of
    ``training.train.make_loader``); ``workers`` DataLoader processes assemble the views."""
    import torch
    from torch.utils.data import DataLoader

    names = [s.name for s in views.dataset.specs]
    loader = DataLoader(views, batch_size=None, shuffle=False, num_workers=workers)
    labels, logits = [], []
    model.eval()
    with torch.no_grad():
        for batch, label in _view_batches(loader, names, batch_size):
            if batch is None:
                labels.append(label)
            else:
                logits.append(model(**batch).float().cpu())
    scores = torch.cat(logits).numpy()
    return scores.reshape(len(labels), views.plan.views, -1), np.asarray(labels, np.int64)


def evaluate_checkpoint(checkpoint, split: str = "test", batch_size: int = 32, workers: int = 0,
                        confusion: str | Path | None = None, protocol=None) -> dict:
    """Video-level top-1/top-5, per-class top-1 and the confusion matrix of ``checkpoint`` on its
    cache's ``split`` under ``protocol`` (a ``training.protocols.TestProtocol``; default: one view,
    the frames ``edgekit.Recognizer`` picks, the whole picture). Raises ConfigError for a missing
    cache or a protocol the model cannot take."""
    import torch

    from edgekit.errors import ConfigError
    from edgekit.spec import InputSpec
    from training.cache import CachedClips, is_complete
    from training.checkpoint import build_from_checkpoint
    from training.config import saved_data_section
    from training.protocols import ClipViews, TestProtocol, average_scores, plan_views

    protocol = protocol or TestProtocol()
    model, meta = build_from_checkpoint(checkpoint)
    specs = [InputSpec.from_dict(d) for d in meta["input_specs"]]
    plan = plan_views(protocol, specs, meta["model"])  # refuse a bad protocol before reading the cache
    classes = meta["classes"]
    mirror = _mirror_for_flips(meta, classes) if plan.flipped.any() else None
    cache = Path(meta["cache"])
    if not is_complete(cache):
        spec = meta.get("cache_spec", {})
        dataset = meta.get("config", {}).get("data", {}).get("dataset", "DATASET")
        raise ConfigError(f"the cache {cache} this checkpoint was trained on is missing or incomplete; rebuild it "
                          f"(same dataset, same folder): python -m training cache {dataset} --out {cache.parent} "
                          f"--representation {spec.get('representation', 'accumulated')} "
                          f"--size {spec.get('size', 112)} --flow {spec.get('flow', 'none')} "
                          f"--max-frames {spec.get('max_frames', 0)}")
    cells = saved_data_section(meta).flow_cells  # the flow as the run read it
    ds = CachedClips.for_specs(cache, split, specs, train=False, flow_cells=cells)
    logits, labels = score_views(model, ClipViews(ds, plan), batch_size, workers)
    scores = torch.from_numpy(average_scores(logits, plan.flipped, mirror))
    k = min(5, scores.shape[1])
    topk = scores.topk(k, dim=1).indices
    hits = topk == torch.from_numpy(labels)[:, None]  # float32 means, as training's evaluate_loader reports
    top1, top5 = float(hits[:, 0].float().mean()), float(hits.any(1).float().mean())
    preds = topk[:, 0].numpy()
    matrix = confusion_matrix(labels, preds, len(classes))
    per_class = {c: float(matrix[i, i] / max(matrix[i].sum(), 1)) for i, c in enumerate(classes)}
    out = {"checkpoint": str(checkpoint), "model": meta["model"], "split": split, "videos": int(len(labels)),
           "segments": max(plan.segments.values()), "top1": top1, "top5": top5, "per_class_top1": per_class,
           "confusion": matrix.tolist(), "protocol": plan.describe()}
    if confusion:
        confusion_png(matrix, classes, confusion)
        out["confusion_png"] = str(confusion)
    return out


def add_arguments(p) -> None:
    from edgekit.cli.common import positive_int
    from training.protocols import CROP_SIDE, preset_help

    p.add_argument("--checkpoint", required=True, help="checkpoint JSON (runs/<name>/best.json)")
    p.add_argument("--split", default="test", choices=["train", "val", "test"])
    p.add_argument("--batch-size", type=positive_int("--batch-size"), default=32,
                   help="views per forward pass (default: 32)")
    p.add_argument("--confusion", help="confusion-matrix PNG path (default: beside the checkpoint)")
    p.add_argument("--protocol", type=_protocol_name, metavar="NAME",
                   help="a paper's test protocol (below); the flags after it override its options")
    p.add_argument("--segments", type=positive_int("--segments"), metavar="N",
                   help="TSN segments per video, a multiple of the model's S, scored as N/S interleaved groups "
                        "of S whose logits' softmax is averaged (default: the model's S)")
    p.add_argument("--crops", type=_crop_count, metavar="1|3|5|10",
                   help=f"1: the whole stored picture (default); 3: left/centre/right; 5: centre + 4 corners; "
                        f"10: those 5 and their flips. Crops of side --crop-side ({CROP_SIDE}) of the cached "
                        "picture, resized back (the cache holds the model's input size)")
    p.add_argument("--flip", action="store_true",
                   help="also score each crop mirrored left-right, its class scores read through the mirror map")
    p.add_argument("--clips", type=positive_int("--clips"), metavar="K",
                   help="temporal clips per video for 3D (BCTHW) inputs, evenly spread (default: 1)")
    p.add_argument("--crop-side", type=_crop_side, metavar="F",
                   help=f"side of a crop, fraction of the stored picture (default: {CROP_SIDE} = 224/256)")
    p.add_argument("--json", action="store_true")
    p.epilog = (p.epilog or "") + (
        "\n\nprotocols (--protocol NAME: what it sets, and where the paper states it):\n" + preset_help() + "\n\n"
        "Several views: each view's softmax probabilities are averaged (a flipped view's score for a class is its\n"
        "score for the class's mirror image; classes without one average the unflipped views). One view: logits.\n"
        "A preset's segment count becomes the nearest multiple of the model's segments.")


def _protocol_name(text: str) -> str:
    from training.protocols import find_preset

    return find_preset(text).name  # ConfigError naming the closest preset


def _crop_count(text: str) -> int:
    from edgekit.errors import ConfigError
    from training.protocols import CROP_COUNTS

    if text.strip() not in {str(c) for c in CROP_COUNTS}:
        raise ConfigError(f"--crops takes {', '.join(map(str, CROP_COUNTS))} (centre, left/centre/right, "
                          f"centre + corners, those 5 and their flips), got {text!r}")
    return int(text)


def _crop_side(text: str) -> float:
    from edgekit.errors import ConfigError

    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value <= 1:
        raise ConfigError(f"--crop-side is a fraction of the picture in (0, 1], got {text!r}")
    return value


def protocol_from_args(args):
    """The :class:`training.protocols.TestProtocol` of parsed ``eval`` arguments."""
    from training.protocols import protocol_from_options

    return protocol_from_options(args.protocol, segments=args.segments, crops=args.crops, flip=args.flip,
                                 clips=args.clips, crop_side=args.crop_side)


def run(args) -> int:
    protocol = protocol_from_args(args)
    confusion = args.confusion or str(Path(args.checkpoint).with_name(f"confusion-{args.split}.png"))
    out = evaluate_checkpoint(args.checkpoint, args.split, args.batch_size, confusion=confusion, protocol=protocol)
    if args.json:
        print(json.dumps(out))
        return 0
    p = out["protocol"]
    if p["views"] == 1 and p["name"] == "single":
        how = f"{out['segments']} segments, centre"
    else:
        how = (f"protocol {p['name']}: {p['views']} views per video ("
               + ", ".join(f"{k} {v} frames in {p['temporal_views_per_input'][k]} "
                           f"{'groups' if p['temporal_views_per_input'][k] > 1 else 'group'}"
                           for k, v in p["segments_per_input"].items())
               + f"; {p['crops']} crop{'s' if p['crops'] > 1 else ''}{', flipped' if p['flip'] else ''}), "
               "softmax averaged")
    print(f"{out['model']} on {out['split']} ({out['videos']} videos, {how}):"
          f" top-1 {out['top1']:.3f}  top-5 {out['top5']:.3f}")
    worst = sorted(out["per_class_top1"].items(), key=lambda kv: kv[1])[:5]
    print("  weakest classes: " + ", ".join(f"{c} {a:.2f}" for c, a in worst))
    print(f"  confusion matrix: {out['confusion_png']}")
    return 0
