"""Small pieces every model family shares: input specs, TSN segment folding, late fusion.

Nothing here has weights except :class:`LateFusion`'s constant stream weights.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from edgekit.spec import CHANNELS, InputSpec


def _hw(size: int | Sequence[int]) -> tuple[int, int]:
    """``224`` -> ``(224, 224)``; ``(256, 320)`` stays as it is."""
    if isinstance(size, int):
        return size, size
    height, width = size
    return int(height), int(width)


def segment_spec(stream: str, segments: int, size: int | Sequence[int], *, name: str | None = None,
                 representation: str = "accumulated") -> InputSpec:
    """An ``InputSpec`` in layout BSCHW: ``(1, segments, channels(stream), H, W)``."""
    height, width = _hw(size)
    return InputSpec(name=name or stream, modality=stream, layout="BSCHW",
                     shape=(1, segments, CHANNELS[stream], height, width), representation=representation)


def clip_spec(stream: str, frames: int, size: int | Sequence[int], *, name: str | None = None,
              representation: str = "accumulated") -> InputSpec:
    """An ``InputSpec`` in layout BCTHW: ``(1, channels(stream), frames, H, W)``."""
    height, width = _hw(size)
    return InputSpec(name=name or stream, modality=stream, layout="BCTHW",
                     shape=(1, CHANNELS[stream], frames, height, width), representation=representation)


def segment_inputs(*modalities: str):
    """The registry's ``inputs`` function of a TSN model over ``modalities`` (same segments and size)."""

    def inputs(segments: int, size, representation: str = "accumulated", **_) -> tuple[InputSpec, ...]:
        return tuple(segment_spec(m, segments, size, representation=representation) for m in modalities)

    return inputs


def clip_inputs(modality: str):
    """The registry's ``inputs`` function of a 3D model on one BCTHW clip of ``frames`` steps."""

    def inputs(frames: int, size, **_) -> tuple[InputSpec, ...]:
        return (clip_spec(modality, frames, size),)

    return inputs


def merge_leading(x: torch.Tensor) -> torch.Tensor:
    """(A, B, ...) -> (A*B, ...).

    Written as ``reshape(-1, *rest)`` rather than ``flatten(0, 1)``: the ONNX exporter turns
    ``flatten`` on a graph input into Shape/Slice/Concat arithmetic, this into one static Reshape.
    """
    return x.reshape(-1, *x.shape[2:])


def fold_segments(x: torch.Tensor) -> torch.Tensor:
    """(B, S, C, H, W) -> (B*S, C, H, W): TSN segments become independent images."""
    return merge_leading(x)


def segment_consensus(scores: torch.Tensor, segments: int) -> torch.Tensor:
    """(B*S, K) -> (B, K): average over the segments of each clip (TSN consensus)."""
    return scores.reshape(-1, segments, scores.shape[-1]).mean(dim=1)


def frames_to_batch(x: torch.Tensor) -> torch.Tensor:
    """(B, C, T, H, W) -> (B*T, C, H, W): run a 2D network on every frame of a clip."""
    return merge_leading(x.transpose(1, 2))


def batch_to_clip(x: torch.Tensor, frames: int) -> torch.Tensor:
    """(B*T, C, H, W) -> (B, C, T, H, W): the inverse of :func:`frames_to_batch`."""
    return x.reshape(-1, frames, *x.shape[1:]).transpose(1, 2)


class LateFusion(nn.Module):
    """Weighted sum of per-stream class scores: ``sum_i w_i * logits_i``.

    Weights are constants (not trained), as in CoViAR / DMC-Net / IP-TSN late fusion. Summing
    logits keeps the fused output a plain linear op, which INT8 runtimes fuse for free.
    """

    def __init__(self, streams: Sequence[str], weights: Sequence[float]):
        super().__init__()
        if len(streams) != len(weights):
            raise ValueError(f"{len(streams)} streams but {len(weights)} fusion weights")
        self.streams = tuple(streams)
        self.weights = tuple(float(w) for w in weights)

    def forward(self, scores: dict[str, torch.Tensor]) -> torch.Tensor:
        fused = scores[self.streams[0]] * self.weights[0]
        for stream, weight in zip(self.streams[1:], self.weights[1:]):
            fused = fused + scores[stream] * weight
        return fused

    def extra_repr(self) -> str:
        return ", ".join(f"{s}={w:g}" for s, w in zip(self.streams, self.weights))
