"""OFF (Sun et al.): categorical cross-entropy at every level, each supervised on its own (Sec. 4.2.1-4.2.2).

``forward_streams`` of ``off-r18`` gives the backbone's (feature generation) scores, the OFF
sub-network's last-level scores and its intermediate levels' auxiliary scores; each gets its own
CE against the label (the fused output is used only at test time). Training has two stages
(Sec. 4.2.1): the backbone as a TSN first (``off-backbone.toml``, objective ``ce`` on ``off-r18``
with ``stage.freeze`` on the OFF sub-network), then OFF with the backbone fixed (``off.toml``:
``init_from`` the first stage, ``stage.freeze = ["backbone.*", "fc.*"]``; frozen BatchNorm layers
keep their statistics). Terms: ``backbone``, ``off`` and ``off_level<i>``.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from .base import ObjectiveNeeds, ObjectiveResult, Teacher, per_stream_ce, require, single_input
from .registry import register_objective


class OFFObjective:
    def __init__(self, label_smoothing: float, backbone_weight: float, off_weight: float, level_weight: float):
        self.label_smoothing = label_smoothing
        self.weights = {"backbone": backbone_weight, "off": off_weight}
        self.level_weight = level_weight
        self.needs = ObjectiveNeeds()

    def __call__(self, model: nn.Module, batch: Mapping[str, torch.Tensor],
                 teachers: Mapping[str, Teacher]) -> ObjectiveResult:
        require(model, "forward_streams", "off")
        streams = model.forward_streams(single_input(model, batch))
        return per_stream_ce(model, streams, batch["label"], self.label_smoothing,
                             lambda name: self.weights.get(name, self.level_weight))


@register_objective("off", summary="OFF: CE on the backbone, the OFF output and every OFF level, each on its own",
                    paper="OFF")
def off(label_smoothing: float = 0.0, backbone_weight: float = 1.0, off_weight: float = 1.0,
        level_weight: float = 1.0) -> OFFObjective:
    return OFFObjective(label_smoothing, backbone_weight, off_weight, level_weight)
