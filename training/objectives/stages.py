"""A training stage's set-up from ``[stage]``: freezing by name pattern, learning-rate groups,
teachers and their feeds. (``init_from`` is ``training.checkpoint.init_from_checkpoint``.)

Patterns are ``fnmatch`` patterns on parameter names as ``model.named_parameters()`` gives them
(``backbone.*``, ``*classifier.fc.*``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from fnmatch import fnmatchcase

from torch import nn

from edgekit.errors import ConfigError
from edgekit.spec import InputSpec
from training.cache.dataset import Companion

from .base import Teacher


def _no_match(pattern: str, model: nn.Module, key: str) -> ConfigError:
    names = [n for n, _ in model.named_parameters()]
    return ConfigError(f"{key} pattern {pattern!r} matches no parameter of {getattr(model, 'model_name', 'the model')}"
                       f" (names look like {', '.join(names[:3])}, ..., {names[-1]})")


def freeze(model: nn.Module, patterns: Sequence[str]) -> list[str]:
    """Set ``requires_grad = False`` on every parameter matching one of ``patterns``; returns their
    names. Raises ConfigError for a pattern that matches nothing (a typo would silently train all)."""
    frozen = []
    for pattern in patterns:
        hits = [(n, p) for n, p in model.named_parameters() if fnmatchcase(n, pattern)]
        if not hits:
            raise _no_match(pattern, model, "stage.freeze")
        for name, param in hits:
            param.requires_grad_(False)
            frozen.append(name)
    return sorted(set(frozen))


def frozen_batchnorms(model: nn.Module) -> list[nn.Module]:
    """BatchNorm layers whose parameters are all frozen: training puts them in eval mode, so a
    frozen layer keeps its running statistics too (OFF's fixed feature generation network)."""
    out = []
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            params = list(module.parameters(recurse=False))
            if params and not any(p.requires_grad for p in params):
                out.append(module)
    return out


def parameter_groups(model: nn.Module, rules: Sequence[tuple[str, float]], base_lr: float,
                     config_patterns: Sequence[str] = ()) -> list[dict]:
    """Optimizer param groups of the trainable parameters: each parameter takes the multiplier of the
    first rule whose pattern matches its name (1.0 if none), one group per multiplier, in order of
    first use; each group's ``lr`` is ``base_lr`` times its multiplier. ``config_patterns``
    (the config's own rules) must each match some trainable parameter (ConfigError otherwise)."""
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    for pattern in config_patterns:
        if not any(fnmatchcase(n, pattern) for n, _ in trainable):
            raise _no_match(pattern, model, "stage.lr_mult")
    groups: dict[float, dict] = {}
    for name, param in trainable:
        mult = next((m for pattern, m in rules if fnmatchcase(name, pattern)), 1.0)
        group = groups.setdefault(mult, {"params": [], "lr": base_lr * mult})
        group["params"].append(param)
    if not groups:
        raise ConfigError("every parameter is frozen (stage.freeze): nothing to train")
    return list(groups.values())


def _followed(spec: InputSpec, student: Sequence[InputSpec]) -> InputSpec | None:
    """The student input whose frames a teacher input of ``spec`` can be made of: same layout,
    steps and size."""
    return next((s for s in student if s.layout == spec.layout and s.segments == spec.segments
                 and s.size == spec.size), None)


def teacher_feeds(teacher_specs: Sequence[InputSpec], student_specs: Sequence[InputSpec],
                  parts: Mapping[str, str]) -> tuple[dict[str, str], list[Companion]]:
    """How each teacher input is fed: ({teacher input -> batch key}, companions to add to the data).

    A teacher input named in ``parts`` (the objective's ``teacher_parts``) is that cached part of
    the frames of the student input it matches (layout, steps, size); otherwise a student input of
    the same name and shape feeds it as it is; otherwise a ``flow`` input is the cached flow of a
    matching student input's frames. Raises ConfigError when none applies."""
    feeds, companions = {}, []
    by_name = {s.name: s for s in student_specs}
    for spec in teacher_specs:
        part = parts.get(spec.name)
        if part is None and spec.name in by_name and by_name[spec.name].shape == spec.shape:
            feeds[spec.name] = spec.name
            continue
        if part is None and spec.modality == "flow":
            part = "flow"
        followed = _followed(spec, student_specs)
        if part is None or followed is None:
            raise ConfigError(f"the teacher's input {spec.name!r} {spec.shape} cannot be fed from the student's inputs "
                              f"({', '.join(f'{s.name} {s.shape}' for s in student_specs)}): give the teacher the "
                              "student's segments or frames and size")
        key = f"teacher.{spec.name}"
        feeds[spec.name] = key
        companions.append(Companion(key, follows=followed.name, part=part))
    return feeds, companions


def load_teacher(path) -> tuple[nn.Module, list[str]]:
    """(the checkpoint at ``path`` as a frozen teacher: eval mode, no gradients; its classes).
    Raises ConfigError for a missing checkpoint."""
    from training.checkpoint import build_from_checkpoint

    model, meta = build_from_checkpoint(path)
    for param in model.parameters():
        param.requires_grad_(False)
    return model.eval(), list(meta["classes"])


def make_teacher(model: nn.Module, feeds: Mapping[str, str], teacher_classes: Sequence[str],
                 classes: Sequence[str], path="the teacher") -> Teacher:
    """The teacher objectives receive; ConfigError if it was trained on other classes."""
    if list(teacher_classes) != list(classes):
        raise ConfigError(f"teacher {path} was trained on other classes ({len(teacher_classes)}) than this dataset "
                          f"({len(classes)}); train the teacher on this dataset first")
    return Teacher(model, dict(feeds))
