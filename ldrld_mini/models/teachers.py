"""The published CIFAR-100 teachers (CRD checkpoints): where they live, where to get them, how well they do.

Files are `<name>_vanilla/ckpt_epoch_240.pth` under a teachers folder: the `root` argument, else the
environment variable LDRLD_TEACHERS, else `data/teachers/cifar100` (relative to the working directory);
`teacher_path` is the one resolver, used by training as well. Nothing is downloaded unless `fetch_teachers` is
called. It downloads mdistiller's cifar_teachers.tar through the package's one download path
(`ldrld_mini.download`), and installs a teacher only after its file has loaded strictly into the model of
that name and the accuracy stored in the file has matched the published one (`TeacherInfo.accuracy`).
mdistiller publishes no checksum for cifar_teachers.tar, so none is verified (and none is made up here).
"""
from __future__ import annotations

import dataclasses
import numbers
import os
import re
import shutil
import tarfile
import warnings
from dataclasses import dataclass
from pathlib import Path

from ..download import Archive, DownloadError, fetch_archive

ENV_VAR = "LDRLD_TEACHERS"
DEFAULT_ROOT = Path("data/teachers/cifar100")
MDISTILLER_RELEASE = "https://github.com/megvii-research/mdistiller/releases/tag/checkpoints"
MDISTILLER_URL = "https://github.com/megvii-research/mdistiller/releases/download/checkpoints/cifar_teachers.tar"
CRD_SCRIPT = "https://github.com/HobbitLong/RepDistiller/blob/master/scripts/fetch_pretrained_teachers.sh"
CRD_URL = "http://shape2prog.csail.mit.edu/repo/{name}_vanilla/ckpt_epoch_240.pth"  # used by CRD_SCRIPT
# mdistiller's repository (README, code, every commit up to a08d46f) publishes no checksum of the archive
TEACHERS_ARCHIVE = Archive(url=MDISTILLER_URL, filename="cifar_teachers.tar")
# keys under which CRD/mdistiller-style checkpoints store their test top-1 (%), in the order they are looked up
ACCURACY_KEYS = ("accuracy", "best_acc", "acc", "test_acc")
ACCURACY_TOLERANCE = 0.005  # the published numbers have two decimals


@dataclass(frozen=True)
class TeacherInfo:
    """A published teacher: zoo model name and reported CIFAR-100 top-1 (%)."""

    name: str
    accuracy: float

    @property
    def relative_path(self) -> str:
        """`<name>_vanilla/ckpt_epoch_240.pth`, the CRD file name."""
        return f"{self.name}_vanilla/ckpt_epoch_240.pth"

    @property
    def crd_url(self) -> str:
        return CRD_URL.format(name=self.name)


TEACHERS = {t.name: t for t in (
    TeacherInfo("resnet56", 72.34),
    TeacherInfo("resnet110", 74.31),
    TeacherInfo("resnet32x4", 79.42),
    TeacherInfo("wrn_40_2", 75.61),
    TeacherInfo("vgg13", 74.64),
    TeacherInfo("ResNet50", 79.34),
)}


class TeacherDownloadError(DownloadError):
    """fetch_teachers could not download or unpack the archive; the message says how to do it by hand."""


class TeacherCheckError(TeacherDownloadError):
    """A downloaded teacher failed a check (strict load, stored accuracy); it was not installed."""


def teachers_root(root: str | Path | None = None) -> Path:
    """The teachers folder: `root`, else $LDRLD_TEACHERS, else data/teachers/cifar100."""
    if root is not None:
        return Path(root)
    return Path(os.environ.get(ENV_VAR) or DEFAULT_ROOT)


def _teacher(name: str) -> TeacherInfo:
    if name not in TEACHERS:
        raise ValueError(f"teacher name {name!r} is unknown; published CIFAR-100 teachers: {', '.join(TEACHERS)}")
    return TEACHERS[name]


def teacher_path(name: str, root: str | Path | None = None) -> Path:
    """Expected file of teacher `name` (it may not exist yet)."""
    return teachers_root(root) / _teacher(name).relative_path


def manual_steps(root: Path) -> str:
    """How to put the teachers in place by hand."""
    return (f"Get the teachers by hand: download cifar_teachers.tar from {MDISTILLER_RELEASE} "
            f"(direct link {MDISTILLER_URL}), run `tar xf cifar_teachers.tar`, and move each "
            f"cifar_teachers/<name>_vanilla/ folder into {str(root)!r} (so files end up at "
            f"{str(root / '<name>_vanilla/ckpt_epoch_240.pth')!r}); or fetch single files with CRD's "
            f"script {CRD_SCRIPT}. Set {ENV_VAR} to use another folder.")


def find_teacher(name: str, root: str | Path | None = None) -> Path:
    """Path of teacher `name`'s checkpoint; FileNotFoundError saying where to put it and where to get it."""
    path = teacher_path(name, root)
    if not path.is_file():
        folder = teachers_root(root)
        raise FileNotFoundError(
            f"teacher checkpoint {name!r} not found: expected {str(path)!r}. Download it with "
            f"`ldrld-mini teachers --fetch --root {folder}` (in Python: "
            f"ldrld_mini.models.fetch_teachers({str(folder)!r})) or: {manual_steps(folder)}")
    return path


def fetch_teachers(root: str | Path | None = None, *, url: str = MDISTILLER_URL, timeout: float = 60.0,
                   names: list[str] | None = None, force: bool = False, progress: bool | None = None
                   ) -> dict[str, Path]:
    """Download mdistiller's cifar_teachers.tar from `url`, check each teacher, install it into `root`.

    Skips the download when every requested file is present, and keeps the present ones (force=True replaces
    them). Each unpacked checkpoint is
    loaded strictly into its model and its stored accuracy compared with `TEACHERS[name].accuracy`; only a
    teacher that passes is moved to `teacher_path(name, root)`. Failures raise TeacherCheckError (after the
    teachers that passed are installed); an unreachable network raises TeacherDownloadError with the manual
    steps. `timeout` (s) bounds every network wait; the archive is deleted afterwards.
    """
    root = teachers_root(root)
    wanted = [_teacher(n).name for n in (names or TEACHERS)]
    present = {n: teacher_path(n, root) for n in wanted if not force and teacher_path(n, root).is_file()}
    if len(present) == len(wanted):
        return present
    wanted = [n for n in wanted if n not in present]  # only those are unpacked: a present file is kept
    archive = dataclasses.replace(TEACHERS_ARCHIVE, url=url)
    try:
        path = fetch_archive(archive, root, manual=manual_steps(root), timeout=timeout,
                             progress=True if progress is None else progress)
    except DownloadError as err:
        raise TeacherDownloadError(str(err)) from err
    try:
        found, failures = _unpack_checked(path, root, wanted)
    finally:
        path.unlink(missing_ok=True)
    missing = [n for n in wanted if n not in found and n not in failures]
    if missing:
        warnings.warn(f"the archive at {url} holds no checkpoint for {missing}", stacklevel=2)
    if failures:
        installed = f" The teachers that passed were installed: {sorted(found)}." if found else ""
        raise TeacherCheckError(f"{len(failures)} downloaded teacher(s) failed the checks and were not "
                                f"installed:\n" + "\n".join(f"- {m}" for m in failures.values()) + installed)
    return {**present, **found}


def _unpack_checked(archive: Path, root: Path, wanted: list[str]) -> tuple[dict[str, Path], dict[str, str]]:
    """Copy `*/<name>_vanilla/ckpt_epoch_240.pth` members to a temporary name, check, then install.

    Returns ({name: installed path}, {name: why it failed}).
    """
    pattern = re.compile(r"(?:^|/)([\w]+)_vanilla/ckpt_epoch_240\.pth$")
    found, failures = {}, {}
    try:
        tar = tarfile.open(archive)
    except tarfile.TarError as err:
        raise TeacherDownloadError(f"the download is not a tar archive ({err}). {manual_steps(root)}") from err
    with tar:
        for member in tar.getmembers():
            match = pattern.search(member.name)
            if not (member.isfile() and match and match.group(1) in wanted):
                continue
            name = match.group(1)
            target = teacher_path(name, root)  # our own path: member names never choose it
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_name(target.name + ".unverified")  # never looks like an installed teacher
            try:
                with tar.extractfile(member) as src, open(partial, "wb") as dst:
                    shutil.copyfileobj(src, dst)
                check_teacher_file(name, partial, shown_as=f"{member.name} (from {archive.name})")
            except BaseException as err:
                partial.unlink(missing_ok=True)
                if not isinstance(err, (TeacherCheckError, tarfile.TarError, OSError)):
                    raise
                failures[name] = str(err)
                continue
            partial.replace(target)
            found[name] = target
    return found, failures


def stored_accuracy(checkpoint) -> tuple[str, float] | None:
    """(key, value) of the test top-1 a loaded checkpoint dict stores (first of ACCURACY_KEYS), else None.

    A value may be a Python or numpy number or a one-element tensor (CRD's scripts store either).
    """
    import torch

    if not isinstance(checkpoint, dict):
        return None
    for key in ACCURACY_KEYS:
        value = checkpoint.get(key)
        if isinstance(value, torch.Tensor) and value.numel() == 1:
            value = value.item()
        if isinstance(value, numbers.Real) and not isinstance(value, bool):
            return key, float(value)
    return None


def check_teacher_file(name: str, path: str | Path, *, shown_as: str | None = None) -> float:
    """Load `path` strictly into a fresh `name` model and compare its stored accuracy with the published one.

    Returns the stored accuracy; raises TeacherCheckError naming the file (`shown_as`, default the path),
    the key differences or both accuracies, and what to do.
    """
    from .checkpoints import CheckpointError, load_read_checkpoint, read_checkpoint, summarise_error
    from .registry import build_model

    info = _teacher(name)
    shown = shown_as or str(path)
    todo = (f"Download it again (`ldrld-mini teachers --fetch`); if it fails again, the archive at "
            f"{MDISTILLER_URL} is not the one this package knows: report it, or put a checkpoint you trust "
            f"at {info.relative_path} under the teachers folder by hand")
    model = build_model(name, num_classes=100)
    try:
        raw = read_checkpoint(path)
        load_read_checkpoint(model, raw, path)
    except CheckpointError as err:
        raise TeacherCheckError(f"teacher {name!r} in {shown} does not load strictly into {name}: "
                                f"{summarise_error(err)}. {todo}.") from None
    stored = stored_accuracy(raw)
    if stored is None:
        keys = sorted(map(str, raw)) if isinstance(raw, dict) else "none (a bare state dict)"
        raise TeacherCheckError(f"teacher {name!r} in {shown} stores no accuracy (looked for "
                                f"{', '.join(ACCURACY_KEYS)}; its top-level keys: {keys}), so it cannot be "
                                f"checked against the published top-1 {info.accuracy:.2f}. {todo}.")
    key, value = stored
    if abs(value - info.accuracy) > ACCURACY_TOLERANCE + 1e-9:
        raise TeacherCheckError(f"teacher {name!r} in {shown} stores {key}={value:g}, but the published "
                                f"top-1 of this teacher is {info.accuracy:.2f}: it is not the published "
                                f"checkpoint. {todo}; `ldrld-mini eval` measures a file's top-1.")
    return value


def format_teacher_table(root: str | Path | None = None) -> str:
    """Text table: teacher, reported top-1, expected path, present yes/no (for `ldrld-mini teachers`)."""
    rows = [(t.name, f"{t.accuracy:.2f}", str(teacher_path(t.name, root)),
             "yes" if teacher_path(t.name, root).is_file() else "no") for t in TEACHERS.values()]
    header = ("teacher", "top-1 (%)", "expected path", "present")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(4)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
             for row in [header, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    if any(r[3] == "no" for r in rows):
        lines.append(f"\nSources: mdistiller's cifar_teachers.tar ({MDISTILLER_RELEASE}) or CRD's {CRD_SCRIPT}.")
    return "\n".join(lines)
