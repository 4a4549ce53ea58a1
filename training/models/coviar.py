"""CoViAR (Wu et al., CVPR 2018): three independent TSN streams on I-frames, MVs and residuals.

Each stream is a 2D ResNet applied per segment (segments folded into the batch, logits averaged);
the streams are combined by late fusion of their scores with constant weights (CoViAR: I:2, MV:1,
R:1). CoViAR's I-stream is a ResNet-152; we default to ResNet-50 for edge budgets and keep
``i_backbone="resnet152"`` one keyword away. MV and R streams are ResNet-18, as in the paper.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from .common import LateFusion, segment_inputs, segment_spec
from .registry import register_model
from .tsn import IFrameTSN, MotionVectorTSN, ResidualTSN, stream_classifier


class CoViAR(nn.Module):
    """I + MV + R streams with late fusion.

    Inputs (BSCHW, same segments and size): ``iframe`` (B, S, 3, H, W), ``mv`` (B, S, 2, H, W),
    ``residual`` (B, S, 3, H, W). Output: fused logits (B, K).
    """

    def __init__(self, num_classes: int, segments: int, size, i_backbone: str, mv_backbone: str,
                 r_backbone: str, weights: Sequence[float], dropout: float):
        super().__init__()
        self.iframe_stream = IFrameTSN(segment_spec("iframe", segments, size), num_classes,
                                       backbone=i_backbone, dropout=dropout)
        self.mv_stream = MotionVectorTSN(segment_spec("mv", segments, size), num_classes,
                                         backbone=mv_backbone, dropout=dropout)
        self.residual_stream = ResidualTSN(segment_spec("residual", segments, size), num_classes,
                                           backbone=r_backbone, dropout=dropout)
        self.fusion = LateFusion(("iframe", "mv", "residual"), weights)
        self.input_specs = (self.iframe_stream.input_specs[0], self.mv_stream.input_specs[0],
                            self.residual_stream.input_specs[0])

    def forward_streams(self, iframe: torch.Tensor, mv: torch.Tensor,
                        residual: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per-stream logits, each (B, K), keyed ``iframe`` / ``mv`` / ``residual``."""
        return {"iframe": self.iframe_stream(iframe), "mv": self.mv_stream(mv),
                "residual": self.residual_stream(residual)}

    def forward(self, iframe: torch.Tensor, mv: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return self.fusion(self.forward_streams(iframe, mv, residual))


@register_model("coviar-i-r18", summary="CoViAR I-stream, ResNet-18 on I-frames", paper="CoViAR",
                inputs=segment_inputs("iframe"))
def coviar_i_r18(num_classes: int, segments: int = 3, size: int = 224, dropout: float = 0.5,
                 width: int = 64) -> nn.Module:
    return stream_classifier("iframe", num_classes, segments, size, backbone="resnet18", width=width, dropout=dropout)


@register_model("coviar-i-r50", summary="CoViAR I-stream, ResNet-50 on I-frames", paper="CoViAR",
                inputs=segment_inputs("iframe"))
def coviar_i_r50(num_classes: int, segments: int = 3, size: int = 224, dropout: float = 0.5) -> nn.Module:
    return stream_classifier("iframe", num_classes, segments, size, backbone="resnet50", dropout=dropout)


@register_model("coviar-mv-r18", summary="CoViAR MV-stream, ResNet-18 on 2-ch motion vectors", paper="CoViAR",
                inputs=segment_inputs("mv"))
def coviar_mv_r18(num_classes: int, segments: int = 3, size: int = 224, dropout: float = 0.5,
                  width: int = 64) -> nn.Module:
    return stream_classifier("mv", num_classes, segments, size, backbone="resnet18", width=width, dropout=dropout)


@register_model("coviar-r-r18", summary="CoViAR R-stream, ResNet-18 on residuals", paper="CoViAR",
                inputs=segment_inputs("residual"))
def coviar_r_r18(num_classes: int, segments: int = 3, size: int = 224, dropout: float = 0.5,
                 width: int = 64) -> nn.Module:
    return stream_classifier("residual", num_classes, segments, size, backbone="resnet18", width=width, dropout=dropout)


@register_model("coviar", summary="CoViAR I(R50)+MV(R18)+R(R18), late fusion 2:1:1", paper="CoViAR",
                inputs=segment_inputs("iframe", "mv", "residual"))
def coviar(num_classes: int, segments: int = 3, size: int = 224, i_backbone: str = "resnet50",
           mv_backbone: str = "resnet18", r_backbone: str = "resnet18",
           weights: tuple = (2.0, 1.0, 1.0), dropout: float = 0.5) -> nn.Module:
    return CoViAR(num_classes, segments, size, i_backbone, mv_backbone, r_backbone, weights, dropout)
