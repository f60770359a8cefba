"""`evaluate(model, loader, device)`: top-1, top-5 and mean cross-entropy over a data loader."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm


@torch.no_grad()
def evaluate(model: nn.Module, loader, device="cpu", *, progress: bool | None = None) -> dict:
    """Eval-mode pass over `loader` of (images, labels) -> {"top1", "top5" (%), "loss" (mean CE), "n"}.

    The model's train/eval mode is restored afterwards. progress=None shows a bar only in a terminal.
    """
    was_training = model.training
    model.eval()
    correct1 = correct5 = 0
    loss_sum, n = 0.0, 0
    try:
        bar = tqdm(loader, desc="eval", leave=False, disable=None if progress is None else not progress)
        for images, labels in bar:
            images, labels = images.to(device, non_blocking=True), labels.to(device, non_blocking=True)
            logits = model(images).float()  # (B, C)
            loss_sum += F.cross_entropy(logits, labels, reduction="sum").item()
            top = logits.topk(min(5, logits.shape[1]), dim=1).indices  # (B, 5)
            hits = top == labels[:, None]  # (B, 5)
            correct1 += hits[:, 0].sum().item()
            correct5 += hits.any(dim=1).sum().item()
            n += labels.numel()
    finally:
        model.train(was_training)
    if n == 0:
        raise ValueError("loader yielded no samples; check the dataset root and the split")
    return {"top1": 100.0 * correct1 / n, "top5": 100.0 * correct5 / n, "loss": loss_sum / n, "n": n}
