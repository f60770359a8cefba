"""The two toy batches of logits the loss notebooks share (03-05 and 07-08), drawn from the global torch RNG.

    logits_teacher, logits_student = peaked_logits(batch, classes)           # notebooks 03, 04, 05
    target, logits_teacher, logits_student = sibling_logits(batch, classes)  # notebooks 07, 08

Each function draws exactly what the notebooks drew inline before, in the same order, so a notebook that
seeds torch and then calls it gets the same numbers.
"""
from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["peaked_logits", "sibling_logits"]


def _check_shape(batch: int, classes: int, least: int) -> None:
    if not isinstance(batch, int) or batch < 1:
        raise ValueError(f"batch must be an integer >= 1, got {batch!r}: e.g. batch=8")
    if not isinstance(classes, int) or classes < least:
        raise ValueError(f"classes must be an integer >= {least}, got {classes!r}: e.g. classes=100")


def peaked_logits(batch: int, classes: int, dtype: torch.dtype = torch.float32,
                  device: torch.device | str | None = None) -> tuple[Tensor, Tensor]:
    """A teacher peaked on class 0 and a noisy student: `(logits_teacher, logits_student)`, each (B, C).

    teacher = 2 · randn, plus 10 on class 0; student = teacher + 1.5 · randn.
    """
    _check_shape(batch, classes, 2)
    logits_teacher = torch.randn(batch, classes, dtype=dtype, device=device) * 2.0  # (B, C)
    logits_teacher[:, 0] += 10.0
    logits_student = logits_teacher + torch.randn(batch, classes, dtype=dtype, device=device) * 1.5  # (B, C)
    return logits_teacher, logits_student


def sibling_logits(batch: int, classes: int, dtype: torch.dtype = torch.float64) -> tuple[Tensor, Tensor, Tensor]:
    """Logits with superclass structure: `(target, logits_teacher, logits_student)`, (B,), (B, C), (B, C).

    Classes come in superclasses of 5 consecutive classes. The teacher is 1.5 · randn, plus 4 on the
    label's 5 superclass siblings and 5 more on the label; the student is half the teacher plus 1.5 · randn.
    """
    _check_shape(batch, classes, 5)
    target = torch.randint(0, classes, (batch,))  # (B,)
    siblings = (torch.arange(classes) // 5 == target[:, None] // 5).to(dtype)  # (B, C): 1 on the label's superclass
    logits_teacher = 1.5 * torch.randn(batch, classes, dtype=dtype) + 4.0 * siblings  # (B, C)
    logits_teacher[torch.arange(batch), target] += 5.0
    logits_student = 0.5 * logits_teacher + 1.5 * torch.randn(batch, classes, dtype=dtype)  # (B, C)
    return target, logits_teacher, logits_student
