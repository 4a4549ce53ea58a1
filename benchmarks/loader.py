"""The training loader's throughput, side by side in one run: a DataLoader made afresh every epoch
(what ``training.train`` did before: its worker processes started again each epoch) against the one
persistent loader it uses now (workers started once, fed ``(epoch, index)`` pairs by
``training.train.EpochItems``), for each ``--workers`` count; beside them, one item's cost in the
process and the model's own training step on batches already in memory (cross-entropy, AdamW, the
config's batch on ``--device``), so the JSON says whether the loader or the model limits an epoch.

    python benchmarks/loader.py --config edge-mvr --workers 0 2 --epochs 4 > docs/results/loader.json
    python benchmarks/loader.py --config edge-mvr --workers 14 --device cuda      # on a GPU machine

The cache is the one training uses (built first when missing, outside the timings; one pass over
its clips in the process, which times one item, puts its pages in memory first). Both loaders
read the same items in the same order with the same augmentation draws (``tests/test_train_loader.py``);
the benchmark checks that on the first batch of every epoch. The model inputs only: a teacher's
companion inputs (flow, RGB) are not read. Prints ONE JSON object; progress on stderr.
"""

import argparse
import contextlib
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._env import machine  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="example: python benchmarks/loader.py --config edge-mvr --workers 0 2")
    p.add_argument("--config", required=True, help="a training config (path or bundled name)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override (repeatable)")
    p.add_argument("--workers", type=int, nargs="+", default=None,
                   help="DataLoader processes to measure (default: the config's data.workers)")
    p.add_argument("--epochs", type=int, default=3, help="epochs read by each loader (default 3)")
    p.add_argument("--max-clips", type=int, default=0,
                   help="read only the first N training clips per epoch (default 0: all)")
    p.add_argument("--steps", type=int, default=20, help="model training steps timed (default 20; 0: none)")
    p.add_argument("--device", default=None, help="device of the model step (default: the config's train.device)")
    args = p.parse_args(argv)
    if args.epochs < 1 or args.steps < 0 or args.max_clips < 0 or (args.workers and min(args.workers) < 0):
        p.error("--epochs must be >= 1, --steps and --max-clips >= 0, --workers >= 0")
    return args


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class _Subset:
    """The first ``n`` items of a dataset, keys passed through (an index or an (epoch, index) pair)."""

    def __init__(self, dataset, n: int):
        self.dataset, self.n = dataset, n

    def __len__(self):
        return self.n

    def __getitem__(self, key):
        return self.dataset[key]


def time_loaders(dataset, batch_size: int, workers: int, epochs: int, seed_base: int) -> dict:
    """Seconds per epoch of a loader made afresh each epoch and of one persistent loader, the
    clips per second of each, and whether their first batches matched every epoch."""
    from training.train import EpochItems, make_loader

    n = len(dataset)
    figures, firsts = {}, {}
    for kind in ("fresh_per_epoch", "persistent"):
        seconds, first = [], []
        items = EpochItems(n, seed_base)
        loader = None
        for epoch in range(epochs):
            t0 = time.perf_counter()
            if kind == "fresh_per_epoch":
                dataset.dataset.set_epoch(epoch)
                loader = make_loader(dataset, batch_size, True, seed_base + epoch, workers)
            else:
                items.set_epoch(epoch)
                if loader is None:
                    loader = make_loader(dataset, batch_size, True, 0, workers, sampler=items, persistent=True)
            batches = 0
            for i, batch in enumerate(loader):
                if i == 0:
                    first.append({k: v.clone() for k, v in batch.items()})
                batches += 1
            seconds.append(time.perf_counter() - t0)
        del loader
        total = sum(seconds)
        figures[kind] = {"seconds": round(total, 4), "seconds_per_epoch": [round(s, 3) for s in seconds],
                         "first_epoch_s": round(seconds[0], 3),
                         "later_epochs_median_s": round(statistics.median(seconds[1:]), 3) if epochs > 1 else None,
                         "clips_per_s": round(n * epochs / total, 1), "batches_per_epoch": batches}
        firsts[kind] = first
        _say(f"  workers {workers}, {kind}: {figures[kind]['clips_per_s']} clips/s "
             f"(epochs {', '.join(f'{s:.2f}' for s in seconds)} s)")
    same = all(all(bool((a[k] == b[k]).all()) for k in a)
               for a, b in zip(firsts["fresh_per_epoch"], firsts["persistent"]))
    return {**figures, "same_batches": same,
            "speedup": round(figures["persistent"]["clips_per_s"] / figures["fresh_per_epoch"]["clips_per_s"], 3)}


def time_model_step(cfg, dataset, batch_size: int, steps: int, device_name: str) -> dict:
    """Clips per second of the config's model trained with cross-entropy and AdamW on one batch
    already on the device (no loader): the rate an epoch could reach if the loader kept up."""
    import torch

    from training.models import build_model
    from training.objectives.base import model_inputs
    from training.train import resolve_device

    device = resolve_device(device_name)
    model = build_model(cfg.model.name, len(dataset.dataset.classes), **dict(cfg.model.kwargs)).to(device)
    model.train()
    items = [dataset[i] for i in range(min(batch_size, len(dataset)))]
    batch = {k: torch.stack([it[k] for it in items]).to(device) for k in items[0]}
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    use_amp = device.type == "cuda"

    def step():
        with torch.autocast("cuda", dtype=torch.bfloat16) if use_amp else contextlib.nullcontext():
            logits = model(**model_inputs(model, batch))
            loss = torch.nn.functional.cross_entropy(logits.float(), batch["label"])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for _ in range(3):  # warm-up
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    clips = steps * len(items)
    return {"device": str(device), "batch": len(items), "steps": steps, "seconds": round(seconds, 3),
            "clips_per_s": round(clips / seconds, 1), "bf16_autocast": use_amp}


def main(argv=None) -> int:
    args = parse_args(argv)
    from edgekit.errors import EdgekitError

    try:
        return _run(args, argv)
    except EdgekitError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _run(args, argv) -> int:
    import torch

    from training.cache import CachedClips
    from training.config import load_config
    from training.models import model_input_specs
    from training.train import ensure_cache

    t_start = time.perf_counter()
    cfg = load_config(args.config, args.set)
    specs = model_input_specs(cfg.model.name, **dict(cfg.model.kwargs))
    _say(f"cache of {cfg.data.dataset} for {cfg.model.name} (built first if missing)")
    cache = ensure_cache(cfg.data, specs, progress=False)
    full = CachedClips.for_specs(cache, "train", specs, seed=cfg.train.seed, augment=cfg.augment,
                                 flow_cells=cfg.data.flow_cells)
    n = min(len(full), args.max_clips) if args.max_clips else len(full)
    dataset = _Subset(full, n)
    batch_size = cfg.train.batch_size

    # one pass over every clip first, untimed by the loaders: the cache's pages are then in memory for
    # all of them alike (the first loader timed would otherwise read them from disk for the rest)
    t0 = time.perf_counter()
    for i in range(n):
        full.item(i)
    item_ms = (time.perf_counter() - t0) * 1000 / n
    _say(f"one item in the process: {item_ms:.2f} ms (a pass over the {n} clips)")

    loaders = {}
    for workers in (args.workers if args.workers is not None else [cfg.data.workers]):
        loaders[str(workers)] = time_loaders(dataset, batch_size, workers, args.epochs, cfg.train.seed * 1000)
    step = None
    if args.steps:
        step = time_model_step(cfg, dataset, batch_size, args.steps, args.device or cfg.train.device)
        _say(f"model step alone: {step['clips_per_s']} clips/s on {step['device']}")
    best = max(v["persistent"]["clips_per_s"] for v in loaders.values())
    report = {
        "benchmark": "loader",
        "command": " ".join(["python", "benchmarks/loader.py", *(argv if argv is not None else sys.argv[1:])]),
        "env": machine(), "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
        "config": str(args.config), "model": cfg.model.name, "cache": str(cache),
        "inputs": [s.name for s in specs], "clips_per_epoch": n, "batch_size": batch_size, "epochs": args.epochs,
        "augment": bool(full.augmenter is not None), "item_ms_in_process": round(item_ms, 3),
        "loaders": loaders, "model_step": step,
        "limit": None if step is None else ("loader" if best < step["clips_per_s"] else "model"),
        "seconds": round(time.perf_counter() - t_start, 1),
    }
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
