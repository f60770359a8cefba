"""CIFAR-stem ResNets of the CRD zoo: ResNet18, ResNet34, ResNet50, ResNet101, ResNet152 ("resnetv2").

ImageNet block layout with a 3x3 stride-1 stem and no max-pool (so 32x32 inputs reach layer4 at 4x4).
Parameter names follow RepDistiller's `models/resnetv2.py`: conv1, bn1, layer1..4, linear; blocks:
conv1, bn1, conv2, bn2 (, conv3, bn3), shortcut. Pooling is global, so 64x64 (Tiny-ImageNet) works too.
"""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from ..base import FeatureModel, global_pool


def projection(in_channels: int, out_channels: int, stride: int) -> nn.Sequential:
    """1x1 conv + BN shortcut, or an empty Sequential (identity) when shapes already match."""
    if stride == 1 and in_channels == out_channels:
        return nn.Sequential()
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=stride, bias=False),
        nn.BatchNorm2d(out_channels),
    )


class BasicBlock(nn.Module):
    """Two 3x3 convs + shortcut: (B, C_in, H, W) -> (B, C, H/s, W/s)."""

    expansion = 1

    def __init__(self, in_channels: int, channels: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.shortcut = projection(in_channels, channels, stride)

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3, 1x1 expand (x4) + shortcut: (B, C_in, H, W) -> (B, 4C, H/s, W/s)."""

    expansion = 4

    def __init__(self, in_channels: int, channels: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.conv3 = nn.Conv2d(channels, 4 * channels, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(4 * channels)
        self.shortcut = projection(in_channels, 4 * channels, stride)

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return F.relu(out + self.shortcut(x))


class ResNetV2(FeatureModel):
    """ResNet with a CIFAR stem; `num_blocks` per stage of 64, 128, 256, 512 (x expansion) channels."""

    def __init__(self, block: type[BasicBlock | Bottleneck], num_blocks: list[int], num_classes: int = 100):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        in_channels = 64
        for index, (channels, count) in enumerate(zip((64, 128, 256, 512), num_blocks, strict=True), start=1):
            stride = 1 if index == 1 else 2
            blocks = []
            for block_stride in [stride] + [1] * (count - 1):
                blocks.append(block(in_channels, channels, block_stride))
                in_channels = channels * block.expansion
            self.add_module(f"layer{index}", nn.Sequential(*blocks))
        self.linear = nn.Linear(512 * block.expansion, num_classes)
        init_weights(self)

    def forward_features(self, x: Tensor) -> dict[str, Tensor]:
        """(B, 3, H, W) -> stem (H px), stage1..4 (H, H/2, H/4, H/8 px), pooled (B, 512e), logits."""
        stem = F.relu(self.bn1(self.conv1(x)))
        stage1 = self.layer1(stem)
        stage2 = self.layer2(stage1)
        stage3 = self.layer3(stage2)
        stage4 = self.layer4(stage3)
        pooled = global_pool(stage4)  # (B, 512e)
        return {"stem": stem, "stage1": stage1, "stage2": stage2, "stage3": stage3, "stage4": stage4,
                "pooled": pooled, "logits": self.linear(pooled)}


def init_weights(model: nn.Module) -> None:
    """The zoo's init: Kaiming-normal (fan_out) convolutions, BatchNorm weight 1 and bias 0."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def ResNet18(num_classes: int = 100) -> ResNetV2:  # noqa: N802 (zoo name)
    return ResNetV2(BasicBlock, [2, 2, 2, 2], num_classes)


def ResNet34(num_classes: int = 100) -> ResNetV2:  # noqa: N802
    return ResNetV2(BasicBlock, [3, 4, 6, 3], num_classes)


def ResNet50(num_classes: int = 100) -> ResNetV2:  # noqa: N802
    return ResNetV2(Bottleneck, [3, 4, 6, 3], num_classes)


def ResNet101(num_classes: int = 100) -> ResNetV2:  # noqa: N802
    return ResNetV2(Bottleneck, [3, 4, 23, 3], num_classes)


def ResNet152(num_classes: int = 100) -> ResNetV2:  # noqa: N802
    return ResNetV2(Bottleneck, [3, 8, 36, 3], num_classes)
