"""Train a model from a TOML config: ``python -m training train --config CONFIG.toml [--set k=v ...]``.

The config is checked first (unknown keys are refused with the closest name, bad values with one
line); then the side-data cache of this dataset and the model's inputs is built, or found, or resumed
(a cache is keyed by the dataset's content as well as the preprocessing, so another dataset never
trains on an old cache). Runs on CUDA with bf16 autocast when a GPU is present, on the CPU otherwise,
deterministic by seed on the CPU. Writes to ``train.out``: ``metrics.jsonl`` (one line per epoch),
``last.{json,safetensors}`` every epoch and ``best.*`` when validation top-1 improves, each file
atomically.

What the run optimises is the config's ``[objective]`` (``training.objectives``: cross-entropy by
default, or a paper's losses: ``dmc``, ``iptsn``, ``mfcd``, ``off``, ``costvol``), each term's mean
logged per epoch as ``loss_<term>``; ``[stage]`` says where the weights start (``init_from``), what
is frozen, the learning-rate multipliers and the frozen ``teacher`` run on the same batch. The cache
then also holds what the objective and the teacher read: teacher flow (``data.flow``, accumulated
to the I-frame like the motion vectors when the representation is accumulated) or decoded RGB.

An output folder that already holds a run is never restarted silently: pass ``--resume`` to continue
it from ``last`` (refused if the config differs, unless ``--force-resume``) or ``--overwrite`` to
start a fresh run there (the old files are replaced as the new run writes its own; nothing is
deleted beforehand).

Under torchrun the same command trains with DistributedDataParallel, one process per GPU (nccl) or
CPU share (gloo): ``train.batch_size`` stays the global batch (each of N processes takes 1/N of it,
so the schedule and the learning rate do not change), the training split is shuffled and divided
by a DistributedSampler, validation top-1 is summed over the processes (the value one process would
get), rank 0 alone writes checkpoints, metrics and logs, and the checkpoint loads in one process as
any other. The cache is built in parts by the processes (``training.distributed``).

examples:
  python -m training train --config training/configs/edge-mvr.toml
  python -m training train --config edge-mvr                          # the same bundled config, by name
  python -m training train --config training/configs/edge-mvr.toml --set train.epochs=3 --set train.out=runs/quick
  python -m training train --config training/configs/edge-mvr.toml --resume
  python -m training train --config training/configs/edge-mvr.toml --overwrite --no-progress > train.log
  python -m training train --config dmc-full --set stage.init_from=runs/dmc-mse/best.json
  torchrun --standalone --nproc_per_node 4 -m training train --config edge-mvr       # 4 GPUs (or CPU processes)
"""

from __future__ import annotations

import json
import math
import os
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from edgekit._fileio import atomic_write
from edgekit.errors import ConfigError
from training.config import DataSection, TrainConfig, differences, load_config
from training.distributed import SINGLE, Distributed

__all__ = ["TrainConfig", "accuracy", "add_arguments", "evaluate_loader", "load_config", "make_loader", "run", "train"]

RUN_FILES = ("metrics.jsonl", "last.json")  # what makes a folder hold a previous run
# keys that do not change what a run learns: a resumed run may change them freely
RESUME_FREE_KEYS = ("data.workers", "train.threads", "train.device", "train.out")


def resolve_device(name: str, place: Distributed = SINGLE):
    """The torch device of ``train.device`` ("auto": CUDA when present). In a data-parallel run
    each process takes the GPU of its local rank, whatever CUDA index the config names."""
    import torch

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu") if name == "auto" else torch.device(name)
    if place.active and device.type == "cuda":
        return torch.device("cuda", place.local_rank)
    return device


def seed_everything(seed: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def ensure_cache(data: DataSection, specs, progress: bool = True, rgb: bool = False,
                 place: Distributed = SINGLE) -> Path:
    """Build, resume or find the cache of ``data.dataset`` (a config's ``[data]`` section) holding
    the inputs ``specs`` need (and the decoded RGB of every frame if ``rgb``); returns its folder.
    Teacher flow is stored in the motion vectors' layout: accumulated to the I-frame for accumulated
    inputs, frame to frame otherwise. In a data-parallel run (``place``) the processes build its
    shards in parts.
    Raises ConfigError for a missing dataset or inputs the cache cannot hold."""
    from training.cache import CacheSpec
    from training.cache.build import flow_layout_for
    from training.distributed import build_cache_in_parts

    sizes = {s.size for s in specs}
    reps = {s.representation for s in specs}
    if len(sizes) != 1 or len(reps) != 1:
        raise ConfigError(f"all inputs must share one size and representation, got {sizes} and {reps}")
    (h, w), rep = sizes.pop(), reps.pop()
    if h != w:
        raise ConfigError(f"the cache stores square inputs; the model wants {h}x{w}")
    spec = CacheSpec(representation=rep, size=h, flow=data.flow, flow_layout=flow_layout_for(rep, data.flow), rgb=rgb,
                     max_vector=data.max_vector, min_gain=data.min_gain)
    return build_cache_in_parts(place, data.dataset, data.cache, spec, workers=data.workers, progress=progress)


def make_loader(dataset, batch_size: int, shuffle: bool, seed: int, workers: int, sampler=None, *,
                persistent: bool = False, pin_memory: bool = False):
    """A DataLoader of ``dataset``; ``sampler`` (a data-parallel run's share of the items, or an
    :class:`EpochItems`) replaces the loader's own order, ``shuffle`` and ``seed`` then do nothing.
    ``persistent``: its worker processes live as long as the loader (a loader iterated every epoch
    then starts its workers once, not once per epoch); ``pin_memory``: batches come in page-locked
    memory, so a CUDA copy with ``non_blocking`` overlaps the next step."""
    import torch
    from torch.utils.data import DataLoader

    options = {"num_workers": workers, "drop_last": False, "persistent_workers": persistent and workers > 0,
               "pin_memory": pin_memory}
    g = torch.Generator()  # the loader's own draws (its workers' base seed) never touch the global RNG
    g.manual_seed(seed)
    if sampler is not None:
        return DataLoader(dataset, batch_size=batch_size, sampler=sampler, generator=g, **options)
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, generator=g, **options)


class EpochItems:
    """The training items of each epoch, as ``(epoch, index)`` pairs for ``CachedClips``: the
    epoch travels with the index, so worker processes kept alive across epochs (a persistent
    loader) draw each item's sampling and augmentation for the epoch it is fetched in.

    Order: ``inner``'s (a DistributedSampler, given the epoch too), else a permutation seeded by
    ``seed_base + epoch`` (``shuffle``), else 0..length-1. The permutation is the one a fresh
    ``DataLoader(shuffle=True, generator=Generator().manual_seed(seed_base + epoch))`` made, which
    draws its workers' base seed from that generator first: runs keep the order of the releases
    that made a loader per epoch (``tests/test_train_loader.py`` checks it against such a loader)."""

    def __init__(self, length: int, seed_base: int, shuffle: bool = True, inner=None):
        self.length, self.seed_base, self.shuffle, self.inner = int(length), int(seed_base), shuffle, inner
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)
        if self.inner is not None and hasattr(self.inner, "set_epoch"):
            self.inner.set_epoch(epoch)

    def order(self) -> list[int]:
        import torch

        if self.inner is not None:
            return [int(i) for i in self.inner]
        if not self.shuffle:
            return list(range(self.length))
        g = torch.Generator()
        g.manual_seed(self.seed_base + self.epoch)
        torch.empty((), dtype=torch.int64).random_(generator=g)  # what a fresh shuffling DataLoader drew first
        return torch.randperm(self.length, generator=g).tolist()

    def __iter__(self):
        epoch = self.epoch
        return iter([(epoch, i) for i in self.order()])

    def __len__(self) -> int:
        return len(self.inner) if self.inner is not None else self.length


def evaluate_loader(model, loader, device, input_names, autocast, feeds=None) -> dict:
    """Top-1/top-5 and predictions of ``model`` over ``loader`` (test-mode sampling). ``feeds``:
    input name -> the batch key that feeds it, where they differ (an RGB-fed teacher's ``gop_clip``).

    Returns ``top1``/``top5`` (float32 means of the hits, as :func:`accuracy`; 0 for no clips), the
    counts ``correct1``, ``correct5``, ``count`` (ints, for sums over processes), ``logits`` (N, K)
    float32 and ``labels`` (N,) int64."""
    import torch

    feeds = feeds or {}
    model.eval()
    labels, logits_all = [], []
    with torch.no_grad():
        for batch in loader:
            inputs = {n: batch[feeds.get(n, n)].to(device) for n in input_names}
            with autocast():
                logits = model(**inputs).float()
            logits_all.append(logits.cpu())
            labels.append(batch["label"])
    if not logits_all:  # a process whose share of a small split is empty
        return {"top1": 0.0, "top5": 0.0, "correct1": 0, "correct5": 0, "count": 0,
                "logits": torch.zeros(0, 0), "labels": torch.zeros(0, dtype=torch.int64)}
    logits = torch.cat(logits_all)
    labels = torch.cat(labels)
    k = min(5, logits.shape[1])
    topk = logits.topk(k, dim=1).indices
    hits1, hits5 = topk[:, 0] == labels, (topk == labels[:, None]).any(1)
    return {"top1": float(hits1.float().mean()), "top5": float(hits5.float().mean()), "correct1": int(hits1.sum()),
            "correct5": int(hits5.sum()), "count": len(labels), "logits": logits, "labels": labels}


def accuracy(correct: int, count: int) -> float:
    """``correct / count`` exactly as :func:`evaluate_loader` reports it, the float32 mean of
    ``count`` hits of which ``correct`` are 1 (a sum of ones is exact in any order), so accuracy
    summed over processes equals the single-process value to the last bit; 0.0 for no clips."""
    import torch

    if count == 0:
        return 0.0
    hits = torch.zeros(count, dtype=torch.float32)
    hits[:correct] = 1
    return float(hits.mean())


def check_output_folder(out: Path, resume: bool, overwrite: bool) -> None:
    """Refuse to start a run in a folder that holds another one unless told what to do with it."""
    if resume and overwrite:
        raise ConfigError("--resume continues the run in train.out and --overwrite starts a new one; pass one of them")
    found = [name for name in RUN_FILES if (out / name).exists()]
    if resume and not (out / "last.json").exists():
        again = "--overwrite instead of --resume" if found else "without --resume"
        raise ConfigError(f"--resume: no checkpoint at {out / 'last.json'}; start the run again with {again}")
    if found and not resume and not overwrite:
        raise ConfigError(f"{out} holds a previous run ({', '.join(found)}); pass --resume to continue it, "
                          "--overwrite to start a fresh run there, or set train.out to another folder")


def config_changes(saved: dict, cfg: TrainConfig) -> list[str]:
    """``"key: old -> new"`` for every setting that differs between a checkpoint's saved config and
    ``cfg``, except those a resumed run may change (:data:`RESUME_FREE_KEYS`)."""
    current = cfg.to_dict()
    flat_saved = {f"{s}.{k}": v for s, values in saved.items() for k, v in values.items()}
    flat_now = {f"{s}.{k}": v for s, values in current.items() for k, v in values.items()}
    return [f"{k}: {flat_saved.get(k, '(unset)')!r} -> {flat_now.get(k, '(unset)')!r}"
            for k in differences(saved, current, ignore=RESUME_FREE_KEYS)]


def _read_metrics(path: Path, last_epoch: int, last_record: dict | None) -> list[dict]:
    """The metrics of epochs 1..``last_epoch`` (1-based) from ``path``; the checkpoint's own record
    completes them if a crash came between the checkpoint and the metrics file."""
    records = []
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:  # a torn last line of a run written before writes were atomic
                continue
            if record.get("epoch", 0) <= last_epoch:
                records.append(record)
    if last_record is not None and not any(r.get("epoch") == last_record.get("epoch") for r in records):
        records.append(last_record)
    return records


def train(cfg: TrainConfig, *, resume: bool = False, overwrite: bool = False, force_resume: bool = False,
          progress: bool = True, log: Callable[[str], None] | None = print) -> dict:
    """Run the training described by ``cfg``; returns the summary (out, cache, epochs,
    best_val_top1, last, processes).

    ``resume`` continues ``cfg.train.out/last``; it is refused if the checkpoint's config or dataset
    content differs from ``cfg``'s, unless ``force_resume``. ``overwrite`` starts a fresh run in a
    folder that holds one. ``progress`` shows progress bars; ``log`` gets one line per epoch.
    Launched by torchrun, this process joins the data-parallel run (``training.distributed``); only
    rank 0 shows progress, logs and writes files, and every process returns the same summary.
    Raises ConfigError for a bad config, a missing dataset, an output folder that holds a run when
    neither ``resume`` nor ``overwrite`` is given, or a batch size the processes cannot share.
    """
    from training.distributed import launch_environment, process_group

    device_type = resolve_device(cfg.train.device, launch_environment()).type
    with process_group(device_type) as place:
        if not place.is_main:
            progress, log = False, None
        return _train(cfg, place, resume=resume, overwrite=overwrite, force_resume=force_resume,
                      progress=progress, log=log)


def _train(cfg: TrainConfig, place: Distributed, *, resume: bool, overwrite: bool, force_resume: bool,
           progress: bool, log: Callable[[str], None] | None) -> dict:
    """The body of :func:`train`, as process ``place`` of the run."""
    import contextlib

    import torch
    from tqdm import tqdm

    from training import distributed
    from training.cache import CachedClips, Companion
    from training.checkpoint import init_from_checkpoint, load_checkpoint, load_extras, save_checkpoint
    from training.models import build_model, model_input_specs
    from training.objectives import TEACHER_KEY, build_objective
    from training.objectives import stages

    t_cfg = cfg.train
    out = t_cfg.out
    check_output_folder(out, resume, overwrite)
    resumed = load_checkpoint(out / "last.json") if resume else None
    if resumed is not None:
        changes = config_changes(resumed[0].get("config", {}), cfg)
        if changes and not force_resume:
            raise ConfigError(f"--resume: {out / 'last.json'} was trained with another config ({'; '.join(changes)}); "
                              "pass --force-resume to continue it with this one, or set train.out to start a new run")
    name, model_kwargs = cfg.model.name, dict(cfg.model.kwargs)
    specs = model_input_specs(name, **model_kwargs)  # checks the model config before any long work
    objective = build_objective(cfg.objective.name, label_smoothing=t_cfg.label_smoothing, **cfg.objective.kwargs)
    needs = objective.needs
    stage = cfg.stage
    if needs.teacher == "required" and not stage.teacher:
        raise ConfigError(f"objective {cfg.objective.name!r} needs a teacher: set stage.teacher to its checkpoint")
    if stage.teacher and needs.teacher == "none":
        raise ConfigError(f"objective {cfg.objective.name!r} as configured uses no teacher (stage.teacher is set); "
                          "remove stage.teacher, or give the objective its distillation weight")
    teacher_model, teacher_classes = stages.load_teacher(stage.teacher) if stage.teacher else (None, [])
    teacher_feeds, teacher_companions = ({}, []) if teacher_model is None else \
        stages.teacher_feeds(teacher_model.input_specs, specs, needs.teacher_parts)
    input_feeds = {n: f"input.{n}" for n in needs.input_parts}  # model inputs fed from another part
    input_companions = [Companion(key, follows=n, part=needs.input_parts[n]) for n, key in input_feeds.items()]
    companions = [*needs.companions, *input_companions, *teacher_companions]
    if (any(c.part == "flow" for c in companions) or any(s.modality == "flow" for s in specs)) \
            and cfg.data.flow == "none":
        from training.flow import METHODS

        raise ConfigError(f"objective {cfg.objective.name!r} with model {name!r} reads teacher flow: set data.flow "
                          f"to gt (synthetic data) or an optical-flow method ({', '.join(METHODS)})")
    bs = distributed.per_process_batch(t_cfg.batch_size, place)  # checked before the cache is built
    cache = ensure_cache(cfg.data, specs, progress, rgb=any(c.part == "rgb" for c in companions), place=place)
    if resumed is not None and Path(resumed[0].get("cache", cache)).name != cache.name and not force_resume:
        raise ConfigError(f"--resume: the dataset changed since {out / 'last.json'} was written (its cache "
                          f"{resumed[0]['cache']}, now {cache}); pass --force-resume to continue on the new data")

    if place.is_main:
        out.mkdir(parents=True, exist_ok=True)
    seed_everything(t_cfg.seed)  # the same on every process: the same initial weights
    if t_cfg.threads:
        torch.set_num_threads(t_cfg.threads)
    device = resolve_device(t_cfg.device, place)
    cells = cfg.data.flow_cells
    train_ds = CachedClips.for_specs(cache, "train", specs, seed=t_cfg.seed, augment=cfg.augment,  # train-only
                                     companions=companions, flow_cells=cells)
    try:
        val_ds = CachedClips.for_specs(cache, "val", specs, train=False, companions=input_companions, flow_cells=cells)
    except ConfigError:
        val_ds = CachedClips.for_specs(cache, "test", specs, train=False, companions=input_companions, flow_cells=cells)
    classes = train_ds.classes
    model = build_model(name, len(classes), **model_kwargs)
    if stage.init_from and resumed is None:
        report = init_from_checkpoint(model, stage.init_from, stage.init_rename, classes)
        if log is not None:
            log(f"init_from {stage.init_from}: {len(report['loaded'])} tensors loaded "
                f"({len(report['inflated'])} inflated 2D -> 3D), {len(report['missing'])} not in the checkpoint")
    frozen = stages.freeze(model, stage.freeze)
    frozen_norms = stages.frozen_batchnorms(model)
    if frozen and log is not None:
        log(f"frozen: {len(frozen)} parameter tensors ({', '.join(stage.freeze)})")
    model = model.to(device)
    teachers = {}
    if teacher_model is not None:
        teachers[TEACHER_KEY] = stages.make_teacher(teacher_model.to(device), teacher_feeds, teacher_classes,
                                                    classes, stage.teacher)
    workers = cfg.data.workers
    val_sampler = distributed.ShardSampler(len(val_ds), place) if place.active else None
    pin = device.type == "cuda"
    val_loader = make_loader(val_ds, bs, False, 0, workers, sampler=val_sampler, persistent=True, pin_memory=pin)
    groups = stages.parameter_groups(model, [*stage.lr_mult.items(), *needs.lr_mult], t_cfg.lr,
                                     config_patterns=list(stage.lr_mult))

    def make_optimizer(param_groups):
        if t_cfg.optimizer == "adamw":
            return torch.optim.AdamW(param_groups, lr=t_cfg.lr, weight_decay=t_cfg.weight_decay)
        return torch.optim.SGD(param_groups, lr=t_cfg.lr, momentum=0.9, weight_decay=t_cfg.weight_decay)

    optimizer = make_optimizer(groups)
    params = [p for group in groups for p in group["params"]]
    discriminator = getattr(objective, "discriminator", None)  # trained in its own, alternating step
    d_optimizer = None
    if discriminator is not None:
        discriminator.to(device)
        d_mult = objective.discriminator_lr_mult
        d_optimizer = make_optimizer([{"params": list(discriminator.parameters()), "lr": t_cfg.lr * d_mult}])
    train_sampler = None
    if place.active:
        from torch.utils.data.distributed import DistributedSampler

        # every process takes the same number of steps (the last round is padded with repeated clips)
        train_sampler = DistributedSampler(train_ds, num_replicas=place.world_size, rank=place.rank, shuffle=True,
                                           seed=t_cfg.seed, drop_last=False)
    epochs = t_cfg.epochs
    # one loader for every epoch: its workers start once (a loader made per epoch started them every
    # epoch; benchmarks/loader.py times both)
    train_order = EpochItems(len(train_ds), t_cfg.seed * 1000, shuffle=True, inner=train_sampler)
    loader = make_loader(train_ds, bs, True, 0, workers, sampler=train_order, persistent=True, pin_memory=pin)
    steps_per_epoch = math.ceil((len(train_sampler) if train_sampler is not None else len(train_ds)) / bs)
    if t_cfg.max_steps_per_epoch:
        steps_per_epoch = min(steps_per_epoch, t_cfg.max_steps_per_epoch)
    total_steps = max(epochs * steps_per_epoch, 1)
    warmup = int(t_cfg.warmup_epochs * steps_per_epoch)

    def lr_at(step: int) -> float:  # linear warm-up, then cosine to zero
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(total_steps - warmup, 1)))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_at)
    d_scheduler = torch.optim.lr_scheduler.LambdaLR(d_optimizer, lr_at) if d_optimizer is not None else None
    start_epoch, best, step = 0, -1.0, 0
    meta_base = {"model": name, "model_cfg": model_kwargs, "classes": classes,
                 "input_specs": [s.to_dict() for s in specs], "config": cfg.to_dict(), "cache": str(cache),
                 "cache_spec": train_ds.spec}
    if place.active:
        meta_base["processes"] = place.world_size
    log_path = out / "metrics.jsonl"
    records: list[dict] = []
    summary = {"out": str(out), "cache": str(cache), "epochs": 0, "best_val_top1": best, "last": None,
               "processes": place.world_size}
    if resumed is not None:
        meta, state, optim_state = resumed
        model.load_state_dict(state)
        if optim_state:
            optimizer.load_state_dict(optim_state)
        start_epoch, best, step = meta["epoch"] + 1, meta.get("best_top1", -1.0), meta["step"]
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_at, last_epoch=step - 1)
        if discriminator is not None:
            extra_states, extra_optims = load_extras(out / "last.json")
            if "discriminator" in extra_states:
                discriminator.load_state_dict(extra_states["discriminator"])
            if "discriminator" in extra_optims:
                d_optimizer.load_state_dict(extra_optims["discriminator"])
            d_scheduler = torch.optim.lr_scheduler.LambdaLR(d_optimizer, lr_at, last_epoch=step - 1)
        records = _read_metrics(log_path, start_epoch, meta.get("metrics"))
        summary.update(epochs=start_epoch, best_val_top1=best, last=meta.get("metrics"))
    use_amp = device.type == "cuda"

    def autocast():
        return torch.autocast("cuda", dtype=torch.bfloat16) if use_amp else contextlib.nullcontext()

    input_names = [s.name for s in specs]
    extras = {"discriminator": (discriminator, d_optimizer)} if discriminator is not None else None
    # the objective's calls, through DistributedDataParallel when there are several processes
    steps = distributed.objective_steps(place, model, objective, teachers, device)
    if place.active:
        torch.manual_seed(t_cfg.seed + place.rank)  # the same weights everywhere, each its own dropout draws
    reduce_device = device if place.backend == "nccl" else None
    for epoch in range(start_epoch, epochs):
        t0 = time.perf_counter()
        train_order.set_epoch(epoch)  # the items' epoch, and the DistributedSampler's
        model.train()
        for norm in frozen_norms:  # frozen layers keep their running statistics
            norm.eval()
        seen = correct = 0
        loss_sum = 0.0
        term_sums: dict[str, float] = {}
        with tqdm(total=steps_per_epoch, desc=f"epoch {epoch + 1}/{epochs}", unit="step",
                  disable=not progress, leave=False) as bar:
            for i, batch in enumerate(loader):
                if i >= steps_per_epoch:
                    break
                batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
                for input_name, key in input_feeds.items():
                    batch[input_name] = batch[key]
                labels = batch["label"]
                terms = {}
                if discriminator is not None:  # D's step, the generator fixed (DMC-Net Sec. 3.3.2)
                    with autocast():
                        judged = steps.discriminator(batch)
                    d_optimizer.zero_grad(set_to_none=True)
                    judged.loss.backward()
                    d_optimizer.step()
                    d_scheduler.step()
                    terms.update(judged.terms)
                with autocast():
                    loss, model_terms, logits = steps.generator(batch)
                terms.update(model_terms)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if needs.clip_grad_norm > 0:
                    torch.nn.utils.clip_grad_norm_(params, needs.clip_grad_norm)
                optimizer.step()
                scheduler.step()
                step += 1
                loss_sum += loss.item() * len(labels)
                for term, value in terms.items():
                    term_sums[term] = term_sums.get(term, 0.0) + value * len(labels)
                correct += int((logits.argmax(1) == labels).sum())
                seen += len(labels)
                bar.set_postfix(loss=f"{loss_sum / seen:.3f}", acc=f"{correct / seen:.3f}")
                bar.update()
        if place.active:  # the sums of every process, and every process evaluates rank 0's model
            terms_order = sorted(term_sums)
            loss_sum, correct, seen, *term_totals = distributed.all_reduce_sums(
                place, [loss_sum, correct, seen, *(term_sums[t] for t in terms_order)], reduce_device)
            term_sums = dict(zip(terms_order, term_totals))
            distributed.broadcast_buffers(place, model)
        val = evaluate_loader(model, val_loader, device, input_names, autocast, input_feeds)
        val_correct1, val_correct5, val_count = distributed.all_reduce_sums(
            place, [val["correct1"], val["correct5"], val["count"]], reduce_device)
        if place.active:
            val_top1 = accuracy(int(val_correct1), int(val_count))
            val_top5 = accuracy(int(val_correct5), int(val_count))
        else:  # one process: the loader's own values, bit for bit as before
            val_top1, val_top5 = val["top1"], val["top5"]
        record = {"epoch": epoch + 1, "step": step, "train_loss": loss_sum / max(seen, 1),
                  "train_top1": correct / max(seen, 1), "val_top1": val_top1, "val_top5": val_top5,
                  "lr": optimizer.param_groups[0]["lr"], "seconds": round(time.perf_counter() - t0, 2),
                  **{f"loss_{term}": total / max(seen, 1) for term, total in term_sums.items()}}
        is_best = val_top1 > best
        best = max(best, val_top1)
        meta = {**meta_base, "epoch": epoch, "step": step, "metrics": record, "best_top1": best}
        records.append(record)
        if place.is_main:  # the model itself, not its DDP wrapper: no "module." prefix
            # best, then last, then metrics: whatever a crash interrupts, resuming from last redoes the rest
            if is_best:
                save_checkpoint(out / "best", model, meta)
            save_checkpoint(out / "last", model, meta, optimizer, extras=extras)
            atomic_write(log_path, "".join(json.dumps(r) + "\n" for r in records))
        distributed.barrier(place)  # the others wait until rank 0 has written the epoch
        if log is not None:
            log(f"epoch {epoch + 1}/{epochs}: loss {record['train_loss']:.3f} train {record['train_top1']:.3f} "
                f"val {record['val_top1']:.3f} ({record['seconds']:.0f} s)")
        summary.update(epochs=epoch + 1, best_val_top1=best, last=record)
    return summary


def add_arguments(p) -> None:
    p.add_argument("--config", help="TOML config (see training/configs/); without it, the built-in defaults")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override a config value (repeatable), e.g. --set train.epochs=3")
    what = p.add_mutually_exclusive_group()
    what.add_argument("--resume", action="store_true",
                      help="continue the run in train.out from last.json (refused if the config differs)")
    what.add_argument("--overwrite", action="store_true",
                      help="start a fresh run in a train.out that holds one (its files are replaced as the new "
                           "run writes; nothing is deleted first)")
    p.add_argument("--force-resume", action="store_true",
                   help="resume even if the config or the dataset differ from the checkpoint's (implies --resume)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars (for logs); epoch lines stay")
    p.add_argument("--json", action="store_true", help="print one JSON summary at the end (epoch lines go to stderr)")


def _defaults_line(cfg: TrainConfig, overridden: bool) -> str:
    kwargs = "".join(f" {k}={v}" for k, v in cfg.model.kwargs.items())
    source = "the built-in defaults and --set" if overridden else "the built-in defaults"
    return (f"no --config, so {source}: model {cfg.model.name}{kwargs}, epochs {cfg.train.epochs}, "
            f"batch {cfg.train.batch_size}, lr {cfg.train.lr:g}; dataset {cfg.data.dataset}, cache {cfg.data.cache}, "
            f"output {cfg.train.out} (tuned configs: training/configs/*.toml)")


def run(args) -> int:
    cfg = load_config(args.config, args.set)
    os.environ.setdefault("TQDM_MININTERVAL", "1")
    if args.json:
        def log(line: str) -> None:
            print(line, file=sys.stderr, flush=True)
    else:
        def log(line: str) -> None:
            print(line, flush=True)
    from training.distributed import launch_environment

    is_main = launch_environment().is_main  # under torchrun, rank 0 alone prints
    if args.config is None and is_main:
        log(_defaults_line(cfg, bool(args.set)))
    summary = train(cfg, resume=args.resume or args.force_resume, overwrite=args.overwrite,
                    force_resume=args.force_resume, progress=not (args.json or args.no_progress), log=log)
    if args.json and is_main:
        print(json.dumps(summary))
    return 0
