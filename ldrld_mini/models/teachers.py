"""The published CIFAR-100 teachers (CRD checkpoints): where they live, where to get them, how well they do.

Files are `<name>_vanilla/ckpt_epoch_240.pth` under a teachers folder: the `root` argument, else the
environment variable LDRLD_TEACHERS, else `data/teachers/cifar100` (relative to the working directory).
Nothing is downloaded unless `fetch_teachers` is called.
"""
from __future__ import annotations

import os
import re
import shutil
import tarfile
import urllib.error
import urllib.request
import warnings
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

ENV_VAR = "LDRLD_TEACHERS"
DEFAULT_ROOT = Path("data/teachers/cifar100")
MDISTILLER_RELEASE = "https://github.com/megvii-research/mdistiller/releases/tag/checkpoints"
MDISTILLER_URL = "https://github.com/megvii-research/mdistiller/releases/download/checkpoints/cifar_teachers.tar"
CRD_SCRIPT = "https://github.com/HobbitLong/RepDistiller/blob/master/scripts/fetch_pretrained_teachers.sh"
CRD_URL = "http://shape2prog.csail.mit.edu/repo/{name}_vanilla/ckpt_epoch_240.pth"  # used by CRD_SCRIPT


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


class TeacherDownloadError(RuntimeError):
    """fetch_teachers could not download the archive; the message says how to do it by hand."""


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


def fetch_teachers(root: str | Path | None = None, *, url: str = MDISTILLER_URL, timeout: float = 20.0,
                   names: list[str] | None = None, force: bool = False, progress: bool | None = None
                   ) -> dict[str, Path]:
    """Download mdistiller's cifar_teachers.tar from `url` and unpack the teachers into `root`.

    Skips the download when every requested file is present (unless force=True). `timeout` (s) bounds
    every network wait; an unreachable network raises TeacherDownloadError with the manual steps.
    """
    root = teachers_root(root)
    wanted = [_teacher(n).name for n in (names or TEACHERS)]
    if not force and all(teacher_path(n, root).is_file() for n in wanted):
        return {n: teacher_path(n, root) for n in wanted}
    root.mkdir(parents=True, exist_ok=True)
    archive = root / "cifar_teachers.tar.part"
    try:
        _download(url, archive, timeout, progress)
        found = _unpack(archive, root, wanted)
    finally:
        archive.unlink(missing_ok=True)
    missing = [n for n in wanted if n not in found]
    if missing:
        warnings.warn(f"the archive at {url} holds no checkpoint for {missing}", stacklevel=2)
    return found


def _download(url: str, destination: Path, timeout: float, progress: bool | None) -> None:
    """Stream `url` to `destination`; network errors become TeacherDownloadError."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, open(destination, "wb") as out:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc="cifar_teachers.tar", leave=False,
                      disable=None if progress is None else not progress) as bar:
                while chunk := response.read(1 << 20):
                    out.write(chunk)
                    bar.update(len(chunk))
    except (urllib.error.URLError, TimeoutError, ConnectionError) as err:
        raise TeacherDownloadError(f"could not download {url} (timeout {timeout} s): {err}. "
                                   f"{manual_steps(destination.parent)}") from err


def _unpack(archive: Path, root: Path, wanted: list[str]) -> dict[str, Path]:
    """Copy `*/<name>_vanilla/ckpt_epoch_240.pth` members of the tar to root/<name>_vanilla/."""
    pattern = re.compile(r"(?:^|/)([\w]+)_vanilla/ckpt_epoch_240\.pth$")
    found = {}
    try:
        tar = tarfile.open(archive)
    except tarfile.TarError as err:
        raise TeacherDownloadError(f"the download is not a tar archive ({err}). {manual_steps(root)}") from err
    with tar:
        for member in tar.getmembers():
            match = pattern.search(member.name)
            if not (member.isfile() and match and match.group(1) in wanted):
                continue
            target = teacher_path(match.group(1), root)  # our own path: member names never choose it
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_name(target.name + ".part")  # a cut-off copy never looks present
            with tar.extractfile(member) as src, open(partial, "wb") as dst:
                shutil.copyfileobj(src, dst)
            partial.replace(target)
            found[match.group(1)] = target
    return found


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
