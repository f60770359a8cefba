"""The torch this package needs, and one clear error below it.

The floor is declared in pyproject.toml (`torch>=2.4`, `torchvision>=0.19`) and repeated here so that an install
that skipped the dependency check (`pip install --no-deps`, as the notebooks' Colab cell does) fails with one
message instead of an AttributeError deep inside a run; tests/test_packaging.py keeps the copies equal. Why 2.4,
read from the code (not run on older torch):
- every `fit` builds `torch.amp.GradScaler` (train/loop.py): torch 2.3;
- the fast path switches SGD to its fused kernel with a tensor learning rate (train/fast.py): CUDA since 2.3,
  the CPU kernel since 2.4;
- models/checkpoints.py tells an untrusted checkpoint from a damaged one by `torch.load`'s wording
  "Unsupported global: GLOBAL ..." (torch 2.4 and later; 2.3 and earlier said "Unsupported class ...").
No optional path needs more than the floor.
"""
from __future__ import annotations

import re

__all__ = ["TORCH_FLOOR", "TORCHVISION_FLOOR", "TorchTooOldError", "require_torch", "check_torch"]

TORCH_FLOOR = "2.4"
TORCHVISION_FLOOR = "0.19"


class TorchTooOldError(RuntimeError):
    """The installed torch is older than a path needs; the message names both versions and the fix."""


def _major_minor(version: str) -> tuple[int, int]:
    """'2.14.1+cpu' -> (2, 14)."""
    found = re.match(r"(\d+)\.(\d+)", str(version))
    return (int(found.group(1)), int(found.group(2))) if found else (0, 0)


def require_torch(minimum: str, feature: str) -> None:
    """TorchTooOldError when the installed torch is older than `minimum` (naming `feature` and the fix)."""
    import torch

    if _major_minor(torch.__version__) < _major_minor(minimum):
        raise TorchTooOldError(f"{feature} needs torch >= {minimum}, but this is torch {torch.__version__}; "
                               f"upgrade it: pip install --upgrade \"torch>={minimum}\" torchvision")


def check_torch() -> None:
    """TorchTooOldError below the package's floor (TORCH_FLOOR)."""
    require_torch(TORCH_FLOOR, "ldrld-mini")
