"""CIFAR-100 through torchvision's own reader, with a clear message when the files are missing."""
from __future__ import annotations

from pathlib import Path

from torchvision.datasets import CIFAR100
from torchvision.datasets.utils import check_integrity

from .registry import get_info
from .report import DatasetNotReadyError, DatasetReport

__all__ = ["cifar_folder", "check_cifar100", "load_cifar100", "CIFAR100_FILES"]

CIFAR100_FILES = ("train", "test", "meta")
_FIX = (
    "download with build_datasets('cifar100', root, download=True) (needs network), or by hand: fetch "
    "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz and run `tar xzf cifar-100-python.tar.gz "
    "-C <root>`, which creates <root>/cifar-100-python/{train,test,meta}."
)


class UnverifiedCIFAR100(CIFAR100):
    """torchvision's CIFAR100 reader with the md5 checks switched off (files must still exist).

    Used only when `verify_md5=False` is passed: for stand-ins (`standins.py`), whose bytes cannot match the
    published checksums. Everything else (pickle reading, HWC layout, classes) is torchvision's code.
    """

    train_list = [["train", None]]
    test_list = [["test", None]]
    meta = {**CIFAR100.meta, "md5": None}


def cifar_folder(root: Path) -> tuple[Path, Path]:
    """(the root torchvision expects, the `cifar-100-python` folder); accepts either as `root`."""
    base = root.parent if root.name == "cifar-100-python" else root
    return base, base / "cifar-100-python"


def _md5_of(filename: str) -> str | None:
    """The published md5 of one file of the CIFAR-100 python archive."""
    table = dict(CIFAR100.train_list + CIFAR100.test_list)
    return table.get(filename, CIFAR100.meta["md5"] if filename == "meta" else None)


def check_cifar100(root: Path, *, verify_md5: bool = True, expected_train: int | None = None,
                   expected_val: int | None = None) -> DatasetReport:
    """Check `<root>/cifar-100-python/{train,test,meta}` exist (and match md5 / counts when asked)."""
    _, folder = cifar_folder(root)
    report = DatasetReport("cifar100", folder, fix=_FIX)
    if not folder.is_dir():
        report.problems.append(f"folder {folder} does not exist (expected files: train, test, meta)")
        return report
    for filename in CIFAR100_FILES:
        path = folder / filename
        if not path.is_file():
            report.problems.append(f"file {path} is missing")
        elif verify_md5 and not check_integrity(str(path), _md5_of(filename)):
            report.problems.append(f"file {path} does not match the published md5 (corrupted or partial)")
    if report.ok and (expected_train is not None or expected_val is not None):
        _count_cifar(report, root, verify_md5, expected_train, expected_val)
    return report


def _count_cifar(report: DatasetReport, root: Path, verify_md5: bool, expected_train, expected_val) -> None:
    """Load both splits and compare the number of images with the expected counts."""
    for split, expected in (("train", expected_train), ("val", expected_val)):
        ds = load_cifar100(root, train=split == "train", verify_md5=verify_md5, check=False)
        report.counts[f"{split} images"] = len(ds)
        if expected is not None and len(ds) != expected:
            report.problems.append(f"{split} split has {len(ds)} images, expected {expected}")


def load_cifar100(root: Path, *, train: bool, transform=None, download: bool = False,
                  verify_md5: bool = True, check: bool = True) -> CIFAR100:
    """torchvision's CIFAR100 for one split; `.data` is uint8 (N, 32, 32, 3), `.targets` a list of ints."""
    base, _ = cifar_folder(root)
    if download:
        if not verify_md5:
            raise ValueError("verify_md5=False cannot be combined with download=True; pass verify_md5=True")
        _download(base)
    if check:
        check_cifar100(root, verify_md5=verify_md5).raise_if_failed("root", root)
    cls = CIFAR100 if verify_md5 else UnverifiedCIFAR100
    return cls(str(base), train=train, transform=transform, download=False)


def _download(base: Path) -> None:
    """Download + extract the archive with torchvision; a network failure becomes a clear error."""
    try:
        CIFAR100(str(base), train=True, download=True)
    except Exception as err:  # URLError, socket timeouts, HTTP errors ...
        report = DatasetReport("cifar100", base / "cifar-100-python", fix=_FIX)
        report.problems.append(f"download=True failed ({type(err).__name__}: {err}); no network?")
        raise DatasetNotReadyError(report, "root", base) from err


def num_classes_check(ds: CIFAR100) -> None:
    """Sanity: the fine labels of a loaded split lie in [0, 100)."""
    n = get_info("cifar100").num_classes
    if ds.targets and not 0 <= min(ds.targets) <= max(ds.targets) < n:
        raise ValueError(f"CIFAR-100 labels out of range [0, {n}) in {ds.root}; the files are not CIFAR-100")
