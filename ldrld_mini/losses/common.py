"""Shared checks and small helpers of the loss library (no models, no data, no training)."""
from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor


class CEParts(NamedTuple):
    """Parts of plain cross-entropy training: `total = ce_weight * ce`."""

    total: Tensor
    ce: Tensor


def check_logits(logits_student: Tensor, logits_teacher: Tensor | None, target: Tensor | None) -> None:
    """Raise a ValueError naming the argument when logits or targets cannot be a (B, C) batch."""
    _check_one("logits_student", logits_student)
    if logits_teacher is not None:
        _check_one("logits_teacher", logits_teacher)
        if logits_teacher.shape != logits_student.shape:
            raise ValueError(
                f"logits_teacher has shape {tuple(logits_teacher.shape)} but logits_student has shape "
                f"{tuple(logits_student.shape)}; pass teacher and student logits of the same batch and the "
                "same number of classes (check both models were built with the same num_classes)."
            )
    if target is not None:
        check_target(target, logits_student)


def _check_one(name: str, logits: Tensor) -> None:
    if not isinstance(logits, Tensor):
        raise ValueError(f"{name} must be a torch.Tensor of shape (B, C), got {type(logits).__name__}.")
    if logits.dim() != 2:
        raise ValueError(
            f"{name} must be 2-D (batch, classes), got shape {tuple(logits.shape)}; flatten extra "
            "dimensions first, e.g. logits.flatten(0, -2) for per-position logits."
        )
    if not logits.is_floating_point():
        raise ValueError(
            f"{name} must have a floating dtype, got {logits.dtype}; convert with {name}.float()."
        )
    if logits.shape[1] < 2:
        raise ValueError(f"{name} has {logits.shape[1]} class(es); distillation needs at least 2 classes.")


def check_target(target: Tensor, logits: Tensor) -> None:
    """Raise a ValueError when `target` is not (B,) class indices in [0, C)."""
    if not isinstance(target, Tensor) or target.dim() != 1 or target.dtype not in (torch.int64, torch.int32):
        shape = tuple(target.shape) if isinstance(target, Tensor) else type(target).__name__
        raise ValueError(
            f"target must be a 1-D integer tensor of class indices, got {shape} "
            f"({getattr(target, 'dtype', None)}); use target.long() with one label per row of the logits."
        )
    if target.shape[0] != logits.shape[0]:
        raise ValueError(
            f"target has {target.shape[0]} labels but the logits have {logits.shape[0]} rows; "
            "pass one label per sample of the batch."
        )
    if target.numel() and (int(target.min()) < 0 or int(target.max()) >= logits.shape[1]):
        raise ValueError(
            f"target holds labels in [{int(target.min())}, {int(target.max())}] but there are "
            f"{logits.shape[1]} classes; labels must lie in [0, {logits.shape[1] - 1}]."
        )


def check_temperature(temperature: float) -> None:
    """Raise a ValueError for a non-positive temperature."""
    if not float(temperature) > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}; the papers use 4 on CIFAR-100, 1 on ImageNet.")


def compute_dtype(logits: Tensor) -> torch.dtype:
    """float64 stays float64; float16 / bfloat16 / float32 are computed in float32."""
    return torch.float64 if logits.dtype == torch.float64 else torch.float32


def ce_loss(logits_student: Tensor, target: Tensor) -> Tensor:
    """Cross-entropy on raw logits (no temperature), mean over the batch, computed in float32 or better."""
    return F.cross_entropy(logits_student.to(compute_dtype(logits_student)), target)


def kl_rows(log_p_teacher: Tensor, log_p_student: Tensor) -> Tensor:
    """Per-row KL(p_t || p_s) from log-probabilities `(B, n) -> (B,)`; entries with p_t = 0 add 0."""
    p_teacher = log_p_teacher.exp()
    terms = p_teacher * (log_p_teacher - log_p_student)
    return torch.where(p_teacher > 0, terms, torch.zeros_like(terms)).sum(dim=1)
