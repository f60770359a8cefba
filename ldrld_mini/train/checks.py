"""What is checked about a config before data, teacher or run folder are touched: the device, the model names for
the dataset, `loss.k` against the classes. Each check raises ValueError whose message names the option, the
value and the fix; the engine (`fit`) and the CLI call the same functions, so each mistake has one wording.
"""
from __future__ import annotations

import torch

from ..recipes import Config

__all__ = ["DEVICE_FIX", "check_device", "check_model_name", "check_config", "num_classes_of"]

DEVICE_FIX = "use --device cpu (train.device=cpu), or auto to take a GPU only when one is there"


def check_device(name: str, option: str = "train.device") -> torch.device:
    """The torch.device for `name` (auto, cpu, mps, cuda, cuda:N); ValueError naming `option` when it is not
    a device or not present on this machine."""
    from ..recipes.config import DEVICE_PATTERN
    from .distributed import resolve_device

    if not (isinstance(name, str) and DEVICE_PATTERN.match(name)):
        raise ValueError(f"{option} {name!r} is not a device; use auto, cpu, cuda or cuda:N (mps on Macs).")
    device = resolve_device(name)
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ValueError(f"{option} {name!r}: no CUDA GPU is visible here (torch.cuda.is_available() is "
                             f"False); {DEVICE_FIX}.")
        if (device.index or 0) >= count:
            raise ValueError(f"{option} {name!r}: this machine has {count} GPU(s), cuda:0 to cuda:{count - 1}.")
    if device.type == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise ValueError(f"{option} {name!r}: MPS is not available here; {DEVICE_FIX}.")
    return device


def check_model_name(name: str, dataset: str | None, option: str) -> None:
    """ValueError naming `option` when `name` is not in the model zoo, or (given `dataset`) not a model of
    `dataset`'s family (e.g. an ImageNet ResNet on CIFAR-100)."""
    from ..models.registry import BUILDERS, dataset_family, list_models, resolve_name

    try:
        key = resolve_name(name, dataset)
    except ValueError as err:
        raise ValueError(f"{option} {name!r}: {err}") from None
    if dataset is None:
        return
    family, wanted = BUILDERS[key][1], dataset_family(dataset)
    if family != wanted and not (wanted == "tiny_imagenet" and family == "cifar"):
        names = ", ".join(m.name for m in list_models(dataset))
        kinds = {"cifar": "a CIFAR", "tiny_imagenet": "a Tiny-ImageNet", "imagenet": "an ImageNet"}
        raise ValueError(f"{option} {name!r} is {kinds[family]} model, but {dataset} needs {kinds[wanted]} "
                         f"model: one of {names}.")


def check_config(cfg: Config) -> None:
    """Everything about `cfg` that can be checked before data, teacher or run folder are touched: the device,
    the model names for the dataset, `loss.k` against the number of classes."""
    check_device(cfg.train.device)
    check_model_name(cfg.model.student, cfg.dataset, "model.student")
    if cfg.method != "vanilla" and cfg.model.teacher:
        check_model_name(cfg.model.teacher, cfg.dataset, "model.teacher")
    k, classes = cfg.loss.get("k"), num_classes_of(cfg)
    if cfg.method == "ldrld" and isinstance(k, int) and k > classes:
        raise ValueError(f"loss.k={k} is larger than the {classes} classes of this {cfg.dataset} run; choose "
                         f"2 <= loss.k <= {classes} (the paper uses 7).")


def num_classes_of(cfg: Config) -> int:
    """Classes of the config's data: `data.options.num_classes`, else the dataset registry's."""
    if cfg.data.options.get("num_classes"):
        return int(cfg.data.options["num_classes"])
    from ..data import DATASETS
    return DATASETS[cfg.dataset].num_classes
