"""A dataset held in memory as a uint8 array, with torchvision's CIFAR interface (`data`, `targets`)."""
from __future__ import annotations

import numpy as np
from PIL import Image
from torch.utils.data import Dataset

__all__ = ["ArrayDataset"]


class ArrayDataset(Dataset):
    """Images uint8 (N, H, W, 3) and int labels; item = (transform(PIL image), label), like CIFAR100."""

    def __init__(self, data: np.ndarray, targets, classes: list[str], transform=None):
        if data.dtype != np.uint8 or data.ndim != 4 or data.shape[-1] != 3:
            raise ValueError(f"data must be uint8 (N, H, W, 3), got {data.dtype} {tuple(data.shape)}")
        if len(targets) != len(data):
            raise ValueError(f"targets has {len(targets)} labels for {len(data)} images; they must match")
        self.data, self.targets = data, [int(t) for t in targets]
        self.classes, self.transform = classes, transform

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int):
        img = Image.fromarray(self.data[index])
        return (self.transform(img) if self.transform is not None else img), self.targets[index]
