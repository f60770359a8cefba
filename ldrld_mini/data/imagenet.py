"""ImageNet-1K as two ImageFolders (train/ and val/, both in class folders), with a layout check."""
from __future__ import annotations

import os
from pathlib import Path

from torchvision.datasets import ImageFolder

from .report import DatasetReport
from .tiny_imagenet import _compare_counts, _few, _images_in, read_rgb

__all__ = ["imagenet_folder", "check_imagenet", "load_imagenet"]

_FIX = (
    "put the ILSVRC2012 train and val images under <root>/imagenet/train/<wnid>/*.JPEG and "
    "<root>/imagenet/val/<wnid>/*.JPEG. The official val tar is flat: sort it into class folders, e.g. with "
    "the widely used valprep.sh (https://raw.githubusercontent.com/soumith/imagenetloader.torch/master/valprep.sh) "
    "run inside val/."
)


def imagenet_folder(root: Path) -> Path:
    """The folder holding train/ and val/: `root` itself if it has both, else `root/imagenet`."""
    return root if (root / "train").is_dir() and (root / "val").is_dir() else root / "imagenet"


def _class_dirs(folder: Path) -> list[str]:
    """Sorted names of the sub-folders of `folder` (ImageFolder's class list)."""
    return sorted(e.name for e in os.scandir(folder) if e.is_dir()) if folder.is_dir() else []


def check_imagenet(root: Path, *, expected_classes: int | None = 1000,
                   expected_val_per_class: int | None = 50, count_images: bool = True) -> DatasetReport:
    """Check train/ and val/ exist, are in class folders, list the same classes, and have the expected counts."""
    folder = imagenet_folder(root)
    report = DatasetReport("imagenet", folder, fix=_FIX)
    for split in ("train", "val"):
        if not (folder / split).is_dir():
            report.problems.append(f"{folder / split} does not exist")
    if not report.ok:
        return report
    train, val = _class_dirs(folder / "train"), _class_dirs(folder / "val")
    report.counts.update({"train classes": len(train), "val classes": len(val)})
    loose = _images_in(folder / "val")
    if loose:
        report.problems.append(f"val/ holds {len(loose)} images directly (e.g. {_few(loose, 2)}): val must be in "
                               "class folders, or every image gets label 0")
    for split, classes in (("train", train), ("val", val)):
        if expected_classes is not None and len(classes) != expected_classes:
            report.problems.append(f"{split}/ has {len(classes)} class folders, expected {expected_classes}")
    if train != val and val:
        only_t, only_v = sorted(set(train) - set(val)), sorted(set(val) - set(train))
        report.problems.append(f"train/ and val/ class folders differ: only in train: [{_few(only_t)}], "
                               f"only in val: [{_few(only_v)}]")
    if count_images:
        _count_images(report, folder, train, val, expected_val_per_class)
    return report


def _count_images(report: DatasetReport, folder: Path, train: list[str], val: list[str], expected_val) -> None:
    """Count images per class; empty train classes and val classes off `expected_val` are problems."""
    n_train = {c: len(_images_in(folder / "train" / c)) for c in train}
    n_val = {c: len(_images_in(folder / "val" / c)) for c in val}
    report.counts.update({"train images": sum(n_train.values()), "val images": sum(n_val.values())})
    empty = [c for c, n in n_train.items() if n == 0]
    if empty:
        report.problems.append(f"train/: {len(empty)} class folders have no images: {_few(empty)}")
    _compare_counts(report, "val", n_val, expected_val)


def load_imagenet(root: Path, *, train: bool, transform=None) -> ImageFolder:
    """An ImageFolder over `train/` or `val/` (class index = position in the sorted folder names)."""
    return ImageFolder(str(imagenet_folder(root) / ("train" if train else "val")), transform=transform,
                       loader=read_rgb)
