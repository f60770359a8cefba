"""The dataset registry: one `DatasetInfo` per supported name, and where datasets live on disk."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

__all__ = ["DatasetInfo", "DATASETS", "get_info", "default_root", "resolve_root"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class DatasetInfo:
    """What the rest of the package needs to know about a dataset (sizes, normalisation, layout)."""

    name: str
    num_classes: int
    image_size: int  # side of the (square) image the model sees
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    train_size: int | None  # official number of training images (None: depends on kwargs)
    val_size: int | None
    folder: str | None  # expected sub-folder of `root` (None: generated in memory)
    in_memory: bool  # True: the whole uint8 set fits a tensor, so `gpu_resident=True` works
    hflip: bool  # horizontal flips are part of the train augmentation
    source: str  # where the data comes from (one line, for messages and the README)


DATASETS: dict[str, DatasetInfo] = {
    "cifar100": DatasetInfo(
        name="cifar100", num_classes=100, image_size=32,
        mean=(0.5071, 0.4867, 0.4408), std=(0.2675, 0.2565, 0.2761),
        train_size=50_000, val_size=10_000, folder="cifar-100-python", in_memory=True, hflip=True,
        source="https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz (torchvision.datasets.CIFAR100)",
    ),
    "tiny_imagenet": DatasetInfo(
        name="tiny_imagenet", num_classes=200, image_size=64,
        mean=(0.4802, 0.4481, 0.3975), std=(0.2302, 0.2265, 0.2262),
        train_size=100_000, val_size=10_000, folder="tiny-imagenet-200", in_memory=False, hflip=True,
        source="http://cs231n.stanford.edu/tiny-imagenet-200.zip",
    ),
    "imagenet": DatasetInfo(
        name="imagenet", num_classes=1000, image_size=224,
        mean=IMAGENET_MEAN, std=IMAGENET_STD,
        train_size=1_281_167, val_size=50_000, folder="imagenet", in_memory=False, hflip=True,
        source="https://image-net.org (ILSVRC2012 train + val, val sorted into class folders)",
    ),
    "synthetic": DatasetInfo(
        name="synthetic", num_classes=100, image_size=32,
        # measured on generator v3, seed 0, 100 classes x 20 train images, 32x32 (see tests/test_data.py)
        mean=(0.3418, 0.3428, 0.3431), std=(0.2109, 0.2049, 0.2035),
        train_size=None, val_size=None, folder=None, in_memory=True, hflip=True,
        source="generated in memory by ldrld_mini.data.synthetic (no download)",
    ),
    "digits": DatasetInfo(
        name="digits", num_classes=10, image_size=32,
        # measured on the train split, upscaled to 32x32 (see tests/test_data.py)
        mean=(0.3052, 0.3052, 0.3052), std=(0.3241, 0.3241, 0.3241),
        train_size=1437, val_size=360, folder=None, in_memory=True, hflip=False,
        source="sklearn.datasets.load_digits (8x8 handwritten digits shipped inside scikit-learn)",
    ),
}


def get_info(name: str) -> DatasetInfo:
    """The registry entry for `name`, or a ValueError listing the known names."""
    if name not in DATASETS:
        raise ValueError(f"name={name!r} is not a known dataset; use one of {sorted(DATASETS)}")
    return DATASETS[name]


def default_root() -> Path:
    """Where datasets live when `root` is not given: $LDRLD_DATA, else ./data.

    From inside the checkout's `notebooks/` folder (a notebook's working directory) `./data` does not
    exist, so the checkout's own `data/` folder (the one holding data/README.md) is used instead.
    """
    if os.environ.get("LDRLD_DATA"):
        return Path(os.environ["LDRLD_DATA"])
    here = Path("data")
    checkout_data = Path(__file__).resolve().parents[2] / "data"
    if not here.is_dir() and (checkout_data / "README.md").is_file():
        return checkout_data
    return here


def resolve_root(root: str | os.PathLike | None) -> Path:
    """`root` as a Path (expanding ~), or the default root."""
    return default_root() if root is None else Path(root).expanduser()
