"""Stand-ins for CIFAR-100, Tiny-ImageNet and ImageNet: tiny copies in the real on-disk formats.

    root = write_tiny_imagenet_standin(tmp_path)             # <tmp>/tiny-imagenet-200/..., 200 classes
    check_dataset("tiny_imagenet", root, expected_train_per_class=1, expected_val_per_class=1).ok  # True

The images come from the built-in generator (`generate_synthetic`), so a stand-in needs no download and
the same arguments write the same files on any machine. Only the content is made up: file names, folders,
pickles and annotation files are laid out as in the published archives, so the package's loaders and
checks read a stand-in through exactly the code that reads the real data (only the counts and md5 sums
differ: pass the stand-in's counts, and `verify_md5=False` for CIFAR-100).
"""
from __future__ import annotations

import pickle
import struct
from pathlib import Path
from typing import Iterator

import numpy as np
from PIL import Image

from .synthetic import MEMBERS, class_names, generate_synthetic, superclass_names

__all__ = ["write_cifar100_standin", "write_tiny_imagenet_standin", "write_imagenet_standin", "standin_wnids"]


def _check_positive(**counts: int) -> None:
    """Fail early, naming the argument, when a count is below 1."""
    for name, value in counts.items():
        if not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name}={value!r} must be a whole number >= 1 (a stand-in needs at least one image)")


def standin_wnids(num_classes: int) -> list[str]:
    """Made-up WordNet ids in the real form (`n` + 8 digits, e.g. n09000017), ascending."""
    _check_positive(num_classes=num_classes)
    return [f"n{9_000_000 + 17 * i:08d}" for i in range(num_classes)]


# ---------------------------------------------------------------- CIFAR-100: Python-2 pickles
class _Py2Pickler(pickle._Pickler):
    """Writes bytes as Python-2 `str` opcodes, as in the published CIFAR files (written by Python 2).

    Loaded with encoding='bytes' (the CIFAR website's snippet) the keys read b'data', b'fine_labels', ...;
    with encoding='latin1' (what torchvision uses) they read 'data', ... and numpy's raw array bytes are
    decoded as numpy expects.
    """

    dispatch = pickle._Pickler.dispatch.copy()

    def save_py2_str(self, obj: bytes) -> None:
        n = len(obj)
        head = pickle.SHORT_BINSTRING + bytes([n]) if n < 256 else pickle.BINSTRING + struct.pack("<i", n)
        self.write(head + obj)
        self.memoize(obj)

    dispatch[bytes] = save_py2_str


def _dump_py2(obj, path: Path) -> None:
    """Pickle `obj` to `path` with protocol 2 and Python-2 strings, like the published CIFAR files."""
    with open(path, "wb") as f:
        _Py2Pickler(f, protocol=2).dump(obj)


def write_cifar100_standin(root, train_per_class: int = 2, test_per_class: int = 1, *, seed: int = 0) -> Path:
    """Write `<root>/cifar-100-python/{train,test,meta}` as torchvision reads them; returns `root`.

    Each split is a dict whose b'data' is uint8 (N, 3072), one row per image (the red plane, then green,
    then blue), with b'fine_labels' (class c), b'coarse_labels' (c // 5), b'filenames' and b'batch_label';
    N = 100 * per_class, sorted by class. `meta` holds the fine and coarse label names.
    """
    _check_positive(train_per_class=train_per_class, test_per_class=test_per_class)
    root = Path(root)
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True, exist_ok=True)
    for split, per_class, batch_label in (("train", train_per_class, b"training batch 1 of 1"),
                                          ("test", test_per_class, b"testing batch 1 of 1")):
        images, labels = generate_synthetic(100, per_class, seed=seed, split="train" if split == "train" else "val")
        rows = images.transpose(0, 3, 1, 2).reshape(len(images), 3 * 32 * 32)  # (N, 32, 32, 3) -> (N, 3072)
        _dump_py2({b"data": rows, b"fine_labels": labels.tolist(), b"coarse_labels": (labels // MEMBERS).tolist(),
                   b"filenames": [b"%s_%05d.png" % (split.encode(), i) for i in range(len(labels))],
                   b"batch_label": batch_label}, folder / split)
    _dump_py2({b"fine_label_names": [name.encode() for name in class_names(100)],
               b"coarse_label_names": [name.encode() for name in superclass_names(100)]}, folder / "meta")
    return root


# ---------------------------------------------------------------- Tiny-ImageNet and ImageNet: JPEG files
def _images_by_class(num_classes: int, train_per_class: int, val_per_class: int, image_size: int,
                     seed: int) -> Iterator[tuple[str, int, int, np.ndarray]]:
    """(split, class index, index within the class, uint8 (H, W, 3) image), class by class.

    One draw of `train_per_class + val_per_class` images per class: the first ones of each class go to
    train, the rest to val. `num_classes` need not be a multiple of 5 (extra classes are drawn, not used).
    """
    _check_positive(num_classes=num_classes, train_per_class=train_per_class, val_per_class=val_per_class)
    per_class = train_per_class + val_per_class
    drawn_classes = MEMBERS * -(-num_classes // MEMBERS)  # the generator wants a multiple of 5
    images, labels = generate_synthetic(drawn_classes, per_class, seed=seed, image_size=image_size)  # by class
    for i, (image, label) in enumerate(zip(images[: num_classes * per_class], labels)):
        k = i % per_class
        yield ("train" if k < train_per_class else "val"), int(label), k, image


def write_tiny_imagenet_standin(root, num_classes: int = 200, train_per_class: int = 1, val_per_class: int = 1,
                                *, seed: int = 0) -> Path:
    """Write `<root>/tiny-imagenet-200` in the layout of tiny-imagenet-200.zip, 64x64 JPEGs; returns `root`.

    wnids.txt, train/<wnid>/images/<wnid>_<k>.JPEG with train/<wnid>/<wnid>_boxes.txt, and val/images/val_<j>.JPEG
    (one folder for all classes) labelled by val/val_annotations.txt (file, wnid, x0, y0, x1, y1; tab-separated).
    """
    root = Path(root)
    folder, wnids = root / "tiny-imagenet-200", standin_wnids(num_classes)
    (folder / "val" / "images").mkdir(parents=True, exist_ok=True)
    (folder / "wnids.txt").write_text("\n".join(wnids) + "\n")
    annotations, boxes = [], {wnid: [] for wnid in wnids}
    for split, label, k, image in _images_by_class(num_classes, train_per_class, val_per_class, 64, seed):
        wnid = wnids[label]
        if split == "train":
            path = folder / "train" / wnid / "images" / f"{wnid}_{k}.JPEG"
            boxes[wnid].append(f"{path.name}\t0\t0\t63\t63")
        else:
            path = folder / "val" / "images" / f"val_{len(annotations)}.JPEG"
            annotations.append(f"{path.name}\t{wnid}\t0\t0\t63\t63")
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(path)
    for wnid, lines in boxes.items():
        (folder / "train" / wnid / f"{wnid}_boxes.txt").write_text("\n".join(lines) + "\n")
    (folder / "val" / "val_annotations.txt").write_text("\n".join(annotations) + "\n")
    return root


def write_imagenet_standin(root, num_classes: int = 8, train_per_class: int = 2, val_per_class: int = 1,
                           *, seed: int = 0) -> Path:
    """Write `<root>/imagenet/{train,val}/<wnid>/<wnid>_<k>.JPEG`, the ImageFolder layout; returns `root`.

    Both splits are in class folders, as the recipe expects after sorting the official flat val/ archive;
    the images are 64x64 (the transforms resize them like any photo).
    """
    root = Path(root)
    wnids = standin_wnids(num_classes)
    for split, label, k, image in _images_by_class(num_classes, train_per_class, val_per_class, 64, seed):
        path = root / "imagenet" / split / wnids[label] / f"{wnids[label]}_{k}.JPEG"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(path)
    return root
