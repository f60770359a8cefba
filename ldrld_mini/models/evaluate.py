"""`evaluate(model, loader)`: top-1, top-5 and mean cross-entropy over a data loader, and `topk_correct`, the
one top-k counter every accuracy of the package uses (the engine's, the CLI's `eval`, the benchmarks')."""
from __future__ import annotations

import contextlib
from typing import Callable, Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

__all__ = ["evaluate", "topk_correct", "autocast", "to_device", "AMP_DTYPES"]

AMP_DTYPES = {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def autocast(device: torch.device, amp: str):
    """`torch.autocast` for `amp` in {bf16, fp16}; a null context for `none`."""
    if amp not in AMP_DTYPES:
        raise ValueError(f"amp={amp!r} is not supported; use one of {list(AMP_DTYPES)}.")
    if AMP_DTYPES[amp] is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=AMP_DTYPES[amp])


def to_device(images: torch.Tensor, labels: torch.Tensor, device: torch.device, channels_last: bool = False):
    """Move a batch to `device` (non-blocking), images optionally in channels_last memory format."""
    images = images.to(device, non_blocking=True)
    if channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    return images, labels.to(device, non_blocking=True)


def topk_correct(logits: torch.Tensor, labels: torch.Tensor, ks: Sequence[int] = (1, 5)) -> list[torch.Tensor]:
    """Number of rows whose label is among the top-k logits, for each k (k clipped to C); (B, C) -> int64 scalars
    on the logits' device (no host sync)."""
    maxk = min(max(ks), logits.shape[1])
    top = logits.topk(maxk, dim=1).indices  # (B, maxk)
    hits = top.eq(labels[:, None])  # (B, maxk)
    return [hits[:, :min(k, maxk)].any(dim=1).sum() for k in ks]


def _sum_dtype(device: torch.device) -> torch.dtype:
    """float64 for the loss sum on the device, float32 on Apple's MPS (it has no float64)."""
    return torch.float32 if device.type == "mps" else torch.float64


@torch.no_grad()
def evaluate(model: nn.Module, loader: Iterable, device: torch.device | str = "cpu", *, amp: str = "none",
             channels_last: bool = False, progress: bool | None = None,
             reduce: Callable[[dict[str, float]], dict[str, float]] | None = None) -> dict:
    """Eval-mode pass over `loader` of (images, labels) -> {"top1", "top5" (%), "loss" (mean CE), "n"}.

    `amp` ('none', 'bf16', 'fp16') and `channels_last` run the model as training does; the sums stay on the
    device until the end. `reduce` adds the per-process sums over processes (the engine passes the DDP
    all-reduce). The model's train/eval mode is restored afterwards. progress=None shows a bar only in a terminal.
    """
    device = torch.device(device)
    was_training = model.training
    model.eval()
    loss_sum = torch.zeros((), device=device, dtype=_sum_dtype(device))
    correct = torch.zeros(2, device=device, dtype=torch.int64)  # (top-1, top-5)
    seen = 0
    try:
        for images, labels in tqdm(loader, desc="eval", leave=False,
                                   disable=None if progress is None else not progress):
            images, labels = to_device(images, labels, device, channels_last)
            with autocast(device, amp):
                logits = model(images)
            logits = logits.float()  # (B, C)
            loss_sum += F.cross_entropy(logits, labels, reduction="sum").to(loss_sum.dtype)
            correct += torch.stack(topk_correct(logits, labels))
            seen += labels.shape[0]
    finally:
        model.train(was_training)
    top1, top5 = correct.tolist()
    sums = {"loss": float(loss_sum), "c1": float(top1), "c5": float(top5), "n": float(seen)}
    sums = reduce(sums) if reduce is not None else sums
    n = sums["n"]
    if n == 0:
        raise ValueError("loader yielded no samples; check the dataset root and the split")
    return {"top1": 100.0 * sums["c1"] / n, "top5": 100.0 * sums["c5"] / n, "loss": sums["loss"] / n, "n": int(n)}
