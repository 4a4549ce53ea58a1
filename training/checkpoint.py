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
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from edgekit._fileio import atomic_output, atomic_write
from edgekit.errors import ConfigError

_HEADER_KEY = "edgekit_checkpoint"  # safetensors metadata entry holding the checkpoint's JSON


def save_checkpoint(stem: str | Path, model: torch.nn.Module, meta: dict,
                    optimizer: torch.optim.Optimizer | None = None) -> Path:
    """Write ``stem.safetensors`` + ``stem.json``; returns the JSON path."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    meta = dict(meta)
    if optimizer is not None:
        state = optimizer.state_dict()
        for idx, slots in state["state"].items():
            for key, value in slots.items():
                t = value if torch.is_tensor(value) else torch.tensor(value)
                tensors[f"optim.{idx}.{key}"] = t.detach().cpu().contiguous()
        meta["optimizer_param_groups"] = state["param_groups"]
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


def build_from_checkpoint(path: str | Path):
    """(model in eval mode with the checkpoint's weights, meta)."""
    from training.models import build_model

    meta, state, _ = load_checkpoint(path)
    model = build_model(meta["model"], len(meta["classes"]), **meta.get("model_cfg", {}))
    model.load_state_dict(state)
    return model.eval(), meta
