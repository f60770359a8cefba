"""Tests of ldrld_mini.data.standins: stand-ins read through the real loaders and checks, and break like real data."""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ldrld_mini.data import (
    DatasetNotReadyError, build_datasets, build_loaders, check_dataset, class_names, generate_synthetic,
    superclass_names, write_cifar100_standin, write_imagenet_standin, write_tiny_imagenet_standin,
)
from ldrld_mini.data.standins import standin_wnids


def _nearest(image: np.ndarray, candidates: np.ndarray) -> int:
    """Index of the candidate (N, H, W, 3) closest to `image` (H, W, 3): which source a JPEG was written from."""
    diff = candidates.astype(np.float64) - image.astype(np.float64)  # (N, H, W, 3)
    return int(np.abs(diff).mean(axis=(1, 2, 3)).argmin())


# ---------------------------------------------------------------- CIFAR-100
def test_cifar100_standin_reads_like_the_published_files(tmp_path):
    folder = write_cifar100_standin(tmp_path) / "cifar-100-python"
    with open(folder / "train", "rb") as f:
        entry = pickle.load(f, encoding="bytes")  # the CIFAR website's own loading snippet
    assert set(entry) == {b"data", b"fine_labels", b"coarse_labels", b"filenames", b"batch_label"}
    assert entry[b"data"].dtype == np.uint8 and entry[b"data"].shape == (200, 3072)
    assert entry[b"fine_labels"] == [c for c in range(100) for _ in range(2)]
    assert entry[b"coarse_labels"] == [c // 5 for c in entry[b"fine_labels"]]
    assert entry[b"batch_label"] == b"training batch 1 of 1" and entry[b"filenames"][0] == b"train_00000.png"
    with open(folder / "meta", "rb") as f:
        meta = pickle.load(f, encoding="bytes")
    assert meta[b"fine_label_names"] == [name.encode() for name in class_names(100)]
    assert meta[b"coarse_label_names"] == [name.encode() for name in superclass_names(100)]


def test_cifar100_standin_loads_with_its_counts_and_images(tmp_path):
    root = write_cifar100_standin(tmp_path, train_per_class=2, test_per_class=1, seed=3)
    report = check_dataset("cifar100", root, verify_md5=False, expected_train=200, expected_val=100)
    assert report.ok and report.counts == {"train images": 200, "val images": 100}, report.format()
    train, val = build_datasets("cifar100", root, train_aug=False, verify_md5=False)
    assert train.classes == class_names(100) and val.targets == list(range(100))
    images, labels = generate_synthetic(100, 2, seed=3)  # (200, 32, 32, 3): the pickles are lossless
    np.testing.assert_array_equal(train.data, images)
    assert train.targets == labels.tolist()


def test_cifar100_standin_fails_the_md5_and_a_missing_file(tmp_path):
    root = write_cifar100_standin(tmp_path, train_per_class=1, test_per_class=1)
    report = check_dataset("cifar100", root)
    assert not report.ok and report.format().count("does not match the published md5") == 3
    (root / "cifar-100-python" / "meta").unlink()
    with pytest.raises(DatasetNotReadyError, match="meta is missing"):
        build_datasets("cifar100", root, verify_md5=False)


# ---------------------------------------------------------------- Tiny-ImageNet
TINY = dict(num_classes=7, train_per_class=2, val_per_class=1)  # 7: not a multiple of the generator's 5
TINY_COUNTS = dict(expected_classes=7, expected_train_per_class=2, expected_val_per_class=1)


def test_tiny_imagenet_standin_layout(tmp_path):
    folder = write_tiny_imagenet_standin(tmp_path, **TINY) / "tiny-imagenet-200"
    wnids = (folder / "wnids.txt").read_text().split()
    assert wnids == standin_wnids(7) and all(len(w) == 9 and w[0] == "n" and w[1:].isdigit() for w in wnids)
    assert sorted(p.name for p in (folder / "train" / wnids[0]).iterdir()) == ["images", f"{wnids[0]}_boxes.txt"]
    assert sorted(p.name for p in (folder / "val").iterdir()) == ["images", "val_annotations.txt"]
    lines = (folder / "val" / "val_annotations.txt").read_text().splitlines()
    assert lines[:2] == [f"val_0.JPEG\t{wnids[0]}\t0\t0\t63\t63", f"val_1.JPEG\t{wnids[1]}\t0\t0\t63\t63"]


def test_tiny_imagenet_standin_loads_with_the_labels_of_its_images(tmp_path):
    root = write_tiny_imagenet_standin(tmp_path, **TINY, seed=1)
    report = check_dataset("tiny_imagenet", root, **TINY_COUNTS)
    assert report.ok and report.counts["train images"] == 14 and report.counts["val images"] == 7, report.format()
    train, val = build_datasets("tiny_imagenet", root, train_aug=False, **TINY_COUNTS)
    assert train.classes == standin_wnids(7) and train.targets == [c for c in range(7) for _ in range(2)]
    images, _ = generate_synthetic(10, 3, seed=1, image_size=64)  # (30, 64, 64, 3): 2 train + 1 val per class
    val_sources = images[2:21:3]  # (7, 64, 64, 3): the val image of classes 0..6
    for path, label in val.samples:  # the label read from val_annotations.txt names the class the JPEG shows
        assert _nearest(np.asarray(Image.open(path)), val_sources) == label
    train_loader, val_loader = build_loaders("tiny_imagenet", root, batch_size=4, **TINY_COUNTS)
    assert len(train_loader) == 4 and sorted(y for _, ys in val_loader for y in ys.tolist()) == list(range(7))


def test_tiny_imagenet_standin_defaults_are_the_notebooks(tmp_path):
    root = write_tiny_imagenet_standin(tmp_path)  # 200 classes, 1 train + 1 val image each
    assert not check_dataset("tiny_imagenet", root).ok  # the official counts: 500 + 50 per class
    report = check_dataset("tiny_imagenet", root, expected_train_per_class=1, expected_val_per_class=1)
    assert report.ok and report.counts == {"classes (wnids.txt)": 200, "train images": 200, "val images": 200}


def test_tiny_imagenet_standin_broken_like_a_hand_fixed_copy(tmp_path):
    folder = write_tiny_imagenet_standin(tmp_path, **TINY) / "tiny-imagenet-200"
    (folder / "val" / "val_annotations.txt").unlink()
    report = check_dataset("tiny_imagenet", tmp_path, **TINY_COUNTS)
    assert not report.ok and "val_annotations.txt is missing" in report.format()
    with pytest.raises(DatasetNotReadyError, match="val_annotations.txt is missing"):
        build_datasets("tiny_imagenet", tmp_path, **TINY_COUNTS)


# ---------------------------------------------------------------- ImageNet
def test_imagenet_standin_loads_as_two_image_folders(tmp_path):
    root = write_imagenet_standin(tmp_path, num_classes=7, train_per_class=2, val_per_class=1)
    report = check_dataset("imagenet", root, expected_classes=7, expected_val_per_class=1)
    assert report.ok, report.format()
    assert report.counts == {"train classes": 7, "val classes": 7, "train images": 14, "val images": 7}
    train, val = build_datasets("imagenet", root, expected_classes=7, expected_val_per_class=1)
    assert train.classes == val.classes == standin_wnids(7)
    assert val.targets == list(range(7)) and train.targets == [c for c in range(7) for _ in range(2)]
    assert [Path(p).name for p, _ in val.samples[:2]] == ["n09000000_2.JPEG", "n09000017_2.JPEG"]


def test_imagenet_standin_defaults_and_a_missing_split(tmp_path):
    root = write_imagenet_standin(tmp_path)  # 8 classes, 2 train + 1 val image each
    report = check_dataset("imagenet", root, expected_classes=None, expected_val_per_class=None)
    assert report.ok and report.counts["train images"] == 16 and report.counts["val images"] == 8
    for image in (root / "imagenet" / "val").glob("*/*.JPEG"):
        image.unlink()
    for folder in (root / "imagenet" / "val").iterdir():
        folder.rmdir()
    (root / "imagenet" / "val").rmdir()
    report = check_dataset("imagenet", root, expected_classes=None, expected_val_per_class=None)
    assert not report.ok and "val does not exist" in report.format()


# ---------------------------------------------------------------- arguments
@pytest.mark.parametrize("write, kw", [
    (write_cifar100_standin, {"train_per_class": 0}),
    (write_tiny_imagenet_standin, {"val_per_class": 0}),
    (write_imagenet_standin, {"num_classes": 0}),
])
def test_bad_counts_name_the_argument(tmp_path, write, kw):
    name, value = next(iter(kw.items()))
    with pytest.raises(ValueError, match=f"{name}={value}"):
        write(tmp_path, **kw)


def test_same_arguments_write_the_same_bytes(tmp_path):
    a, b = write_imagenet_standin(tmp_path / "a", 3, 1, 1), write_imagenet_standin(tmp_path / "b", 3, 1, 1)
    files = sorted(p.relative_to(a) for p in a.rglob("*.JPEG"))
    assert files == sorted(p.relative_to(b) for p in b.rglob("*.JPEG")) and len(files) == 6
    assert all((a / f).read_bytes() == (b / f).read_bytes() for f in files)
