"""The one download path of the package: CIFAR-100, Tiny-ImageNet and the CIFAR-100 teachers all come through
`fetch_archive` (torch.hub's `download_url_to_file`, with a progress bar) and `unpack_archive` (torchvision's
`extract_archive`).

Nothing is downloaded at import or unless a caller asks (`download=True`, `ldrld-mini prepare-data --download`,
`ldrld-mini teachers --fetch`). A file whose checksum is published is verified before it is used; a file that
fails the check is deleted, so a bad download never sits where a good one would. Without network the error
names the URL and says where to put the file by hand.
"""
from __future__ import annotations

import contextlib
import hashlib
import http.client
import socket
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Archive", "DownloadError", "ChecksumError", "fetch_archive", "unpack_archive", "file_digest"]


class DownloadError(RuntimeError):
    """A download failed (no network, HTTP error, timeout); the message names the URL and the manual steps."""


class ChecksumError(DownloadError):
    """A downloaded file does not match its published checksum; the file has been deleted."""


@dataclass(frozen=True)
class Archive:
    """A file to download: where from, its name on disk, and its published checksum (if one is published).

    `checksum_source` says where the checksum was published (a URL); it is empty when no checksum is known,
    and then nothing is verified (the file's sha256 is still reported, see `file_digest`).
    """

    url: str
    filename: str
    md5: str | None = None
    sha256: str | None = None
    checksum_source: str = ""

    @property
    def checksum(self) -> tuple[str, str] | None:
        """('sha256' or 'md5', hex digest) when a checksum is known, else None (sha256 preferred)."""
        if self.sha256:
            return "sha256", self.sha256.lower()
        if self.md5:
            return "md5", self.md5.lower()
        return None


def file_digest(path: str | Path, algorithm: str = "sha256", chunk: int = 1 << 20) -> str:
    """Hex digest of a file, read in chunks."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


@contextlib.contextmanager
def _socket_timeout(seconds: float | None):
    """Bound every network wait of urllib (torch.hub passes no timeout of its own) for the duration."""
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(previous)


def _verified(path: Path, archive: Archive) -> bool:
    """True when `path` matches the archive's published checksum (False when none is published)."""
    if archive.checksum is None or not path.is_file():
        return False
    algorithm, expected = archive.checksum
    return file_digest(path, algorithm) == expected


def fetch_archive(archive: Archive, folder: str | Path, *, manual: str, progress: bool = True,
                  timeout: float | None = 60.0) -> Path:
    """Download `archive.url` to `folder/archive.filename` (progress bar on stderr) and verify its checksum.

    A file already there that matches the published checksum is used as is. The download goes to a temporary
    name and takes the final name only once it is complete and verified: a failed check deletes it and raises
    ChecksumError; a network failure raises DownloadError. Both messages name the URL and end with `manual`
    (how to get the file by hand). `timeout` (s) bounds every network wait.
    """
    from torch import hub  # looked up at call time, so a test can stand in for the network

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / archive.filename
    if _verified(target, archive):
        return target
    partial = folder / (archive.filename + ".download")  # never the final name until verified
    partial.unlink(missing_ok=True)
    try:
        with _socket_timeout(timeout):
            hub.download_url_to_file(archive.url, str(partial), hash_prefix=None, progress=progress)
    except (OSError, ValueError, http.client.HTTPException) as err:  # URLError, HTTPError, timeouts, bad URL
        partial.unlink(missing_ok=True)
        raise DownloadError(f"could not download {archive.url} ({type(err).__name__}: {err}; timeout "
                            f"{timeout} s). No network? {manual}") from err
    if archive.checksum is not None:
        algorithm, expected = archive.checksum
        got = file_digest(partial, algorithm)
        if got != expected:
            partial.unlink(missing_ok=True)
            raise ChecksumError(
                f"the file downloaded from {archive.url} does not match its published {algorithm} "
                f"(expected {expected}, got {got}; published at {archive.checksum_source or 'see the docs'}): "
                f"the download is incomplete or not the published file, and it has been deleted. Run the "
                f"download again; if it keeps failing, a proxy may be altering the file. {manual}")
    partial.replace(target)
    return target


def unpack_archive(path: str | Path, to: str | Path, *, remove: bool = True) -> Path:
    """Extract a .tar / .tar.gz / .zip with torchvision's `extract_archive` into `to`; delete it if `remove`."""
    from torchvision.datasets.utils import extract_archive

    path, to = Path(path), Path(to)
    try:
        extract_archive(str(path), str(to))
    except Exception as err:  # noqa: BLE001 - tarfile/zipfile errors, a truncated archive ...
        raise DownloadError(f"{str(path)!r} cannot be unpacked ({type(err).__name__}: {err}); delete it and "
                            "download it again") from err
    if remove:
        path.unlink(missing_ok=True)
    return to
