"""IP-TSN (Huang et al.): ``L_cls + lambda1 * L1(f_p, f_OF) + lambda2 * L_soft`` (Eq. 1-2), lambda1=50, lambda2=0.

``f_p`` / ``f_OF``: the last average-pooled features of the P-stream and of the frozen optical-flow
teacher (``stage.teacher``), computed on the same frames: the teacher's ``flow`` input is the cached
flow of the frames the student's ``mv_residual`` input was made of. L1 is the mean absolute
difference over the batch and the features. ``L_soft`` is the soft-label cross-entropy with
temperature T=8 (Table 3: it did not help, so its weight defaults to 0).

Works for the 2D stage too (``mvr-r18`` student, ``flow-r18`` teacher: per-segment pooled
features) and for the 2D-3D P-stream (``iptsn-p`` / ``iptsn`` student, ``iptsn-flow`` teacher).
The paper's procedure (2D -> distil -> inflate -> 2D-3D) is a chain of configs
(training/configs/iptsn-*.toml) joined by ``stage.init_from``. Terms: ``cls``, ``feature_l1``,
and with lambda2 > 0 ``soft``.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from edgekit.errors import ConfigError

from .base import (ObjectiveNeeds, ObjectiveResult, Teacher, check_same_shape, model_inputs, soft_cross_entropy,
                   teacher_of, value)
from .registry import register_objective


def logits_and_features(model: nn.Module, inputs: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """(logits (B, K), last pooled features) of an IP-TSN stream (``forward_with_features``) or of a
    2D TSN classifier (``forward_features`` per segment (B*S, F), then ``forward_head``)."""
    if callable(getattr(model, "forward_with_features", None)):
        return model.forward_with_features(*inputs.values())  # in the model's input order
    if callable(getattr(model, "forward_features", None)) and callable(getattr(model, "forward_head", None)) \
            and len(inputs) == 1:
        features = model.forward_features(next(iter(inputs.values())))
        return model.forward_head(features), features
    name = getattr(model, "model_name", type(model).__name__)
    raise ConfigError(f"objective 'iptsn' needs a model that returns its pooled features; {name!r} does not "
                      "(use iptsn-p, iptsn, iptsn-flow, mvr-r18 or flow-r18)")


class IPTSNObjective:
    def __init__(self, label_smoothing: float, feature_weight: float, soft_weight: float, temperature: float):
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.label_smoothing, self.feature_weight = label_smoothing, feature_weight
        self.soft_weight, self.temperature = soft_weight, temperature
        self.needs = ObjectiveNeeds(teacher="required")

    def __call__(self, model: nn.Module, batch: Mapping[str, torch.Tensor],
                 teachers: Mapping[str, Teacher]) -> ObjectiveResult:
        teacher = teacher_of(teachers, "iptsn")
        logits, features = logits_and_features(model, model_inputs(model, batch))
        with torch.no_grad():
            teacher_logits, teacher_features = logits_and_features(teacher.model, teacher.inputs(batch))
        check_same_shape(features, teacher_features, "pooled features")
        logits = logits.float()
        cls = F.cross_entropy(logits, batch["label"], label_smoothing=self.label_smoothing)
        feature_l1 = F.l1_loss(features.float(), teacher_features.float())
        loss = cls + self.feature_weight * feature_l1
        terms = {"cls": value(cls), "feature_l1": value(feature_l1)}
        if self.soft_weight > 0:
            soft = soft_cross_entropy(logits, teacher_logits, self.temperature)
            loss = loss + self.soft_weight * soft
            terms["soft"] = value(soft)
        return ObjectiveResult(loss, terms, logits)


@register_objective("iptsn", summary="IP-TSN: CE + lambda L1(pooled features, frozen flow teacher) [+ soft CE, T=8]",
                    paper="IP-TSN")
def iptsn(label_smoothing: float = 0.0, feature_weight: float = 50.0, soft_weight: float = 0.0,
          temperature: float = 8.0) -> IPTSNObjective:
    return IPTSNObjective(label_smoothing, feature_weight, soft_weight, temperature)
