"""Parameter and multiply-accumulate (MAC) counting, the convention of the seed papers.

``count_macs`` runs one forward pass with hooks on every ``Conv1d/2d/3d`` and ``Linear`` and adds
``output elements x (input channels / groups) x kernel volume`` (conv) or
``output elements x in_features`` (linear). Biases, BatchNorm, activations, pooling and the
parameter-free tensor arithmetic (cost volume, warping, temporal differences) are not counted.
"GFLOPs" in the papers and in ``python -m training models`` is this MAC count / 1e9.

The forward pass can run on the ``meta`` device: build the model under ``torch.device("meta")``
and counting costs no arithmetic at all (:func:`count_model`).
"""

from __future__ import annotations

import functools
import math

import torch
from torch import nn

_COUNTED = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)


def count_params(model: nn.Module) -> int:
    """Number of parameters (trainable or not; buffers excluded)."""
    return sum(p.numel() for p in model.parameters())


def _macs_of(module: nn.Module, output: torch.Tensor) -> int:
    if isinstance(module, nn.Linear):
        return output.numel() * module.in_features
    kernel_volume = math.prod(module.kernel_size)
    return output.numel() * (module.in_channels // module.groups) * kernel_volume


@torch.no_grad()
def count_macs(model: nn.Module, inputs: tuple[torch.Tensor, ...]) -> int:
    """Multiply-accumulates of conv and linear layers for one ``model(*inputs)`` call."""
    total = 0

    def hook(module, _inputs, output):
        nonlocal total
        total += _macs_of(module, output)

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, _COUNTED)]
    try:
        model(*inputs)
    finally:
        for handle in handles:
            handle.remove()
    return total


def spec_inputs(model: nn.Module, device: torch.device | str = "cpu",
                seed: int | None = None) -> tuple[torch.Tensor, ...]:
    """One tensor per ``model.input_specs`` entry, with the spec's static shape (normal noise)."""
    generator = None
    if seed is not None and torch.device(device).type == "cpu":
        generator = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(spec.shape, generator=generator, device=device) for spec in model.input_specs)


def count_model(name: str, num_classes: int = 101, **cfg) -> dict:
    """Parameters and GMACs of a registered model at its (configured) default input, on ``meta``.

    Returns ``{"params": int, "macs": int, "gflops": float}`` where gflops = macs / 1e9.
    """
    from .registry import build_model

    with torch.device("meta"):
        model = build_model(name, num_classes, **cfg).eval()
        macs = count_macs(model, spec_inputs(model, device="meta"))
    return {"params": count_params(model), "macs": macs, "gflops": macs / 1e9}


def _macs_at(module: nn.Module, shape: tuple[int, ...]) -> int:
    return count_macs(module.eval(), (torch.zeros(shape, device="meta"),))


def reference_figures() -> list[dict]:
    """Our counts next to the figures the seed papers print, for the same network and input.

    Each entry: ``{"what", "source", "unit", "paper", "ours", "deviation"}`` with deviation =
    ours / paper - 1. Everything is counted on the ``meta`` device (no arithmetic); the result is
    computed once per process.
    """
    return [dict(row) for row in _reference_figures()]


@functools.lru_cache(maxsize=1)
def _reference_figures() -> tuple[dict, ...]:
    from .dmc import DMCGenerator
    from .mfnet3d import MFNet3D
    from .resnet import resnet18, resnet152

    rows = []

    def add(what: str, source: str, unit: str, paper: float, ours: float) -> None:
        rows.append({"what": what, "source": source, "unit": unit, "paper": paper, "ours": round(ours, 4),
                     "deviation": round(ours / paper - 1, 4)})

    with torch.device("meta"):
        add("DMC generator, 5x224x224", "DMC-Net Table 1", "GFLOPs", 0.23,
            _macs_at(DMCGenerator(), (1, 5, 224, 224)) / 1e9)
        add("ResNet-18, 2-ch (MV/flow/DMC) 224x224, FC 1000", "DMC-Net Table 1", "GFLOPs", 1.78,
            _macs_at(nn.Sequential(resnet18(2), nn.Linear(512, 1000)), (1, 2, 224, 224)) / 1e9)
        add("ResNet-18, ImageNet 3x224x224, FC 1000", "DMC-Net Table 1", "GFLOPs", 1.78,
            _macs_at(nn.Sequential(resnet18(3), nn.Linear(512, 1000)), (1, 3, 224, 224)) / 1e9)
        add("ResNet-152, ImageNet 3x224x224, FC 1000 (stride on 3x3)", "DMC-Net Table 1", "GFLOPs", 11.3,
            _macs_at(nn.Sequential(resnet152(3), nn.Linear(2048, 1000)), (1, 3, 224, 224)) / 1e9)
        mfnet = nn.Sequential(MFNet3D(), nn.Linear(768, 400))
        add("MFNet-3D, 16x224x224 clip, 400 classes", "MFCD-Net App. 7.2", "GFLOPs", 11.1,
            _macs_at(mfnet, (1, 3, 16, 224, 224)) / 1e9)
        add("MFNet-3D parameters, 400 classes", "MFCD-Net App. 7.1", "M params", 8.0, count_params(mfnet) / 1e6)
    add("MFCD-Net clip, 12x224x224", "MFCD-Net Sec. 5", "GFLOPs", 8.53, count_model("mfcd", 400)["gflops"])
    add("IP-TSN P-stream, 16x224x224", "IP-TSN Table 1", "GFLOPs", 33.9, count_model("iptsn-p", 51)["gflops"])
    add("IP-TSN I-stream ResNet-152, 16 frames", "IP-TSN Table 1", "GFLOPs", 185.6,
        count_model("iptsn-i", 51, backbone="resnet152")["gflops"])
    return tuple(rows)
