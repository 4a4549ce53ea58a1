"""``edge-mvr``: the default edge model, a 3/8-width ResNet-18 with a patch stem on stacked MV+R segments.

Why this shape:

- Input: stacked MV+R (5 channels, the DMC-Net / IP-TSN P-frame input) of 3 TSN segments at
  112x112. MV and R need no decoding to RGB, and 3 segments x 112^2 keep preprocessing cheap.
- Stem: one 4x4 stride-4 conv (``stem="patch4"``) instead of ResNet's 7x7 stride-2 conv + max-pool.
  Motion vectors are constant over 8x8 blocks, so a 4x4 patch loses nothing a 7x7 window would
  see, and the stem stops dominating: at width 16 the 7x7 stem was a third of the multiply-adds and
  gained only 1.1x from INT8 in ONNX Runtime (a 7x7 window over 5 channels is a poor INT8 GEMM).
- Backbone: ResNet-18 with stage widths 24, 48, 96, 192 (3/8 of 64..512). Measured with ONNX
  Runtime, 1 thread, batch 1 (untrained weights, the same graphs): width 16 + 7x7 stem, INT8 1.06 ms
  (1.36x FP32); width 16 + patch stem, INT8 0.53 ms (1.68x); width 24 + patch stem, INT8 0.81 ms
  (2.9x); width 32 + patch stem, INT8 1.22-1.46 ms. Width 24 is the widest whose INT8 model is still
  faster than the old default's, and INT8 pays off twice over (``benchmarks/quantize.py``).
- INT8-friendly by construction: only Conv (BatchNorm folds into it), ReLU, Add, ReduceMean and
  Gemm; no depthwise convs (whose per-tensor INT8 ranges are fragile), no ReLU6 clipping, no
  hard-swish. Every op is in TensorRT's, OpenVINO's and ONNX Runtime's INT8 paths.
- Trains from scratch on CPU in minutes on the synthetic benchmark.
- ``temporal_shift=True`` (TSM, Lin et al. 2019): every residual block first shifts 1/8 of its
  channels from the next segment and 1/8 from the previous one, so the network can compare its
  segments (a wave's back and forth, a bounce) instead of averaging 3 independent views. No
  parameter and no multiply-add is added (a checkpoint without the shift loads into it); the ONNX
  graph gains Slice/Pad/Concat per block, which every target runs, and INT8 stays over 2x FP32.
"""

from __future__ import annotations

from torch import nn

from .common import LateFusion, segment_inputs
from .registry import register_model
from .tsn import stream_classifier


def _edge_network(stream: str, num_classes: int, segments: int, size: int, width: int, stem: str,
                  dropout: float, temporal_shift: bool = False, representation: str = "accumulated") -> nn.Module:
    """The edge defaults' one network (a ResNet-18 TSN classifier) on ``stream``; ``temporal_shift``:
    TSM's shift between segments in every residual block (no parameter, no multiply-add);
    ``representation``: the side data traced back to the I-frame ("accumulated", the defaults) or
    each frame's own ("frame")."""
    return stream_classifier(stream, num_classes, segments, size, backbone="resnet18", width=width,
                             dropout=dropout, stem=stem, temporal_shift=temporal_shift, representation=representation)


def _edge_builder(stream: str):
    """The builder of the edge network on ``stream``: every edge model takes the same config keys."""

    def build(num_classes: int, segments: int = 3, size: int = 112, width: int = 24, stem: str = "patch4",
              dropout: float = 0.2, temporal_shift: bool = False, representation: str = "accumulated") -> nn.Module:
        return _edge_network(stream, num_classes, segments, size, width, stem, dropout, temporal_shift,
                             representation)

    build.__name__ = build.__qualname__ = f"edge_{stream}"
    return build


edge_mvr = register_model("edge-mvr", summary="Edge default: ResNet-18 at 3/8 width, patch stem, on MV+R, 3x112x112",
                          paper="edgekit", inputs=segment_inputs("mv_residual"))(_edge_builder("mv_residual"))
edge_mv = register_model("edge-mv", summary="Edge motion-only: edge-mvr's network on motion vectors alone (decodable "
                         "with the loop filter and IDCT skipped, or from encoder-side vectors)",
                         paper="edgekit", inputs=segment_inputs("mv"))(_edge_builder("mv"))
edge_mv_ref = register_model("edge-mv-ref", summary="edge-mv sampling P-frames only (modality mv_ref): a file's "
                             "B-frames are never decoded", paper="edgekit",
                             inputs=segment_inputs("mv_ref"))(_edge_builder("mv_ref"))
# edge-flow is training only (flow is not a runtime modality): the motion ceiling of the defaults and
# their flow teacher. Flow has the motion vectors' two channels and scale, so edge-mv's stage-1
# checkpoint initialises it (training/configs/edge-flow.toml); benchmarks/motion_ceiling.py scores
# it beside them, training/configs/edge-mv-ref-distil.toml distils from it.
edge_flow = register_model("edge-flow", summary="edge-mv's network on teacher flow (training only): the motion "
                           "ceiling of the defaults and their flow teacher", paper="edgekit",
                           inputs=segment_inputs("flow"))(_edge_builder("flow"))


class EdgeTwoStream(nn.Module):
    """``edge-mvr`` plus a quarter-width I-frame stream, late fusion of logits.

    The I-frame stream exists for classes that motion alone cannot separate (the synthetic
    benchmark's ``red_up_right`` / ``blue_up_right``: same motion, different colour). Inputs:
    ``mv_residual`` (B, S, 5, H, W) and ``iframe`` (B, S, 3, H, W); output fused logits (B, K).
    """

    def __init__(self, num_classes: int, segments: int, size, width: int, dropout: float, weights):
        super().__init__()
        self.motion_stream = stream_classifier("mv_residual", num_classes, segments, size, backbone="resnet18",
                                               width=width, dropout=dropout)
        self.iframe_stream = stream_classifier("iframe", num_classes, segments, size, backbone="resnet18",
                                               width=width, dropout=dropout)
        self.fusion = LateFusion(("mv_residual", "iframe"), weights)
        self.input_specs = (self.motion_stream.input_specs[0], self.iframe_stream.input_specs[0])

    def forward_streams(self, mv_residual, iframe) -> dict:
        """Per-stream logits, each (B, K)."""
        return {"mv_residual": self.motion_stream(mv_residual), "iframe": self.iframe_stream(iframe)}

    def forward(self, mv_residual, iframe):
        return self.fusion(self.forward_streams(mv_residual, iframe))


@register_model("edge-mvr-i", summary="Edge two-stream: edge-mvr + 1/4-width I-frame ResNet-18, late fusion",
                paper="edgekit", inputs=segment_inputs("mv_residual", "iframe"))
def edge_mvr_i(num_classes: int, segments: int = 3, size: int = 112, width: int = 16, dropout: float = 0.2,
               weights: tuple = (1.0, 1.0)) -> nn.Module:
    return EdgeTwoStream(num_classes, segments, size, width, dropout, weights)
