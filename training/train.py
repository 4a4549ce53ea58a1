"""Train a model from a TOML config: ``python -m training train --config CONFIG.toml [--set k=v ...]``.

The side-data cache the model needs is built first if it is missing (or resumed if interrupted).
Runs on CUDA with bf16 autocast when a GPU is present, on the CPU otherwise, deterministic by seed
on the CPU. Writes to ``train.out``: ``metrics.jsonl`` (one line per epoch), ``last.{json,safetensors}``
every epoch (atomically) and ``best.*`` when validation top-1 improves. ``--resume`` continues from
``last``.

examples:
  python -m training train --config training/configs/edge-mvr.toml
  python -m training train --config training/configs/edge-mvr.toml --set train.epochs=3 --set train.out=runs/quick
  python -m training train --config training/configs/edge-mvr.toml --resume
"""

from __future__ import annotations

import copy
import json
import math
import os
import random
import time
import tomllib
from pathlib import Path

import numpy as np

from edgekit.errors import ConfigError

DEFAULTS = {
    "model": {"name": "edge-mvr"},
    "data": {"dataset": "data/synth-small", "cache": "data/cache", "workers": 2, "flow": "none"},
    "train": {"epochs": 10, "batch_size": 32, "lr": 2e-3, "weight_decay": 5e-4, "optimizer": "adamw",
              "warmup_epochs": 1, "label_smoothing": 0.05, "seed": 0, "device": "auto", "out": "runs/edge-mvr",
              "threads": 0, "max_steps_per_epoch": 0},
}


def load_config(path: str | Path | None, overrides: list[str] = ()) -> dict:
    """DEFAULTS, updated by the TOML file, updated by ``section.key=value`` overrides (TOML values)."""
    cfg = copy.deepcopy(DEFAULTS)
    if path is not None:
        path = Path(path)
        if not path.exists():
            raise ConfigError(f"no config file {path}")
        try:
            data = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as err:
            raise ConfigError(f"{path}: {err}") from None
        for section, values in data.items():
            if not isinstance(values, dict):
                raise ConfigError(f"{path}: top-level key {section!r} must be a [section]")
            cfg.setdefault(section, {}).update(values)
    for item in overrides:
        if "=" not in item or "." not in item.split("=", 1)[0]:
            raise ConfigError(f"--set expects section.key=value, got {item!r}")
        key, raw = item.split("=", 1)
        section, name = key.split(".", 1)
        try:
            value = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw  # a bare string
        cfg.setdefault(section, {})[name] = value
    return cfg


def resolve_device(name: str):
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def ensure_cache(cfg: dict, specs) -> Path:
    """Build (or resume) the cache the model's inputs need; returns its folder."""
    from training.cache import CacheSpec, build_cache

    sizes = {s.size for s in specs}
    reps = {s.representation for s in specs}
    if len(sizes) != 1 or len(reps) != 1:
        raise ConfigError(f"all inputs must share one size and representation, got {sizes} and {reps}")
    (h, w), rep = sizes.pop(), reps.pop()
    if h != w:
        raise ConfigError(f"the cache stores square inputs; the model wants {h}x{w}")
    spec = CacheSpec(representation=rep, size=h, flow=cfg["data"].get("flow", "none"))
    folder = Path(cfg["data"]["cache"]) / spec.key()
    if not folder.exists() or _incomplete(folder):
        folder = build_cache(cfg["data"]["dataset"], cfg["data"]["cache"], spec, workers=cfg["data"]["workers"])
    return folder


def _incomplete(folder: Path) -> bool:
    meta = json.loads((folder / "spec.json").read_text()) if (folder / "spec.json").exists() else None
    if meta is None:
        return True
    expected = math.ceil(meta["clips"] / meta["shard_clips"])
    return len(list(folder.glob("shard-*.json"))) < expected


def make_loader(dataset, batch_size: int, shuffle: bool, seed: int, workers: int):
    import torch
    from torch.utils.data import DataLoader

    g = torch.Generator()
    g.manual_seed(seed)
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, generator=g, num_workers=workers,
                      drop_last=False, persistent_workers=False)


def evaluate_loader(model, loader, device, input_names, autocast) -> dict:
    """Top-1/top-5 and predictions of ``model`` over ``loader`` (test-mode sampling)."""
    import torch

    model.eval()
    labels, logits_all = [], []
    with torch.no_grad():
        for batch in loader:
            inputs = {n: batch[n].to(device) for n in input_names}
            with autocast():
                logits = model(**inputs).float()
            logits_all.append(logits.cpu())
            labels.append(batch["label"])
    logits = torch.cat(logits_all)
    labels = torch.cat(labels)
    k = min(5, logits.shape[1])
    topk = logits.topk(k, dim=1).indices
    return {"top1": float((topk[:, 0] == labels).float().mean()), "top5": float((topk == labels[:, None]).any(1).float().mean()),
            "logits": logits, "labels": labels}


def train(cfg: dict, resume: bool = False, progress: bool | None = None) -> dict:
    """Run the training described by ``cfg`` (see DEFAULTS); returns the final summary dict."""
    import contextlib

    import torch
    from tqdm import tqdm

    from training.cache import CachedClips
    from training.checkpoint import load_checkpoint, save_checkpoint
    from training.models import build_model

    t_cfg, m_cfg = cfg["train"], dict(cfg["model"])
    out = Path(t_cfg["out"])
    out.mkdir(parents=True, exist_ok=True)
    seed_everything(int(t_cfg["seed"]))
    if t_cfg.get("threads"):
        torch.set_num_threads(int(t_cfg["threads"]))
    device = resolve_device(t_cfg["device"])
    name = m_cfg.pop("name")
    probe = build_model(name, 2, **m_cfg)
    specs = probe.input_specs
    cache = ensure_cache(cfg, specs)
    train_ds = CachedClips.for_specs(cache, "train", specs, seed=int(t_cfg["seed"]))
    try:
        val_ds = CachedClips.for_specs(cache, "val", specs, train=False)
    except ConfigError:
        val_ds = CachedClips.for_specs(cache, "test", specs, train=False)
    classes = train_ds.classes
    model = build_model(name, len(classes), **m_cfg).to(device)
    bs = int(t_cfg["batch_size"])
    workers = int(cfg["data"].get("workers", 0))
    val_loader = make_loader(val_ds, bs, False, 0, workers)
    params = [p for p in model.parameters() if p.requires_grad]
    if t_cfg["optimizer"] == "adamw":
        optimizer = torch.optim.AdamW(params, lr=float(t_cfg["lr"]), weight_decay=float(t_cfg["weight_decay"]))
    elif t_cfg["optimizer"] == "sgd":
        optimizer = torch.optim.SGD(params, lr=float(t_cfg["lr"]), momentum=0.9, weight_decay=float(t_cfg["weight_decay"]))
    else:
        raise ConfigError(f"train.optimizer must be 'adamw' or 'sgd', got {t_cfg['optimizer']!r}")
    epochs = int(t_cfg["epochs"])
    steps_per_epoch = math.ceil(len(train_ds) / bs)
    if t_cfg.get("max_steps_per_epoch"):
        steps_per_epoch = min(steps_per_epoch, int(t_cfg["max_steps_per_epoch"]))
    total_steps = max(epochs * steps_per_epoch, 1)
    warmup = int(float(t_cfg["warmup_epochs"]) * steps_per_epoch)

    def lr_at(step: int) -> float:  # linear warm-up, then cosine to zero
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(total_steps - warmup, 1)))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_at)
    start_epoch, best, step = 0, -1.0, 0
    meta_base = {"model": name, "model_cfg": m_cfg, "classes": classes,
                 "input_specs": [s.to_dict() for s in specs], "config": cfg, "cache": str(cache),
                 "cache_spec": train_ds.spec}
    if resume:
        last = out / "last.json"
        if not last.exists():
            raise ConfigError(f"--resume: no checkpoint at {last}")
        meta, state, optim_state = load_checkpoint(last)
        model.load_state_dict(state)
        if optim_state:
            optimizer.load_state_dict(optim_state)
        start_epoch, best, step = meta["epoch"] + 1, meta.get("best_top1", -1.0), meta["step"]
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_at, last_epoch=step - 1)
    use_amp = device.type == "cuda"

    def autocast():
        return torch.autocast("cuda", dtype=torch.bfloat16) if use_amp else contextlib.nullcontext()

    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=float(t_cfg["label_smoothing"]))
    log_path = out / "metrics.jsonl"
    input_names = [s.name for s in specs]
    summary = {}
    for epoch in range(start_epoch, epochs):
        t0 = time.perf_counter()
        train_ds.set_epoch(epoch)
        loader = make_loader(train_ds, bs, True, int(t_cfg["seed"]) * 1000 + epoch, workers)
        model.train()
        seen = correct = 0
        loss_sum = 0.0
        with tqdm(total=steps_per_epoch, desc=f"epoch {epoch + 1}/{epochs}", unit="step",
                  disable=progress is False, leave=False) as bar:
            for i, batch in enumerate(loader):
                if i >= steps_per_epoch:
                    break
                inputs = {n: batch[n].to(device, non_blocking=True) for n in input_names}
                labels = batch["label"].to(device)
                with autocast():
                    logits = model(**inputs)
                    loss = loss_fn(logits.float(), labels)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                scheduler.step()
                step += 1
                loss_sum += loss.item() * len(labels)
                correct += int((logits.argmax(1) == labels).sum())
                seen += len(labels)
                bar.set_postfix(loss=f"{loss_sum / seen:.3f}", acc=f"{correct / seen:.3f}")
                bar.update()
        val = evaluate_loader(model, val_loader, device, input_names, autocast)
        record = {"epoch": epoch + 1, "step": step, "train_loss": loss_sum / max(seen, 1),
                  "train_top1": correct / max(seen, 1), "val_top1": val["top1"], "val_top5": val["top5"],
                  "lr": optimizer.param_groups[0]["lr"], "seconds": round(time.perf_counter() - t0, 2)}
        with open(log_path, "a") as f:
            f.write(json.dumps(record) + "\n")
        is_best = val["top1"] > best
        best = max(best, val["top1"])
        meta = {**meta_base, "epoch": epoch, "step": step, "metrics": record, "best_top1": best}
        save_checkpoint(out / "last", model, meta, optimizer)
        if is_best:
            save_checkpoint(out / "best", model, meta)
        if progress is not False:
            print(f"epoch {epoch + 1}/{epochs}: loss {record['train_loss']:.3f} train {record['train_top1']:.3f} "
                  f"val {record['val_top1']:.3f} ({record['seconds']:.0f} s)", flush=True)
        summary = {"out": str(out), "epochs": epoch + 1, "best_val_top1": best, "last": record}
    return summary


def add_arguments(p) -> None:
    p.add_argument("--config", help="TOML config (see training/configs/)")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override a config value (repeatable), e.g. --set train.epochs=3")
    p.add_argument("--resume", action="store_true", help="continue from OUT/last.json")
    p.add_argument("--json", action="store_true", help="print one JSON summary at the end")


def run(args) -> int:
    cfg = load_config(args.config, args.set)
    os.environ.setdefault("TQDM_MININTERVAL", "1")
    summary = train(cfg, resume=args.resume, progress=False if args.json else None)
    if args.json:
        print(json.dumps(summary))
    return 0
