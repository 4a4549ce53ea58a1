"""Disentangling dynamics (cost volume, Zhao et al.): each branch's CE, per-branch learning rates,
gradient clipping (Sec. 4.1, implementation details).

The three branches (static appearance, apparent motion, appearance change) each predict the
label and each get their own CE (the paper trains them separately and fuses their scores); the
fused average is what the model outputs at test time. Learning rates (UCF-101): 0.001 for the
appearance branch, 0.005 for the motion and change branches, so by default the appearance branch
(with the shared low-level layers) runs at 0.2 of ``train.lr`` and the others at 1.0; gradients
are clipped to a global norm of 20. Terms: ``appearance``, ``motion``, ``change``.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from .base import ObjectiveNeeds, ObjectiveResult, Teacher, per_stream_ce, require, single_input
from .registry import register_objective


class CostVolumeObjective:
    def __init__(self, label_smoothing: float, appearance_lr_mult: float, motion_lr_mult: float,
                 change_lr_mult: float, clip_grad_norm: float):
        self.label_smoothing = label_smoothing
        self.needs = ObjectiveNeeds(
            lr_mult=(("appearance*", appearance_lr_mult), ("motion_*", motion_lr_mult), ("change_*", change_lr_mult)),
            clip_grad_norm=clip_grad_norm)

    def __call__(self, model: nn.Module, batch: Mapping[str, torch.Tensor],
                 teachers: Mapping[str, Teacher]) -> ObjectiveResult:
        require(model, "forward_streams", "costvol")
        streams = model.forward_streams(single_input(model, batch))
        return per_stream_ce(model, streams, batch["label"], self.label_smoothing)


@register_objective("costvol", summary="cost volume: CE per branch, per-branch learning rates, gradient clipping 20",
                    paper="Disentangling dynamics")
def costvol(label_smoothing: float = 0.0, appearance_lr_mult: float = 0.2, motion_lr_mult: float = 1.0,
            change_lr_mult: float = 1.0, clip_grad_norm: float = 20.0) -> CostVolumeObjective:
    return CostVolumeObjective(label_smoothing, appearance_lr_mult, motion_lr_mult, change_lr_mult, clip_grad_norm)
