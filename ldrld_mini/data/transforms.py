"""The torchvision transforms of each recipe (docs/method.md §4), train and test."""
from __future__ import annotations

from torchvision import transforms as T

from .registry import get_info

__all__ = ["train_transform", "test_transform", "crop_padding"]


def _normalise(name: str) -> list:
    """ToTensor + Normalize with the registry's mean/std for `name`."""
    info = get_info(name)
    return [T.ToTensor(), T.Normalize(info.mean, info.std)]


def crop_padding(image_size: int) -> int:
    """Zero padding of the random crop: CRD's 4 at 32x32, scaled with the image (2 at 16x16)."""
    return max(image_size // 8, 1)


def train_transform(name: str, *, random_crop: bool | None = None, image_size: int | None = None) -> T.Compose:
    """The train augmentation of `name` on PIL images, ending in a normalised float tensor (3, H, W).

    cifar100 / synthetic: RandomCrop(32, padding=4) + flip (CRD). digits: RandomCrop(32, padding=4), no
    flip (a mirrored digit is another glyph). tiny_imagenet: RandomRotation(20) + flip, as in mdistiller's
    `mdistiller/dataset/tiny_imagenet.py` (no crop there; `random_crop=True` adds RandomCrop(64, padding=4)
    first, the common alternative). imagenet: RandomResizedCrop(224) + flip. `image_size` (synthetic only,
    default the registry's 32) crops at that size with padding scaled as 4 at 32, e.g. 2 at 16.
    """
    info = get_info(name)
    if name == "imagenet":
        aug = [T.RandomResizedCrop(224), T.RandomHorizontalFlip()]
    elif name == "tiny_imagenet":
        crop = [T.RandomCrop(64, padding=4)] if random_crop else []
        aug = crop + [T.RandomRotation(20), T.RandomHorizontalFlip(0.5)]
    else:
        flip = [T.RandomHorizontalFlip()] if info.hflip else []
        size = image_size or info.image_size
        aug = [T.RandomCrop(size, padding=crop_padding(size))] + flip
    if image_size is not None and name != "synthetic":
        raise ValueError(f"image_size={image_size!r} only applies to name='synthetic' (generated at any size); drop it")
    if random_crop is not None and name != "tiny_imagenet":
        raise ValueError(f"random_crop={random_crop!r} only applies to name='tiny_imagenet'; drop it")
    return T.Compose(aug + _normalise(name))


def test_transform(name: str) -> T.Compose:
    """The evaluation transform of `name`: imagenet Resize(256) + CenterCrop(224), others none."""
    resize = [T.Resize(256), T.CenterCrop(224)] if name == "imagenet" else []
    return T.Compose(resize + _normalise(name))
