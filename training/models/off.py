"""Optical Flow guided Feature (OFF, Sun et al.): cheap motion features between TSN segments.

:class:`OFFUnit` (Sec. 4.1.3, Fig. 4) works on the feature maps of any stream:

1. a 1x1 conv reduces the features of every segment to 128 channels ("regardless of how many the
   input channels are");
2. spatial gradients: the paper's fixed 3x3 kernels (Eq. 5/6; written "Sobel", they are the
   Prewitt-like ``[[-1, 0, 1]] * 3`` and its transpose) applied channel-wise (a depthwise conv)
   to the current segment's reduced features;
3. temporal gradient: the element-wise difference between consecutive segments, f_t - f_{t-1};
4. concatenation ``[F_x, F_y, F_t]`` -> 3 x 128 channels, one map per pair of consecutive segments.

:class:`OFFSubNetwork` is the multi-level part: OFF units on layer2, layer3 and layer4 of the
backbone (three scales); each level concatenates its OFF with the previous level's refined
features (brought to this resolution by a strided 3x3 conv) and refines them with residual blocks
*without* BatchNorm (the paper avoids BN there), like a ResNet-20 (3 levels x 3 blocks).

:class:`OFFNet` (``off-r18``) is a TSN ResNet-18 with the OFF sub-network: the backbone's segment
scores and the OFF scores (averaged over segment pairs) are fused by a weighted sum. The default
stream is the I-frame, the case OFF was designed for (appearance-only input gains a motion cue);
``stream="mv_residual"`` (or ``mv``, ``residual``) puts OFF on the motion streams.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from edgekit.spec import CHANNELS

from .common import LateFusion, fold_segments, merge_leading, segment_consensus, segment_spec
from .registry import register_model
from .resnet import build_backbone

# Eq. (5) and (6) of the OFF paper, verbatim
GRADIENT_X = ((-1.0, 0.0, 1.0), (-1.0, 0.0, 1.0), (-1.0, 0.0, 1.0))
GRADIENT_Y = ((1.0, 1.0, 1.0), (0.0, 0.0, 0.0), (-1.0, -1.0, -1.0))


class OFFUnit(nn.Module):
    """Features of S segments (B*S, C, H, W) -> OFF of S-1 segment pairs (B*(S-1), 3*reduced, H, W)."""

    def __init__(self, in_channels: int, reduced_channels: int = 128):
        super().__init__()
        self.reduced_channels = reduced_channels
        self.reduce = nn.Conv2d(in_channels, reduced_channels, kernel_size=1)
        kernel_x = torch.tensor(GRADIENT_X).expand(reduced_channels, 1, 3, 3).clone()
        kernel_y = torch.tensor(GRADIENT_Y).expand(reduced_channels, 1, 3, 3).clone()
        # fixed, not learned; stored as buffers so they export as Conv initializers
        self.register_buffer("kernel_x", kernel_x, persistent=False)
        self.register_buffer("kernel_y", kernel_y, persistent=False)

    def spatial_gradients(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, 128, H, W) -> (F_x, F_y), each (N, 128, H, W), zero-padded at the border."""
        groups = self.reduced_channels
        return (F.conv2d(features, self.kernel_x, padding=1, groups=groups),
                F.conv2d(features, self.kernel_y, padding=1, groups=groups))

    def forward(self, features: torch.Tensor, segments: int) -> torch.Tensor:
        reduced = self.reduce(features)
        reduced = reduced.reshape(-1, segments, *reduced.shape[1:])  # (B, S, 128, H, W)
        current, previous = reduced[:, 1:], reduced[:, :-1]  # consecutive pairs (t, t-1)
        temporal = merge_leading(current - previous)  # F_t: (B*(S-1), 128, H, W)
        grad_x, grad_y = self.spatial_gradients(merge_leading(current))
        return torch.cat((grad_x, grad_y, temporal), dim=1)


class ResidualBlockNoBN(nn.Module):
    """3x3 conv - ReLU - 3x3 conv + identity, ReLU; no BatchNorm (OFF refinement)."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, kernel_size=3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, kernel_size=3, padding=1)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(x + self.conv2(self.relu(self.conv1(x))))


class OFFSubNetwork(nn.Module):
    """Multi-level OFF: one OFF unit per backbone level, residual refinement across levels.

    ``forward(stage_features, segments)`` takes the backbone's stage outputs at the chosen levels
    (each (B*S, C_l, H_l, W_l), resolution halving level to level) and returns the refined
    features of every level, the last one (B*(S-1), widths[-1], H_L, W_L).
    """

    def __init__(self, in_channels: Sequence[int], reduced_channels: int = 128,
                 widths: Sequence[int] = (64, 128, 256), blocks: int = 3):
        super().__init__()
        if len(in_channels) != len(widths):
            raise ValueError(f"{len(in_channels)} OFF levels but {len(widths)} refinement widths")
        self.units = nn.ModuleList(OFFUnit(c, reduced_channels) for c in in_channels)
        self.downsample = nn.ModuleList()
        self.refine = nn.ModuleList()
        for level, width in enumerate(widths):
            concat_channels = 3 * reduced_channels
            if level > 0:  # previous level's refined features join this level's OFF
                self.downsample.append(nn.Sequential(
                    nn.Conv2d(widths[level - 1], widths[level - 1], kernel_size=3, stride=2, padding=1),
                    nn.ReLU(inplace=True)))
                concat_channels += widths[level - 1]
            self.refine.append(nn.Sequential(
                nn.Conv2d(concat_channels, width, kernel_size=1), nn.ReLU(inplace=True),  # reduce OFF dims
                *[ResidualBlockNoBN(width) for _ in range(blocks)]))
        self.widths = tuple(widths)

    def forward(self, stage_features: Sequence[torch.Tensor], segments: int) -> list[torch.Tensor]:
        refined: list[torch.Tensor] = []
        for level, (unit, features) in enumerate(zip(self.units, stage_features)):
            x = unit(features, segments)
            if level > 0:
                x = torch.cat((x, self.downsample[level - 1](refined[-1])), dim=1)
            refined.append(self.refine[level](x))
        return refined


class OFFNet(nn.Module):
    """TSN 2D ResNet + OFF sub-network on one BSCHW stream; fused logits (B, K).

    Args:
        stream: input stream (``iframe``, ``mv``, ``residual`` or ``mv_residual``).
        segments: TSN segments S (>= 2; OFF needs consecutive pairs).
        weights: fusion weights (backbone, off).
    """

    def __init__(self, num_classes: int, stream: str, segments: int, size, backbone: str,
                 weights: Sequence[float], dropout: float, widths: Sequence[int] = (64, 128, 256),
                 width: int = 64):
        super().__init__()
        if segments < 2:
            raise ValueError(f"OFF needs at least 2 segments, got {segments}")
        self.input_specs = (segment_spec(stream, segments, size),)
        self.segments = segments
        self.backbone = build_backbone(backbone, in_channels=CHANNELS[stream], width=width)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(self.backbone.num_features, num_classes)
        self.off = OFFSubNetwork(self.backbone.stage_channels[1:], reduced_channels=2 * widths[0], widths=widths)
        self.off_fc = nn.Linear(widths[-1], num_classes)
        # auxiliary per-level scores (the paper supervises every level during training)
        self.off_level_fcs = nn.ModuleList(nn.Linear(w, num_classes) for w in widths[:-1])
        self.fusion = LateFusion(("backbone", "off"), weights)

    def forward_streams(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """(B, S, C, H, W) -> logits (B, K) keyed ``backbone``, ``off`` and ``off_level{i}`` (auxiliary)."""
        stages = self.backbone.forward_stages(fold_segments(x))  # layer1..4, each (B*S, C, h, w)
        pooled = stages[-1].mean(dim=(2, 3))
        scores = {"backbone": segment_consensus(self.fc(self.dropout(pooled)), self.segments)}
        refined = self.off(stages[1:], self.segments)  # per level (B*(S-1), w, h, w)
        pairs = self.segments - 1
        scores["off"] = segment_consensus(self.off_fc(self.dropout(refined[-1].mean(dim=(2, 3)))), pairs)
        for level, fc in enumerate(self.off_level_fcs):
            scores[f"off_level{level}"] = segment_consensus(fc(refined[level].mean(dim=(2, 3))), pairs)
        return scores

    def forward_segments(self, x: torch.Tensor) -> torch.Tensor:
        return self.fusion(self.forward_streams(x))


class IFrameOFFNet(OFFNet):
    def forward(self, iframe: torch.Tensor) -> torch.Tensor:
        """iframe (B, S, 3, H, W) -> fused logits (B, K)."""
        return self.forward_segments(iframe)


class MotionVectorOFFNet(OFFNet):
    def forward(self, mv: torch.Tensor) -> torch.Tensor:
        """mv (B, S, 2, H, W) -> fused logits (B, K)."""
        return self.forward_segments(mv)


class ResidualOFFNet(OFFNet):
    def forward(self, residual: torch.Tensor) -> torch.Tensor:
        """residual (B, S, 3, H, W) -> fused logits (B, K)."""
        return self.forward_segments(residual)


class MVResidualOFFNet(OFFNet):
    def forward(self, mv_residual: torch.Tensor) -> torch.Tensor:
        """mv_residual (B, S, 5, H, W) -> fused logits (B, K)."""
        return self.forward_segments(mv_residual)


OFF_NETS = {"iframe": IFrameOFFNet, "mv": MotionVectorOFFNet, "residual": ResidualOFFNet,
            "mv_residual": MVResidualOFFNet}


def _check_stream(stream: str) -> None:
    if stream not in OFF_NETS:
        raise ValueError(f"off-r18 supports streams {sorted(OFF_NETS)}, got {stream!r}")


def off_inputs(stream: str, segments: int, size, **_) -> tuple:
    """OFF's one input: ``segments`` TSN segments of ``stream``."""
    _check_stream(stream)
    return (segment_spec(stream, segments, size),)


@register_model("off-r18", summary="TSN ResNet-18 + 3-level OFF sub-network (I-frames)", paper="OFF", inputs=off_inputs)
def off_r18(num_classes: int, stream: str = "iframe", segments: int = 3, size: int = 224,
            weights: tuple = (1.0, 1.0), dropout: float = 0.5, width: int = 64, off_width: int = 64) -> nn.Module:
    # width: the backbone's first stage; off_width: the first OFF level (levels w, 2w, 4w; OFF units reduce
    # to 2w channels): 64 and 64 are the paper's, smaller for CPU-scale runs
    _check_stream(stream)
    return OFF_NETS[stream](num_classes, stream, segments, size, "resnet18", weights, dropout,
                            widths=(off_width, 2 * off_width, 4 * off_width), width=width)
