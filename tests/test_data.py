"""Tests of ldrld_mini.data: real on-disk formats in tmp_path, the GPU-resident loader (on CPU), the offline sets."""
from __future__ import annotations

import hashlib
import pickle

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import transforms as T
from torch.utils.data.distributed import DistributedSampler

from ldrld_mini.data import (
    DATASETS, DatasetNotReadyError, DeviceLoader, build_datasets, build_loaders, check_dataset,
    class_names, crop_flip, generate_synthetic, superclass_names, normalise, superclass_map, superclass_of,
    write_cifar100_standin, write_imagenet_standin,
)
from ldrld_mini.data.device_loader import _SEED_STRIDE, epoch_generator

CIFAR_MEAN, CIFAR_STD = DATASETS["cifar100"].mean, DATASETS["cifar100"].std


# ---------------------------------------------------------------- CIFAR-100 in its real pickle format
@pytest.fixture
def cifar_root(tmp_path):
    """<tmp>/cifar-100-python/{train,test,meta}: 200 train and 100 test images in the published layout."""
    return write_cifar100_standin(tmp_path, train_per_class=2, test_per_class=1)


def test_cifar100_loads_through_torchvision(cifar_root):
    train, val = build_datasets("cifar100", cifar_root, train_aug=False, verify_md5=False)
    assert (len(train), len(val), len(train.classes)) == (200, 100, 100)
    with open(cifar_root / "cifar-100-python" / "train", "rb") as f:
        raw = pickle.load(f, encoding="bytes")
    i, r, c = 3, 5, 7
    assert [train.data[i, r, c, k] for k in range(3)] == [raw[b"data"][i, k * 1024 + r * 32 + c] for k in range(3)]
    assert train.targets == raw[b"fine_labels"]
    x, y = train[i]
    pixels = torch.as_tensor(train.data[i]).permute(2, 0, 1).float() / 255  # (3, 32, 32)
    mean, std = torch.tensor(CIFAR_MEAN)[:, None, None], torch.tensor(CIFAR_STD)[:, None, None]
    torch.testing.assert_close(x, (pixels - mean) / std)
    assert y == raw[b"fine_labels"][i]


def test_cifar100_md5_is_checked_by_default(cifar_root):
    with pytest.raises(DatasetNotReadyError, match="md5"):
        build_datasets("cifar100", cifar_root)


def test_cifar100_missing_names_folder_files_and_fix(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        build_datasets("cifar100", tmp_path)
    msg = str(err.value)
    for needle in ("root=", str(tmp_path), "cifar-100-python", "train, test, meta", "download=True", "tar xzf"):
        assert needle in msg


def test_cifar100_half_prepared_names_the_missing_file(cifar_root):
    (cifar_root / "cifar-100-python" / "meta").unlink()
    with pytest.raises(DatasetNotReadyError, match=r"meta is missing"):
        build_datasets("cifar100", cifar_root, verify_md5=False)
    report = check_dataset("cifar100", cifar_root, verify_md5=False)
    assert not report.ok and "meta is missing" in report.format()


def test_cifar100_check_counts(cifar_root):
    assert not check_dataset("cifar100", cifar_root, verify_md5=False).ok  # expects 50000 / 10000
    report = check_dataset("cifar100", cifar_root, verify_md5=False, expected_train=200, expected_val=100)
    assert report.ok, report.format()
    assert report.counts == {"train images": 200, "val images": 100}


def test_cifar100_root_default_is_env_var(cifar_root, monkeypatch):
    monkeypatch.setenv("LDRLD_DATA", str(cifar_root))
    train, _ = build_datasets("cifar100", verify_md5=False)
    assert len(train) == 200


def test_cifar100_loaders_both_paths(cifar_root):
    for gpu_resident in (False, True):
        train, val = build_loaders("cifar100", cifar_root, batch_size=64, gpu_resident=gpu_resident, verify_md5=False)
        x, y = next(iter(train))
        assert x.shape == (64, 3, 32, 32) and x.dtype == torch.float32 and y.dtype == torch.int64
        assert len(train) == 4 and len(val) == 2
        assert sum(len(y) for _, y in val) == 100


# ---------------------------------------------------------------- Tiny-ImageNet, official layout
WNIDS = ["n03", "n01", "n02"]  # wnids.txt is not sorted: the index must follow the sorted order


def _jpeg(path, value: int, size: int = 64, grey: bool = False) -> None:
    """A flat JPEG of intensity `value` (RGB, or L for the few grey Tiny-ImageNet images)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    mode, fill = ("L", value) if grey else ("RGB", (value,) * 3)
    Image.new(mode, (size, size), fill).save(path, quality=95)


def _class_value(wnid: str) -> int:
    """Intensity that encodes the class in the fixture images: n01 -> 40, n02 -> 120, n03 -> 200."""
    return {"n01": 40, "n02": 120, "n03": 200}[wnid]


@pytest.fixture
def tiny_root(tmp_path):
    """<tmp>/tiny-imagenet-200 with 3 classes x 4 train and x 2 val images, val labels in val_annotations.txt.

    Written by hand, not by `write_tiny_imagenet_standin`: an unsorted wnids.txt, a grey image, val labels
    in no order and images whose intensity encodes the class are the traps these tests set for the loader.
    """
    folder = tmp_path / "tiny-imagenet-200"
    folder.mkdir()
    (folder / "wnids.txt").write_text("\n".join(WNIDS) + "\n")
    for w in WNIDS:
        for i in range(4):
            _jpeg(folder / "train" / w / "images" / f"{w}_{i}.JPEG", _class_value(w), grey=(w == "n02" and i == 0))
        (folder / "train" / w / f"{w}_boxes.txt").write_text("")
    val_labels = ["n02", "n03", "n01", "n03", "n02", "n01"]  # not grouped, not sorted
    lines = []
    for i, w in enumerate(val_labels):
        _jpeg(folder / "val" / "images" / f"val_{i}.JPEG", _class_value(w))
        lines.append(f"val_{i}.JPEG\t{w}\t0\t0\t63\t63")
    (folder / "val" / "val_annotations.txt").write_text("\n".join(lines) + "\n")
    return tmp_path


TINY_COUNTS = dict(expected_classes=3, expected_train_per_class=4, expected_val_per_class=2)


def test_tiny_imagenet_labels_follow_annotations(tiny_root):
    train, val = build_datasets("tiny_imagenet", tiny_root, train_aug=False, **TINY_COUNTS)
    assert train.classes == ["n01", "n02", "n03"]
    assert len(train) == 12 and len(val) == 6
    assert sorted(set(val.targets)) == [0, 1, 2]  # an ImageFolder on raw val/ would give all 0
    std, mean = torch.tensor(DATASETS["tiny_imagenet"].std), torch.tensor(DATASETS["tiny_imagenet"].mean)
    for ds in (train, val):
        for x, y in ds:  # the image content encodes the class: check each label against its image
            assert x.shape == (3, 64, 64)
            value = ((x * std[:, None, None] + mean[:, None, None]) * 255).mean().item()
            assert abs(value - _class_value(train.classes[y])) < 3


def test_tiny_imagenet_train_aug_is_mdistillers(tiny_root):
    train, _ = build_datasets("tiny_imagenet", tiny_root, **TINY_COUNTS)
    kinds = [type(t).__name__ for t in train.transform.transforms]
    assert kinds == ["RandomRotation", "RandomHorizontalFlip", "ToTensor", "Normalize"]
    train, _ = build_datasets("tiny_imagenet", tiny_root, random_crop=True, **TINY_COUNTS)
    assert type(train.transform.transforms[0]).__name__ == "RandomCrop"


def test_tiny_imagenet_loaders(tiny_root):
    train, val = build_loaders("tiny_imagenet", tiny_root, batch_size=5, **TINY_COUNTS)
    x, y = next(iter(train))
    assert x.shape == (5, 3, 64, 64) and y.dtype == torch.int64
    assert torch.cat([y for _, y in val]).tolist() == [1, 2, 0, 2, 1, 0]


def test_tiny_imagenet_official_counts_are_the_default(tiny_root):
    with pytest.raises(DatasetNotReadyError) as err:
        build_datasets("tiny_imagenet", tiny_root)
    msg = str(err.value)
    assert "expected 200" in msg and "do not have 500 images" in msg and "do not have 50 images" in msg
    build_datasets("tiny_imagenet", tiny_root, strict=False)  # layout only


def test_tiny_imagenet_missing_annotations(tiny_root):
    (tiny_root / "tiny-imagenet-200" / "val" / "val_annotations.txt").unlink()
    with pytest.raises(DatasetNotReadyError) as err:
        build_datasets("tiny_imagenet", tiny_root, strict=False)
    assert "root=" in str(err.value) and "val_annotations.txt is missing" in str(err.value)
    assert "tiny-imagenet-200.zip" in str(err.value)  # the fix


def test_tiny_imagenet_missing_class_and_wrong_counts(tiny_root):
    folder = tiny_root / "tiny-imagenet-200"
    for f in (folder / "train" / "n02" / "images").iterdir():
        f.unlink()
    (folder / "train" / "n02" / "images").rmdir()
    (folder / "train" / "n03" / "images" / "n03_0.JPEG").unlink()
    _jpeg(folder / "val" / "images" / "val_99.JPEG", 10)  # an image with no annotation line
    report = check_dataset("tiny_imagenet", tiny_root, **TINY_COUNTS)
    text = report.format()
    assert not report.ok
    assert "lacks 1 classes of wnids.txt: n02" in text
    assert "n03: 3" in text
    assert "val_99.JPEG" in text
    with pytest.raises(DatasetNotReadyError, match="n02"):
        build_datasets("tiny_imagenet", tiny_root, **TINY_COUNTS)


def test_tiny_imagenet_missing_folder(tmp_path):
    report = check_dataset("tiny_imagenet", tmp_path)
    assert not report.ok and "tiny-imagenet-200" in report.format() and "Fix:" in report.format()


# ---------------------------------------------------------------- ImageNet as two ImageFolders
@pytest.fixture
def imagenet_root(tmp_path):
    """<tmp>/imagenet/{train,val}/<wnid>/*.JPEG, 3 classes, 3 train and 2 val images each."""
    return write_imagenet_standin(tmp_path, num_classes=3, train_per_class=3, val_per_class=2)


IMAGENET_WNIDS = ["n09000000", "n09000017", "n09000034"]
IMAGENET_COUNTS = dict(expected_classes=3, expected_val_per_class=2)


def test_imagenet_imagefolder(imagenet_root):
    train, val = build_datasets("imagenet", imagenet_root, **IMAGENET_COUNTS)
    assert (len(train), len(val), val.classes) == (9, 6, IMAGENET_WNIDS)
    assert val.targets == [0, 0, 1, 1, 2, 2]
    assert train[0][0].shape == val[0][0].shape == (3, 224, 224)
    kinds = [type(t).__name__ for t in val.transform.transforms]
    assert kinds == ["Resize", "CenterCrop", "ToTensor", "Normalize"]


def test_imagenet_flat_val_is_refused(imagenet_root):
    val = imagenet_root / "imagenet" / "val"
    _jpeg(val / "ILSVRC2012_val_00000001.JPEG", 0, size=40)
    with pytest.raises(DatasetNotReadyError, match="class folders"):
        build_datasets("imagenet", imagenet_root, **IMAGENET_COUNTS)


def test_imagenet_class_lists_must_agree(imagenet_root):
    (imagenet_root / "imagenet" / "val" / "n09000034").rename(imagenet_root / "imagenet" / "val" / "n09000099")
    report = check_dataset("imagenet", imagenet_root, **IMAGENET_COUNTS)
    assert not report.ok and "only in train: [n09000034]" in report.format()
    assert "only in val: [n09000099]" in report.format()
    assert "expected 1000" in check_dataset("imagenet", imagenet_root).format()


# ---------------------------------------------------------------- the GPU-resident loader (run on CPU)
def _torchvision_path(img_hwc: np.ndarray, dy: int, dx: int, flip: bool, monkeypatch) -> torch.Tensor:
    """torchvision's RandomCrop(32, padding=4) + flip + ToTensor + Normalize with the crop offset forced."""
    monkeypatch.setattr(T.RandomCrop, "get_params", staticmethod(lambda img, size: (dy, dx, 32, 32)))
    tf = T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(p=float(flip)), T.ToTensor(),
                    T.Normalize(CIFAR_MEAN, CIFAR_STD)])
    return tf(Image.fromarray(img_hwc))


def test_crop_flip_equals_torchvision_exactly(monkeypatch):
    images = torch.randint(0, 256, (6, 32, 32, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    cases = [(0, 0, False), (8, 8, True), (0, 8, True), (8, 0, False), (3, 5, True), (4, 4, False)]
    dy, dx, flip = (torch.tensor(v) for v in zip(*cases))
    mean, std = torch.tensor(CIFAR_MEAN).view(1, 3, 1, 1), torch.tensor(CIFAR_STD).view(1, 3, 1, 1)
    ours = normalise(crop_flip(images.permute(0, 3, 1, 2), dy, dx, flip, 4), mean, std)
    for i, (a, b, f) in enumerate(cases):
        torch.testing.assert_close(ours[i], _torchvision_path(images[i].numpy(), a, b, f, monkeypatch), rtol=0, atol=0)


def test_device_loader_batches_equal_torchvision_for_its_offsets(monkeypatch):
    images = torch.randint(0, 256, (20, 32, 32, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    loader = DeviceLoader(images.numpy(), torch.arange(20), batch_size=8, mean=CIFAR_MEAN, std=CIFAR_STD, seed=3)
    loader.set_epoch(5)
    order, dy, dx, flips = loader.epoch_plan(5)
    seen = []
    for x, y in loader:
        for xi, yi in zip(x, y.tolist()):
            ref = _torchvision_path(images[yi].numpy(), int(dy[yi]), int(dx[yi]), bool(flips[yi]), monkeypatch)
            torch.testing.assert_close(xi, ref, rtol=0, atol=0)
            seen.append(yi)
    assert seen == order.tolist()


def _marker_images(n: int) -> torch.Tensor:
    """uint8 (n, 32, 32, 3): channel 0 = row + 1, channel 1 = column + 1, so padding (0) and offsets show."""
    rows = torch.arange(1, 33, dtype=torch.uint8)
    img = torch.stack([rows[:, None].expand(32, 32), rows[None, :].expand(32, 32),
                       torch.full((32, 32), 100, dtype=torch.uint8)], dim=-1)  # (32, 32, 3)
    return img.expand(n, -1, -1, -1).contiguous()


def test_device_loader_offsets_uniform_and_flip_half():
    n = 8100
    loader = DeviceLoader(_marker_images(n), torch.zeros(n), batch_size=2048, mean=(0, 0, 0), std=(1, 1, 1))
    x = torch.cat([b for b, _ in loader]) * 255  # (n, 3, 32, 32) back to pixel values
    dy = x[:, 0, 16, 16].round().long() - 13  # output row 16 = original row 12 + dy, which stores 13 + dy
    left, centre = x[:, 1, 16, 15].round().long(), x[:, 1, 16, 16].round().long()
    flipped = left > centre  # a flipped crop reads the columns backwards
    dx = torch.where(flipped, centre - 12, centre - 13)  # output column 16 = original 12 + dx (flipped: 11 + dx)
    assert dy.min() == 0 and dy.max() == 8 and dx.min() == 0 and dx.max() == 8
    counts = torch.bincount(dy * 9 + dx, minlength=81).double()
    chi2 = ((counts - n / 81) ** 2 / (n / 81)).sum().item()
    assert chi2 < 124.8, chi2  # 80 degrees of freedom, p = 0.001
    assert abs(flipped.double().mean().item() - 0.5) < 0.022  # 4 sigma
    tv = torch.tensor([T.RandomCrop.get_params(torch.zeros(3, 40, 40), (32, 32))[:2] for _ in range(n)])
    tv_counts = torch.bincount(tv[:, 0] * 9 + tv[:, 1], minlength=81).double()
    assert ((tv_counts - n / 81) ** 2 / (n / 81)).sum().item() < 124.8  # the same law in torchvision


def test_device_loader_pads_with_zero_before_normalising():
    white = torch.full((1, 3, 32, 32), 255, dtype=torch.uint8)
    padded = crop_flip(white, torch.tensor([0]), torch.tensor([0]), torch.tensor([False]), 4)  # (1, 3, 32, 32)
    mean, std = torch.tensor(CIFAR_MEAN).view(1, 3, 1, 1), torch.tensor(CIFAR_STD).view(1, 3, 1, 1)
    x = normalise(padded, mean, std)[0]
    assert torch.equal(x[:, :4, :], ((0 - mean) / std)[0].expand(3, 4, 32))  # padding is black, then normalised
    assert torch.equal(x[:, 4:, 4:], ((1 - mean) / std)[0].expand(3, 28, 28))


def test_device_loader_epoch_order_depends_only_on_seed_and_epoch():
    data, labels = torch.randint(0, 256, (50, 32, 32, 3), dtype=torch.uint8), torch.arange(50)

    def run(epochs, seed=0):
        loader = DeviceLoader(data, labels, batch_size=16, mean=CIFAR_MEAN, std=CIFAR_STD, seed=seed)
        out = []
        for e in epochs:
            loader.set_epoch(e)
            out.append([(x, y) for x, y in loader])
        return out

    full, resumed = run([0, 1, 2]), run([2])
    for (xa, ya), (xb, yb) in zip(full[2], resumed[0]):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    assert not torch.equal(full[0][0][1], full[1][0][1])  # a new order each epoch
    assert not torch.equal(run([0], seed=1)[0][0][1], full[0][0][1])
    auto = DeviceLoader(data, labels, batch_size=16, mean=CIFAR_MEAN, std=CIFAR_STD)  # no set_epoch: advances
    first, second = [y for _, y in auto], [y for _, y in auto]
    assert torch.equal(torch.cat(first), torch.cat([y for _, y in full[0]]))
    assert torch.equal(torch.cat(second), torch.cat([y for _, y in full[1]]))


def test_same_order_rule_for_both_loaders():
    n, seed, epoch = 37, 4, 9
    device = DeviceLoader(torch.zeros(n, 32, 32, 3, dtype=torch.uint8), torch.arange(n), batch_size=8,
                          mean=CIFAR_MEAN, std=CIFAR_STD, seed=seed)
    dist = DistributedSampler(range(n), num_replicas=1, rank=0, shuffle=True, seed=seed * _SEED_STRIDE)
    dist.set_epoch(epoch)
    assert device.epoch_plan(epoch)[0].tolist() == list(dist)
    assert device.epoch_plan(epoch)[0].tolist() == torch.randperm(n, generator=epoch_generator(seed, epoch)).tolist()
    train, _ = build_loaders("synthetic", batch_size=8, num_classes=10, train_per_class=3, val_per_class=1,
                             seed=seed)  # not distributed: the same sampler, one replica
    assert isinstance(train.sampler, DistributedSampler) and (train.sampler.num_replicas, train.sampler.rank) == (1, 0)


@pytest.mark.parametrize("n,drop_last", [(50, False), (51, False), (51, True)])
def test_device_loader_shards_like_distributed_sampler(n, drop_last):
    data = torch.zeros(n, 32, 32, 3, dtype=torch.uint8)
    shards = []
    for rank in range(2):
        loader = DeviceLoader(data, torch.arange(n), batch_size=7, mean=CIFAR_MEAN, std=CIFAR_STD, seed=2,
                              rank=rank, world_size=2, drop_last=drop_last)
        loader.set_epoch(3)
        ys = torch.cat([y for _, y in loader]).tolist()
        dist = DistributedSampler(range(n), num_replicas=2, rank=rank, seed=2 * _SEED_STRIDE, drop_last=drop_last)
        dist.set_epoch(3)
        expected = list(dist)[: len(loader) * 7] if drop_last else list(dist)
        assert ys == expected
        assert len(loader) == (len(dist) // 7 if drop_last else -(-len(dist) // 7))
        shards.append(set(ys))
    assert not drop_last or not shards[0] & shards[1]
    assert drop_last or shards[0] | shards[1] == set(range(n))


def test_build_loaders_torch_path_seeded_order():
    kw = dict(batch_size=50, num_classes=10, train_per_class=10, val_per_class=2, seed=0)
    a, _ = build_loaders("synthetic", **kw)
    b, _ = build_loaders("synthetic", **kw)
    a.set_epoch(0)
    b.set_epoch(1)
    ya0 = torch.cat([y for _, y in a])
    a.set_epoch(1)
    assert torch.equal(torch.cat([y for _, y in a]), torch.cat([y for _, y in b]))
    assert not torch.equal(ya0, torch.cat([y for _, y in b]))
    assert hasattr(a, "set_epoch") and len(a) == 2
    same_data, _ = build_loaders("synthetic", **{**kw, "seed": 9})  # the training seed leaves the images alone
    other_data, _ = build_loaders("synthetic", data_seed=1, **kw)
    assert np.array_equal(same_data.dataset.data, a.dataset.data)
    assert not np.array_equal(other_data.dataset.data, a.dataset.data)


def test_build_loaders_distributed_uses_distributed_sampler(tmp_path):
    torch.distributed.init_process_group("gloo", init_method=f"file://{tmp_path / 'pg'}", rank=0, world_size=1)
    try:
        kw = dict(batch_size=16, num_classes=10, train_per_class=5, val_per_class=2, seed=1)
        train, val = build_loaders("synthetic", distributed=True, **kw)
        plain, _ = build_loaders("synthetic", **kw)
        assert isinstance(train.sampler, DistributedSampler) and len(val.dataset) == 20
        train.set_epoch(4)
        plain.set_epoch(4)
        assert torch.equal(torch.cat([y for _, y in train]), torch.cat([y for _, y in plain]))
        resident, _ = build_loaders("synthetic", distributed=True, gpu_resident=True, **kw)
        assert (resident.rank, resident.world_size) == (0, 1)
    finally:
        torch.distributed.destroy_process_group()


# ---------------------------------------------------------------- the offline datasets
def test_synthetic_is_deterministic_and_balanced():
    x1, y1 = generate_synthetic(20, 10, seed=0)
    x2, y2 = generate_synthetic(20, 10, seed=0)
    x3, _ = generate_synthetic(20, 10, seed=1)
    xv, _ = generate_synthetic(20, 10, seed=0, split="val")
    assert x1.shape == (200, 32, 32, 3) and x1.dtype == np.uint8 and y1.dtype == np.int64
    assert x1.tobytes() == x2.tobytes() and np.array_equal(y1, y2)
    assert x1.tobytes() != x3.tobytes() and x1.tobytes() != xv.tobytes()
    assert np.bincount(y1).tolist() == [10] * 20


SYNTHETIC_SHA256_PREFIX = "7752d1b5e3f3d962"  # generator v3; change only together with a deliberate change of the generator


def test_synthetic_bytes_are_pinned():
    """The same seed gives the same bytes on any machine (CPU generator, float64, then rounding)."""
    x, _ = generate_synthetic(10, 4, seed=123)
    assert hashlib.sha256(x.tobytes()).hexdigest()[:16] == SYNTHETIC_SHA256_PREFIX



@pytest.fixture(scope="module")
def synthetic_100x20():
    """100 classes x 20 images of seed 0 (about a second to make), shared by the tests below."""
    return generate_synthetic(100, 20, seed=0)


def test_synthetic_superclass_structure(synthetic_100x20):
    """Members of one superclass share a shape; their hues are neighbours, graded by the member index."""
    x, y = synthetic_100x20
    means = torch.stack([torch.as_tensor(x[y == c], dtype=torch.float32).mean(0).flatten() for c in range(100)])
    dist = torch.cdist(means, means)  # (100, 100) distances between class-mean images
    sup = superclass_map(100)
    same = sup[:, None] == sup[None, :]
    off_diagonal = ~torch.eye(100, dtype=torch.bool)
    assert dist[same & off_diagonal].mean() < 0.8 * dist[~same].mean()
    member = torch.arange(100) % 5
    gap = (member[:, None] - member[None, :]).abs()
    within = [dist[same & (gap == g)].mean() for g in (1, 2, 3, 4)]
    assert within == sorted(within)  # graded: hue neighbours look more alike than far members
    assert superclass_of(7) == 1 and superclass_of(torch.tensor([0, 99])).tolist() == [0, 19]
    names = class_names(100)
    assert len(set(names)) == 100 and names[0] == "disk, magenta" and names[7] == "square, red"
    assert superclass_names(20) == ["red-band disks", "red-band squares", "red-band diamonds", "red-band crosses"]


def test_synthetic_mean_std_constants(synthetic_100x20):
    x, _ = synthetic_100x20
    pixels = torch.as_tensor(x, dtype=torch.float64).reshape(-1, 3) / 255  # (N * H * W, 3)
    info = DATASETS["synthetic"]
    torch.testing.assert_close(pixels.mean(0), torch.tensor(info.mean, dtype=torch.float64), atol=0.01, rtol=0)
    torch.testing.assert_close(pixels.std(0), torch.tensor(info.std, dtype=torch.float64), atol=0.01, rtol=0)


def test_synthetic_datasets_and_cache(tmp_path):
    kw = dict(num_classes=10, train_per_class=6, val_per_class=3, seed=5)
    train, val = build_datasets("synthetic", **kw)
    assert (len(train), len(val), len(train.classes)) == (60, 30, 10)
    assert train.superclass_of.tolist() == [0] * 5 + [1] * 5
    cached, _ = build_datasets("synthetic", cache_dir=tmp_path, **kw)
    again, _ = build_datasets("synthetic", cache_dir=tmp_path, **kw)
    assert len(list(tmp_path.glob("*.npz"))) == 2
    assert np.array_equal(cached.data, train.data) and np.array_equal(again.data, train.data)
    x, y = train[0]
    assert x.shape == (3, 32, 32) and x.dtype == torch.float32


def test_synthetic_gpu_resident_loader():
    train, val = build_loaders("synthetic", batch_size=16, gpu_resident=True, num_classes=10, train_per_class=8,
                               val_per_class=4, drop_last=True)
    batches = list(train)
    assert len(batches) == len(train) == 5
    x, y = batches[0]
    assert x.shape == (16, 3, 32, 32) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert torch.cat([y for _, y in val]).tolist() == [c for c in range(10) for _ in range(4)]


def test_bad_arguments_name_the_argument():
    with pytest.raises(ValueError, match="name='cifar10'"):
        build_datasets("cifar10")
    with pytest.raises(ValueError, match="num_classes=7"):
        build_datasets("synthetic", num_classes=7)
    with pytest.raises(ValueError, match="train_per_clas="):
        build_datasets("synthetic", train_per_clas=5)
    with pytest.raises(ValueError, match="gpu_resident=True"):
        build_loaders("tiny_imagenet", batch_size=4, gpu_resident=True, strict=False)
    with pytest.raises(ValueError, match="distributed=True"):
        build_loaders("synthetic", batch_size=4, distributed=True)
    assert check_dataset("synthetic").ok


def test_digits():
    pytest.importorskip("sklearn")
    train, val = build_datasets("digits", train_aug=False)
    assert (len(train), len(val)) == (1437, 360)
    assert train.data.shape == (1437, 32, 32, 3) and sorted(set(val.targets)) == list(range(10))
    pixels = torch.as_tensor(train.data, dtype=torch.float64).reshape(-1, 3) / 255
    info = DATASETS["digits"]
    torch.testing.assert_close(pixels.mean(0), torch.tensor(info.mean, dtype=torch.float64), atol=1e-3, rtol=0)
    torch.testing.assert_close(pixels.std(0), torch.tensor(info.std, dtype=torch.float64), atol=1e-3, rtol=0)
    loader, _ = build_loaders("digits", batch_size=32, gpu_resident=True)
    x, y = next(iter(loader))
    assert x.shape == (32, 3, 32, 32) and y.dtype == torch.int64


def test_digits_without_sklearn_says_how_to_install(monkeypatch):
    import sys
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    with pytest.raises(ImportError, match="pip install scikit-learn"):
        build_datasets("digits")


# ---------------------------------------------------------------- published constants, train augmentations
def test_normalisation_constants_are_the_published_literals():
    """Written out here, not read from the registry: a changed digit in the package must fail."""
    published = {
        "cifar100": ((0.5071, 0.4867, 0.4408), (0.2675, 0.2565, 0.2761)),  # CRD / mdistiller
        "tiny_imagenet": ((0.4802, 0.4481, 0.3975), (0.2302, 0.2265, 0.2262)),  # mdistiller
        "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),  # torchvision
    }
    for name, (mean, std) in published.items():
        assert tuple(DATASETS[name].mean) == mean, name
        assert tuple(DATASETS[name].std) == std, name
        normalize = _only(_train_tf(name).transforms, T.Normalize)
        assert (tuple(normalize.mean), tuple(normalize.std)) == (mean, std), name


def _train_tf(name, **kw):
    from ldrld_mini.data.transforms import train_transform

    return train_transform(name, **kw)


def _only(transforms, kind):
    (found,) = [t for t in transforms if isinstance(t, kind)]
    return found


@pytest.mark.parametrize("name", ["cifar100", "synthetic"])
def test_cifar_style_train_transform_crops_with_padding_4_and_flips_half(name):
    steps = _train_tf(name).transforms
    assert [type(t).__name__ for t in steps] == ["RandomCrop", "RandomHorizontalFlip", "ToTensor", "Normalize"]
    crop, flip = steps[0], steps[1]
    assert tuple(crop.size) == (32, 32) and crop.padding == 4 and crop.fill == 0 and crop.padding_mode == "constant"
    assert flip.p == 0.5


def test_digits_train_transform_crops_but_never_flips():
    steps = _train_tf("digits").transforms
    assert [type(t).__name__ for t in steps] == ["RandomCrop", "ToTensor", "Normalize"]
    assert tuple(steps[0].size) == (32, 32) and steps[0].padding == 4


def test_tiny_imagenet_and_imagenet_train_transforms():
    steps = _train_tf("tiny_imagenet").transforms
    assert [type(t).__name__ for t in steps] == ["RandomRotation", "RandomHorizontalFlip", "ToTensor", "Normalize"]
    assert list(steps[0].degrees) == [-20.0, 20.0] and steps[1].p == 0.5
    crop = _train_tf("tiny_imagenet", random_crop=True).transforms[0]
    assert isinstance(crop, T.RandomCrop) and tuple(crop.size) == (64, 64) and crop.padding == 4
    steps = _train_tf("imagenet").transforms
    assert [type(t).__name__ for t in steps] == ["RandomResizedCrop", "RandomHorizontalFlip", "ToTensor", "Normalize"]
    assert tuple(steps[0].size) == (224, 224) and steps[1].p == 0.5


def test_built_datasets_carry_the_train_augmentation(cifar_root, tiny_root):
    """What build_datasets hands the loaders (torch path): the transforms above, the test transform for val."""
    cifar_train, cifar_val = build_datasets("cifar100", cifar_root, verify_md5=False)
    synth_train, _ = build_datasets("synthetic", num_classes=10, train_per_class=2, val_per_class=1)
    tiny_train, _ = build_datasets("tiny_imagenet", tiny_root, **TINY_COUNTS)
    for ds in (cifar_train, synth_train):
        crop, flip = _only(ds.transform.transforms, T.RandomCrop), _only(ds.transform.transforms,
                                                                       T.RandomHorizontalFlip)
        assert crop.padding == 4 and tuple(crop.size) == (32, 32) and flip.p == 0.5
    assert _only(tiny_train.transform.transforms, T.RandomRotation).degrees == [-20.0, 20.0]
    assert _only(tiny_train.transform.transforms, T.RandomHorizontalFlip).p == 0.5
    assert [type(t).__name__ for t in cifar_val.transform.transforms] == ["ToTensor", "Normalize"]


@pytest.mark.parametrize("name", ["cifar100", "synthetic", "digits"])
def test_device_loader_of_build_loaders_crops_and_flips_like_the_recipe(name, cifar_root):
    kw = {"cifar100": dict(root=cifar_root, verify_md5=False),
          "synthetic": dict(num_classes=10, train_per_class=20, val_per_class=1), "digits": {}}[name]
    if name == "digits":
        pytest.importorskip("sklearn")
    train, val = build_loaders(name, batch_size=50, gpu_resident=True, **kw)
    assert isinstance(train, DeviceLoader) and train.padding == 4 and train.augment and not val.augment
    assert train.flip is (name != "digits")
    assert tuple(train.mean.flatten().tolist()) == pytest.approx(DATASETS[name].mean, abs=1e-7)
    _, dy, dx, flips = train.epoch_plan(1)  # 200+ images: P(rate outside [0.25, 0.75]) < 1e-12
    assert 0 <= int(dy.min()) and int(dy.max()) <= 8 and 0 <= int(dx.min()) and int(dx.max()) <= 8
    if name == "digits":
        assert not flips.any()
    else:
        assert 0.25 < flips.double().mean().item() < 0.75
