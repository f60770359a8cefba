"""CIFAR ResNets of the CRD zoo: resnet8 ... resnet110 (16-32-64 channels) and resnet8x4, resnet32x4 (x4 wide).

Three stages of BasicBlocks on a 3x3 stem; depth = 6n + 2. Parameter names follow RepDistiller's
`models/resnet.py` (conv1, bn1, layer1..3, fc; blocks: conv1, bn1, conv2, bn2, downsample), so the CRD
teacher checkpoints load with `strict=True`.
"""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from ..base import FeatureModel, global_pool


def conv3x3(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    """3x3 convolution with padding 1 and no bias."""
    return nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=stride, padding=1, bias=False)


class BasicBlock(nn.Module):
    """relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x)): (B, C_in, H, W) -> (B, C, H/s, W/s)."""

    def __init__(self, in_channels: int, channels: int, stride: int = 1):
        super().__init__()
        self.conv1 = conv3x3(in_channels, channels, stride)
        self.bn1 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(channels, channels)
        self.bn2 = nn.BatchNorm2d(channels)
        self.downsample = None
        if stride != 1 or in_channels != channels:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, channels, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm2d(channels),
            )

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        shortcut = x if self.downsample is None else self.downsample(x)
        return F.relu(out + shortcut)


class CifarResNet(FeatureModel):
    """ResNet-(6n+2) for 32x32 inputs; `widths` = (stem, stage1, stage2, stage3) channels."""

    def __init__(self, depth: int, widths: tuple[int, int, int, int], num_classes: int = 100):
        super().__init__()
        if (depth - 2) % 6 != 0:
            raise ValueError(f"depth={depth} is not 6n+2; use e.g. 8, 14, 20, 32, 44, 56 or 110")
        blocks_per_stage = (depth - 2) // 6
        self.conv1 = nn.Conv2d(3, widths[0], kernel_size=3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = make_stage(widths[0], widths[1], blocks_per_stage, stride=1)
        self.layer2 = make_stage(widths[1], widths[2], blocks_per_stage, stride=2)
        self.layer3 = make_stage(widths[2], widths[3], blocks_per_stage, stride=2)
        self.fc = nn.Linear(widths[3], num_classes)
        init_weights(self)

    def forward_features(self, x: Tensor) -> dict[str, Tensor]:
        """(B, 3, 32, 32) -> stem (B, w0, 32, 32), stage1..3 (32, 16, 8 px), pooled (B, w3), logits."""
        stem = self.relu(self.bn1(self.conv1(x)))
        stage1 = self.layer1(stem)
        stage2 = self.layer2(stage1)
        stage3 = self.layer3(stage2)
        pooled = global_pool(stage3)  # (B, w3)
        return {"stem": stem, "stage1": stage1, "stage2": stage2, "stage3": stage3,
                "pooled": pooled, "logits": self.fc(pooled)}


def make_stage(in_channels: int, channels: int, num_blocks: int, stride: int) -> nn.Sequential:
    """`num_blocks` BasicBlocks; the first one changes stride/width."""
    blocks = [BasicBlock(in_channels, channels, stride)]
    blocks += [BasicBlock(channels, channels) for _ in range(num_blocks - 1)]
    return nn.Sequential(*blocks)


def init_weights(model: nn.Module) -> None:
    """The zoo's init: Kaiming-normal (fan_out) convolutions, BatchNorm weight 1 and bias 0."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


_NARROW = (16, 16, 32, 64)
_WIDE = (32, 64, 128, 256)


def resnet8(num_classes: int = 100) -> CifarResNet:
    return CifarResNet(8, _NARROW, num_classes)


def resnet14(num_classes: int = 100) -> CifarResNet:
    return CifarResNet(14, _NARROW, num_classes)


def resnet20(num_classes: int = 100) -> CifarResNet:
    return CifarResNet(20, _NARROW, num_classes)


def resnet32(num_classes: int = 100) -> CifarResNet:
    return CifarResNet(32, _NARROW, num_classes)


def resnet44(num_classes: int = 100) -> CifarResNet:
    return CifarResNet(44, _NARROW, num_classes)


def resnet56(num_classes: int = 100) -> CifarResNet:
    return CifarResNet(56, _NARROW, num_classes)


def resnet110(num_classes: int = 100) -> CifarResNet:
    return CifarResNet(110, _NARROW, num_classes)


def resnet8x4(num_classes: int = 100) -> CifarResNet:
    return CifarResNet(8, _WIDE, num_classes)


def resnet32x4(num_classes: int = 100) -> CifarResNet:
    return CifarResNet(32, _WIDE, num_classes)
