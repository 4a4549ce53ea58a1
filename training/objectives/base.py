"""The objective protocol: one call ``objective(model, batch, teachers) -> ObjectiveResult``.

An objective is what a paper trains a model *with*: its loss terms and their weights, and what
those terms need besides the model's inputs, declared in :class:`ObjectiveNeeds` so that training
builds the right cache, batches, optimizer groups and teachers before the first step:

- ``companions``: extra batch items made of the same frames as a model input (teacher flow for
  DMC-Net's reconstruction loss), see ``training.cache.Companion``;
- ``input_parts``: model inputs fed from another cached part of the same frames, in training and
  evaluation alike (MFCD-Net's raw-domain teacher: its ``gop_clip`` input is decoded RGB);
- ``teacher``: "none", "optional" or "required" (a frozen network run on the same batch), and
  ``teacher_parts``: which cached part feeds a teacher input the student does not have (MFCD-Net's
  raw-RGB teacher takes ``gop_clip`` as decoded RGB);
- ``lr_mult``: default learning-rate multipliers by parameter-name pattern (first match wins;
  ``[stage] lr_mult`` in the config comes first);
- ``clip_grad_norm``: gradient clipping of the model's parameters (0 = off);
- an objective with a ``discriminator`` (DMC-Net) also has ``discriminator_step(model, batch)``,
  run before each generator step with the generator fixed.

A batch is a dict of tensors on the training device: the model's inputs by name, ``label`` (B,)
int64, the companions by name, and ``teacher.<input>`` for a teacher's inputs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

import torch
import torch.nn.functional as F
from torch import nn

from edgekit.errors import ConfigError
from training.cache.dataset import Companion

TEACHER_KEY = "teacher"  # the one teacher a run may have, as the objectives receive it


class ObjectiveResult(NamedTuple):
    """``loss``: scalar tensor to minimise; ``terms``: each named term's value (float, unweighted);
    ``logits``: the model's output (B, K) for training accuracy, None for a discriminator step."""

    loss: torch.Tensor
    terms: dict[str, float]
    logits: torch.Tensor | None


@dataclass(frozen=True)
class ObjectiveNeeds:
    """What an objective needs besides the model's inputs (see the module docstring)."""

    companions: tuple[Companion, ...] = ()
    input_parts: Mapping[str, str] = field(default_factory=dict)
    teacher: str = "none"
    teacher_parts: Mapping[str, str] = field(default_factory=dict)
    lr_mult: tuple[tuple[str, float], ...] = ()
    clip_grad_norm: float = 0.0

    def __post_init__(self):
        if self.teacher not in ("none", "optional", "required"):
            raise ValueError(f"teacher must be none, optional or required, got {self.teacher!r}")


@dataclass(frozen=True)
class Teacher:
    """A frozen network (eval mode, no gradients) and, per input of it, the batch key that feeds it."""

    model: nn.Module
    feeds: Mapping[str, str]

    def inputs(self, batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {name: batch[key] for name, key in self.feeds.items()}


class Objective(Protocol):
    needs: ObjectiveNeeds

    def __call__(self, model: nn.Module, batch: Mapping[str, torch.Tensor],
                 teachers: Mapping[str, Teacher]) -> ObjectiveResult: ...


def value(term: torch.Tensor) -> float:
    """A loss term's value for logging (detached)."""
    return float(term.detach())


def model_inputs(model: nn.Module, batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The model's inputs from ``batch``, by the names of its input specs."""
    return {spec.name: batch[spec.name] for spec in model.input_specs}


def single_input(model: nn.Module, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """The one input of a one-input model; ConfigError for a model with several."""
    inputs = model_inputs(model, batch)
    if len(inputs) != 1:
        raise ConfigError(f"this objective trains one-input models; {type(model).__name__} has {list(inputs)}")
    return next(iter(inputs.values()))


def require(model: nn.Module, method: str, objective: str) -> None:
    """ConfigError unless ``model`` has ``method`` (what the objective calls)."""
    if not callable(getattr(model, method, None)):
        name = getattr(model, "model_name", type(model).__name__)
        raise ConfigError(f"objective {objective!r} needs a model with {method}(); {name!r} has none "
                          f"(see docs/models.md, 'Training each method')")


def teacher_of(teachers: Mapping[str, Teacher], objective: str) -> Teacher:
    if TEACHER_KEY not in teachers:
        raise ConfigError(f"objective {objective!r} needs a teacher: set stage.teacher to a checkpoint")
    return teachers[TEACHER_KEY]


def soft_cross_entropy(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """Hinton's soft-label loss: cross-entropy of softmax(student/T) against softmax(teacher/T),
    times T^2 (so its gradients keep their size as T changes); mean over the batch."""
    target = F.softmax(teacher_logits.float() / temperature, dim=1)
    log_probs = F.log_softmax(student_logits.float() / temperature, dim=1)
    return -(target * log_probs).sum(dim=1).mean() * temperature ** 2


def check_same_shape(student: torch.Tensor, teacher: torch.Tensor, what: str) -> None:
    if student.shape != teacher.shape:
        raise ConfigError(f"the teacher's {what} {tuple(teacher.shape)} differ from the student's "
                          f"{tuple(student.shape)}; give the teacher the same width and input size")


def per_stream_ce(model: nn.Module, streams: Mapping[str, torch.Tensor], label: torch.Tensor,
                  label_smoothing: float, weight: Callable[[str], float] = lambda name: 1.0) -> ObjectiveResult:
    """Each stream's logits supervised on its own: ``sum(weight(name) * CE(logits, label))``, a term per
    stream (its unweighted CE), and the model's fused output (``model.fusion``) as the prediction (OFF's
    levels, the cost volume's branches)."""
    terms, loss = {}, None
    for name, logits in streams.items():
        ce = F.cross_entropy(logits.float(), label, label_smoothing=label_smoothing)
        loss = weight(name) * ce if loss is None else loss + weight(name) * ce
        terms[name] = value(ce)
    with torch.no_grad():
        fused = model.fusion(streams).float()
    return ObjectiveResult(loss, terms, fused)
