"""MFCD-Net (Battash et al.): ``L_ce + lambda1 * sum_i L_hints^i + lambda2 * L_SL`` (Eq. 8).

- hints (Eq. 5, FitNets): mean squared difference between the student's and the teacher's outputs
  of conv2..conv5 (``forward_hints``), summed over the four layers;
- ``L_SL`` (Eq. 6): KL(softmax(student/tau) || softmax(teacher/tau)), in the direction the paper
  writes it, mean over the batch, times tau^2.

The teacher is MFNet-3D on the raw domain: the same network (``mfcd``) trained on decoded RGB clips
(``training/configs/mfcd-teacher.toml``: ``[objective] name = "mfcd-rgb"``). Here it sees the decoded
RGB of the very frames of the student's GOP clip: its ``gop_clip`` input is fed from the cache's RGB
frames (a companion), not from the student's I + (R_acc + I)/2 pseudo-frames. The paper gives no
values for lambda1, lambda2 or tau: the defaults (1, 1, 4) are ours. Terms: ``cls``, ``hint``, ``kl``.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from .base import ObjectiveNeeds, ObjectiveResult, Teacher, check_same_shape, model_inputs, require, teacher_of, value
from .ce import CrossEntropy
from .registry import register_objective


class MFCDObjective:
    def __init__(self, label_smoothing: float, hint_weight: float, kl_weight: float, temperature: float):
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.label_smoothing, self.hint_weight, self.kl_weight, self.temperature = \
            label_smoothing, hint_weight, kl_weight, temperature
        self.needs = ObjectiveNeeds(teacher="required", teacher_parts={"gop_clip": "rgb"})

    def __call__(self, model: nn.Module, batch: Mapping[str, torch.Tensor],
                 teachers: Mapping[str, Teacher]) -> ObjectiveResult:
        teacher = teacher_of(teachers, "mfcd")
        require(model, "forward_hints", "mfcd")
        require(teacher.model, "forward_hints", "mfcd")
        logits, hints = model.forward_hints(**model_inputs(model, batch))
        with torch.no_grad():
            teacher_logits, teacher_hints = teacher.model.forward_hints(**teacher.inputs(batch))
        logits = logits.float()
        cls = F.cross_entropy(logits, batch["label"], label_smoothing=self.label_smoothing)
        hint = logits.new_zeros(())
        for student_layer, teacher_layer in zip(hints, teacher_hints):
            check_same_shape(student_layer, teacher_layer, "hint layers")
            hint = hint + F.mse_loss(student_layer.float(), teacher_layer.float())
        t = self.temperature
        student_log = F.log_softmax(logits / t, dim=1)
        teacher_log = F.log_softmax(teacher_logits.float() / t, dim=1)
        kl = (student_log.exp() * (student_log - teacher_log)).sum(dim=1).mean() * t ** 2  # KL(student || teacher)
        loss = cls + self.hint_weight * hint + self.kl_weight * kl
        return ObjectiveResult(loss, {"cls": value(cls), "hint": value(hint), "kl": value(kl)}, logits)


@register_objective("mfcd", summary="MFCD-Net: CE + lambda1 hints L2 (conv2..5) + lambda2 KL(soft logits) from an "
                    "RGB teacher", paper="MFCD-Net")
def mfcd(label_smoothing: float = 0.0, hint_weight: float = 1.0, kl_weight: float = 1.0,
         temperature: float = 4.0) -> MFCDObjective:
    return MFCDObjective(label_smoothing, hint_weight, kl_weight, temperature)


@register_objective("mfcd-rgb", summary="MFCD-Net's raw-domain teacher: CE on decoded RGB clips of the GOP's frames",
                    paper="MFCD-Net")
def mfcd_rgb(label_smoothing: float = 0.0) -> CrossEntropy:
    # the model's gop_clip input is fed the decoded RGB of the GOP's frames, in training and validation
    return CrossEntropy(label_smoothing, soft_weight=0.0, temperature=1.0, input_parts={"gop_clip": "rgb"})
