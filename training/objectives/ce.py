"""Cross-entropy (TSN practice, today's default) with optional soft-label distillation (Hinton et al.).

``loss = CE(logits, label; label smoothing) + soft_weight * T^2 * CE(softmax(student/T), softmax(teacher/T))``.
The soft term needs a teacher (``stage.teacher``) trained on the same classes; it runs on the same
batch, on its own inputs (the student's when the names agree, cached flow or RGB of the same
frames otherwise). Terms: ``cls`` and, with a teacher, ``soft``.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from .base import ObjectiveNeeds, ObjectiveResult, TEACHER_KEY, Teacher, model_inputs, soft_cross_entropy, value
from .registry import register_objective


class CrossEntropy:
    """Label-smoothed CE, plus the soft-label term when ``soft_weight`` > 0."""

    def __init__(self, label_smoothing: float, soft_weight: float, temperature: float,
                 input_parts: Mapping[str, str] | None = None):
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.label_smoothing, self.soft_weight, self.temperature = label_smoothing, soft_weight, temperature
        self.needs = ObjectiveNeeds(teacher="required" if soft_weight > 0 else "none",
                                    input_parts=dict(input_parts or {}))

    def __call__(self, model: nn.Module, batch: Mapping[str, torch.Tensor],
                 teachers: Mapping[str, Teacher]) -> ObjectiveResult:
        logits = model(**model_inputs(model, batch)).float()
        cls = F.cross_entropy(logits, batch["label"], label_smoothing=self.label_smoothing)
        terms = {"cls": value(cls)}
        loss = cls
        if self.soft_weight > 0 and TEACHER_KEY in teachers:
            teacher = teachers[TEACHER_KEY]
            with torch.no_grad():
                teacher_logits = teacher.model(**teacher.inputs(batch)).float()
            soft = soft_cross_entropy(logits, teacher_logits, self.temperature)
            terms["soft"] = value(soft)
            loss = loss + self.soft_weight * soft
        return ObjectiveResult(loss, terms, logits)


@register_objective("ce", summary="cross-entropy, optional soft labels from a teacher (temperature T)",
                    paper="TSN; Hinton et al. 2015")
def ce(label_smoothing: float = 0.0, soft_weight: float = 0.0, temperature: float = 4.0) -> CrossEntropy:
    return CrossEntropy(label_smoothing, soft_weight, temperature)
