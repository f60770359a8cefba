"""scikit-learn's 8x8 handwritten digits, upscaled to 3x32x32: a real, tiny, offline dataset."""
from __future__ import annotations

import numpy as np
import torch

__all__ = ["load_digits_split", "DIGIT_NAMES", "VAL_EVERY"]

DIGIT_NAMES = [str(d) for d in range(10)]
VAL_EVERY = 5  # image i is in val when i % 5 == 0: a fixed split of 1437 train / 360 val images


def _sklearn_digits():
    """(images float (1797, 8, 8) in [0, 16], labels (1797,)) from scikit-learn, imported lazily."""
    try:
        from sklearn.datasets import load_digits
    except ImportError as err:
        raise ImportError("name='digits' needs scikit-learn, which ships the 8x8 digits: "
                          "`pip install scikit-learn` (or `pip install ldrld-mini[notebooks]`)") from err
    bunch = load_digits()
    return bunch.images, bunch.target


def upscale_digits(images: np.ndarray, size: int = 32) -> np.ndarray:
    """(N, 8, 8) in [0, 16] -> uint8 (N, size, size, 3) by bilinear upsampling, grey replicated to RGB."""
    x = torch.as_tensor(images, dtype=torch.float64)[:, None] / 16.0  # (N, 1, 8, 8)
    x = torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    x = torch.round(x.clamp(0, 1) * 255).to(torch.uint8)  # (N, 1, size, size)
    return x.permute(0, 2, 3, 1).expand(-1, -1, -1, 3).contiguous().numpy()  # (N, size, size, 3)


def load_digits_split(split: str) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 images (N, 32, 32, 3), int64 labels (N,)) of the fixed train or val split."""
    if split not in ("train", "val"):
        raise ValueError(f"split={split!r} must be 'train' or 'val'")
    images, labels = _sklearn_digits()
    in_val = np.arange(len(labels)) % VAL_EVERY == 0
    keep = in_val if split == "val" else ~in_val
    return upscale_digits(images[keep]), labels[keep].astype(np.int64)
