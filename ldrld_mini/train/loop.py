"""One epoch of distillation and one evaluation pass (AMP, channels_last, DDP-aware metric sums)."""
from __future__ import annotations

import contextlib
import time
from typing import Iterable

import torch
import torch.nn.functional as F
from torch import nn

from .distributed import DistContext, reduce_sums
from .logging import progress

__all__ = ["train_one_epoch", "evaluate", "autocast", "make_scaler", "to_device", "AMP_DTYPES"]

AMP_DTYPES = {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}
SINGLE = DistContext()


def autocast(device: torch.device, amp: str):
    """`torch.autocast` for `amp` in {bf16, fp16}; a null context for `none`."""
    if amp not in AMP_DTYPES:
        raise ValueError(f"amp={amp!r} is not supported; use one of {list(AMP_DTYPES)}.")
    if AMP_DTYPES[amp] is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=AMP_DTYPES[amp])


def make_scaler(device: torch.device, amp: str) -> torch.amp.GradScaler:
    """A GradScaler, enabled only for fp16 (bf16 and fp32 need no loss scaling)."""
    return torch.amp.GradScaler(device.type, enabled=(amp == "fp16"))


def to_device(images: torch.Tensor, labels: torch.Tensor, device: torch.device, channels_last: bool = False):
    """Move a batch to `device` (non-blocking), images optionally in channels_last memory format."""
    images = images.to(device, non_blocking=True)
    if channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    return images, labels.to(device, non_blocking=True)


def _topk_correct(logits: torch.Tensor, labels: torch.Tensor, ks=(1, 5)) -> list[torch.Tensor]:
    """Number of rows whose label is among the top-k logits, for each k (k clipped to C); (B, C) -> scalars."""
    maxk = min(max(ks), logits.shape[1])
    top = logits.topk(maxk, dim=1).indices  # (B, maxk)
    hits = top.eq(labels[:, None])  # (B, maxk)
    return [hits[:, :min(k, maxk)].any(dim=1).sum() for k in ks]


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
        with autocast(device, amp):
            logits_t = None
            if teacher is not None:
                with torch.no_grad():
                    logits_t = teacher(images)
            logits_s = student(images)
        parts = loss_fn(logits_s.float(), None if logits_t is None else logits_t.float(), labels, epoch=epoch)
        loss = parts.total * loss_scale if loss_scale != 1.0 else parts.total
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        n = labels.shape[0]
        for name, value in parts._asdict().items():
            sums[name] = sums.get(name, 0.0) + value.detach().float() * n
        correct += (logits_s.detach().argmax(dim=1) == labels).sum()
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


@torch.no_grad()
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
    """Top-1 / top-5 accuracy (%) and mean cross-entropy of `model` on `loader` (eval mode, no grad)."""
    device = torch.device(device)
    was_training = model.training
    model.eval()
    loss_sum = torch.zeros((), device=device, dtype=torch.float64)
    c1 = torch.zeros((), device=device)
    c5 = torch.zeros((), device=device)
    seen = 0
    for images, labels in progress(loader, enabled=show_progress and ctx.is_main, total=_len(loader), desc="eval"):
        images, labels = to_device(images, labels, device, channels_last)
        with autocast(device, amp):
            logits = model(images)
        logits = logits.float()
        loss_sum += F.cross_entropy(logits, labels, reduction="sum").double()
        top1, top5 = _topk_correct(logits, labels)
        c1 += top1
        c5 += top5
        seen += labels.shape[0]
    model.train(was_training)
    totals = reduce_sums({"loss": float(loss_sum), "c1": float(c1), "c5": float(c5), "n": float(seen)},
                         ctx, device)
    n = max(totals["n"], 1.0)
    return {"top1": 100.0 * totals["c1"] / n, "top5": 100.0 * totals["c5"] / n,
            "loss": totals["loss"] / n, "n": int(totals["n"])}


def _len(loader) -> int | None:
    try:
        return len(loader)
    except TypeError:
        return None
