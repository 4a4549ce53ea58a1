"""DMC-Net (Shou et al., CVPR 2019): ``L_cls + alpha * L_mse + lambda * L_adv^G`` (Eq. 4), alpha=10, lambda=1.

- ``L_mse`` (Eq. 1): mean squared difference between the generated DMC (B, S, 2, H, W) and the
  teacher flow of the same P-frames (the batch item ``flow``, a companion of ``mv_residual``);
- ``L_adv^G`` (Eq. 3): -log P_D(real | DMC), the discriminator (``DMCDiscriminator``) held fixed;
- alternating updates (Sec. 3.3.2): before each generator step, :meth:`DMCObjective.discriminator_step`
  trains D on ``-log P_D(fake | DMC) - log P_D(real | flow)`` (Eq. 2) with the generator and the
  classifier fixed (the DMC is computed without gradients);
- the appendix's learning rates: every classifier layer but the last at ``classifier_lr_mult``
  (1/100) of the rate, the generator and the classifier's last layer at the full rate.

The appendix's stages are configs (training/configs/dmc-*.toml): the flow classifier (``flow-r18``)
trained on flow initialises DMC's classifier; then the generator alone for one epoch with the
reconstruction loss (``cls_weight = 0``, classifier frozen); then ``L_cls + alpha L_mse``; then all
three losses from that model. Terms: ``cls``, ``mse``, and with lambda > 0 ``adv_g`` and ``adv_d``.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from training.cache.dataset import Companion
from training.models.common import merge_leading
from training.models.dmc import FAKE, REAL, DMCDiscriminator

from .base import ObjectiveNeeds, ObjectiveResult, Teacher, model_inputs, require, value
from .registry import register_objective

FLOW_KEY = "flow"  # the batch item holding the teacher flow of the mv_residual input's frames


class DMCObjective:
    def __init__(self, label_smoothing: float, alpha: float, lambda_adv: float, cls_weight: float,
                 classifier_lr_mult: float, discriminator_lr_mult: float):
        self.label_smoothing, self.alpha, self.lambda_adv, self.cls_weight = label_smoothing, alpha, lambda_adv, cls_weight
        self.discriminator_lr_mult = discriminator_lr_mult
        # the discriminator belongs to the objective (training only, never exported with the model)
        self.discriminator = DMCDiscriminator() if lambda_adv > 0 else None
        self.needs = ObjectiveNeeds(
            companions=(Companion(FLOW_KEY, follows="mv_residual", part="flow"),),
            lr_mult=(("*classifier.fc.*", 1.0), ("*classifier.*", classifier_lr_mult)))

    def _generate(self, model: nn.Module, batch: Mapping[str, torch.Tensor]):
        require(model, "forward_with_flow", "dmc")
        logits, dmc = model.forward_with_flow(**model_inputs(model, batch))
        return logits.float(), dmc.float()

    def discriminator_step(self, model: nn.Module, batch: Mapping[str, torch.Tensor]) -> ObjectiveResult:
        """Eq. 2 with the generator fixed: the loss whose gradient trains only the discriminator."""
        with torch.no_grad():
            _, dmc = self._generate(model, batch)
        fake = self.discriminator(merge_leading(dmc))
        real = self.discriminator(merge_leading(batch[FLOW_KEY].float()))
        loss = (F.cross_entropy(fake, torch.full((len(fake),), FAKE, device=fake.device))
                + F.cross_entropy(real, torch.full((len(real),), REAL, device=real.device)))
        return ObjectiveResult(loss, {"adv_d": value(loss)}, None)

    def __call__(self, model: nn.Module, batch: Mapping[str, torch.Tensor],
                 teachers: Mapping[str, Teacher]) -> ObjectiveResult:
        logits, dmc = self._generate(model, batch)
        cls = F.cross_entropy(logits, batch["label"], label_smoothing=self.label_smoothing)
        mse = F.mse_loss(dmc, batch[FLOW_KEY].float())
        loss = self.cls_weight * cls + self.alpha * mse
        terms = {"cls": value(cls), "mse": value(mse)}
        if self.discriminator is not None:
            judged = self.discriminator(merge_leading(dmc))  # D's own parameters are not stepped here
            adv = F.cross_entropy(judged, torch.full((len(judged),), REAL, device=judged.device))
            loss = loss + self.lambda_adv * adv
            terms["adv_g"] = value(adv)
        return ObjectiveResult(loss, terms, logits)


@register_objective("dmc", summary="DMC-Net: L_cls + alpha L_mse(flow) + lambda L_adv, alternating D/G steps",
                    paper="DMC-Net")
def dmc(label_smoothing: float = 0.0, alpha: float = 10.0, lambda_adv: float = 1.0, cls_weight: float = 1.0,
        classifier_lr_mult: float = 0.01, discriminator_lr_mult: float = 1.0) -> DMCObjective:
    return DMCObjective(label_smoothing, alpha, lambda_adv, cls_weight, classifier_lr_mult, discriminator_lr_mult)
