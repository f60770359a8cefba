"""CIFAR-100 in torchvision's layout, its pickles read by a restricted unpickler, with clear messages for
missing, damaged or foreign files."""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
from torchvision.datasets import CIFAR100, VisionDataset
from torchvision.datasets.utils import check_integrity

from .registry import get_info
from .report import DatasetNotReadyError, DatasetReport

__all__ = ["cifar_folder", "check_cifar100", "load_cifar100", "read_cifar_pickle", "CIFARFileError",
           "SafeCIFAR100", "CIFAR100_FILES"]

CIFAR100_FILES = ("train", "test", "meta")
_FIX = (
    "download with `ldrld-mini prepare-data cifar100 --root <root> --download` (in Python: "
    "build_datasets('cifar100', root, download=True); needs network), or by hand: fetch "
    "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz and run `tar xzf cifar-100-python.tar.gz "
    "-C <root>`, which creates <root>/cifar-100-python/{train,test,meta}."
)
# what the CIFAR python pickles hold: dicts, lists, str/bytes, ints and numpy arrays; nothing else is built
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
    ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
    *(("builtins", name) for name in ("list", "dict", "tuple", "set", "frozenset", "bytes", "bytearray", "str",
                                       "int", "float", "bool", "complex")),
    *(("__builtin__", name) for name in ("list", "dict", "tuple", "set", "frozenset", "str", "int", "float",
                                          "bool", "complex", "unicode", "long")),
}


class CIFARFileError(ValueError):
    """A CIFAR-100 pickle is damaged, or holds Python objects that the format never holds."""


class _CIFARUnpickler(pickle.Unpickler):
    """Builds only builtins and numpy arrays: a crafted file cannot name a function to run."""

    def find_class(self, module: str, name: str):
        if (module, name) not in _ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed")
        if module == "__builtin__":
            module = "builtins"
        return super().find_class(module, name)


def read_cifar_pickle(path: Path) -> dict:
    """One CIFAR python file (train, test or meta) as a dict with str keys, read by the restricted unpickler."""
    path = Path(path)
    fix = f"replace it with the official file ({_FIX})"
    try:
        with open(path, "rb") as f:
            entry = _CIFARUnpickler(f, encoding="latin1").load()
    except pickle.UnpicklingError as err:
        if "is not allowed" in str(err):
            raise CIFARFileError(f"{str(path)!r} is not a CIFAR-100 file: it pickles a Python object the format "
                                 f"never holds ({err}), and was not loaded, as it could run code; {fix}") from None
        raise CIFARFileError(f"{str(path)!r} cannot be read as a CIFAR-100 pickle (damaged: {err}); {fix}") from None
    except (EOFError, ValueError, TypeError, IndexError, KeyError, AttributeError, MemoryError) as err:
        raise CIFARFileError(f"{str(path)!r} cannot be read as a CIFAR-100 pickle (truncated or damaged: "
                             f"{type(err).__name__}: {err}); {fix}") from None
    if not isinstance(entry, dict):
        raise CIFARFileError(f"{str(path)!r} holds a {type(entry).__name__}, not a CIFAR-100 dict; {fix}")
    return {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in entry.items()}


def _split_arrays(path: Path) -> tuple[np.ndarray, list[int]]:
    """(uint8 (N, 3072) rows, fine labels) of one split file, checked."""
    entry = read_cifar_pickle(path)
    data, labels = entry.get("data"), entry.get("fine_labels", entry.get("labels"))
    if not (isinstance(data, np.ndarray) and data.ndim == 2 and data.shape[1] == 3072 and isinstance(labels, list)
            and len(labels) == len(data)):
        raise CIFARFileError(f"{str(path)!r} is not a CIFAR-100 split: expected 'data' uint8 (N, 3072) and N "
                             f"'fine_labels'; replace it with the official file ({_FIX})")
    return data, labels


class SafeCIFAR100(CIFAR100):
    """torchvision's CIFAR100 (layout, md5 checks, download), its pickles read by `read_cifar_pickle`."""

    def __init__(self, root, train: bool = True, transform=None, target_transform=None, download: bool = False):
        VisionDataset.__init__(self, root, transform=transform, target_transform=target_transform)
        self.train = train
        if download:
            self.download()
        if not self._check_integrity():
            raise RuntimeError("Dataset not found or corrupted. You can use download=True to download it")
        folder = Path(self.root) / self.base_folder
        parts = [_split_arrays(folder / name) for name, _ in (self.train_list if train else self.test_list)]
        self.data = np.vstack([d for d, _ in parts]).reshape(-1, 3, 32, 32).transpose((0, 2, 3, 1))  # HWC
        self.targets = [int(t) for _, labels in parts for t in labels]
        self._load_meta()

    def _load_meta(self) -> None:
        path = Path(self.root) / self.base_folder / self.meta["filename"]
        if not check_integrity(str(path), self.meta["md5"]):
            raise RuntimeError("Dataset metadata file not found or corrupted. You can use download=True")
        self.classes = read_cifar_pickle(path)[self.meta["key"]]
        self.class_to_idx = {c: i for i, c in enumerate(self.classes)}


class UnverifiedCIFAR100(SafeCIFAR100):
    """SafeCIFAR100 with the md5 checks switched off (files must still exist).

    Used only when `verify_md5=False` is passed: for stand-ins (`standins.py`), whose bytes cannot match the
    published checksums. The pickles are read by the same restricted unpickler.
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
    cls = SafeCIFAR100 if verify_md5 else UnverifiedCIFAR100
    return cls(str(base), train=train, transform=transform, download=False)


# the archive torchvision downloads, with torchvision's own md5 of it (torchvision/datasets/cifar.py)
CIFAR100_ARCHIVE_MD5_SOURCE = "https://github.com/pytorch/vision/blob/main/torchvision/datasets/cifar.py (tgz_md5)"


def cifar100_archive():
    """The CIFAR-100 python archive: torchvision's URL, file name and md5."""
    from ..download import Archive

    return Archive(url=CIFAR100.url, filename=CIFAR100.filename, md5=CIFAR100.tgz_md5,
                   checksum_source=CIFAR100_ARCHIVE_MD5_SOURCE)


def _download(base: Path) -> None:
    """Download the archive through the package's one download path (md5-checked), unpack it into `base`.

    Skipped when the three files are already there and match their md5s; a failure becomes
    DatasetNotReadyError naming the URL and saying where to put the files by hand.
    """
    from ..download import DownloadError, fetch_archive, unpack_archive

    if check_cifar100(base).ok:
        return
    fix = _FIX.replace("<root>", str(base))
    try:
        archive = fetch_archive(cifar100_archive(), base, manual="(The Fix below says how to do it by hand.)")
        unpack_archive(archive, base)
    except DownloadError as err:
        report = DatasetReport("cifar100", base / "cifar-100-python", fix=fix)
        report.problems.append(f"download=True failed: {err}")
        raise DatasetNotReadyError(report, "root", base) from err


def num_classes_check(ds: CIFAR100) -> None:
    """Sanity: the fine labels of a loaded split lie in [0, 100)."""
    n = get_info("cifar100").num_classes
    if ds.targets and not 0 <= min(ds.targets) <= max(ds.targets) < n:
        raise ValueError(f"CIFAR-100 labels out of range [0, {n}) in {ds.root}; the files are not CIFAR-100")
