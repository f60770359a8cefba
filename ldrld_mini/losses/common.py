"""Shared checks and small helpers of the loss library (no models, no data, no training).

The input checks never read a value back from an accelerator: shapes, dtypes and devices are metadata;
the one value check (labels in `[0, C)`) reads host memory directly for CPU tensors (synchronous by
nature, the same ValueError as ever, and no tensor op: `np.from_dlpack`) and is a device-side assertion
(`torch._assert_async`) elsewhere, so a CUDA step is never stalled by it. On CUDA a bad label then fails
the step asynchronously with a device-side assert; `check_logits(..., sync=True)` (or `check_target(...,
sync=True)`) reads the labels back and raises the ValueError with the values, for a check once per run.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor


class CEParts(NamedTuple):
    """Parts of plain cross-entropy training: `total = ce_weight * ce`."""

    total: Tensor
    ce: Tensor


def check_logits(logits_student: Tensor, logits_teacher: Tensor | None, target: Tensor | None, *,
                 sync: bool = False) -> None:
    """Raise a ValueError naming the argument when logits or targets cannot be a (B, C) batch.

    Reads nothing back from an accelerator unless `sync=True` (see the module docstring).
    """
    _check_one("logits_student", logits_student)
    if logits_teacher is not None:
        _check_one("logits_teacher", logits_teacher)
        if logits_teacher.shape != logits_student.shape:
            raise ValueError(
                f"logits_teacher has shape {tuple(logits_teacher.shape)} but logits_student has shape "
                f"{tuple(logits_student.shape)}; pass teacher and student logits of the same batch and the "
                "same number of classes (check both models were built with the same num_classes)."
            )
        if logits_teacher.device != logits_student.device:
            raise ValueError(
                f"logits_teacher is on {logits_teacher.device} but logits_student is on "
                f"{logits_student.device}; move both to the same device, e.g. logits_teacher.to(logits_student.device)."
            )
    if target is not None:
        check_target(target, logits_student, sync=sync)


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


def check_target(target: Tensor, logits: Tensor, *, sync: bool = False) -> None:
    """Raise a ValueError when `target` is not (B,) class indices in [0, C) (no read-back unless `sync`)."""
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
    if target.device != logits.device:
        raise ValueError(
            f"target is on {target.device} but the logits are on {logits.device}; "
            f"move the labels with target.to({str(logits.device)!r})."
        )
    if not target.numel() or target.device.type == "meta":
        return
    classes = logits.shape[1]
    if target.device.type == "cpu" or sync:
        labels = np.from_dlpack(target) if target.device.type == "cpu" else target.cpu().numpy()
        # one pass: as unsigned integers, negative labels are huge
        if int(labels.view(np.uint64 if labels.itemsize == 8 else np.uint32).max()) >= classes:
            low, high = int(labels.min()), int(labels.max())
            raise ValueError(_label_message(f"labels in [{low}, {high}]", classes))
    else:  # a device-side assertion: nothing is read back, a bad label fails the step asynchronously
        torch._assert_async(target.ge(0).logical_and_(target.lt(classes)).all(),
                            _label_message("labels outside the class range", classes))


def _label_message(found: str, classes: int) -> str:
    return (f"target holds {found} but there are {classes} classes; "
            f"labels must lie in [0, {classes - 1}].")


def check_temperature(temperature: float) -> None:
    """Raise a ValueError for a non-positive temperature."""
    if not float(temperature) > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}; the papers use 4 on CIFAR-100, 1 on ImageNet.")


def compute_dtype(logits: Tensor) -> torch.dtype:
    """float64 stays float64; float16 / bfloat16 / float32 are computed in float32."""
    return torch.float64 if logits.dtype == torch.float64 else torch.float32


def ce_loss(logits_student: Tensor, target: Tensor) -> Tensor:
    """Cross-entropy on raw logits (no temperature), mean over the batch, computed in float32 or better."""
    dtype = compute_dtype(logits_student)
    logits = logits_student if logits_student.dtype == dtype else logits_student.to(dtype)
    return F.cross_entropy(logits, target if target.dtype == torch.int64 else target.long())


def kl_rows(log_p_teacher: Tensor, log_p_student: Tensor) -> Tensor:
    """Per-row KL(p_t || p_s) from log-probabilities `(B, n) -> (B,)`; entries with p_t = 0 add 0."""
    p_teacher = log_p_teacher.exp()
    terms = p_teacher * (log_p_teacher - log_p_student)
    return torch.where(p_teacher > 0, terms, torch.zeros_like(terms)).sum(dim=1)
