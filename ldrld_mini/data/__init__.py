"""Datasets and loaders: CIFAR-100, Tiny-ImageNet, ImageNet-1K, the offline `synthetic` set and `digits`.

    train_loader, val_loader = build_loaders("synthetic", batch_size=64, gpu_resident=True)
    for epoch in range(1, epochs + 1):
        train_loader.set_epoch(epoch)          # the order depends only on (seed, epoch): exact resume
        for images, labels in train_loader:    # float32 (B, 3, H, W) normalised, int64 (B,)
            ...
"""
from .build import EpochLoader, build_datasets, build_loaders, check_dataset
from .device_loader import DeviceLoader, crop_flip, epoch_generator, normalise
from .memory import ArrayDataset
from .registry import DATASETS, DatasetInfo, default_root, get_info
from .report import DatasetNotReadyError, DatasetReport
from .standins import write_cifar100_standin, write_imagenet_standin, write_tiny_imagenet_standin
from .synthetic import class_names, generate_synthetic, superclass_map, superclass_names, superclass_of
from .tiny_imagenet import TinyImageNet

__all__ = [
    "DATASETS", "DatasetInfo", "get_info", "default_root",
    "build_datasets", "build_loaders", "check_dataset", "DatasetReport", "DatasetNotReadyError",
    "DeviceLoader", "EpochLoader", "epoch_generator", "crop_flip", "normalise",
    "ArrayDataset", "TinyImageNet",
    "generate_synthetic", "superclass_of", "superclass_map", "class_names", "superclass_names",
    "write_cifar100_standin", "write_tiny_imagenet_standin", "write_imagenet_standin",
]
