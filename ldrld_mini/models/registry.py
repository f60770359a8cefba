"""Model names -> builders: `build_model`, `list_models`, `ModelInfo`."""
from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from . import cifar, imagenet, tiny_imagenet

# dataset family -> (default number of classes, input side in pixels)
FAMILIES = {"cifar": (100, 32), "tiny_imagenet": (200, 64), "imagenet": (1000, 224)}
# dataset names of ldrld_mini.data -> family (synthetic and digits are CIFAR-shaped)
DATASET_FAMILY = {"cifar": "cifar", "cifar100": "cifar", "synthetic": "cifar", "digits": "cifar",
                  "tiny_imagenet": "tiny_imagenet", "imagenet": "imagenet"}

# other names for the same model: the zoo's *_bn VGG names, RepDistiller's mobile_half, mdistiller's MobileNetV1
ALIASES = {"vgg8_bn": "vgg8", "vgg11_bn": "vgg11", "vgg13_bn": "vgg13", "vgg16_bn": "vgg16",
           "vgg19_bn": "vgg19", "mobile_half": "MobileNetV2", "MobileNetV1": "mobilenet_v1"}

# parameters (millions, rounded to 2 decimals) at the family's default class count; tests re-measure them
PARAMS_M = {
    "resnet8": 0.08, "resnet14": 0.18, "resnet20": 0.28, "resnet32": 0.47, "resnet44": 0.67,
    "resnet56": 0.86, "resnet110": 1.74, "resnet8x4": 1.23, "resnet32x4": 7.43,
    "wrn_16_1": 0.18, "wrn_16_2": 0.70, "wrn_40_1": 0.57, "wrn_40_2": 2.26,
    "vgg8": 3.97, "vgg11": 9.28, "vgg13": 9.46, "vgg16": 14.77, "vgg19": 20.09,
    "ResNet18": 11.22, "ResNet34": 21.33, "ResNet50": 23.71, "ResNet101": 42.70, "ResNet152": 58.34,
    "MobileNetV2": 0.81, "ShuffleV1": 0.95, "ShuffleV2": 1.36,
    "tiny_ResNet18": 11.27, "tiny_MobileNetV2": 2.50, "tiny_ShuffleV2": 1.46,
    "resnet18": 11.69, "resnet34": 21.80, "resnet50": 25.56, "resnet101": 44.55, "resnet152": 60.19,
    "mobilenet_v1": 4.23,
}


@dataclass(frozen=True)
class ModelInfo:
    """One buildable model: its name, dataset family, input side (pixels) and parameters (millions)."""

    name: str
    dataset: str
    input_size: int
    params_m: float


BUILDERS: dict[str, tuple[Callable[..., nn.Module], str]] = {
    **{name: (builder, "cifar") for name, builder in cifar.BUILDERS.items()},
    **{name: (builder, "tiny_imagenet") for name, builder in tiny_imagenet.BUILDERS.items()},
    **{name: (builder, "imagenet") for name, builder in imagenet.BUILDERS.items()},
}


def dataset_family(dataset: str) -> str:
    """"cifar100" / "synthetic" / "digits" -> "cifar"; "tiny_imagenet", "imagenet" unchanged."""
    if dataset not in DATASET_FAMILY:
        raise ValueError(f"dataset={dataset!r} is unknown; use one of {sorted(DATASET_FAMILY)}")
    return DATASET_FAMILY[dataset]


def resolve_name(name: str, dataset: str | None = None) -> str:
    """Canonical model name for `name` (aliases, `tiny_` variants when dataset="tiny_imagenet")."""
    name = ALIASES.get(name, name)
    if dataset is not None and dataset_family(dataset) == "tiny_imagenet" and f"tiny_{name}" in BUILDERS:
        name = f"tiny_{name}"
    if name not in BUILDERS:
        known = sorted(BUILDERS) + sorted(ALIASES)
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
        hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        raise ValueError(f"model name {name!r} is unknown.{hint} Known names: {', '.join(sorted(BUILDERS))} "
                         f"(aliases: {', '.join(sorted(ALIASES))}); names are case-sensitive "
                         "(ResNet50 = CIFAR, resnet50 = ImageNet).")
    return name


def build_model(name: str, num_classes: int | None = None, *, dataset: str | None = None, **kwargs) -> nn.Module:
    """Build model `name`; `model(x)` returns logits (B, num_classes).

    num_classes defaults to the model's dataset (100 CIFAR, 200 Tiny-ImageNet, 1000 ImageNet).
    dataset="tiny_imagenet" picks the `tiny_` variant of a name (ResNet18 -> tiny_ResNet18).
    ImageNet ResNets accept weights="IMAGENET1K_V1" (downloaded by torchvision only then).
    """
    key = resolve_name(name, dataset)
    builder, family = BUILDERS[key]
    if dataset is not None:
        wanted = dataset_family(dataset)
        if family != wanted and not (wanted == "tiny_imagenet" and family == "cifar"):
            raise ValueError(f"model {key!r} is a {family} model but dataset={dataset!r}; "
                             f"pick one of list_models({wanted!r})")
        default_classes = FAMILIES[wanted][0]
    else:
        default_classes = FAMILIES[family][0]
    num_classes = default_classes if num_classes is None else num_classes
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes={num_classes!r} must be a positive int, e.g. 100 for CIFAR-100")
    if "weights" in kwargs and key not in imagenet.TORCHVISION_RESNETS:
        raise ValueError(f"weights={kwargs['weights']!r}: only the torchvision ImageNet ResNets "
                         f"({', '.join(imagenet.TORCHVISION_RESNETS)}) take weights; for {key!r} use "
                         "load_checkpoint(model, path)")
    return builder(num_classes=num_classes, **kwargs)


def list_models(dataset: str | None = None) -> list[ModelInfo]:
    """All buildable models (aliases excluded), optionally of one dataset family, in registry order."""
    family = None if dataset is None else dataset_family(dataset)
    return [ModelInfo(name, fam, FAMILIES[fam][1], PARAMS_M[name])
            for name, (_, fam) in BUILDERS.items() if family is None or fam == family]
