"""Classic knowledge distillation (Hinton et al., 2015) as in mdistiller/RepDistiller."""
from __future__ import annotations

from typing import NamedTuple

import torch.nn.functional as F
from torch import Tensor, nn

from .common import ce_loss, check_logits, check_temperature, compute_dtype, kl_rows


class KDParts(NamedTuple):
    """`total = ce_weight * ce + kd_weight * kd`; `kd` is `T^2 * KL(p_t || p_s)`, batch mean."""

    total: Tensor
    ce: Tensor
    kd: Tensor


def kd_divergence(logits_student: Tensor, logits_teacher: Tensor, temperature: float = 4.0) -> Tensor:
    """`T^2 * mean_b KL(softmax(z_t/T) || softmax(z_s/T))`; (B, C), (B, C) -> scalar. Teacher detached."""
    dtype = compute_dtype(logits_student)
    log_p_s = F.log_softmax(logits_student.to(dtype) / temperature, dim=1)  # (B, C)
    log_p_t = F.log_softmax(logits_teacher.detach().to(dtype) / temperature, dim=1)  # (B, C)
    return kl_rows(log_p_t, log_p_s).mean() * temperature**2


def kd_loss(
    logits_student: Tensor,
    logits_teacher: Tensor,
    target: Tensor,
    *,
    temperature: float = 4.0,
    ce_weight: float = 0.1,
    kd_weight: float = 0.9,
) -> KDParts:
    """KD loss with mdistiller's CIFAR weights (CE 0.1, KD 0.9, T 4) -> KDParts."""
    check_logits(logits_student, logits_teacher, target)
    check_temperature(temperature)
    ce = ce_loss(logits_student, target)
    kd = kd_divergence(logits_student, logits_teacher, temperature)
    return KDParts(ce_weight * ce + kd_weight * kd, ce, kd)


class KDLoss(nn.Module):
    """`nn.Module` form of `kd_loss`; call as `loss_fn(logits_student, logits_teacher, target)`."""

    needs_teacher = True

    def __init__(self, temperature: float = 4.0, ce_weight: float = 0.1, kd_weight: float = 0.9):
        super().__init__()
        check_temperature(temperature)
        self.temperature, self.ce_weight, self.kd_weight = temperature, ce_weight, kd_weight

    def forward(self, logits_student, logits_teacher, target, epoch=None) -> KDParts:
        return kd_loss(logits_student, logits_teacher, target, temperature=self.temperature,
                       ce_weight=self.ce_weight, kd_weight=self.kd_weight)

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}, ce_weight={self.ce_weight}, kd_weight={self.kd_weight}"
