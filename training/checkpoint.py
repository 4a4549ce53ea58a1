"""Checkpoints without pickle: tensors in safetensors, everything else in a JSON beside it.

``<stem>.safetensors`` holds ``model.<name>`` tensors and, for resuming, ``optim.<param>.<key>``
tensors; ``<stem>.json`` holds the model name and config, classes, input specs, epoch, metrics,
the optimizer's param groups and the run config. Both are written atomically (temp name, fsync,
rename), the weights first, JSON last, so a checkpoint exists only once it is complete. The weights
file also carries the same JSON in its header: if a crash falls between the two renames, the
weights (new) and the JSON (old) disagree, and loading trusts the header, which describes those
weights, so the pair is never read torn.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from edgekit._fileio import atomic_output, atomic_write
from edgekit.errors import ConfigError

_HEADER_KEY = "edgekit_checkpoint"  # safetensors metadata entry holding the checkpoint's JSON


def _optimizer_tensors(optimizer: torch.optim.Optimizer, prefix: str) -> tuple[dict, list]:
    state = optimizer.state_dict()
    tensors = {}
    for idx, slots in state["state"].items():
        for key, value in slots.items():
            t = value if torch.is_tensor(value) else torch.tensor(value)
            tensors[f"{prefix}.{idx}.{key}"] = t.detach().cpu().contiguous()
    return tensors, state["param_groups"]


def save_checkpoint(stem: str | Path, model: torch.nn.Module, meta: dict,
                    optimizer: torch.optim.Optimizer | None = None,
                    extras: Mapping[str, tuple[torch.nn.Module, torch.optim.Optimizer | None]] | None = None) -> Path:
    """Write ``stem.safetensors`` + ``stem.json``; returns the JSON path. ``extras``: training-only
    modules by name with their optimizers (DMC-Net's discriminator), stored as ``extra.<name>.*``
    and ``extra_optim.<name>.*`` tensors, read back by :func:`load_extras`. A model wrapped in
    DistributedDataParallel is stored as the model it wraps (no ``module.`` prefix), so a
    data-parallel run's checkpoint loads in one process as any other."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(model, torch.nn.parallel.DistributedDataParallel):  # the bare model: no "module." prefix
        model = model.module
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    meta = dict(meta)
    if optimizer is not None:
        optim_tensors, meta["optimizer_param_groups"] = _optimizer_tensors(optimizer, "optim")
        tensors.update(optim_tensors)
    for name, (module, module_optimizer) in (extras or {}).items():
        tensors.update({f"extra.{name}.{k}": v.detach().cpu().contiguous() for k, v in module.state_dict().items()})
        if module_optimizer is not None:
            optim_tensors, groups = _optimizer_tensors(module_optimizer, f"extra_optim.{name}")
            tensors.update(optim_tensors)
            meta.setdefault("extra_optimizer_param_groups", {})[name] = groups
    weights = stem.with_suffix(".safetensors")
    meta["weights"] = weights.name
    text = json.dumps(meta, indent=1)
    with atomic_output(weights) as tmp:
        save_file(tensors, str(tmp), metadata={_HEADER_KEY: text})
    atomic_write(stem.with_suffix(".json"), text)
    return stem.with_suffix(".json")


def load_checkpoint(path: str | Path) -> tuple[dict, dict[str, torch.Tensor], dict | None]:
    """(meta, model state dict, optimizer state dict or None) from a checkpoint JSON or its stem."""
    path = Path(path)
    json_path = path if path.suffix == ".json" else path.with_suffix(".json")
    if not json_path.exists():
        raise ConfigError(f"no checkpoint at {json_path} (a checkpoint is a .json with a .safetensors beside it)")
    meta = json.loads(json_path.read_text())
    weights = json_path.with_name(meta.get("weights", json_path.stem + ".safetensors"))
    if not weights.exists():
        raise ConfigError(f"checkpoint {json_path} names {weights.name}, which is missing")
    with safe_open(str(weights), framework="pt") as f:
        header = (f.metadata() or {}).get(_HEADER_KEY)
    if header is not None:
        meta = json.loads(header)  # describes these very weights, even if the JSON beside them is older
    tensors = load_file(str(weights))
    model_state = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
    optim = None
    if "optimizer_param_groups" in meta:
        state: dict[int, dict] = {}
        for k, v in tensors.items():
            if k.startswith("optim."):
                _, idx, key = k.split(".", 2)
                state.setdefault(int(idx), {})[key] = v
        optim = {"state": state, "param_groups": meta["optimizer_param_groups"]}
    return meta, model_state, optim


def load_extras(path: str | Path) -> tuple[dict[str, dict], dict[str, dict]]:
    """({name: module state dict}, {name: optimizer state dict}) of the training-only modules a
    checkpoint holds (``save_checkpoint(extras=...)``); both empty for a checkpoint without any."""
    meta, _, _ = load_checkpoint(path)
    json_path = Path(path) if Path(path).suffix == ".json" else Path(path).with_suffix(".json")
    tensors = load_file(str(json_path.with_name(meta.get("weights", json_path.stem + ".safetensors"))))
    modules: dict[str, dict] = {}
    optims: dict[str, dict] = {}
    for k, v in tensors.items():
        if k.startswith("extra."):
            name, key = k[len("extra."):].split(".", 1)
            modules.setdefault(name, {})[key] = v
        elif k.startswith("extra_optim."):
            name, idx, key = k[len("extra_optim."):].split(".", 2)
            optims.setdefault(name, {"state": {}, "param_groups": meta["extra_optimizer_param_groups"][name]})
            optims[name]["state"].setdefault(int(idx), {})[key] = v
    return modules, optims


def init_from_checkpoint(model: torch.nn.Module, path: str | Path, rename: Mapping[str, str] | None = None,
                         classes: list[str] | None = None) -> dict:
    """Initialise ``model`` from the checkpoint at ``path`` (a stage's ``init_from``).

    Source names are renamed first by ``rename`` ({source prefix: target prefix}, the longest
    matching prefix wins; ``{"" = "classifier."}`` puts a whole flow classifier under DMC's
    ``classifier``). Every target parameter or buffer with a source of the same name is loaded: the
    same shape is copied; a 2D conv kernel into a 3D one is inflated by
    :func:`training.models.resnet2d3d.inflate_2d_weights` (centre time tap: a 2D ResNet-18 into
    IP-TSN's 2D-3D one). When ``classes`` differ from the checkpoint's, the classifier's rows are
    copied by class name (a subset or a superset of its classes; a class it does not know keeps its
    fresh initialisation). Returns ``{"loaded": [...], "inflated": [...], "missing": [...],
    "unused": [...]}`` (names). Raises ConfigError for a missing checkpoint, nothing loadable,
    another shape that cannot be inflated, or ``classes`` of which the checkpoint knows none when
    the classifier would be loaded."""
    from training.models.resnet2d3d import ResNet2D3D, inflate_2d_weights

    meta, source, _ = load_checkpoint(path)
    prefixes = sorted((rename or {}).items(), key=lambda item: -len(item[0]))
    renamed = {}
    for name, tensor in source.items():
        for old, new in prefixes:
            if name.startswith(old):
                name = new + name[len(old):]
                break
        renamed[name] = tensor
    target = model.state_dict()
    loaded, inflated = [], []
    with torch.no_grad():
        for prefix, module in model.named_modules():  # 2D -> 3D where the target is a 2D-3D ResNet
            if isinstance(module, ResNet2D3D):
                head = f"{prefix}." if prefix else ""
                part = {k[len(head):]: v for k, v in renamed.items() if k.startswith(head)}
                sub_target = module.state_dict()
                grown = [k for k, v in part.items() if k in sub_target and sub_target[k].dim() == v.dim() + 1]
                try:
                    copied = inflate_2d_weights(module, part)
                except ValueError as err:
                    raise ConfigError(f"stage.init_from {path}: {err}") from None
                loaded += [head + k for k in copied]
                inflated += [head + k for k in grown]
        source_classes = list(meta.get("classes") or [])
        rows = _class_rows(source_classes, classes)
        for name, dest in target.items():
            if name in loaded or name not in renamed:
                continue
            if rows is not None and _is_classifier(name) and renamed[name].shape[:1] == (len(source_classes),) \
                    and dest.shape[:1] == (len(classes),) and renamed[name].shape[1:] == dest.shape[1:]:
                # another class list: the rows of the classes both know, by name; new classes keep their init
                for new_row, old_row in rows:
                    dest[new_row].copy_(renamed[name][old_row])
                loaded.append(name)
                continue
            if renamed[name].shape != dest.shape:
                raise ConfigError(f"stage.init_from {path}: {name} is {tuple(renamed[name].shape)} there and "
                                  f"{tuple(dest.shape)} here; give the model the checkpoint's width, or rename "
                                  "(stage.init_rename)")
            dest.copy_(renamed[name])
            loaded.append(name)
    if not loaded:
        raise ConfigError(f"stage.init_from {path}: no name of the checkpoint ({next(iter(renamed), '-')}, ...) is a "
                          f"name of this model ({next(iter(target), '-')}, ...); map them with stage.init_rename")
    if classes is not None and list(meta.get("classes", classes)) != list(classes) and \
            any(_is_classifier(n) for n in loaded) and not rows:
        raise ConfigError(f"stage.init_from {path} was trained on other classes than this dataset, and none "
                          "of them by name")
    return {"loaded": sorted(loaded), "inflated": sorted(inflated),
            "missing": sorted(set(target) - set(loaded)), "unused": sorted(set(renamed) - set(target))}


def _is_classifier(name: str) -> bool:
    """A classifier's parameter (its rows are classes): the final ``fc`` of every zoo model."""
    return name.endswith(("fc.weight", "fc.bias"))


def _class_rows(source: list[str], target: list[str] | None) -> list[tuple[int, int]] | None:
    """(target row, source row) of the classes both lists name, when the lists differ; None when
    they are the same (or either is unknown): the classifier is then copied whole."""
    if not source or target is None or list(source) == list(target):
        return None
    where = {name: i for i, name in enumerate(source)}
    return [(i, where[name]) for i, name in enumerate(target) if name in where]


def build_from_checkpoint(path: str | Path):
    """(model in eval mode with the checkpoint's weights, meta)."""
    from training.models import build_model

    meta, state, _ = load_checkpoint(path)
    model = build_model(meta["model"], len(meta["classes"]), **meta.get("model_cfg", {}))
    model.load_state_dict(state)
    return model.eval(), meta
