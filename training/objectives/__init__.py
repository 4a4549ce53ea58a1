"""Training objectives, one module per family, registered beside the models (``training.models``).

An objective is one call, ``objective(model, batch, teachers) -> ObjectiveResult(loss, terms, logits)``,
plus what it needs declared in ``objective.needs`` (:class:`ObjectiveNeeds`). Chosen in the config::

    [objective]
    name = "dmc"        # ce (default), dmc, iptsn, mfcd, mfcd-rgb, off, costvol
    alpha = 10.0        # any key of that objective; the defaults are the paper's weights

    from training.objectives import build_objective, list_objectives
    objective = build_objective("iptsn", label_smoothing=0.0, feature_weight=50.0)

``training.objectives.stages`` applies a stage's ``init_from`` / ``freeze`` / ``lr_mult`` / teacher.
"""

from . import ce, costvol, dmc, iptsn, mfcd, off  # noqa: F401  (registers every objective)
from .base import TEACHER_KEY, Objective, ObjectiveNeeds, ObjectiveResult, Teacher, model_inputs
from .registry import build_objective, list_objectives, objective_entry, register_objective

__all__ = ["TEACHER_KEY", "Objective", "ObjectiveNeeds", "ObjectiveResult", "Teacher", "build_objective",
           "list_objectives", "model_inputs", "objective_entry", "register_objective"]
