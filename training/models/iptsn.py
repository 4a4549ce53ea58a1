"""IP-TSN (Huang et al., "Flow-distilled IP two-stream networks for compressed video action recognition").

- I-stream (``iptsn-i``): a 2D CNN on the RGB I-frames of S segments (TSN consensus). The paper
  uses ResNet-152 (185.6 GFLOPs for 16 frames); we default to ResNet-50, ``backbone="resnet152"``
  reproduces the paper.
- P-stream (``iptsn-p``): a 2D-3D ResNet-18 inflated from conv3.x on a clip of T stacked MV+R
  frames (layout BCTHW, default T=16, one 224x224 centre crop). ``forward_with_features`` also
  returns the last pooled feature (B, 512), which the distillation loss (L1, lambda=50) matches to
  the frozen optical-flow teacher's.
- Flow teacher (``iptsn-flow``): the same 2D-3D ResNet-18 on a clip of 2-channel optical flow.
- ``iptsn``: I-stream + P-stream, weighted late fusion of scores (default 1:1).
- ``mvr-r18``: the 2D ResNet-18 on stacked MV+R that IP-TSN trains first and inflates into the
  P-stream (:func:`training.models.resnet2d3d.inflate_2d_weights`); also the "CoViAR+MR" baseline.
- ``flow-r18``: the same 2D ResNet-18 on optical-flow segments, the 2D teacher inflated into
  ``iptsn-flow`` (training only).
- ``width`` (64 = the paper's ResNet-18) scales every stage, for CPU-scale runs and tests.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from .common import LateFusion, clip_inputs, clip_spec, segment_inputs, segment_spec
from .registry import register_model
from .resnet2d3d import ResNet2D3D
from .tsn import IFrameTSN, stream_classifier


class ClipClassifier(nn.Module):
    """2D-3D ResNet-18 on one BCTHW clip + dropout + linear classifier."""

    def __init__(self, stream: str, num_classes: int, frames: int, size, inflate_from: str = "conv3",
                 temporal_stride: int = 2, dropout: float = 0.5, width: int = 64):
        super().__init__()
        spec = clip_spec(stream, frames, size)
        self.input_specs = (spec,)
        self.backbone = ResNet2D3D(in_channels=spec.shape[1], inflate_from=inflate_from,
                                   temporal_stride=temporal_stride, width=width)
        self.num_features = self.backbone.num_features
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(self.num_features, num_classes)

    def forward_features(self, clip: torch.Tensor) -> torch.Tensor:
        """(B, C, T, H, W) -> last pooled feature (B, 512), the distillation target."""
        return self.backbone(clip)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        """(B, 512) -> logits (B, K)."""
        return self.fc(self.dropout(features))

    def forward_with_features(self, clip: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits (B, K), pooled feature (B, 512))."""
        features = self.forward_features(clip)
        return self.forward_head(features), features


class PStream(ClipClassifier):
    """IP-TSN P-stream on stacked MV+R clips."""

    def __init__(self, num_classes: int, frames: int, size, **kwargs):
        super().__init__("mv_residual", num_classes, frames, size, **kwargs)

    def forward(self, mv_residual: torch.Tensor) -> torch.Tensor:
        """mv_residual (B, 5, T, H, W) -> logits (B, K)."""
        return self.forward_with_features(mv_residual)[0]


class FlowTeacher(ClipClassifier):
    """IP-TSN optical-flow teacher (training only): same network on 2-channel flow clips."""

    def __init__(self, num_classes: int, frames: int, size, **kwargs):
        super().__init__("flow", num_classes, frames, size, **kwargs)

    def forward(self, flow: torch.Tensor) -> torch.Tensor:
        """flow (B, 2, T, H, W) -> logits (B, K)."""
        return self.forward_with_features(flow)[0]


class IPTSN(nn.Module):
    """I-stream (BSCHW I-frames) + P-stream (BCTHW MV+R clip), weighted late fusion."""

    def __init__(self, num_classes: int, segments: int, frames: int, size, i_backbone: str,
                 weights: Sequence[float], dropout: float):
        super().__init__()
        self.iframe_stream = IFrameTSN(segment_spec("iframe", segments, size), num_classes,
                                       backbone=i_backbone, dropout=dropout)
        self.p_stream = PStream(num_classes, frames, size, dropout=dropout)
        self.fusion = LateFusion(("iframe", "p"), weights)
        self.input_specs = (self.iframe_stream.input_specs[0], self.p_stream.input_specs[0])

    def forward_with_features(self, iframe: torch.Tensor,
                              mv_residual: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(fused logits (B, K), P-stream pooled feature (B, 512))."""
        p_logits, p_features = self.p_stream.forward_with_features(mv_residual)
        fused = self.fusion({"iframe": self.iframe_stream(iframe), "p": p_logits})
        return fused, p_features

    def forward(self, iframe: torch.Tensor, mv_residual: torch.Tensor) -> torch.Tensor:
        return self.forward_with_features(iframe, mv_residual)[0]


def iptsn_inputs(segments: int, frames: int, size, **_) -> tuple:
    """IP-TSN's inputs: TSN-sampled I-frames and one MV+R clip."""
    return segment_spec("iframe", segments, size), clip_spec("mv_residual", frames, size)


@register_model("iptsn-i", summary="IP-TSN I-stream, ResNet-50 on 16 I-frames", paper="IP-TSN",
                inputs=segment_inputs("iframe"))
def iptsn_i(num_classes: int, segments: int = 16, size: int = 224, backbone: str = "resnet50",
            dropout: float = 0.5) -> nn.Module:
    return stream_classifier("iframe", num_classes, segments, size, backbone=backbone, dropout=dropout)


@register_model("iptsn-p", summary="IP-TSN P-stream, 2D-3D ResNet-18 (3D from conv4.x) on MV+R clip", paper="IP-TSN",
                inputs=clip_inputs("mv_residual"))
def iptsn_p(num_classes: int, frames: int = 16, size: int = 224, inflate_from: str = "conv3",
            temporal_stride: int = 2, dropout: float = 0.5, width: int = 64) -> nn.Module:
    return PStream(num_classes, frames, size, inflate_from=inflate_from, temporal_stride=temporal_stride,
                   dropout=dropout, width=width)


@register_model("iptsn-flow", summary="IP-TSN optical-flow teacher, 2D-3D ResNet-18 on flow clip", paper="IP-TSN",
                inputs=clip_inputs("flow"))
def iptsn_flow(num_classes: int, frames: int = 16, size: int = 224, inflate_from: str = "conv3",
               temporal_stride: int = 2, dropout: float = 0.5, width: int = 64) -> nn.Module:
    return FlowTeacher(num_classes, frames, size, inflate_from=inflate_from, temporal_stride=temporal_stride,
                       dropout=dropout, width=width)


@register_model("iptsn", summary="IP-TSN: I-stream (R50) + P-stream (2D-3D R18), late fusion 1:1", paper="IP-TSN",
                inputs=iptsn_inputs)
def iptsn(num_classes: int, segments: int = 16, frames: int = 16, size: int = 224, i_backbone: str = "resnet50",
          weights: tuple = (1.0, 1.0), dropout: float = 0.5) -> nn.Module:
    return IPTSN(num_classes, segments, frames, size, i_backbone, weights, dropout)


@register_model("mvr-r18", summary="2D ResNet-18 on stacked MV+R (IP-TSN 2D stage, CoViAR+MR)", paper="IP-TSN",
                inputs=segment_inputs("mv_residual"))
def mvr_r18(num_classes: int, segments: int = 3, size: int = 224, dropout: float = 0.5, width: int = 64) -> nn.Module:
    return stream_classifier("mv_residual", num_classes, segments, size, backbone="resnet18", width=width,
                             dropout=dropout)


@register_model("flow-r18", summary="2D ResNet-18 on optical-flow segments (IP-TSN 2D OF teacher, DMC classifier init)",
                paper="IP-TSN", inputs=segment_inputs("flow"))
def flow_r18(num_classes: int, segments: int = 3, size: int = 224, dropout: float = 0.5, width: int = 64) -> nn.Module:
    # training only (flow is not a runtime modality): the 2D teacher IP-TSN inflates into iptsn-flow, and
    # the flow classifier whose weights initialise DMC-Net's (init_from with init_rename {"" = "classifier."})
    return stream_classifier("flow", num_classes, segments, size, backbone="resnet18", width=width, dropout=dropout)
