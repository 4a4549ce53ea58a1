"""How much of the defaults' accuracy the encoded motion vectors cost: one network, fed motion
vectors or the exact motion, on the broad test split and on the held-out renderer.

The synthetic renderers write every clip's exact optical flow beside it. ``edge-flow`` is the
``"mv"`` default's network (``edge-mv-ref``'s: 3/8-width ResNet-18, patch stem, temporal shift, 3
segments at 112x112) trained by the same recipe on that flow instead of the motion vectors
(training/configs/edge-flow.toml). Both see their input accumulated to the GOP's I-frame and the
frames the Recognizer picks (one view per clip, FP32 PyTorch). Whatever separates their scores is
lost between the motion and what the encoder wrote.

Each ``--checkpoint`` is scored on each ``--data`` set: a dataset folder with a split
(``DIR:test``), or ``heldout``: the held-out renderer's clips, generated into ``--workdir`` as
``benchmarks/heldout.py`` does (the same seed and size give the same clips). Side data comes from
the training cache (``--cache``), built for a set when missing (with the flow a model's run was
trained on when it reads flow: the exact flow, or an optical-flow method's on the decoded
pictures). A prediction is the argmax over the 12 fixed classes, as ``benchmarks/heldout.py``
scores; figures: top-1 over clips of those classes, by codec, by codec and whether an actor moves
(``static``, ``scene_left`` and ``scene_right`` have none), and per class.

Prints ONE JSON object on stdout; progress goes to stderr.

Example (the committed docs/results/motion-ceiling.json; checkpoints from
training/configs/edge-mv-ref.toml and training/configs/edge-flow.toml):
    python benchmarks/motion_ceiling.py --checkpoint vectors=runs/edge-mv-ref/best.json \\
        --checkpoint flow=runs/edge-flow/best.json --workdir /tmp/edgekit-heldout
"""

from __future__ import annotations

import json
import sys
import time
from collections import defaultdict
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent
REPO_ROOT = BENCHMARKS.parent
sys.path.append(str(BENCHMARKS))  # benchmarks/_env.py, run as a script
sys.path.insert(0, str(REPO_ROOT))  # training, edgekit of this tree

from _env import machine, script_parser  # noqa: E402


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def parse_checkpoint(text: str) -> tuple[str, Path]:
    """``LABEL=PATH`` -> (label, path); a bare path is labelled by its run folder's name."""
    label, sep, path = text.partition("=")
    if not sep:
        path, label = text, Path(text).parent.name
    if not label or not path:
        raise SystemExit(f"--checkpoint {text!r}: expected LABEL=PATH")
    return label, Path(path)


def cache_for(dataset: Path, meta: dict, specs, cache_root: Path, workers: int) -> Path:
    """The cache of ``dataset`` holding what ``specs`` read, built as training builds a run's cache
    (``training.train.ensure_cache``), with the flow its run was trained on when an input reads flow.
    Only the inputs and that record decide it, so a checkpoint whose training cache is gone still
    scores."""
    from training.config import DataSection, saved_data_section
    from training.train import ensure_cache

    # the flow the run was trained on (the exact flow, or an optical-flow method's on decoded pictures)
    flow = saved_data_section(meta).flow if any(s.modality == "flow" for s in specs) else "none"
    return ensure_cache(DataSection(dataset=dataset, cache=cache_root, workers=workers, flow=flow), specs,
                        progress=False)


def codecs_of(dataset: Path) -> dict[str, tuple[str, str]]:
    """Each clip's codec and whether an actor moves in it (``"actor"``; ``"no actor"`` for the classes
    of camera motion and of nothing, ``static``/``scene_left``/``scene_right``), by its cached path's
    ``<class>/<file>``, from the dataset's metadata."""
    clips = [json.loads(line) for line in (dataset / "metadata.jsonl").read_text().splitlines()]
    return {c["clip"]: (c.get("codec", "?"), "actor" if c.get("actors", 1) else "no actor") for c in clips}


def _clip_name(path: str) -> str:
    """A cached clip's name in its dataset's metadata: ``<class>/<file>``."""
    p = Path(path)
    return f"{p.parent.name}/{p.name}"


def _top1_table(counts: dict) -> dict:
    """{key: [correct, clips]} -> {key: {correct, clips, top1}}, keys sorted."""
    return {k: {"correct": a, "clips": b, "top1": round(a / b, 4)} for k, (a, b) in sorted(counts.items())}


def load(checkpoint: Path) -> tuple[object, dict]:
    """(model in eval mode, checkpoint JSON)."""
    from training.checkpoint import build_from_checkpoint

    model, meta = build_from_checkpoint(checkpoint)
    return model.eval(), meta


def score(checkpoint: Path, dataset: Path, split: str, cache_root: Path, workers: int,
          classes: tuple[str, ...], loaded: tuple | None = None, codecs: dict | None = None) -> dict:
    """Top-1 over ``classes`` of ``checkpoint`` on ``split`` of ``dataset`` (its clips of those classes).
    ``loaded`` (:func:`load`'s answer) and ``codecs`` (:func:`codecs_of`'s): when already read."""
    import numpy as np
    import torch

    from edgekit.spec import InputSpec
    from training.cache import CachedClips
    from training.config import saved_data_section

    model, meta = loaded or load(checkpoint)
    specs = [InputSpec.from_dict(d) for d in meta["input_specs"]]
    labels = list(meta["classes"])
    missing = [c for c in classes if c not in labels]
    if missing:
        raise SystemExit(f"{checkpoint}: the model has no class {missing[0]!r} (its labels: {', '.join(labels)})")
    keep = [labels.index(c) for c in classes]
    folder = cache_for(dataset, meta, specs, cache_root, workers)
    cells = saved_data_section(meta).flow_cells  # the flow as the run read it
    data = CachedClips.for_specs(folder, split, specs, train=False, flow_cells=cells)
    codec_of = codecs if codecs is not None else codecs_of(dataset)
    correct, total = 0, 0
    per_class, per_codec, per_group = (defaultdict(lambda: [0, 0]) for _ in range(3))
    with torch.no_grad():
        for i in range(len(data)):
            arrays, y = data.item(i)
            truth = data.classes[y]
            if truth not in classes:
                continue
            logits = model(*[torch.from_numpy(np.ascontiguousarray(arrays[s.name][None])) for s in specs])[0]
            predicted = classes[int(np.argmax(logits.numpy()[keep]))]
            ok = int(predicted == truth)
            codec, actor = codec_of.get(_clip_name(data.clips[i]["path"]), ("?", "?"))
            correct, total = correct + ok, total + 1
            for table, key in ((per_class, truth), (per_codec, codec), (per_group, f"{codec} {actor}")):
                table[key][0] += ok
                table[key][1] += 1
    return {"top1": round(correct / total, 4) if total else None, "correct": correct, "clips": total,
            "by_codec": _top1_table(per_codec), "by_codec_actor": _top1_table(per_group),
            "per_class": {k: {"correct": per_class[k][0], "clips": per_class[k][1]} for k in classes if k in per_class},
            "model": meta.get("model") or meta.get("config", {}).get("model", {}).get("name"),
            "inputs": [s.modality for s in specs], "flow_cells": cells, "cache": str(folder)}


def main(argv: list[str] | None = None) -> int:
    parser = script_parser("One network on motion vectors or on the exact motion, on the broad test split and the "
                           "held-out renderer",
                           "python benchmarks/motion_ceiling.py --checkpoint vectors=runs/edge-mv-ref/best.json "
                           "--checkpoint flow=runs/edge-flow/best.json")
    parser.add_argument("--checkpoint", action="append", required=True, metavar="LABEL=PATH",
                        help="a training checkpoint to score (repeat; LABEL names its row)")
    parser.add_argument("--data", action="append", default=None, metavar="DIR:SPLIT|heldout",
                        help="a dataset folder and split, or 'heldout' (default: data/synth-broad-motion:test and "
                             "heldout)")
    parser.add_argument("--cache", default="data/cache", help="side-data cache root (default data/cache)")
    parser.add_argument("--workdir", default="/tmp/edgekit-heldout", metavar="DIR",
                        help="where the held-out clips are generated or reused (default /tmp/edgekit-heldout)")
    parser.add_argument("--clips-per-class", type=int, default=10, metavar="N",
                        help="held-out clips per class (default 10, as benchmarks/heldout.py)")
    parser.add_argument("--seed", type=int, default=0, metavar="N", help="held-out generator seed (default 0)")
    parser.add_argument("--frames", type=int, default=48, metavar="N", help="held-out frames per clip (default 48)")
    parser.add_argument("--workers", type=int, default=2, metavar="N", help="processes generating and caching")
    args = parser.parse_args(argv)

    from heldout import generate_clips

    from training.synth.classes import FIXED_CLASS_NAMES

    t0 = time.perf_counter()
    checkpoints = [parse_checkpoint(c) for c in args.checkpoint]
    sets, generation = [], None
    for item in args.data or ["data/synth-broad-motion:test", "heldout"]:
        if item == "heldout":
            log(f"held-out renderer: {args.clips_per_class} clips per class into {args.workdir}")
            _, generation = generate_clips(args, Path(args.workdir))
            sets.append(("heldout", Path(generation["out_dir"]), "test"))
        else:
            folder, _, split = item.rpartition(":")
            if not folder or split not in ("train", "val", "test"):
                raise SystemExit(f"--data {item!r}: expected DIR:SPLIT (split train, val or test) or 'heldout'")
            sets.append((item, Path(folder), split))
    for label, path in checkpoints:
        if not path.is_file():
            raise SystemExit(f"--checkpoint {label}={path}: no such checkpoint")
    codecs = {name: codecs_of(folder) for name, folder, _ in sets}
    results = {}
    for label, path in checkpoints:
        loaded = load(path)
        for name, folder, split in sets:
            log(f"{label} on {name}")
            results.setdefault(label, {})[name] = score(path, folder, split, Path(args.cache), args.workers,
                                                        FIXED_CLASS_NAMES, loaded=loaded, codecs=codecs[name])
    report = {"benchmark": "motion_ceiling",
              "command": "python benchmarks/motion_ceiling.py " + " ".join(sys.argv[1:] if argv is None else argv),
              "settings": {"checkpoints": {label: str(path) for label, path in checkpoints},
                           "data": [name for name, _, _ in sets], "classes": list(FIXED_CLASS_NAMES),
                           "view": "one view per clip: the model's segments at their centres, FP32 PyTorch"},
              "env": machine(), "generation": generation, "results": results,
              "elapsed_s": round(time.perf_counter() - t0, 1)}
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
