"""2D ResNet backbones (He et al. 2016): ResNet-18/34/50/101/152 and reduced-width variants.

Readable top to bottom like torchvision's ResNet, with two changes for compressed-domain input:

- ``in_channels`` is configurable: 2 for MV / flow / DMC, 3 for RGB / residual, 5 for stacked MV+R.
- ``width`` scales every stage (64 -> 16 gives the 0.7M-parameter edge backbone).

Backbones are headless: ``forward`` returns the globally pooled feature ``(N, num_features)``;
models in this package add their own classifier. Bottleneck blocks put the stride on the 3x3 conv
(torchvision's "v1.5"), which is why ResNet-50 counts 4.09 GMACs here against He et al.'s 3.8.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn


def conv3x3(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=stride, padding=1, bias=False)


def conv1x1(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=stride, bias=False)


class TemporalShift(nn.Module):
    """Temporal shift (TSM, Lin et al., ICCV 2019): of a block's input, 1/``fold_div`` of the
    channels is taken from the next segment and 1/``fold_div`` from the previous one (zeros past
    either end), the rest stays. Segments are folded into the batch, ``(B*S, C, H, W)``, as TSN
    folds them; the shift is what lets a 2D network compare segments (a wave's back-and-forth, a
    bounce) at no multiply-add and no parameter. It exports to ONNX as slices, a pad and a concat."""

    def __init__(self, segments: int, fold_div: int = 8):
        super().__init__()
        if segments < 2 or fold_div < 2:
            raise ValueError(f"a temporal shift needs at least 2 segments and fold_div >= 2, got {segments}, "
                             f"{fold_div}")
        self.segments, self.fold_div = segments, fold_div

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        fold = c // self.fold_div
        x = x.reshape(n // self.segments, self.segments, c, h, w)
        ahead = F.pad(x[:, 1:, :fold], (0, 0, 0, 0, 0, 0, 0, 1))  # segment t sees t + 1's channels
        behind = F.pad(x[:, :-1, fold:2 * fold], (0, 0, 0, 0, 0, 0, 1, 0))  # and t - 1's
        return torch.cat((ahead, behind, x[:, :, 2 * fold:]), dim=2).reshape(n, c, h, w)


def enable_temporal_shift(backbone: "ResNet", segments: int, fold_div: int = 8) -> None:
    """Put a :class:`TemporalShift` at the start of every residual block's branch (TSM's "residual
    shift": the shortcut keeps each segment's own features). Adds no parameter, so a checkpoint of
    the same network without the shift loads into it."""
    for module in backbone.modules():
        if isinstance(module, (BasicBlock, Bottleneck)):
            module.shift = TemporalShift(segments, fold_div)


class BasicBlock(nn.Module):
    """Two 3x3 convs with an identity (or 1x1 projection) shortcut. ResNet-18/34."""

    expansion = 1

    def __init__(self, in_channels: int, channels: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.shift: nn.Module = nn.Identity()  # a TemporalShift after enable_temporal_shift
        self.conv1 = conv3x3(in_channels, channels, stride)
        self.bn1 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(channels, channels)
        self.bn2 = nn.BatchNorm2d(channels)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(self.shift(x))))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (strided), 1x1 expand by 4. ResNet-50/101/152."""

    expansion = 4

    def __init__(self, in_channels: int, channels: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.shift: nn.Module = nn.Identity()  # a TemporalShift after enable_temporal_shift
        self.conv1 = conv1x1(in_channels, channels)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = conv3x3(channels, channels, stride)
        self.bn2 = nn.BatchNorm2d(channels)
        self.conv3 = conv1x1(channels, channels * self.expansion)
        self.bn3 = nn.BatchNorm2d(channels * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(self.shift(x))))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class ResNet(nn.Module):
    """Headless 2D ResNet.

    Shapes for a 224x224 input (width 64): conv1 -> 112, maxpool -> 56, layer1 56, layer2 28,
    layer3 14, layer4 7; ``forward`` returns ``(N, 512 * expansion)``.

    ``stem``: ``"conv7"`` (the paper's 7x7 stride-2 conv and 3x3 stride-2 max-pool) or ``"patch4"``
    (one 4x4 stride-4 conv, no pooling: same stride 4, a third of edge-mvr's multiply-adds at width
    16, and an INT8 GEMM with 16 * C_in inputs instead of a 7x7 window over few channels).
    """

    STEMS = ("conv7", "patch4")

    def __init__(self, block: type[BasicBlock] | type[Bottleneck], layers: tuple[int, int, int, int],
                 in_channels: int = 3, width: int = 64, stem: str = "conv7"):
        super().__init__()
        if stem not in self.STEMS:
            raise ValueError(f"unknown stem {stem!r}; expected one of {list(self.STEMS)}")
        self.block = block
        self.in_channels = in_channels
        self.stem = stem
        if stem == "conv7":
            self.conv1 = nn.Conv2d(in_channels, width, kernel_size=7, stride=2, padding=3, bias=False)
            self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        else:
            self.conv1 = nn.Conv2d(in_channels, width, kernel_size=4, stride=4, bias=False)
            self.maxpool = nn.Identity()
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self._planes = width
        self.layer1 = self._make_layer(block, width, layers[0])
        self.layer2 = self._make_layer(block, width * 2, layers[1], stride=2)
        self.layer3 = self._make_layer(block, width * 4, layers[2], stride=2)
        self.layer4 = self._make_layer(block, width * 8, layers[3], stride=2)
        # channels of each stage output, used by OFF units and by heads
        self.stage_channels = tuple(width * m * block.expansion for m in (1, 2, 4, 8))
        self.num_features = self.stage_channels[-1]
        init_weights(self)

    def _make_layer(self, block, channels: int, blocks: int, stride: int = 1) -> nn.Sequential:
        downsample = None
        if stride != 1 or self._planes != channels * block.expansion:
            downsample = nn.Sequential(conv1x1(self._planes, channels * block.expansion, stride),
                                       nn.BatchNorm2d(channels * block.expansion))
        layers = [block(self._planes, channels, stride, downsample)]
        self._planes = channels * block.expansion
        layers += [block(self._planes, channels) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward_stem(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C_in, H, W) -> (N, width, H/4, W/4)."""
        return self.maxpool(self.relu(self.bn1(self.conv1(x))))

    def forward_stages(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Outputs of layer1..layer4: strides 4, 8, 16, 32 with ``stage_channels`` channels."""
        x = self.forward_stem(x)
        stages = []
        for layer in (self.layer1, self.layer2, self.layer3, self.layer4):
            x = layer(x)
            stages.append(x)
        return stages

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C_in, H, W) -> last feature map (N, num_features, H/32, W/32)."""
        return self.forward_stages(x)[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C_in, H, W) -> globally average-pooled feature (N, num_features)."""
        return self.forward_features(x).mean(dim=(2, 3))


def init_weights(module: nn.Module) -> None:
    """He (fan-out) init for convs, unit-gain BatchNorm, as torchvision does."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Conv3d)):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, (nn.BatchNorm2d, nn.BatchNorm3d)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def resnet18(in_channels: int = 3, width: int = 64, stem: str = "conv7") -> ResNet:
    return ResNet(BasicBlock, (2, 2, 2, 2), in_channels, width, stem)


def resnet34(in_channels: int = 3, width: int = 64, stem: str = "conv7") -> ResNet:
    return ResNet(BasicBlock, (3, 4, 6, 3), in_channels, width, stem)


def resnet50(in_channels: int = 3, width: int = 64, stem: str = "conv7") -> ResNet:
    return ResNet(Bottleneck, (3, 4, 6, 3), in_channels, width, stem)


def resnet101(in_channels: int = 3, width: int = 64, stem: str = "conv7") -> ResNet:
    return ResNet(Bottleneck, (3, 4, 23, 3), in_channels, width, stem)


def resnet152(in_channels: int = 3, width: int = 64, stem: str = "conv7") -> ResNet:
    return ResNet(Bottleneck, (3, 8, 36, 3), in_channels, width, stem)


BACKBONES: dict[str, Callable[..., ResNet]] = {
    "resnet18": resnet18,
    "resnet34": resnet34,
    "resnet50": resnet50,
    "resnet101": resnet101,
    "resnet152": resnet152,
}


def build_backbone(name: str, in_channels: int = 3, width: int = 64, stem: str = "conv7") -> ResNet:
    """A headless 2D ResNet by name (``resnet18`` ... ``resnet152``); ``stem`` as in :class:`ResNet`.

    Raises ``ValueError`` for an unknown name or stem.
    """
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; expected one of {sorted(BACKBONES)}")
    return BACKBONES[name](in_channels=in_channels, width=width, stem=stem)
