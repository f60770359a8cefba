"""ImageNet (224x224, 1000 classes) models: torchvision's resnet18 ... resnet152 and mdistiller's MobileNetV1.

Pretrained weights come only through torchvision's weights API and only when asked for:
`build_model("resnet34", weights="IMAGENET1K_V1")` (the paper's teachers; V2 weights would inflate
results). Without `weights` nothing is downloaded. torchvision is imported on first use (it is slow to import).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from torch import Tensor, nn

from .base import FeatureModel

if TYPE_CHECKING:
    from torchvision.models import ResNet

TORCHVISION_RESNETS = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152")


def torchvision_resnet(arch: str, num_classes: int = 1000, weights: str | None = None) -> ResNet:
    """torchvision ResNet `arch`; `weights` (e.g. "IMAGENET1K_V1") downloads them via torchvision."""
    from torchvision import models as tv_models

    if weights is not None and num_classes != 1000:
        raise ValueError(f"num_classes={num_classes} with weights={weights!r}: pretrained ImageNet weights have "
                         "1000 classes; build with num_classes=1000, then replace `model.fc`")
    return getattr(tv_models, arch)(weights=weights, num_classes=num_classes)


def torchvision_resnet_features(model: ResNet, x: Tensor) -> dict[str, Tensor]:
    """(B, 3, 224, 224) -> stem (56 px, after max-pool), stage1..4 (56, 28, 14, 7 px), pooled, logits."""
    stem = model.maxpool(model.relu(model.bn1(model.conv1(x))))
    stage1 = model.layer1(stem)
    stage2 = model.layer2(stage1)
    stage3 = model.layer3(stage2)
    stage4 = model.layer4(stage3)
    pooled = model.avgpool(stage4).flatten(1)  # (B, 512e, 1, 1) -> (B, 512e)
    return {"stem": stem, "stage1": stage1, "stage2": stage2, "stage3": stage3, "stage4": stage4,
            "pooled": pooled, "logits": model.fc(pooled)}


def conv_bn_relu(in_channels: int, out_channels: int, stride: int) -> nn.Sequential:
    """3x3 conv (no bias) + BN + ReLU."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


def depthwise_separable(in_channels: int, out_channels: int, stride: int) -> nn.Sequential:
    """3x3 depthwise conv + BN + ReLU, then 1x1 pointwise conv + BN + ReLU."""
    return nn.Sequential(
        nn.Conv2d(in_channels, in_channels, 3, stride, 1, groups=in_channels, bias=False),
        nn.BatchNorm2d(in_channels),
        nn.ReLU(inplace=True),
        nn.Conv2d(in_channels, out_channels, 1, 1, 0, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


# (output channels, stride) of the 13 depthwise-separable layers
MOBILENET_V1_LAYERS = [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2), (512, 1), (512, 1),
                       (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1)]


class MobileNetV1(FeatureModel):
    """MobileNetV1 in mdistiller's layout: `model` (stem + 13 separable layers + pool) and `fc`.

    mdistiller pools with AvgPool2d(7) (224x224 only); this version pools globally, which is the
    same at 224x224 and also runs on smaller images.
    """

    def __init__(self, num_classes: int = 1000):
        super().__init__()
        layers = [conv_bn_relu(3, 32, 2)]
        in_channels = 32
        for out_channels, stride in MOBILENET_V1_LAYERS:
            layers.append(depthwise_separable(in_channels, out_channels, stride))
            in_channels = out_channels
        layers.append(nn.AdaptiveAvgPool2d(1))
        self.model = nn.Sequential(*layers)
        self.fc = nn.Linear(1024, num_classes)

    def forward_features(self, x: Tensor) -> dict[str, Tensor]:
        """(B, 3, 224, 224) -> stem (112 px), stage1..4 (56, 28, 14, 7 px), pooled (B, 1024), logits."""
        stem = self.model[0](x)
        stage1 = self.model[1:4](stem)
        stage2 = self.model[4:6](stage1)
        stage3 = self.model[6:12](stage2)
        stage4 = self.model[12:14](stage3)
        pooled = self.model[14](stage4).flatten(1)  # (B, 1024, 1, 1) -> (B, 1024)
        return {"stem": stem, "stage1": stage1, "stage2": stage2, "stage3": stage3, "stage4": stage4,
                "pooled": pooled, "logits": self.fc(pooled)}


def mobilenet_v1(num_classes: int = 1000) -> MobileNetV1:
    return MobileNetV1(num_classes)


def _resnet_builder(arch: str):
    def build(num_classes: int = 1000, weights: str | None = None) -> ResNet:
        return torchvision_resnet(arch, num_classes, weights)

    build.__name__ = arch
    build.__doc__ = f"torchvision {arch}; weights=None (default) downloads nothing."
    return build


BUILDERS = {arch: _resnet_builder(arch) for arch in TORCHVISION_RESNETS}
BUILDERS["mobilenet_v1"] = mobilenet_v1
