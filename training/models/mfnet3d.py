"""Multi-Fiber 3D network (MFNet-3D, Chen et al. ECCV 2018) and MFCD-Net (Battash et al.).

MFCD-Net classifies one compressed GOP as a pseudo raw clip with a single 3D CNN: the stream
``gop_clip`` is ``[I, (R_acc^1 + I)/2, ..., (R_acc^{T-1} + I)/2]`` in layout BCTHW (default
T=12, one MPEG-4 GOP, 224x224). The paper's backbone is MFNet-3D, which we implement as published
rather than substituting a (2+1)D net, because it *is* the light 3D network the paper measures
(8.0M parameters; 11.1 GFLOPs per 16-frame clip and 8.53 per 12-frame clip at 224x224):

- conv1: 3x5x5 conv, 16 channels, stride (1, 2, 2); 1x3x3 max-pool, stride (1, 2, 2).
- conv2..conv5: 3, 4, 6, 3 multi-fiber units with 96, 192, 384, 768 output channels and 16
  fibers (grouped convs). The first unit of conv2 strides time by 2; the first units of
  conv3..conv5 stride space by 2.
- Each unit (pre-activation BN-ReLU-Conv): a multiplexer (1x1x1 to num_mid/4 channels and back,
  added to the input) routes information between fibers, then a grouped 3x3x3 conv and a grouped
  1x3x3 conv (1x1x1 in a stage's first unit) with a residual connection.
- tail: BN-ReLU, global average pooling over (T/2, 7, 7), linear classifier.

Teacher-student (MFCD Sec. 3.3): ``forward_hints`` returns the logits and the outputs of conv2..conv5
(the hint layers matched with L2 to the raw-RGB MFNet teacher, which is this same network fed with
decoded RGB clips); the KL loss uses the logits.
"""

from __future__ import annotations

import torch
from torch import nn

from .common import clip_inputs, clip_spec
from .registry import register_model
from .resnet import init_weights


class BNReLUConv3d(nn.Module):
    """Pre-activation conv: BatchNorm3d -> ReLU -> Conv3d (no bias)."""

    def __init__(self, in_channels: int, out_channels: int, kernel=(1, 1, 1), padding=(0, 0, 0),
                 stride=(1, 1, 1), groups: int = 1):
        super().__init__()
        self.bn = nn.BatchNorm3d(in_channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv = nn.Conv3d(in_channels, out_channels, kernel_size=kernel, padding=padding, stride=stride,
                              groups=groups, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(self.relu(self.bn(x)))


class MultiFiberUnit(nn.Module):
    """One MF unit: multiplexer + two grouped convs + residual; see the module docstring."""

    def __init__(self, in_channels: int, mid_channels: int, out_channels: int, groups: int = 16,
                 stride=(1, 1, 1), first_block: bool = False):
        super().__init__()
        multiplexer_channels = mid_channels // 4
        # multiplexer: squeeze to a few channels shared by all fibers, expand back, add
        self.conv_i1 = BNReLUConv3d(in_channels, multiplexer_channels)
        self.conv_i2 = BNReLUConv3d(multiplexer_channels, in_channels)
        self.conv_m1 = BNReLUConv3d(in_channels, mid_channels, kernel=(3, 3, 3), padding=(1, 1, 1),
                                    stride=stride, groups=groups)
        if first_block:
            self.conv_m2 = BNReLUConv3d(mid_channels, out_channels)
            self.conv_w1 = BNReLUConv3d(in_channels, out_channels, stride=stride)  # shortcut projection
        else:
            self.conv_m2 = BNReLUConv3d(mid_channels, out_channels, kernel=(1, 3, 3), padding=(0, 1, 1),
                                        groups=groups)
            self.conv_w1 = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        routed = x + self.conv_i2(self.conv_i1(x))
        out = self.conv_m2(self.conv_m1(routed))
        shortcut = x if self.conv_w1 is None else self.conv_w1(x)
        return out + shortcut


class MFNet3D(nn.Module):
    """Headless MFNet-3D. (B, C, T, H, W) -> stage outputs / pooled feature (B, 768).

    Shapes at (B, 3, 16, 224, 224): conv1 (B, 16, 16, 112, 112), pool (B, 16, 16, 56, 56),
    conv2 (B, 96, 8, 56, 56), conv3 (B, 192, 8, 28, 28), conv4 (B, 384, 8, 14, 14),
    conv5 (B, 768, 8, 7, 7).
    """

    def __init__(self, in_channels: int = 3, groups: int = 16, blocks=(3, 4, 6, 3), base_channels: int = 96):
        super().__init__()
        stem_channels = 16
        self.conv1 = nn.Sequential(
            nn.Conv3d(in_channels, stem_channels, kernel_size=(3, 5, 5), padding=(1, 2, 2), stride=(1, 2, 2),
                      bias=False),
            nn.BatchNorm3d(stem_channels),
            nn.ReLU(inplace=True),
        )
        self.maxpool = nn.MaxPool3d(kernel_size=(1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1))
        stages = []
        in_ch = stem_channels
        for index, num_units in enumerate(blocks):
            channels = base_channels * 2 ** index  # 96, 192, 384, 768; num_mid = num_out
            stride = (2, 1, 1) if index == 0 else (1, 2, 2)  # conv2 halves time, later stages space
            units = [MultiFiberUnit(in_ch if i == 0 else channels, channels, channels, groups,
                                    stride=stride if i == 0 else (1, 1, 1), first_block=i == 0)
                     for i in range(num_units)]
            stages.append(nn.Sequential(*units))
            in_ch = channels
        self.conv2, self.conv3, self.conv4, self.conv5 = stages
        self.tail = nn.Sequential(nn.BatchNorm3d(in_ch), nn.ReLU(inplace=True))
        self.num_features = in_ch
        init_weights(self)

    def forward_stages(self, clip: torch.Tensor) -> list[torch.Tensor]:
        """Outputs of conv2..conv5 (pre-tail), the MFCD hint layers."""
        x = self.maxpool(self.conv1(clip))
        stages = []
        for stage in (self.conv2, self.conv3, self.conv4, self.conv5):
            x = stage(x)
            stages.append(x)
        return stages

    def forward(self, clip: torch.Tensor) -> torch.Tensor:
        """(B, C, T, H, W) -> pooled feature (B, 768)."""
        return self.tail(self.forward_stages(clip)[-1]).mean(dim=(2, 3, 4))


class MFCDNet(nn.Module):
    """MFCD-Net: MFNet-3D on a GOP clip. Input ``gop_clip`` (B, 3, T, H, W); output logits (B, K)."""

    def __init__(self, num_classes: int, frames: int, size, dropout: float = 0.5, base_channels: int = 96,
                 groups: int = 16):
        super().__init__()
        self.input_specs = (clip_spec("gop_clip", frames, size),)
        self.backbone = MFNet3D(in_channels=3, groups=groups, base_channels=base_channels)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(self.backbone.num_features, num_classes)

    def forward_hints(self, gop_clip: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """(logits (B, K), [conv2 (B, 96, T/2, H/4, W/4), conv3, conv4, conv5 (B, 768, T/2, H/32, W/32)])."""
        stages = self.backbone.forward_stages(gop_clip)
        pooled = self.backbone.tail(stages[-1]).mean(dim=(2, 3, 4))
        return self.fc(self.dropout(pooled)), stages

    def forward(self, gop_clip: torch.Tensor) -> torch.Tensor:
        return self.forward_hints(gop_clip)[0]


@register_model("mfcd", summary="MFCD-Net: MFNet-3D on a GOP clip [I, (R_acc+I)/2, ...]", paper="MFCD-Net",
                inputs=clip_inputs("gop_clip"))
def mfcd(num_classes: int, frames: int = 12, size: int = 224, dropout: float = 0.5, base_channels: int = 96,
         groups: int = 16) -> nn.Module:
    # base_channels / groups: conv2's width and the fibres (96 / 16 = the paper's MFNet-3D; smaller for CPU runs)
    return MFCDNet(num_classes, frames, size, dropout=dropout, base_channels=base_channels, groups=groups)
