"""2D-3D ResNet-18 (IP-TSN P-stream, Huang et al.): 2D up to a chosen stage, inflated 3D after it.

Input is a clip in layout BCTHW ``(B, C, T, H, W)``. The 2D part runs on every frame (time folded
into the batch), the feature maps are stacked back into a clip, and the 3D part (3x3x3 convs,
3D BatchNorm) models time. ``inflate_from`` names the last 2D stage with the paper's (Table 4)
naming: ``conv1`` (stem) .. ``conv5`` (layer4). IP-TSN inflates "from conv3.x": conv1..conv3.x
are 2D (the output of conv3.x is 28x28 at 224 input) and conv4.x, conv5.x are 3D.
``conv5`` leaves every stage 2D (a plain 2D ResNet-18 averaged over frames).

The first block of each 3D stage after layer1 strides time by ``temporal_stride`` (2) together
with space, as 3D-ResNet-18 (Hara et al.) does: 16 frames -> 8 in conv4.x -> 4 in conv5.x.

Parameter names equal :class:`training.models.resnet.ResNet`'s, so a trained 2D ResNet-18 can be
inflated into this network with :func:`inflate_2d_weights` (IP-TSN's initialisation).
"""

from __future__ import annotations

import torch
from torch import nn

from .common import batch_to_clip, frames_to_batch
from .resnet import BasicBlock, conv1x1, init_weights

INFLATE_POINTS = ("conv1", "conv2", "conv3", "conv4", "conv5")


class BasicBlock3d(nn.Module):
    """3D BasicBlock: two 3x3x3 convs, identity or 1x1x1 projection shortcut."""

    expansion = 1

    def __init__(self, in_channels: int, channels: int, stride: tuple[int, int, int] = (1, 1, 1),
                 downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = nn.Conv3d(in_channels, channels, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm3d(channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv3d(channels, channels, kernel_size=3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm3d(channels)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class ResNet2D3D(nn.Module):
    """ResNet-18 whose stages after ``inflate_from`` are 3D.

    Args:
        in_channels: 5 for stacked MV+R, 2 for flow (the IP-TSN teacher).
        inflate_from: last 2D stage, one of ``INFLATE_POINTS``.
        temporal_stride: time stride of the first block of each strided 3D stage.
        layers: blocks per stage (ResNet-18: 2, 2, 2, 2).
    """

    def __init__(self, in_channels: int = 5, inflate_from: str = "conv3", temporal_stride: int = 2,
                 layers: tuple[int, int, int, int] = (2, 2, 2, 2), width: int = 64):
        super().__init__()
        if inflate_from not in INFLATE_POINTS:
            raise ValueError(f"inflate_from must be one of {INFLATE_POINTS}, got {inflate_from!r}")
        # index into (layer1, layer2, layer3, layer4) of the first 3D stage; 4 = all 2D
        self.first_3d_stage = INFLATE_POINTS.index(inflate_from)
        self.conv1 = nn.Conv2d(in_channels, width, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self._planes = width
        stages = []
        for index, (blocks, multiplier) in enumerate(zip(layers, (1, 2, 4, 8))):
            spatial_stride = 1 if index == 0 else 2
            if index >= self.first_3d_stage:
                time_stride = temporal_stride if index > 0 else 1
                stride = (time_stride, spatial_stride, spatial_stride)
                stages.append(self._make_layer_3d(width * multiplier, blocks, stride))
            else:
                stages.append(self._make_layer_2d(width * multiplier, blocks, spatial_stride))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.num_features = width * 8
        init_weights(self)

    def _make_layer_2d(self, channels: int, blocks: int, stride: int) -> nn.Sequential:
        downsample = None
        if stride != 1 or self._planes != channels:
            downsample = nn.Sequential(conv1x1(self._planes, channels, stride), nn.BatchNorm2d(channels))
        layers = [BasicBlock(self._planes, channels, stride, downsample)]
        layers += [BasicBlock(channels, channels) for _ in range(1, blocks)]
        self._planes = channels
        return nn.Sequential(*layers)

    def _make_layer_3d(self, channels: int, blocks: int, stride: tuple[int, int, int]) -> nn.Sequential:
        downsample = None
        if stride != (1, 1, 1) or self._planes != channels:
            downsample = nn.Sequential(nn.Conv3d(self._planes, channels, kernel_size=1, stride=stride, bias=False),
                                       nn.BatchNorm3d(channels))
        layers = [BasicBlock3d(self._planes, channels, stride, downsample)]
        layers += [BasicBlock3d(channels, channels) for _ in range(1, blocks)]
        self._planes = channels
        return nn.Sequential(*layers)

    def forward_features(self, clip: torch.Tensor) -> torch.Tensor:
        """(B, C, T, H, W) -> last feature map (B, 512, T', H/32, W/32)."""
        frames = clip.shape[2]
        x = frames_to_batch(clip)  # (B*T, C, H, W): the 2D part runs per frame
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for index, layer in enumerate((self.layer1, self.layer2, self.layer3, self.layer4)):
            if index == self.first_3d_stage:
                x = batch_to_clip(x, frames)  # (B, C', T, H', W'): from here on time is a conv axis
            x = layer(x)
        if self.first_3d_stage == 4:  # all 2D: stack frames so pooling averages over time too
            x = batch_to_clip(x, frames)
        return x

    def forward(self, clip: torch.Tensor) -> torch.Tensor:
        """(B, C, T, H, W) -> spatio-temporally average-pooled feature (B, 512)."""
        return self.forward_features(clip).mean(dim=(2, 3, 4))


@torch.no_grad()
def inflate_2d_weights(model: ResNet2D3D, state_dict_2d: dict[str, torch.Tensor], mode: str = "center") -> list[str]:
    """Copy a 2D ResNet-18 state dict into ``model``, inflating 2D kernels where ``model`` is 3D.

    ``mode="center"`` puts the 2D kernel on the centre time tap (zeros elsewhere): on a clip of
    identical frames the inflated network computes exactly what the 2D one does. ``mode="mean"``
    repeats the kernel over time divided by the temporal size (I3D). Returns the names of the
    parameters and buffers copied. Keys of ``state_dict_2d`` that ``model`` lacks (e.g. ``fc``) are
    ignored; a shape that cannot be inflated raises ``ValueError``.
    """
    if mode not in ("center", "mean"):
        raise ValueError(f"mode must be 'center' or 'mean', got {mode!r}")
    target = model.state_dict()
    copied = []
    for name, weight in state_dict_2d.items():
        if name not in target:
            continue
        dest = target[name]
        if dest.dim() == weight.dim() + 1 and dest.dim() == 5:  # conv kernel (O, I, kh, kw) -> (O, I, kt, kh, kw)
            kt = dest.shape[2]
            if mode == "center":
                inflated = torch.zeros_like(dest)
                inflated[:, :, kt // 2] = weight
            else:
                inflated = weight.unsqueeze(2).repeat(1, 1, kt, 1, 1) / kt
            weight = inflated
        if dest.shape != weight.shape:
            raise ValueError(f"cannot inflate {name}: {tuple(weight.shape)} -> {tuple(dest.shape)}")
        dest.copy_(weight)
        copied.append(name)
    return copied
