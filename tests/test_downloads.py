"""The one download path (ldrld_mini.download) for the teachers, CIFAR-100 and Tiny-ImageNet, without network.

torch.hub.download_url_to_file, the only function that touches the network, is replaced by one that copies a
locally built archive in the real format (a tar of teacher .pth files in mdistiller's layout, a zip in
Tiny-ImageNet's layout). Everything of the package's around it runs for real: checksums, unpacking, the
strict load and stored-accuracy check of each teacher, installing where training looks for the files.
"""
from __future__ import annotations

import argparse
import hashlib
import shutil
import socket
import tarfile
import urllib.error
import zipfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from ldrld_mini.data import DatasetNotReadyError, build_datasets
from ldrld_mini.data import tiny_imagenet as tiny
from ldrld_mini.data.standins import write_tiny_imagenet_standin
from ldrld_mini.download import Archive, ChecksumError, DownloadError, fetch_archive
from ldrld_mini.models import (
    TEACHERS,
    TeacherCheckError,
    TeacherDownloadError,
    build_model,
    fetch_teachers,
    find_teacher,
    format_teacher_table,
    load_checkpoint,
    teacher_path,
)
from ldrld_mini.models.teachers import MDISTILLER_URL
from ldrld_mini.train.teacher import _published_teacher

TINY_URL = "http://cs231n.stanford.edu/tiny-imagenet-200.zip"
CIFAR_URL = "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"


@pytest.fixture
def network(monkeypatch):
    """A stand-in for the network: `network.files[url] = local file`; every call is recorded in `calls`.

    An unknown URL fails as an unreachable host does (URLError).
    """
    net = SimpleNamespace(files={}, calls=[])

    def download_url_to_file(url, dst, hash_prefix=None, progress=True):
        net.calls.append({"url": url, "dst": Path(dst), "progress": progress})
        if url not in net.files:
            raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")
        shutil.copyfile(net.files[url], dst)

    monkeypatch.setattr(torch.hub, "download_url_to_file", download_url_to_file)
    return net


def _teacher_file(path: Path, name: str, *, accuracy, weights_of: str | None = None, seed: int = 0,
                  key: str = "accuracy") -> Path:
    """A CRD-style checkpoint of a randomly initialised `name`: weights under 'model', the accuracy under
    `key`, the training options as an argparse.Namespace (as CRD's train_teacher.py keeps them)."""
    torch.manual_seed(seed)
    model = build_model(weights_of or name, num_classes=100)
    entry = {"epoch": 240, "model": model.state_dict(), "opt": argparse.Namespace(model=name, epochs=240)}
    if accuracy is not None:
        entry[key] = accuracy
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(entry, path)
    return path


def _teachers_tar(tmp_path: Path, members: dict[str, Path]) -> Path:
    """cifar_teachers.tar in mdistiller's layout: cifar_teachers/<name>_vanilla/ckpt_epoch_240.pth."""
    archive = tmp_path / "served" / "cifar_teachers.tar"
    archive.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "w") as tar:
        for name, file in members.items():
            tar.add(file, arcname=f"cifar_teachers/{name}_vanilla/ckpt_epoch_240.pth")
    return archive


def _leftovers(folder: Path) -> list[str]:
    """Files in `folder` that are neither installed teachers nor anything the user put there."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")
                  if p.is_file() and (p.suffix in (".unverified", ".download", ".partial", ".tar")))


# ---------------------------------------------------------------- teachers


def test_fetch_installs_checked_teachers_where_training_looks(tmp_path, network, monkeypatch):
    made = tmp_path / "made"
    network.files[MDISTILLER_URL] = _teachers_tar(tmp_path, {
        "resnet56": _teacher_file(made / "a.pth", "resnet56", accuracy=np.float64(72.34)),  # a numpy number
        "wrn_40_2": _teacher_file(made / "b.pth", "wrn_40_2", accuracy=torch.tensor(75.61)),  # a 0-dim tensor
    })
    root = tmp_path / "teachers"
    monkeypatch.setenv("LDRLD_TEACHERS", str(root))  # the folder comes from the environment, as in training
    found = fetch_teachers(names=["resnet56", "wrn_40_2"], progress=True)

    assert len(network.calls) == 1 and network.calls[0]["url"] == MDISTILLER_URL and network.calls[0]["progress"]
    assert found == {n: root / f"{n}_vanilla/ckpt_epoch_240.pth" for n in ("resnet56", "wrn_40_2")}
    for name, path in found.items():
        assert path == teacher_path(name) == find_teacher(name)
        cfg = SimpleNamespace(dataset="cifar100", model=SimpleNamespace(teacher=name))
        assert _published_teacher(cfg) == path  # the resolver the engine uses finds the installed file
    reference = build_model("resnet56", num_classes=100)
    torch.manual_seed(0)
    expected = build_model("resnet56", num_classes=100).state_dict()
    load_checkpoint(reference, found["resnet56"])  # the check's allow-list is the loader's: no --trust-pickle
    assert all(torch.equal(reference.state_dict()[k], v) for k, v in expected.items())  # the same bytes
    assert _leftovers(root) == []  # archive deleted, no half-checked file
    table = format_teacher_table(root)
    assert "resnet56    72.34" in table and table.count(" yes") == 2 and table.count(" no") == 4

    assert fetch_teachers(names=["resnet56", "wrn_40_2"]) == found and len(network.calls) == 1  # present: no call


def test_fetch_refuses_a_teacher_that_does_not_load_strictly(tmp_path, network):
    made = tmp_path / "made"
    network.files[MDISTILLER_URL] = _teachers_tar(tmp_path, {
        "resnet56": _teacher_file(made / "a.pth", "resnet56", accuracy=72.34, weights_of="resnet20"),
        "wrn_40_2": _teacher_file(made / "b.pth", "wrn_40_2", accuracy=75.61),
    })
    root = tmp_path / "teachers"
    with pytest.raises(TeacherCheckError) as info:
        fetch_teachers(root, names=["resnet56", "wrn_40_2"], progress=False)
    message = str(info.value)
    assert "cifar_teachers/resnet56_vanilla/ckpt_epoch_240.pth" in message and "strictly into resnet56" in message
    # resnet20 has 3 blocks a stage, resnet56 has 9: the missing keys are counted and the first few named
    assert "missing from the checkpoint (" in message and "layer1.3.conv1.weight" in message and "more)" in message
    assert "Download it again" in message and "by hand" in message
    assert "installed: ['wrn_40_2']" in message  # the teacher that passed is installed
    assert not teacher_path("resnet56", root).exists() and teacher_path("wrn_40_2", root).is_file()
    assert _leftovers(root) == []


@pytest.mark.parametrize("stored", [70.0, 0.7234])
def test_fetch_refuses_a_teacher_whose_stored_accuracy_differs(tmp_path, network, stored):
    network.files[MDISTILLER_URL] = _teachers_tar(tmp_path, {
        "resnet56": _teacher_file(tmp_path / "made.pth", "resnet56", accuracy=stored, key="best_acc")})
    root = tmp_path / "teachers"
    with pytest.raises(TeacherCheckError) as info:
        fetch_teachers(root, names=["resnet56"], progress=False)
    message = str(info.value)
    assert f"stores best_acc={stored:g}" in message and "published top-1 of this teacher is 72.34" in message
    assert "resnet56_vanilla/ckpt_epoch_240.pth" in message and "Download it again" in message
    assert not teacher_path("resnet56", root).exists() and _leftovers(root) == []


def test_fetch_accepts_the_published_accuracy_as_float32(tmp_path, network):
    """79.42 stored as float32 is 79.41999816...: still the published number."""
    network.files[MDISTILLER_URL] = _teachers_tar(tmp_path, {
        "resnet56": _teacher_file(tmp_path / "made.pth", "resnet56", accuracy=np.float32(72.34))})
    assert fetch_teachers(tmp_path / "t", names=["resnet56"], progress=False)["resnet56"].is_file()


def test_fetch_reads_a_pre_zip_checkpoint_pickled_under_numpy_1(tmp_path, network):
    """The 2019 CRD files predate torch's zip format and numpy 2: their accuracy is a numpy float64 pickled as
    numpy.core.multiarray.scalar. The check reads such a file without trusting arbitrary pickles."""
    torch.manual_seed(0)
    entry = {"epoch": 240, "model": build_model("resnet56", num_classes=100).state_dict(),
             "accuracy": np.float64(72.34), "opt": argparse.Namespace(model="resnet56")}
    path = tmp_path / "legacy.pth"
    torch.save(entry, path, _use_new_zipfile_serialization=False)
    raw = path.read_bytes()
    assert raw.count(b"numpy._core.multiarray\nscalar") == 1
    path.write_bytes(raw.replace(b"numpy._core.multiarray\nscalar", b"numpy.core.multiarray\nscalar"))
    network.files[MDISTILLER_URL] = _teachers_tar(tmp_path, {"resnet56": path})
    assert fetch_teachers(tmp_path / "t", names=["resnet56"], progress=False)["resnet56"].is_file()


def test_fetch_refuses_a_teacher_without_a_stored_accuracy(tmp_path, network):
    network.files[MDISTILLER_URL] = _teachers_tar(tmp_path, {
        "resnet56": _teacher_file(tmp_path / "made.pth", "resnet56", accuracy=None)})
    with pytest.raises(TeacherCheckError, match=r"stores no accuracy .*'epoch', 'model', 'opt'.*72\.34"):
        fetch_teachers(tmp_path / "t", names=["resnet56"], progress=False)
    assert not teacher_path("resnet56", tmp_path / "t").exists()


def test_fetch_offline_names_the_url_and_where_to_put_the_files(tmp_path, network):
    root = tmp_path / "teachers"
    with pytest.raises(TeacherDownloadError) as info:
        fetch_teachers(root, names=["resnet32x4"], progress=False)
    message = str(info.value)
    assert MDISTILLER_URL in message and "name resolution" in message and "tar xf cifar_teachers.tar" in message
    assert str(root / "<name>_vanilla/ckpt_epoch_240.pth") in message
    assert len(network.calls) == 1 and _leftovers(root) == []


def test_fetch_restores_the_socket_timeout(tmp_path, network):
    seen = []
    network.files[MDISTILLER_URL] = _teachers_tar(tmp_path, {
        "resnet56": _teacher_file(tmp_path / "made.pth", "resnet56", accuracy=72.34)})
    copy = torch.hub.download_url_to_file

    def spy(*args, **kwargs):
        seen.append(socket.getdefaulttimeout())
        return copy(*args, **kwargs)

    before = socket.getdefaulttimeout()
    torch.hub.download_url_to_file = spy
    try:
        fetch_teachers(tmp_path / "t", names=["resnet56"], timeout=7.0, progress=False)
    finally:
        torch.hub.download_url_to_file = copy
    assert seen == [7.0] and socket.getdefaulttimeout() == before


def test_every_teacher_has_a_model_the_check_can_build():
    for name in TEACHERS:
        assert sum(p.numel() for p in build_model(name, num_classes=100).parameters()) > 0


# ---------------------------------------------------------------- the shared path: checksums


def test_fetch_archive_deletes_a_file_that_fails_its_checksum(tmp_path, network):
    served = tmp_path / "served.bin"
    served.write_bytes(b"not the published bytes")
    network.files["https://example.org/f.bin"] = served
    folder = tmp_path / "dl"
    wrong = Archive("https://example.org/f.bin", "f.bin", sha256="0" * 64, checksum_source="https://example.org/SUMS")
    with pytest.raises(ChecksumError) as info:
        fetch_archive(wrong, folder, manual="MANUAL STEPS", progress=False)
    message = str(info.value)
    assert "https://example.org/f.bin" in message and "0" * 64 in message
    assert hashlib.sha256(served.read_bytes()).hexdigest() in message and "https://example.org/SUMS" in message
    assert "deleted" in message and message.endswith("MANUAL STEPS")
    assert sorted(p.name for p in folder.iterdir()) == []  # neither f.bin nor a partial file is left

    right = Archive("https://example.org/f.bin", "f.bin", sha256=hashlib.sha256(served.read_bytes()).hexdigest())
    path = fetch_archive(right, folder, manual="", progress=False)
    assert path == folder / "f.bin" and path.read_bytes() == served.read_bytes()
    assert fetch_archive(right, folder, manual="", progress=False) == path and len(network.calls) == 2  # reused


def test_fetch_archive_offline_is_a_download_error(tmp_path, network):
    with pytest.raises(DownloadError, match=r"could not download https://example.org/x\.zip .*name resolution"):
        fetch_archive(Archive("https://example.org/x.zip", "x.zip"), tmp_path, manual="", progress=False)
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- datasets


def _tiny_zip(tmp_path: Path) -> Path:
    """tiny-imagenet-200.zip in the published layout (tiny-imagenet-200/ at the top), 2 classes."""
    write_tiny_imagenet_standin(tmp_path / "built", num_classes=2, train_per_class=2, val_per_class=1)
    archive = tmp_path / "served" / "tiny-imagenet-200.zip"
    archive.parent.mkdir()
    with zipfile.ZipFile(archive, "w") as zf:
        for file in sorted((tmp_path / "built").rglob("*")):
            zf.write(file, file.relative_to(tmp_path / "built"))
    return archive


def test_tiny_imagenet_download_checks_md5_unpacks_and_loads(tmp_path, network, monkeypatch):
    archive = _tiny_zip(tmp_path)
    network.files[TINY_URL] = archive
    monkeypatch.setattr(tiny, "TINY_IMAGENET_MD5", hashlib.md5(archive.read_bytes()).hexdigest())
    root = tmp_path / "data"
    train, val = build_datasets("tiny_imagenet", root, download=True, train_aug=False, strict=False)
    assert (len(train), len(val), len(network.calls)) == (4, 2, 1) and network.calls[0]["progress"]
    assert (root / "tiny-imagenet-200" / "wnids.txt").is_file() and not (root / "tiny-imagenet-200.zip").exists()
    build_datasets("tiny_imagenet", root, download=True, train_aug=False, strict=False)
    assert len(network.calls) == 1  # already there: nothing downloaded


def test_tiny_imagenet_md5_mismatch_leaves_nothing_behind(tmp_path, network):
    network.files[TINY_URL] = _tiny_zip(tmp_path)  # not the published zip: the real md5 cannot match
    root = tmp_path / "data"
    with pytest.raises(DatasetNotReadyError) as info:
        build_datasets("tiny_imagenet", root, download=True, strict=False)
    message = str(info.value)
    assert TINY_URL in message and tiny.TINY_IMAGENET_MD5 in message and "avalanche" in message
    assert f"unzip tiny-imagenet-200.zip -d {root}" in message
    assert sorted(p.name for p in root.iterdir()) == []  # no zip, no partial file, no half-unpacked folder


def test_tiny_imagenet_downloads_only_when_asked(tmp_path, network):
    with pytest.raises(DatasetNotReadyError, match="wnids.txt"):
        build_datasets("tiny_imagenet", tmp_path / "data")
    assert network.calls == []


def test_tiny_imagenet_offline_names_the_url_and_the_manual_steps(tmp_path, network):
    root = tmp_path / "data"
    with pytest.raises(DatasetNotReadyError) as info:
        build_datasets("tiny_imagenet", root, download=True)
    message = str(info.value)
    assert f"could not download {TINY_URL}" in message and f"unzip tiny-imagenet-200.zip -d {root}" in message


def test_cifar100_download_checks_torchvisions_md5(tmp_path, network):
    from torchvision.datasets import CIFAR100

    served = tmp_path / "served" / "cifar-100-python.tar.gz"
    served.parent.mkdir()
    with tarfile.open(served, "w:gz") as tar:  # the right layout, not the published bytes
        info = tarfile.TarInfo("cifar-100-python/meta")
        tar.addfile(info)
    network.files[CIFAR_URL] = served
    root = tmp_path / "data"
    with pytest.raises(DatasetNotReadyError) as err:
        build_datasets("cifar100", root, download=True)
    message = str(err.value)
    assert CIFAR_URL in message and CIFAR100.tgz_md5 in message and "torchvision" in message
    assert f"tar xzf cifar-100-python.tar.gz -C {root}" in message
    assert len(network.calls) == 1 and network.calls[0]["progress"]
    assert sorted(p.name for p in root.iterdir()) == []


def test_the_real_torch_hub_downloader_reads_a_file_url(tmp_path):
    """No stand-in here: torch.hub's own downloader, fed a file:// URL (no network), through fetch_archive."""
    served = tmp_path / "served.tar"
    served.write_bytes(b"x" * 3000)
    digest = hashlib.sha256(served.read_bytes()).hexdigest()
    path = fetch_archive(Archive(served.as_uri(), "got.tar", sha256=digest), tmp_path / "dl", manual="",
                         progress=False)
    assert path.read_bytes() == served.read_bytes() and sorted(p.name for p in path.parent.iterdir()) == ["got.tar"]
    with pytest.raises(DownloadError, match="could not download file://.*missing.tar"):
        fetch_archive(Archive((tmp_path / "missing.tar").as_uri(), "m.tar"), tmp_path / "dl2", manual="",
                      progress=False)
    assert list((tmp_path / "dl2").iterdir()) == []


def test_the_docs_table_gives_the_checksums_the_code_checks():
    from ldrld_mini.data.cifar import cifar100_archive
    from ldrld_mini.models.teachers import TEACHERS_ARCHIVE

    text = (Path(__file__).resolve().parents[1] / "docs" / "data.md").read_text()
    rows = {line.split("|")[1].strip(" `"): line for line in text.splitlines() if line.startswith("| `")}
    for archive in (cifar100_archive(), tiny.tiny_imagenet_archive(), TEACHERS_ARCHIVE):
        row = rows[archive.filename]
        assert archive.url in row
        if archive.checksum is None:
            assert "| none |" in row
        else:
            assert f"{archive.checksum[0]} `{archive.checksum[1]}`" in row
            assert archive.checksum_source.split(" ")[0].split("/blob/")[0] in row


def _ldrld_mini(capsys, *argv):
    """(exit status, stdout, stderr) of `ldrld-mini argv...` run in this process."""
    from ldrld_mini.cli import main

    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_the_teachers_fetch_command_installs_and_reports(tmp_path, network, capsys):
    network.files[MDISTILLER_URL] = _teachers_tar(tmp_path, {
        "resnet56": _teacher_file(tmp_path / "a.pth", "resnet56", accuracy=72.34),
        "resnet110": _teacher_file(tmp_path / "b.pth", "resnet110", accuracy=74.0)})  # published: 74.31
    root = tmp_path / "teachers"
    with pytest.warns(UserWarning, match="holds no checkpoint for"):
        code, out, err = _ldrld_mini(capsys, "teachers", "--root", str(root), "--fetch")
    assert code == 2 and "Traceback" not in err and "resnet110" in err and "74.31" in err  # the bad one: exit 2
    assert teacher_path("resnet56", root).is_file() and not teacher_path("resnet110", root).exists()
    network.files[MDISTILLER_URL] = _teachers_tar(tmp_path, {
        "resnet56": _teacher_file(tmp_path / "c.pth", "resnet56", accuracy=72.34, seed=1),
        "resnet110": _teacher_file(tmp_path / "b.pth", "resnet110", accuracy=74.31)})
    before = teacher_path("resnet56", root).read_bytes()
    with pytest.warns(UserWarning, match=r"no checkpoint for \['resnet32x4', 'wrn_40_2', 'vgg13', 'ResNet50'\]"):
        code, out, err = _ldrld_mini(capsys, "teachers", "--root", str(root), "--fetch")
    assert code == 0 and len(network.calls) == 2
    assert teacher_path("resnet110", root).is_file() and teacher_path("resnet56", root).read_bytes() == before
    assert [line.split()[-1] for line in out.splitlines()[2:8]] == ["yes", "yes", "no", "no", "no", "no"]
