"""One epoch of distillation and one evaluation pass (AMP, channels_last, DDP-aware metric sums)."""
from __future__ import annotations

import time
from typing import Iterable

import torch
from torch import nn

from ..models.evaluate import AMP_DTYPES, autocast, to_device, topk_correct
from ..models.evaluate import evaluate as evaluate_model
from .distributed import DistContext, reduce_sums
from .logging import progress

__all__ = ["train_one_epoch", "evaluate", "autocast", "make_scaler", "to_device", "AMP_DTYPES"]

SINGLE = DistContext()


def make_scaler(device: torch.device, amp: str) -> torch.amp.GradScaler:
    """A GradScaler, enabled only for fp16 (bf16 and fp32 need no loss scaling)."""
    return torch.amp.GradScaler(device.type, enabled=(amp == "fp16"))


def forward_loss(student, teacher, loss_fn, images, labels, *, amp: str = "none", epoch: int = 1):
    """One step's forward: both models under autocast (the teacher without grad), the loss in float32.

    Returns `(student logits, loss parts)`; the training step back-propagates `parts.total`.
    """
    with autocast(images.device, amp):
        logits_t = None
        if teacher is not None:
            with torch.no_grad():
                logits_t = teacher(images)
        logits_s = student(images)
    parts = loss_fn(logits_s.float(), None if logits_t is None else logits_t.float(), labels, epoch=epoch)
    return logits_s, parts


def train_one_epoch(
    student: nn.Module,
    loader: Iterable,
    loss_fn: nn.Module,
    optimizer: torch.optim.Optimizer,
    *,
    epoch: int,
    teacher: nn.Module | None = None,
    device: torch.device | str = "cpu",
    amp: str = "none",
    scaler: torch.amp.GradScaler | None = None,
    channels_last: bool = False,
    loss_scale: float = 1.0,
    log_every: int = 100,
    show_progress: bool = False,
    ctx: DistContext = SINGLE,
) -> dict:
    """Train `student` for one epoch; returns averaged loss parts (`train_<part>`), `train_top1`, counts.

    The teacher runs in eval mode under `torch.no_grad`; `loss_fn(ls, lt, y, epoch=epoch)` returns a
    NamedTuple whose `total` is back-propagated (times `loss_scale`, 1 unless the legacy double weight).
    """
    device = torch.device(device)
    scaler = scaler if scaler is not None else make_scaler(device, amp)
    student.train()
    if teacher is not None:
        teacher.eval()
    sums: dict[str, torch.Tensor] = {}
    seen, correct = 0, torch.zeros((), device=device)
    bar = progress(loader, enabled=show_progress and ctx.is_main, total=_len(loader), desc=f"epoch {epoch}")
    start = time.perf_counter()
    for step, (images, labels) in enumerate(bar):
        images, labels = to_device(images, labels, device, channels_last)
        logits_s, parts = forward_loss(student, teacher, loss_fn, images, labels, amp=amp, epoch=epoch)
        loss = parts.total * loss_scale if loss_scale != 1.0 else parts.total
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        n = labels.shape[0]
        for name, value in parts._asdict().items():
            sums[name] = sums.get(name, 0.0) + value.detach().float() * n
        correct += topk_correct(logits_s.detach(), labels, ks=(1,))[0]
        seen += n
        if show_progress and ctx.is_main and hasattr(bar, "set_postfix") and step % log_every == 0:
            bar.set_postfix(loss=f"{parts.total.item():.3f}", refresh=False)
    totals = {f"train_{k}": float(v) for k, v in sums.items()}
    totals.update(_correct=float(correct), _seen=float(seen))
    totals = reduce_sums(totals, ctx, device)
    seen_all = max(totals.pop("_seen"), 1.0)
    out = {k: v / seen_all for k, v in totals.items() if k != "_correct"}
    out["train_top1"] = 100.0 * totals["_correct"] / seen_all
    out["train_images"] = int(seen_all)
    out["train_time"] = time.perf_counter() - start
    return out


def evaluate(
    model: nn.Module,
    loader: Iterable,
    *,
    device: torch.device | str = "cpu",
    amp: str = "none",
    channels_last: bool = False,
    ctx: DistContext = SINGLE,
    show_progress: bool = False,
) -> dict:
    """The engine's call of `models.evaluate`: sums added over the DDP ranks of `ctx`, a bar on rank 0 only."""
    device = torch.device(device)
    return evaluate_model(model, loader, device, amp=amp, channels_last=channels_last,
                          progress=show_progress and ctx.is_main, reduce=lambda sums: reduce_sums(sums, ctx, device))


def _len(loader) -> int | None:
    try:
        return len(loader)
    except TypeError:
        return None
