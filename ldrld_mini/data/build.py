"""build_datasets / build_loaders / check_dataset: the one entry point of the data room."""
from __future__ import annotations

import inspect
from pathlib import Path

import torch
from torch.utils.data import DataLoader
from torch.utils.data.distributed import DistributedSampler

from . import cifar, digits, imagenet, synthetic, tiny_imagenet
from .device_loader import _SEED_STRIDE, DeviceLoader, epoch_generator
from .memory import ArrayDataset
from .registry import get_info, resolve_root
from .report import DatasetNotReadyError, DatasetReport
from .transforms import crop_padding, test_transform, train_transform

__all__ = ["build_datasets", "build_loaders", "check_dataset", "EpochLoader"]


# ---------------------------------------------------------------- datasets, one builder per name
def _cifar100(root: Path, download: bool, train_aug: bool, *, verify_md5: bool = True):
    """torchvision CIFAR100 train/test (md5-checked unless verify_md5=False)."""
    tf = train_transform("cifar100") if train_aug else test_transform("cifar100")
    train = cifar.load_cifar100(root, train=True, transform=tf, download=download, verify_md5=verify_md5)
    val = cifar.load_cifar100(root, train=False, transform=test_transform("cifar100"), verify_md5=verify_md5,
                              check=False)
    for ds in (train, val):
        cifar.num_classes_check(ds)
    return train, val


def _tiny_imagenet(root: Path, download: bool, train_aug: bool, *, random_crop: bool = False, strict: bool = True,
                   expected_classes: int | None = 200, expected_train_per_class: int | None = 500,
                   expected_val_per_class: int | None = 50):
    """TinyImageNet train/val from the official layout; strict=False skips the count checks."""
    if download:
        _download_tiny(root)
    counts = dict(expected_classes=expected_classes, expected_train_per_class=expected_train_per_class,
                  expected_val_per_class=expected_val_per_class)
    if not strict:
        counts = dict.fromkeys(counts)  # layout only, no counts
    tiny_imagenet.check_tiny_imagenet(root, **counts).raise_if_failed("root", root)
    tf = train_transform("tiny_imagenet", random_crop=random_crop) if train_aug else test_transform("tiny_imagenet")
    return (tiny_imagenet.TinyImageNet(root, "train", tf),
            tiny_imagenet.TinyImageNet(root, "val", test_transform("tiny_imagenet")))


def _download_tiny(root: Path) -> None:
    """Download + unzip tiny-imagenet-200.zip (md5-checked) into `root`, through the package's one download
    path; skipped when wnids.txt is already there. A failure says where to put the files by hand."""
    from ..download import DownloadError, fetch_archive, unpack_archive

    if (tiny_imagenet.tiny_folder(root) / "wnids.txt").is_file():
        return
    fix = tiny_imagenet._FIX.replace("<root>", str(root))
    try:
        archive = fetch_archive(tiny_imagenet.tiny_imagenet_archive(), root,
                                manual="(The Fix below says how to do it by hand.)")
        unpack_archive(archive, root)
    except DownloadError as err:
        report = DatasetReport("tiny_imagenet", root / "tiny-imagenet-200", fix=fix)
        report.problems.append(f"download=True failed: {err}")
        raise DatasetNotReadyError(report, "root", root) from err


def _imagenet(root: Path, download: bool, train_aug: bool, *, strict: bool = True,
              expected_classes: int | None = 1000, expected_val_per_class: int | None = 50):
    """ImageFolder train/val; strict=False checks only the layout (no class or image counts)."""
    if download:
        raise ValueError("download=True is not possible for name='imagenet' (licensed data): "
                         "pass download=False and place the files as data/README.md describes")
    counts = dict(expected_classes=expected_classes, expected_val_per_class=expected_val_per_class)
    if not strict:
        counts = dict.fromkeys(counts)  # layout only, no counts
    imagenet.check_imagenet(root, count_images=strict, **counts).raise_if_failed("root", root)
    tf = train_transform("imagenet") if train_aug else test_transform("imagenet")
    return (imagenet.load_imagenet(root, train=True, transform=tf),
            imagenet.load_imagenet(root, train=False, transform=test_transform("imagenet")))


def _synthetic(root: Path, download: bool, train_aug: bool, *, num_classes: int = 100, train_per_class: int = 100,
               val_per_class: int = 20, seed: int = 0, cache_dir: str | Path | None = None, noise: float = 0.1,
               image_size: int = 32):
    """The generated dataset (see synthetic.py); nothing is read or written unless cache_dir is given."""
    names = synthetic.class_names(num_classes)
    common = dict(num_classes=num_classes, train_per_class=train_per_class, val_per_class=val_per_class,
                  seed=seed, cache_dir=cache_dir, noise=noise, image_size=image_size)
    tf = train_transform("synthetic", image_size=image_size) if train_aug else test_transform("synthetic")
    train = ArrayDataset(*synthetic.load_synthetic(split="train", **common), names, tf)
    val = ArrayDataset(*synthetic.load_synthetic(split="val", **common), names, test_transform("synthetic"))
    for ds in (train, val):
        ds.superclass_of = synthetic.superclass_map(num_classes)  # (num_classes,) class -> superclass
        ds.superclasses = synthetic.superclass_names(num_classes)
    return train, val


def _digits(root: Path, download: bool, train_aug: bool):
    """scikit-learn's digits, upscaled to 3x32x32, fixed split."""
    tf = train_transform("digits") if train_aug else test_transform("digits")
    return (ArrayDataset(*digits.load_digits_split("train"), digits.DIGIT_NAMES, tf),
            ArrayDataset(*digits.load_digits_split("val"), digits.DIGIT_NAMES, test_transform("digits")))


_BUILDERS = {"cifar100": _cifar100, "tiny_imagenet": _tiny_imagenet, "imagenet": _imagenet,
             "synthetic": _synthetic, "digits": _digits}


def _options_of(name: str) -> list[str]:
    """The keyword options the builder of `name` accepts."""
    params = inspect.signature(_BUILDERS[name]).parameters.values()
    return [p.name for p in params if p.kind is p.KEYWORD_ONLY]


def build_datasets(name: str, root=None, *, download: bool = False, train_aug: bool = True, **kw):
    """(train_ds, val_ds) for `name`; items are (float32 (3, H, W) normalised, int label).

    root: the data folder (default $LDRLD_DATA or ./data). Options per name: cifar100 verify_md5;
    tiny_imagenet random_crop, strict, expected_*; imagenet strict, expected_*; synthetic num_classes,
    train_per_class, val_per_class, seed, cache_dir, noise; digits none. Every dataset has `.classes`.
    """
    get_info(name)
    unknown = sorted(set(kw) - set(_options_of(name)))
    if unknown:
        raise ValueError(f"{unknown[0]}={kw[unknown[0]]!r} is not an option of name={name!r}; "
                         f"its options are {_options_of(name) or 'none'}")
    return _BUILDERS[name](resolve_root(root), download, train_aug, **kw)


# ---------------------------------------------------------------- loaders
class EpochLoader:
    """A DataLoader plus `set_epoch`: order (and worker seeds) depend only on (seed, epoch).

    Without a `set_epoch` call the epoch advances by one at each new iteration. With num_workers=0 the
    augmentation draws from the global torch RNG (seed it yourself); with workers, each worker's RNG is
    seeded from (seed, epoch).
    """

    def __init__(self, loader: DataLoader, seed: int = 0):
        self.loader, self.seed, self.epoch, self._epoch_was_set = loader, seed, 0, False
        self.dataset, self.sampler, self.batch_size = loader.dataset, loader.sampler, loader.batch_size

    def set_epoch(self, epoch: int) -> None:
        """Fix the epoch the next iteration uses (shuffle order, worker seeds)."""
        self.epoch, self._epoch_was_set = int(epoch), True

    def __iter__(self):
        epoch = self.epoch
        if not self._epoch_was_set:
            self.epoch += 1
        if hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(epoch)
        self.loader.generator = epoch_generator(self.seed + 1, epoch)  # worker seeds; not the order
        return iter(self.loader)

    def __len__(self) -> int:
        return len(self.loader)


def _dist_rank_world(distributed: bool) -> tuple[int, int]:
    """(rank, world_size) from torch.distributed, or (0, 1); a clear error when it is not initialised."""
    if not distributed:
        return 0, 1
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        raise ValueError("distributed=True needs torch.distributed.init_process_group() first (run under torchrun); "
                         "or pass distributed=False")
    return torch.distributed.get_rank(), torch.distributed.get_world_size()


def _gpu_loaders(name, train_ds, val_ds, *, batch_size, val_batch_size, seed, device, drop_last, train_aug,
                 rank, world, shard_val):
    """Two DeviceLoaders over the uint8 arrays of in-memory datasets."""
    info = get_info(name)
    size = train_ds.data.shape[1] if train_ds.data.shape[-1] in (1, 3) else train_ds.data.shape[-1]
    common = dict(mean=info.mean, std=info.std, device=device, flip=info.hflip, seed=seed,
                  padding=crop_padding(size))
    train = DeviceLoader(train_ds.data, train_ds.targets, batch_size=batch_size, train=True, augment=train_aug,
                         drop_last=drop_last, rank=rank, world_size=world, **common)
    val = DeviceLoader(val_ds.data, val_ds.targets, batch_size=val_batch_size, train=False,
                       rank=rank if shard_val else 0, world_size=world if shard_val else 1, **common)
    train.dataset, val.dataset = train_ds, val_ds
    return train, val


def build_loaders(name: str, root=None, *, batch_size: int, num_workers: int = 0, distributed: bool = False,
                  seed: int = 0, gpu_resident: bool = False, device="cpu", drop_last: bool = False,
                  val_batch_size: int | None = None, download: bool = False, train_aug: bool = True,
                  shard_val: bool = False, **kw):
    """(train_loader, val_loader) yielding (float32 (B, 3, H, W) normalised, int64 (B,)).

    The train order of epoch e depends only on (seed, e): call `train_loader.set_epoch(e)` each epoch.
    gpu_resident=True (cifar100, synthetic, digits) keeps the uint8 set on `device` and augments there
    (DeviceLoader); otherwise a torch DataLoader yields CPU tensors (pinned when `device` is CUDA).
    distributed=True shards the train set over torch.distributed ranks (DistributedSampler); the val set
    is sharded only with shard_val=True (padding repeats a few images), else every rank sees all of it.
    `kw` goes to build_datasets (per-dataset options); for synthetic, the data seed is `data_seed` here
    (default 0: the images stay the same while the training `seed` varies).
    """
    info = get_info(name)
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size} must be >= 1")
    val_batch_size = val_batch_size or batch_size
    rank, world = _dist_rank_world(distributed)
    if gpu_resident and not info.in_memory:
        raise ValueError(f"gpu_resident=True needs an in-memory dataset (cifar100, synthetic, digits), not "
                         f"name={name!r}; pass gpu_resident=False")
    if name == "synthetic" and "data_seed" in kw:  # `seed` here is the shuffle seed; the data's is data_seed
        kw["seed"] = kw.pop("data_seed")
    train_ds, val_ds = build_datasets(name, root, download=download, train_aug=train_aug and not gpu_resident, **kw)
    if gpu_resident:
        return _gpu_loaders(name, train_ds, val_ds, batch_size=batch_size, val_batch_size=val_batch_size, seed=seed,
                            device=device, drop_last=drop_last, train_aug=train_aug, rank=rank, world=world,
                            shard_val=shard_val)
    return _torch_loaders(train_ds, val_ds, batch_size=batch_size, val_batch_size=val_batch_size, seed=seed,
                          num_workers=num_workers, pin=torch.device(device).type == "cuda", drop_last=drop_last,
                          rank=rank, world=world, shard_val=shard_val, distributed=distributed)


def _torch_loaders(train_ds, val_ds, *, batch_size, val_batch_size, seed, num_workers, pin, drop_last, rank, world,
                   shard_val, distributed):
    """EpochLoader(train DataLoader) and a plain val DataLoader."""
    # One sampler whether distributed or not (one replica, rank 0): the order of epoch e is a permutation
    # drawn from seed * stride + e, the same rule as DeviceLoader, so a resumed run repeats it.
    train_sampler = DistributedSampler(train_ds, num_replicas=world, rank=rank, shuffle=True,
                                       seed=seed * _SEED_STRIDE, drop_last=drop_last)
    val_sampler = DistributedSampler(val_ds, num_replicas=world, rank=rank, shuffle=False) \
        if distributed and shard_val else None
    common = dict(num_workers=num_workers, pin_memory=pin)
    train = DataLoader(train_ds, batch_size=batch_size, sampler=train_sampler, drop_last=drop_last, **common)
    val = DataLoader(val_ds, batch_size=val_batch_size, sampler=val_sampler, shuffle=False, **common)
    return EpochLoader(train, seed), val


# ---------------------------------------------------------------- checks
def check_dataset(name: str, root=None, **expected) -> DatasetReport:
    """Check a dataset on disk (what `ldrld-mini prepare-data` runs); `report.format()` says what is missing.

    expected: cifar100 verify_md5, expected_train, expected_val; tiny_imagenet expected_classes,
    expected_train_per_class, expected_val_per_class; imagenet expected_classes, expected_val_per_class,
    count_images; synthetic / digits none (digits checks that scikit-learn is importable).
    """
    info = get_info(name)
    root = resolve_root(root)
    if name == "cifar100":
        options = {"verify_md5": True, "expected_train": info.train_size, "expected_val": info.val_size, **expected}
        return cifar.check_cifar100(root, **options)
    if name == "tiny_imagenet":
        return tiny_imagenet.check_tiny_imagenet(root, **expected)
    if name == "imagenet":
        return imagenet.check_imagenet(root, **expected)
    if expected:
        raise ValueError(f"{next(iter(expected))}= is not an option of check_dataset for name={name!r} (none exist)")
    return _check_in_memory(name)


def _check_in_memory(name: str) -> DatasetReport:
    """Generated / shipped datasets: always present, except digits without scikit-learn."""
    report = DatasetReport(name, None, fix="`pip install scikit-learn`")
    if name == "digits":
        try:
            import sklearn  # noqa: F401
        except ImportError:
            report.problems.append("scikit-learn is not installed; it ships the 8x8 digits")
        report.counts.update({"train images": get_info(name).train_size, "val images": get_info(name).val_size})
    else:
        report.counts["generated"] = "in memory from a seed (no files needed)"
    return report
