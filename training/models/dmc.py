"""DMC-Net (Shou et al., CVPR 2019): Discriminative Motion Cue generator + flow-stream classifier.

- :class:`DMCGenerator` is Table 2 of the paper, layer for layer: six densely connected 3x3 convs
  (stride 1, padding 1) with 8, 8, 6, 4, 2, 2 filters on stacked MV+R (5 channels); every conv but
  conv5 is followed by LeakyReLU(0.1); a shortcut adds the input MV to the output, so the network
  predicts a refinement of the MV. 0.23 GFLOPs (multiply-accumulates) at 224x224.
- :class:`DMCDiscriminator` is the appendix's "stack of 2D convolutional layers with a two-way
  fully connected layer at the end" (Figure 6). The figure's filter counts are not in the text;
  we use a DCGAN/pix2pix-style stack 4x4/stride-2 convs with 32, 64, 128, 256 filters,
  BatchNorm after all but the first, LeakyReLU(0.2), global average pooling and FC(256 -> 2).
  Training only; never exported.
- :class:`DMCStream` (``dmc-r18``) is generator -> ResNet-18 flow classifier (2 channels),
  per segment, TSN consensus. ``forward_with_flow`` also returns the generated DMC for the flow
  reconstruction (MSE, alpha=10) and adversarial (lambda=1) losses.
- :class:`DMCNet` (``dmc``) is the paper's final system: the CoViAR streams I, MV, R plus the DMC
  stream, fused by a weighted sum of scores (Sec. 4.2, "fusing prediction scores from all
  modalities (I, MV, R, and DMC)"). MV and R are sliced from the same stacked MV+R input the
  generator reads, so the model has two inputs: ``iframe`` and ``mv_residual``.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .common import LateFusion, fold_segments, segment_inputs, segment_spec
from .registry import register_model
from .tsn import FlowTSN, IFrameTSN, MotionVectorTSN, ResidualTSN

GENERATOR_FILTERS = (8, 8, 6, 4, 2, 2)  # Table 2: conv0..conv5
REAL, FAKE = 1, 0  # discriminator output index: 1 = optical flow (real), 0 = generated DMC (fake)


class DMCGenerator(nn.Module):
    """Densely connected 6-layer generator, MV+R (N, 5, H, W) -> DMC (N, 2, H, W).

    Layer ``i`` sees the input concatenated with every earlier layer's output, so its input
    channels are 5, 13, 21, 27, 31, 33 (Table 2). The output is ``conv5(...) + input_mv``.
    """

    def __init__(self, in_channels: int = 5, filters: Sequence[int] = GENERATOR_FILTERS,
                 negative_slope: float = 0.1, mv_channels: int = 2):
        super().__init__()
        if filters[-1] != mv_channels:
            raise ValueError(f"last generator layer must output {mv_channels} channels (a flow field)")
        self.mv_channels = mv_channels
        self.negative_slope = negative_slope
        self.convs = nn.ModuleList()
        channels = in_channels
        for out_channels in filters:
            self.convs.append(nn.Conv2d(channels, out_channels, kernel_size=3, stride=1, padding=1))
            channels += out_channels  # dense connection: next layer also sees this output

    def forward(self, mv_residual: torch.Tensor) -> torch.Tensor:
        """(N, 5, H, W) stacked (dx, dy, r0, r1, r2) -> (N, 2, H, W) discriminative motion cue."""
        features = mv_residual
        for conv in self.convs[:-1]:
            out = F.leaky_relu(conv(features), self.negative_slope)
            features = torch.cat((features, out), dim=1)
        refinement = self.convs[-1](features)  # conv5: no activation (Table 2 / Sec. 3.2)
        return refinement + mv_residual[:, : self.mv_channels]  # shortcut from the input MV


class DMCDiscriminator(nn.Module):
    """Flow-vs-DMC classifier: (N, 2, H, W) -> two-way logits (N, 2), index ``REAL`` / ``FAKE``."""

    def __init__(self, in_channels: int = 2, filters: Sequence[int] = (32, 64, 128, 256),
                 negative_slope: float = 0.2):
        super().__init__()
        layers: list[nn.Module] = []
        channels = in_channels
        for i, out_channels in enumerate(filters):
            layers.append(nn.Conv2d(channels, out_channels, kernel_size=4, stride=2, padding=1, bias=i == 0))
            if i > 0:  # no BatchNorm on the first layer (DCGAN practice)
                layers.append(nn.BatchNorm2d(out_channels))
            layers.append(nn.LeakyReLU(negative_slope, inplace=True))
            channels = out_channels
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(channels, 2)

    def forward(self, flow: torch.Tensor) -> torch.Tensor:
        """(N, 2, H, W) flow or DMC -> (N, 2) logits; softmax gives P(real) at index ``REAL``."""
        return self.fc(self.features(flow).mean(dim=(2, 3)))


class DMCStream(nn.Module):
    """DMC generator followed by a 2D flow classifier, per segment, TSN consensus.

    Input ``mv_residual`` (B, S, 5, H, W); output logits (B, K).
    """

    def __init__(self, num_classes: int, segments: int, size, backbone: str = "resnet18",
                 dropout: float = 0.5, width: int = 64):
        super().__init__()
        self.input_specs = (segment_spec("mv_residual", segments, size),)
        self.segments = segments
        self.generator = DMCGenerator()  # PyTorch default init: starts as MV plus a small refinement
        # the classifier is exactly a flow-stream TSN, so TV-L1 flow weights can initialise it
        self.classifier = FlowTSN(segment_spec("flow", segments, size), num_classes, backbone=backbone,
                                  width=width, dropout=dropout)

    def generate(self, mv_residual: torch.Tensor) -> torch.Tensor:
        """(B, S, 5, H, W) -> generated DMC (B, S, 2, H, W)."""
        dmc = self.generator(fold_segments(mv_residual))
        return dmc.reshape(-1, self.segments, *dmc.shape[1:])

    def forward_with_flow(self, mv_residual: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits (B, K), generated DMC (B, S, 2, H, W)) for the flow and adversarial losses."""
        dmc = self.generate(mv_residual)
        return self.classifier(dmc), dmc

    def forward(self, mv_residual: torch.Tensor) -> torch.Tensor:
        return self.forward_with_flow(mv_residual)[0]


class DMCNet(nn.Module):
    """Full DMC-Net: I, MV, R (CoViAR streams) + DMC stream, weighted late fusion.

    Inputs: ``iframe`` (B, S, 3, H, W) and ``mv_residual`` (B, S, 5, H, W); MV = channels 0:2,
    R = channels 2:5 of ``mv_residual``. Output: fused logits (B, K).
    """

    def __init__(self, num_classes: int, segments: int, size, i_backbone: str, weights: Sequence[float],
                 dropout: float):
        super().__init__()
        self.iframe_stream = IFrameTSN(segment_spec("iframe", segments, size), num_classes,
                                       backbone=i_backbone, dropout=dropout)
        self.mv_stream = MotionVectorTSN(segment_spec("mv", segments, size), num_classes, dropout=dropout)
        self.residual_stream = ResidualTSN(segment_spec("residual", segments, size), num_classes, dropout=dropout)
        self.dmc_stream = DMCStream(num_classes, segments, size, dropout=dropout)
        self.fusion = LateFusion(("iframe", "mv", "residual", "dmc"), weights)
        self.input_specs = (self.iframe_stream.input_specs[0], self.dmc_stream.input_specs[0])

    def forward_streams(self, iframe: torch.Tensor,
                        mv_residual: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """(per-stream logits keyed iframe/mv/residual/dmc, generated DMC (B, S, 2, H, W))."""
        dmc_logits, dmc = self.dmc_stream.forward_with_flow(mv_residual)
        scores = {"iframe": self.iframe_stream(iframe),
                  "mv": self.mv_stream(mv_residual[:, :, 0:2]),
                  "residual": self.residual_stream(mv_residual[:, :, 2:5]),
                  "dmc": dmc_logits}
        return scores, dmc

    def forward_with_flow(self, iframe: torch.Tensor, mv_residual: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(fused logits (B, K), generated DMC (B, S, 2, H, W))."""
        scores, dmc = self.forward_streams(iframe, mv_residual)
        return self.fusion(scores), dmc

    def forward(self, iframe: torch.Tensor, mv_residual: torch.Tensor) -> torch.Tensor:
        return self.forward_with_flow(iframe, mv_residual)[0]


@register_model("dmc-r18", summary="DMC generator + ResNet-18 DMC classifier on stacked MV+R", paper="DMC-Net",
                inputs=segment_inputs("mv_residual"))
def dmc_r18(num_classes: int, segments: int = 3, size: int = 224, dropout: float = 0.5, width: int = 64) -> nn.Module:
    # width: the classifier's first stage (64 = the paper's ResNet-18; smaller for CPU-scale runs)
    return DMCStream(num_classes, segments, size, backbone="resnet18", dropout=dropout, width=width)


@register_model("dmc", summary="DMC-Net: I(R50)+MV+R+DMC (R18s), late fusion 2:1:1:1", paper="DMC-Net",
                inputs=segment_inputs("iframe", "mv_residual"))
def dmc(num_classes: int, segments: int = 3, size: int = 224, i_backbone: str = "resnet50",
        weights: tuple = (2.0, 1.0, 1.0, 1.0), dropout: float = 0.5) -> nn.Module:
    return DMCNet(num_classes, segments, size, i_backbone, weights, dropout)
