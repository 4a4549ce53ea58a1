"""TSN-style 2D segment classifiers: one 2D backbone shared by all segments, consensus by averaging.

Input is layout BSCHW ``(B, S, C, H, W)``. Segments are folded into the batch, each segment gets
class scores from ``backbone -> dropout -> fc``, and the scores are averaged over segments *inside*
the model, so the exported ONNX maps ``(1, S, C, H, W)`` to ``(1, num_classes)``.

``forward`` takes the stream's own name (``iframe``, ``mv``, ``residual``, ``mv_residual``,
``flow``) so ONNX input names equal ``InputSpec`` names; one thin subclass per stream does that.
"""

from __future__ import annotations

import torch
from torch import nn

from edgekit.spec import CHANNELS, InputSpec

from .common import fold_segments, segment_consensus, segment_spec
from .resnet import build_backbone, enable_temporal_shift


class SegmentClassifier(nn.Module):
    """Backbone + classifier applied per segment, averaged over segments (TSN consensus).

    Args:
        spec: the single BSCHW input this model consumes.
        num_classes: size of the output.
        backbone: ``resnet18`` ... ``resnet152``.
        width: stage-1 width of the backbone (64 = standard ResNet).
        stem: the backbone's stem, ``"conv7"`` (standard) or ``"patch4"`` (see ``ResNet``).
        dropout: dropout before the classifier (TSN practice), inactive in eval.
        temporal_shift: shift channels between neighbouring segments in every residual block
            (:class:`~training.models.resnet.TemporalShift`, TSM); no parameter is added.
    """

    def __init__(self, spec: InputSpec, num_classes: int, backbone: str = "resnet18", width: int = 64,
                 dropout: float = 0.5, stem: str = "conv7", temporal_shift: bool = False):
        super().__init__()
        if spec.layout != "BSCHW":
            raise ValueError(f"{type(self).__name__} needs a BSCHW input, got {spec.layout}")
        self.input_specs = (spec,)
        self.segments = spec.segments
        self.backbone = build_backbone(backbone, in_channels=CHANNELS[spec.modality], width=width, stem=stem)
        if temporal_shift:
            enable_temporal_shift(self.backbone, spec.segments)
        self.num_features = self.backbone.num_features
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(self.num_features, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, S, C, H, W) -> per-segment pooled features (B*S, F)."""
        return self.backbone(fold_segments(x))

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        """(B*S, F) -> segment-averaged logits (B, K)."""
        return segment_consensus(self.fc(self.dropout(features)), self.segments)

    def forward_segments(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


class IFrameTSN(SegmentClassifier):
    """2D CNN on the RGB I-frame of each segment (CoViAR / IP-TSN I-stream)."""

    def forward(self, iframe: torch.Tensor) -> torch.Tensor:
        """iframe (B, S, 3, H, W) -> logits (B, K)."""
        return self.forward_segments(iframe)


class MotionVectorTSN(SegmentClassifier):
    """2D CNN on the 2-channel motion-vector field of each segment (CoViAR MV-stream)."""

    def forward(self, mv: torch.Tensor) -> torch.Tensor:
        """mv (B, S, 2, H, W) -> logits (B, K)."""
        return self.forward_segments(mv)


class ReferenceMotionVectorTSN(SegmentClassifier):
    """The same on the motion vectors of P-frames only (modality ``mv_ref``: edge-mv-ref)."""

    def forward(self, mv_ref: torch.Tensor) -> torch.Tensor:
        """mv_ref (B, S, 2, H, W) -> logits (B, K)."""
        return self.forward_segments(mv_ref)


class ResidualTSN(SegmentClassifier):
    """2D CNN on the 3-channel residual of each segment (CoViAR R-stream)."""

    def forward(self, residual: torch.Tensor) -> torch.Tensor:
        """residual (B, S, 3, H, W) -> logits (B, K)."""
        return self.forward_segments(residual)


class MVResidualTSN(SegmentClassifier):
    """2D CNN on stacked MV+R (5 channels) of each segment (IP-TSN "MR" 2D stage, edge model)."""

    def forward(self, mv_residual: torch.Tensor) -> torch.Tensor:
        """mv_residual (B, S, 5, H, W) -> logits (B, K)."""
        return self.forward_segments(mv_residual)


class FlowTSN(SegmentClassifier):
    """2D CNN on 2-channel optical flow (training-time teacher / upper bound only)."""

    def forward(self, flow: torch.Tensor) -> torch.Tensor:
        """flow (B, S, 2, H, W) -> logits (B, K)."""
        return self.forward_segments(flow)


STREAM_CLASSIFIERS: dict[str, type[SegmentClassifier]] = {
    "iframe": IFrameTSN,
    "mv": MotionVectorTSN,
    "mv_ref": ReferenceMotionVectorTSN,
    "residual": ResidualTSN,
    "mv_residual": MVResidualTSN,
    "flow": FlowTSN,
}


def stream_classifier(stream: str, num_classes: int, segments: int, size, backbone: str = "resnet18",
                      width: int = 64, dropout: float = 0.5, stem: str = "conv7",
                      temporal_shift: bool = False, representation: str = "accumulated") -> SegmentClassifier:
    """The TSN classifier of one stream with its BSCHW spec built from ``segments``, ``size`` and
    ``representation`` (side data traced back to the I-frame, "accumulated", or each frame's own,
    "frame")."""
    if stream not in STREAM_CLASSIFIERS:
        raise ValueError(f"no 2D segment classifier for stream {stream!r}; expected one of "
                         f"{sorted(STREAM_CLASSIFIERS)}")
    spec = segment_spec(stream, segments, size, representation=representation)
    return STREAM_CLASSIFIERS[stream](spec, num_classes, backbone=backbone, width=width, dropout=dropout,
                                      stem=stem, temporal_shift=temporal_shift)
