"""Decoupled knowledge distillation (Zhao et al., CVPR 2022) as in mdistiller, written stably."""
from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .common import ce_loss, check_logits, check_temperature, compute_dtype, kl_rows


class DKDParts(NamedTuple):
    """`total = ce_weight * ce + min(epoch / warmup, 1) * (alpha * tckd + beta * nckd)`."""

    total: Tensor
    ce: Tensor
    tckd: Tensor
    nckd: Tensor


def target_non_target_kl(logits_student: Tensor, logits_teacher: Tensor, target: Tensor,
                         temperature: float = 4.0) -> tuple[Tensor, Tensor]:
    """DKD's two terms: binary target-vs-rest KL (TCKD) and KL among non-target classes (NCKD).

    Both are `T^2 *` batch-mean KLs; the teacher is detached. (B, C), (B, C), (B,) -> (scalar, scalar).
    """
    dtype = compute_dtype(logits_student)
    zs = logits_student.to(dtype) / temperature  # (B, C)
    zt = logits_teacher.detach().to(dtype) / temperature  # (B, C)
    column = target.unsqueeze(1)  # (B, 1)
    # (B, C) one-hot mask by a scatter: F.one_hot reads min/max back to the host on CPU
    is_target = torch.zeros_like(zs, dtype=torch.bool).scatter_(1, column, True)

    def binary_log_probs(z: Tensor) -> Tensor:
        log_p = F.log_softmax(z, dim=1)  # (B, C)
        log_p_target = log_p.gather(1, column)  # (B, 1)
        log_p_rest = torch.logsumexp(log_p.masked_fill(is_target, float("-inf")), dim=1, keepdim=True)  # (B, 1)
        return torch.cat([log_p_target, log_p_rest], dim=1)  # (B, 2)

    tckd = kl_rows(binary_log_probs(zt), binary_log_probs(zs)).mean()
    log_q_s = F.log_softmax(zs.masked_fill(is_target, float("-inf")), dim=1)  # (B, C), -inf at the target
    log_q_t = F.log_softmax(zt.masked_fill(is_target, float("-inf")), dim=1)
    nckd = kl_rows(log_q_t, torch.where(is_target, torch.zeros_like(log_q_s), log_q_s)).mean()
    return tckd * temperature**2, nckd * temperature**2


def dkd_loss(
    logits_student: Tensor,
    logits_teacher: Tensor,
    target: Tensor,
    *,
    alpha: float = 1.0,
    beta: float = 8.0,
    temperature: float = 4.0,
    ce_weight: float = 1.0,
    warmup: int = 20,
    epoch: int | None = None,
) -> DKDParts:
    """DKD with mdistiller's CIFAR defaults; `epoch` (1-based) ramps the KD part over `warmup` epochs."""
    check_logits(logits_student, logits_teacher, target)
    check_temperature(temperature)
    ce = ce_loss(logits_student, target)
    tckd, nckd = target_non_target_kl(logits_student, logits_teacher, target, temperature)
    ramp = 1.0 if epoch is None or warmup <= 0 else min(epoch / warmup, 1.0)
    return DKDParts(ce_weight * ce + ramp * (alpha * tckd + beta * nckd), ce, tckd, nckd)


class DKDLoss(nn.Module):
    """`nn.Module` form of `dkd_loss`; pass `epoch=` so the warm-up ramp applies."""

    needs_teacher = True

    def __init__(self, alpha: float = 1.0, beta: float = 8.0, temperature: float = 4.0,
                 ce_weight: float = 1.0, warmup: int = 20):
        super().__init__()
        check_temperature(temperature)
        self.alpha, self.beta, self.temperature = alpha, beta, temperature
        self.ce_weight, self.warmup = ce_weight, warmup

    def forward(self, logits_student, logits_teacher, target, epoch=None) -> DKDParts:
        return dkd_loss(logits_student, logits_teacher, target, alpha=self.alpha, beta=self.beta,
                        temperature=self.temperature, ce_weight=self.ce_weight,
                        warmup=self.warmup, epoch=epoch)

    def extra_repr(self) -> str:
        return (f"alpha={self.alpha}, beta={self.beta}, temperature={self.temperature}, "
                f"ce_weight={self.ce_weight}, warmup={self.warmup}")
