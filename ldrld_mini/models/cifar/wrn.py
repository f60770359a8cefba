"""Wide ResNets of the CRD zoo: wrn_16_1, wrn_16_2, wrn_40_1, wrn_40_2 (WRN-depth-width, pre-activation).

Parameter names follow RepDistiller's `models/wrn.py`: conv1, block1..3 (each holding `.layer`), bn1, fc;
blocks: bn1, conv1, bn2, conv2 and `convShortcut` (camelCase kept: it is a checkpoint key) when the
width or stride changes.
"""
from __future__ import annotations

import math

import torch.nn.functional as F
from torch import Tensor, nn

from ..base import FeatureModel, global_pool


class WideBlock(nn.Module):
    """Pre-activation block: conv2(relu(bn2(conv1(a)))) + shortcut, a = relu(bn1(x))."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, drop_rate: float = 0.0):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, stride=1, padding=1, bias=False)
        self.drop_rate = drop_rate
        self.convShortcut = None  # noqa: N815 (the zoo's checkpoint key)
        if in_channels != out_channels:
            self.convShortcut = nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        activated = self.relu1(self.bn1(x))
        # identity blocks add the raw input; widening blocks project the activated input (as the zoo does)
        shortcut = x if self.convShortcut is None else self.convShortcut(activated)
        out = self.relu2(self.bn2(self.conv1(activated)))
        if self.drop_rate > 0:
            out = F.dropout(out, p=self.drop_rate, training=self.training)
        return shortcut + self.conv2(out)


class WideStage(nn.Module):
    """`num_blocks` WideBlocks kept in `.layer` (the zoo's NetworkBlock)."""

    def __init__(self, num_blocks: int, in_channels: int, out_channels: int, stride: int, drop_rate: float):
        super().__init__()
        blocks = [WideBlock(in_channels, out_channels, stride, drop_rate)]
        blocks += [WideBlock(out_channels, out_channels, 1, drop_rate) for _ in range(num_blocks - 1)]
        self.layer = nn.Sequential(*blocks)

    def forward(self, x: Tensor) -> Tensor:
        return self.layer(x)


class WideResNet(FeatureModel):
    """WRN-depth-widen for 32x32 inputs; depth = 6n + 4."""

    def __init__(self, depth: int, widen_factor: int, num_classes: int = 100, drop_rate: float = 0.0):
        super().__init__()
        if (depth - 4) % 6 != 0:
            raise ValueError(f"depth={depth} is not 6n+4; use e.g. 16 or 40")
        n = (depth - 4) // 6
        widths = [16, 16 * widen_factor, 32 * widen_factor, 64 * widen_factor]
        self.conv1 = nn.Conv2d(3, widths[0], kernel_size=3, stride=1, padding=1, bias=False)
        self.block1 = WideStage(n, widths[0], widths[1], 1, drop_rate)
        self.block2 = WideStage(n, widths[1], widths[2], 2, drop_rate)
        self.block3 = WideStage(n, widths[2], widths[3], 2, drop_rate)
        self.bn1 = nn.BatchNorm2d(widths[3])
        self.relu = nn.ReLU(inplace=True)
        self.fc = nn.Linear(widths[3], num_classes)
        init_weights(self)

    def forward_features(self, x: Tensor) -> dict[str, Tensor]:
        """(B, 3, 32, 32) -> stem (B, 16, 32, 32), stage1..3 (pre-activation), pooled (B, 64k), logits."""
        stem = self.conv1(x)
        stage1 = self.block1(stem)
        stage2 = self.block2(stage1)
        stage3 = self.block3(stage2)
        pooled = global_pool(self.relu(self.bn1(stage3)))  # (B, 64k)
        return {"stem": stem, "stage1": stage1, "stage2": stage2, "stage3": stage3,
                "pooled": pooled, "logits": self.fc(pooled)}


def init_weights(model: nn.Module) -> None:
    """The zoo's init: conv N(0, 2/(k*k*out)), BatchNorm 1/0, Linear bias 0 (weight: PyTorch default)."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
            nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / fan_out))
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.zeros_(m.bias)


def wrn_16_1(num_classes: int = 100) -> WideResNet:
    return WideResNet(16, 1, num_classes)


def wrn_16_2(num_classes: int = 100) -> WideResNet:
    return WideResNet(16, 2, num_classes)


def wrn_40_1(num_classes: int = 100) -> WideResNet:
    return WideResNet(40, 1, num_classes)


def wrn_40_2(num_classes: int = 100) -> WideResNet:
    return WideResNet(40, 2, num_classes)
