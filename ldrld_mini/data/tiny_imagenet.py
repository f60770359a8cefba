"""Tiny-ImageNet read from the official `tiny-imagenet-200/` layout (val labelled by val_annotations.txt)."""
from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

from PIL import Image
from torch.utils.data import Dataset

from .report import DatasetReport

__all__ = ["TinyImageNet", "tiny_folder", "check_tiny_imagenet", "read_wnids", "read_val_annotations", "read_rgb",
           "AnnotationError", "CorruptImageError"]

IMAGE_SUFFIXES = (".jpeg", ".jpg", ".png")
_FIX = (
    "download http://cs231n.stanford.edu/tiny-imagenet-200.zip and run `unzip tiny-imagenet-200.zip -d "
    "<root>` (do not re-sort val/ into class folders: this package reads val/val_annotations.txt)."
)


# torchvision has no Tiny-ImageNet dataset; this md5 of the zip is the one Avalanche (ContinualAI) checks when it
# downloads the same URL (the same value is in other public loaders of the zip)
TINY_IMAGENET_MD5 = "90528d7ca1a48142e341f4ef8d21d0de"
TINY_IMAGENET_MD5_SOURCE = ("https://github.com/ContinualAI/avalanche/blob/0a0872087edd295eba6329aee90769bc4fe969d8/"
                            "avalanche/benchmarks/datasets/tiny_imagenet/tiny_imagenet.py (TinyImagenet.md5)")


def tiny_imagenet_archive():
    """tiny-imagenet-200.zip: the course's URL (the registry's `source`) and its published md5."""
    from ..download import Archive
    from .registry import get_info

    return Archive(url=get_info("tiny_imagenet").source, filename="tiny-imagenet-200.zip", md5=TINY_IMAGENET_MD5,
                   checksum_source=TINY_IMAGENET_MD5_SOURCE)


def tiny_folder(root: Path) -> Path:
    """The `tiny-imagenet-200` folder: `root` itself if it holds wnids.txt, else `root/tiny-imagenet-200`."""
    return root if (root / "wnids.txt").is_file() else root / "tiny-imagenet-200"


def read_wnids(folder: Path) -> list[str]:
    """The class ids of wnids.txt, sorted: their position is the class index (pinned, as ImageFolder would)."""
    lines = (folder / "wnids.txt").read_text().split()
    return sorted(set(lines))


class AnnotationError(ValueError):
    """A line of val_annotations.txt is not `file<TAB>wnid<TAB>...`."""


class CorruptImageError(ValueError):
    """An image file of the dataset cannot be decoded (truncated or not an image)."""


def read_val_annotations(folder: Path) -> list[tuple[str, str]]:
    """(file name, wnid) per line of val/val_annotations.txt (tab-separated: file, wnid, x0, y0, x1, y1)."""
    path = folder / "val" / "val_annotations.txt"
    rows = []
    for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
        if line.strip():
            fields = line.split("\t")
            if len(fields) < 2 or not fields[0].strip() or not fields[1].strip():
                raise AnnotationError(f"{path} line {number} is {line[:60]!r}: expected tab-separated fields "
                                      "`<file>\\t<wnid>\\t<x0>\\t<y0>\\t<x1>\\t<y1>`; re-extract val/ from "
                                      "tiny-imagenet-200.zip (an editor may have turned the tabs into spaces)")
            rows.append((fields[0].strip(), fields[1].strip()))
    return rows


def read_rgb(path: str):
    """The image at `path` as RGB; a file PIL cannot decode raises CorruptImageError naming it."""
    try:
        with Image.open(path) as img:
            return img.convert("RGB")
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise CorruptImageError(f"image {path} cannot be read ({type(err).__name__}: {err}): the file is "
                                "truncated or not an image; replace it from the original archive") from None


def _images_in(folder: Path) -> list[str]:
    """Sorted names of the image files directly inside `folder` (empty if it does not exist)."""
    if not folder.is_dir():
        return []
    return sorted(e.name for e in os.scandir(folder) if e.is_file() and e.name.lower().endswith(IMAGE_SUFFIXES))


class TinyImageNet(Dataset):
    """One split of Tiny-ImageNet; `samples` is a list of (path, label) with label = index in sorted wnids."""

    def __init__(self, root: Path, split: str, transform=None):
        if split not in ("train", "val"):
            raise ValueError(f"split={split!r} must be 'train' or 'val'")
        self.folder = tiny_folder(Path(root))
        self.split, self.transform = split, transform
        self.classes = read_wnids(self.folder)
        self.class_to_idx = {wnid: i for i, wnid in enumerate(self.classes)}
        self.samples = self._train_samples() if split == "train" else self._val_samples()
        self.targets = [label for _, label in self.samples]

    def _train_samples(self) -> list[tuple[str, int]]:
        """train/<wnid>/images/*.JPEG, labelled by the folder's wnid."""
        return [(str(self.folder / "train" / w / "images" / f), i)
                for w, i in self.class_to_idx.items() for f in _images_in(self.folder / "train" / w / "images")]

    def _val_samples(self) -> list[tuple[str, int]]:
        """val/images/*.JPEG, labelled by val_annotations.txt (never by folder: val/ has none)."""
        rows = sorted(read_val_annotations(self.folder))
        return [(str(self.folder / "val" / "images" / f), self.class_to_idx[w]) for f, w in rows]

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int):
        """(transformed RGB image, label); a few Tiny-ImageNet JPEGs are grey, hence convert('RGB')."""
        path, label = self.samples[index]
        img = read_rgb(path)
        return (self.transform(img) if self.transform is not None else img), label


def check_tiny_imagenet(root: Path, *, expected_classes: int | None = 200,
                        expected_train_per_class: int | None = 500,
                        expected_val_per_class: int | None = 50) -> DatasetReport:
    """Check the official layout: wnids.txt, train/<wnid>/images, val/images + val_annotations.txt, counts.

    An expected count of None skips that count (the files must still be consistent).
    """
    folder = tiny_folder(root)
    report = DatasetReport("tiny_imagenet", folder, fix=_FIX)
    if not (folder / "wnids.txt").is_file():
        what = "folder does not exist" if not folder.is_dir() else "wnids.txt is missing"
        report.problems.append(f"{folder}: {what} (expected wnids.txt, train/, val/ of tiny-imagenet-200.zip)")
        return report
    wnids = read_wnids(folder)
    report.counts["classes (wnids.txt)"] = len(wnids)
    if expected_classes is not None and len(wnids) != expected_classes:
        report.problems.append(f"wnids.txt lists {len(wnids)} classes, expected {expected_classes}")
    _check_train(report, folder, wnids, expected_train_per_class)
    _check_val(report, folder, wnids, expected_val_per_class)
    return report


def _check_train(report: DatasetReport, folder: Path, wnids: list[str], expected: int | None) -> None:
    """Every wnid has train/<wnid>/images with `expected` images; no folder outside wnids.txt."""
    train = folder / "train"
    if not train.is_dir():
        report.problems.append(f"{train} does not exist")
        return
    extra = sorted({e.name for e in os.scandir(train) if e.is_dir()} - set(wnids))
    if extra:
        report.problems.append(f"train/ has {len(extra)} class folders not in wnids.txt: {_few(extra)}")
    counts = {w: len(_images_in(train / w / "images")) for w in wnids}
    report.counts["train images"] = sum(counts.values())
    missing = [w for w, n in counts.items() if not (train / w / "images").is_dir()]
    if missing:
        report.problems.append(f"train/ lacks {len(missing)} classes of wnids.txt: {_few(missing)} "
                               "(each needs train/<wnid>/images/*.JPEG)")
    _compare_counts(report, "train", {w: n for w, n in counts.items() if w not in missing}, expected)


def _check_val(report: DatasetReport, folder: Path, wnids: list[str], expected: int | None) -> None:
    """val/images + val_annotations.txt agree with each other and with wnids.txt; per-class counts."""
    val, annotations = folder / "val", folder / "val" / "val_annotations.txt"
    if not annotations.is_file():
        hint = (" (val/ looks re-sorted into class folders; re-extract the official val/)"
                if any((val / w).is_dir() for w in wnids) else "")
        report.problems.append(f"{annotations} is missing: it holds the val labels{hint}")
        return
    try:
        rows = read_val_annotations(folder)
    except AnnotationError as err:
        report.problems.append(str(err))
        return
    on_disk = set(_images_in(val / "images"))
    report.counts["val images"] = len(on_disk)
    listed = {f for f, _ in rows}
    unknown = sorted({w for _, w in rows} - set(wnids))
    if unknown:
        report.problems.append(f"val_annotations.txt uses {len(unknown)} wnids not in wnids.txt: {_few(unknown)}")
    if listed - on_disk:
        report.problems.append(f"{len(listed - on_disk)} images listed in val_annotations.txt are missing from "
                               f"val/images: {_few(sorted(listed - on_disk))}")
    if on_disk - listed:
        report.problems.append(f"{len(on_disk - listed)} images in val/images have no line in "
                               f"val_annotations.txt: {_few(sorted(on_disk - listed))}")
    per_class = Counter(w for _, w in rows)
    _compare_counts(report, "val", {w: per_class.get(w, 0) for w in wnids}, expected)


def _compare_counts(report: DatasetReport, split: str, counts: dict[str, int], expected: int | None) -> None:
    """One problem line listing the classes whose image count differs from `expected`."""
    if expected is None:
        return
    wrong = {w: n for w, n in counts.items() if n != expected}
    if wrong:
        shown = ", ".join(f"{w}: {n}" for w, n in list(wrong.items())[:8])
        more = f" (and {len(wrong) - 8} more)" if len(wrong) > 8 else ""
        report.problems.append(f"{split}: {len(wrong)} classes do not have {expected} images: {shown}{more}")


def _few(names: list[str], k: int = 5) -> str:
    """The first `k` names, then '...'."""
    return ", ".join(names[:k]) + (", ..." if len(names) > k else "")
