"""Cost-volume motion branch (Zhao, Xiong & Lin, "Recognize actions by disentangling components of dynamics").

Building blocks (Sec. 3.3-3.4), usable on any pair of feature maps:

- :class:`CostVolume`: C_t(p, d) = cosine(f_t(p), f_{t+1}(p + d)) for every displacement ``d`` in a
  (2r+1) x (2r+1) window -> (N, (2r+1)^2, H, W). Out-of-image neighbours are zero vectors (cosine 0).
- :class:`SoftArgmaxDisplacement`: softmax of C/tau over the window, then the expected displacement
  (a fixed 1x1 conv whose weights are the window offsets) -> (N, 2, H, W), channels (dx, dy) in
  feature-grid cells, the ``mv[0] = dx, mv[1] = dy`` order of edgekit. tau -> 0 is winner-take-all.
  (Eq. 1-2 of the paper marginalise the joint softmax over rows / columns; the expectation is
  the same.)
- :func:`sample_at_offset` / warped differences: F_{t+1} - W(F_t, V_t) with bilinear sampling and
  zeros outside the image. Because the soft-argmax displacement lies inside the window, bilinear
  sampling equals a sum over the window's integer shifts weighted by tent functions
  ``max(0, 1-|v_y - dy|) * max(0, 1-|v_x - dx|)``. We compute it that way instead of ONNX
  ``GridSample``, which TensorRT supports only for 4D FP32/FP16 tensors (not INT8) and older
  TensorRT (< 8.5) not at all: the whole branch exports as Pad/Slice/Mul/Add/ReduceSum/Softmax/Conv.

:class:`CostVolumeNet` (``costvol-r18``) is the paper's three-branch network on ResNet-18 parts:
shared low-level features (ResNet-18 conv1, 64 channels, stride 2) of every frame of a clip;
static appearance = ResNet-18 layers with gradual temporal max-pooling (2D conv + 3D pooling);
apparent motion = displacement maps of consecutive frames -> half-width ResNet-18; appearance
change = warped feature differences -> half-width ResNet-18; the three predictions are averaged.
The clip is the compressed-domain ``gop_clip`` (I-frame and (R_acc + I)/2 pseudo frames), the only
edgekit stream with consecutive frames of appearance; default T=8 (the paper's 8 frames). The paper
reads decoded RGB frames: in the pseudo frames the content stays where the I-frame shows it (the
displacement is in the motion vectors, which the clip leaves out, and R_acc adds only a few grey
levels), so the cost volume finds little apparent motion between them.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .common import (LateFusion, batch_to_clip, clip_inputs, clip_spec, frames_to_batch, merge_leading,
                     segment_consensus)
from .registry import register_model
from .resnet import resnet18


def window_offsets(radius: int) -> list[tuple[int, int]]:
    """(dy, dx) of every cell of the (2r+1)^2 window, row-major (dy outer): the cost-volume channel order."""
    return [(dy, dx) for dy in range(-radius, radius + 1) for dx in range(-radius, radius + 1)]


def _shifted(padded: torch.Tensor, radius: int, dy: int, dx: int, height: int, width: int) -> torch.Tensor:
    """View of a map zero-padded by ``radius`` such that out(p) = map(p + (dy, dx))."""
    return padded[:, :, radius + dy: radius + dy + height, radius + dx: radius + dx + width]


def l2_normalize(x: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Unit-length feature vectors along channels; written with plain ops (ReduceSum, Sqrt, Div)."""
    return x / torch.sqrt((x * x).sum(dim=1, keepdim=True) + eps)


class CostVolume(nn.Module):
    """(first, second) each (N, C, H, W) -> cosine cost volume (N, (2r+1)^2, H, W)."""

    def __init__(self, radius: int = 3):
        super().__init__()
        if radius < 1:
            raise ValueError(f"cost-volume radius must be >= 1, got {radius}")
        self.radius = radius

    def forward(self, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
        height, width = first.shape[-2:]
        r = self.radius
        first = l2_normalize(first)
        padded = F.pad(l2_normalize(second), (r, r, r, r))  # zero vectors outside: cosine 0
        costs = [(first * _shifted(padded, r, dy, dx, height, width)).sum(dim=1, keepdim=True)
                 for dy, dx in window_offsets(r)]
        return torch.cat(costs, dim=1)


class SoftArgmaxDisplacement(nn.Module):
    """Cost volume (N, (2r+1)^2, H, W) -> expected displacement (N, 2, H, W) as (dx, dy)."""

    def __init__(self, radius: int = 3, tau: float = 0.1):
        super().__init__()
        if tau <= 0:
            raise ValueError(f"temperature tau must be > 0, got {tau}")
        self.radius = radius
        self.tau = tau
        offsets = torch.tensor(window_offsets(radius), dtype=torch.float32)  # (D, 2) as (dy, dx)
        kernel = torch.stack((offsets[:, 1], offsets[:, 0]))  # (2, D): row 0 = dx, row 1 = dy
        self.register_buffer("offset_kernel", kernel[:, :, None, None], persistent=False)

    def forward(self, cost: torch.Tensor) -> torch.Tensor:
        weights = torch.softmax(cost / self.tau, dim=1)  # distribution over the window
        return F.conv2d(weights, self.offset_kernel)  # expectation of (dx, dy)


def sample_at_offset(features: torch.Tensor, offset: torch.Tensor, radius: int) -> torch.Tensor:
    """Bilinear ``features(p + offset(p))`` with zeros outside, for |offset| <= radius.

    features (N, C, H, W); offset (N, 2, H, W) as (dx, dy) in grid cells (clamped to the window).
    Equal to ``grid_sample(..., mode="bilinear", padding_mode="zeros", align_corners=True)`` at
    pixel positions p + offset, computed as a tent-weighted sum of the window's integer shifts.
    """
    height, width = features.shape[-2:]
    offset = offset.clamp(-radius, radius)
    offset_x, offset_y = offset[:, 0:1], offset[:, 1:2]
    padded = F.pad(features, (radius, radius, radius, radius))
    out = None
    for dy, dx in window_offsets(radius):
        weight = F.relu(1 - (offset_y - dy).abs()) * F.relu(1 - (offset_x - dx).abs())  # (N, 1, H, W)
        term = weight * _shifted(padded, radius, dy, dx, height, width)
        out = term if out is None else out + term
    return out


class CostVolumeMotion(nn.Module):
    """Low-level features of consecutive frames -> (displacement map, warped feature difference).

    ``forward(first, second)``: first = F_t, second = F_{t+1}, each (N, C, H, W). Returns
    V_t (N, 2, H, W) and F_{t+1} - W(F_t, V_t) (N, C, H, W), where W samples F_t at p - V_t(p).
    """

    def __init__(self, radius: int = 3, tau: float = 0.1):
        super().__init__()
        self.radius = radius
        self.cost_volume = CostVolume(radius)
        self.displacement = SoftArgmaxDisplacement(radius, tau)

    def forward(self, first: torch.Tensor, second: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        displacement = self.displacement(self.cost_volume(first, second))
        warped = sample_at_offset(first, -displacement, self.radius)  # F_t moved along V_t
        return displacement, second - warped


class CostVolumeNet(nn.Module):
    """Static appearance + apparent motion + appearance change on a BCTHW clip; logits (B, K)."""

    def __init__(self, num_classes: int, frames: int, size, radius: int, tau: float,
                 weights: Sequence[float], dropout: float, branch_width: int = 32, width: int = 64):
        super().__init__()
        if frames < 2:
            raise ValueError(f"the cost volume needs at least 2 frames, got {frames}")
        self.input_specs = (clip_spec("gop_clip", frames, size),)
        self.frames = frames
        appearance = resnet18(in_channels=3, width=width)
        self.appearance = appearance  # conv1/bn1 double as the shared low-level feature extractor
        # temporal max-pool (window 2) after layer1..3 while the frame count is even: "gradual 3D pooling"
        self.temporal_pool_after = []
        t = frames
        for _ in range(3):
            pool = t % 2 == 0
            self.temporal_pool_after.append(pool)
            t = t // 2 if pool else t
        self.dynamics = CostVolumeMotion(radius, tau)
        self.motion_net = resnet18(in_channels=2, width=branch_width)
        self.change_net = resnet18(in_channels=width, width=branch_width)  # low-level features: width channels
        self.dropout = nn.Dropout(dropout)
        self.appearance_fc = nn.Linear(appearance.num_features, num_classes)
        self.motion_fc = nn.Linear(self.motion_net.num_features, num_classes)
        self.change_fc = nn.Linear(self.change_net.num_features, num_classes)
        self.fusion = LateFusion(("appearance", "motion", "change"), weights)

    def low_level(self, gop_clip: torch.Tensor) -> torch.Tensor:
        """(B, 3, T, H, W) -> shared features (B*T, 64, H/2, W/2)."""
        net = self.appearance
        return net.relu(net.bn1(net.conv1(frames_to_batch(gop_clip))))

    def forward_dynamics(self, low: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B*T, 64, h, w) -> displacement maps (B*(T-1), 2, h, w), warped differences (B*(T-1), 64, h, w)."""
        clip = low.reshape(-1, self.frames, *low.shape[1:])  # (B, T, 64, h, w)
        first, second = merge_leading(clip[:, :-1]), merge_leading(clip[:, 1:])  # pairs (t, t+1)
        return self.dynamics(first, second)

    def forward_appearance(self, low: torch.Tensor) -> torch.Tensor:
        """(B*T, 64, h, w) -> pooled appearance feature (B, 512)."""
        net = self.appearance
        x = net.maxpool(low)
        frames = self.frames
        for layer, pool in zip((net.layer1, net.layer2, net.layer3, net.layer4), self.temporal_pool_after + [False]):
            x = layer(x)
            if pool:  # (B*T, C, h, w) -> (B*T/2, C, h, w): max over neighbouring frames
                x = frames_to_batch(F.max_pool3d(batch_to_clip(x, frames), kernel_size=(2, 1, 1), stride=(2, 1, 1)))
                frames //= 2
        return batch_to_clip(x, frames).mean(dim=(2, 3, 4))

    def forward_streams(self, gop_clip: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per-branch logits (B, K) keyed ``appearance``, ``motion``, ``change``."""
        low = self.low_level(gop_clip)
        displacement, change = self.forward_dynamics(low)
        pairs = self.frames - 1
        return {
            "appearance": self.appearance_fc(self.dropout(self.forward_appearance(low))),
            "motion": segment_consensus(self.motion_fc(self.dropout(self.motion_net(displacement))), pairs),
            "change": segment_consensus(self.change_fc(self.dropout(self.change_net(change))), pairs),
        }

    def forward(self, gop_clip: torch.Tensor) -> torch.Tensor:
        """gop_clip (B, 3, T, H, W) -> averaged branch logits (B, K)."""
        return self.fusion(self.forward_streams(gop_clip))


@register_model("costvol-r18", summary="Disentangled dynamics: appearance + cost-volume motion + warped diff",
                paper="Disentangling dynamics", inputs=clip_inputs("gop_clip"))
def costvol_r18(num_classes: int, frames: int = 8, size: int = 224, radius: int = 3, tau: float = 0.1,
                weights: tuple = (1 / 3, 1 / 3, 1 / 3), dropout: float = 0.5, width: int = 64) -> nn.Module:
    # width: the appearance ResNet-18's first stage and the shared low-level channels (64 = the paper's);
    # the motion and change branches are half as wide
    return CostVolumeNet(num_classes, frames, size, radius, tau, weights, dropout, branch_width=width // 2,
                         width=width)
