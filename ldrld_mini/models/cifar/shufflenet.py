"""ShuffleNets of the CRD zoo: ShuffleV1 (groups 3) and ShuffleV2 (net size 1), 1x1 stems for 32x32 inputs.

Parameter names follow RepDistiller's `models/ShuffleNetv1.py` and `models/ShuffleNetv2.py` (conv1, bn1,
layer1..3, [conv2, bn2,] linear). Both pool globally, where the zoo pools by a fixed 4: identical at
32x32, and it lets ShuffleV2 run on 64x64 Tiny-ImageNet images.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from ..base import FeatureModel, global_pool


def channel_shuffle(x: Tensor, groups: int) -> Tensor:
    """Interleave the channels of `groups` groups: (B, g*c, H, W) -> (B, c*g, H, W)."""
    return rearrange(x, "b (g c) h w -> b (c g) h w", g=groups)


class ShuffleV1Block(nn.Module):
    """Grouped 1x1, shuffle, depthwise 3x3, grouped 1x1; stride 2 concatenates an avg-pooled shortcut."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, groups: int):
        super().__init__()
        self.stride = stride
        mid = out_channels // 4
        self.first_groups = 1 if in_channels == 24 else groups  # the 24-channel stem is not grouped
        self.conv1 = nn.Conv2d(in_channels, mid, kernel_size=1, groups=self.first_groups, bias=False)
        self.bn1 = nn.BatchNorm2d(mid)
        self.conv2 = nn.Conv2d(mid, mid, kernel_size=3, stride=stride, padding=1, groups=mid, bias=False)
        self.bn2 = nn.BatchNorm2d(mid)
        self.conv3 = nn.Conv2d(mid, out_channels, kernel_size=1, groups=groups, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.shortcut = nn.Sequential()
        if stride == 2:
            self.shortcut = nn.Sequential(nn.AvgPool2d(3, stride=2, padding=1))

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = channel_shuffle(out, self.first_groups)
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        shortcut = self.shortcut(x)
        merged = torch.cat([out, shortcut], dim=1) if self.stride == 2 else out + shortcut
        return F.relu(merged)


class ShuffleNetV1(FeatureModel):
    """ShuffleNet V1: 1x1 stem (24 ch), three stages whose first block halves the resolution."""

    def __init__(self, stage_channels=(240, 480, 960), num_blocks=(4, 8, 4), groups: int = 3,
                 num_classes: int = 100):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 24, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm2d(24)
        in_channels = 24
        for index, (channels, count) in enumerate(zip(stage_channels, num_blocks, strict=True), start=1):
            # the first block concatenates its input, so its branch only produces the missing channels
            blocks = [ShuffleV1Block(in_channels, channels - in_channels, stride=2, groups=groups)]
            blocks += [ShuffleV1Block(channels, channels, stride=1, groups=groups) for _ in range(count - 1)]
            self.add_module(f"layer{index}", nn.Sequential(*blocks))
            in_channels = channels
        self.linear = nn.Linear(stage_channels[-1], num_classes)

    def forward_features(self, x: Tensor) -> dict[str, Tensor]:
        """(B, 3, 32, 32) -> stem (32 px), stage1..3 (16, 8, 4 px), pooled (B, 960), logits."""
        stem = F.relu(self.bn1(self.conv1(x)))
        stage1 = self.layer1(stem)
        stage2 = self.layer2(stage1)
        stage3 = self.layer3(stage2)
        pooled = global_pool(stage3)  # (B, 960)
        return {"stem": stem, "stage1": stage1, "stage2": stage2, "stage3": stage3,
                "pooled": pooled, "logits": self.linear(pooled)}


class ShuffleV2Block(nn.Module):
    """Split channels in halves; transform the second half (1x1, dw 3x3, 1x1); concat; shuffle."""

    def __init__(self, channels: int):
        super().__init__()
        half = channels // 2
        self.conv1 = nn.Conv2d(half, half, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm2d(half)
        self.conv2 = nn.Conv2d(half, half, kernel_size=3, stride=1, padding=1, groups=half, bias=False)
        self.bn2 = nn.BatchNorm2d(half)
        self.conv3 = nn.Conv2d(half, half, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm2d(half)

    def forward(self, x: Tensor) -> Tensor:
        kept, transformed = x.chunk(2, dim=1)  # (B, C/2, H, W) each
        out = F.relu(self.bn1(self.conv1(transformed)))
        out = self.bn2(self.conv2(out))
        out = F.relu(self.bn3(self.conv3(out)))
        return channel_shuffle(torch.cat([kept, out], dim=1), groups=2)


class ShuffleV2DownBlock(nn.Module):
    """Two stride-2 branches (dw 3x3 + 1x1; 1x1 + dw 3x3 + 1x1), each out/2 channels; concat; shuffle."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        mid = out_channels // 2
        # left branch
        self.conv1 = nn.Conv2d(in_channels, in_channels, 3, stride=2, padding=1, groups=in_channels, bias=False)
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.conv2 = nn.Conv2d(in_channels, mid, kernel_size=1, bias=False)
        self.bn2 = nn.BatchNorm2d(mid)
        # right branch
        self.conv3 = nn.Conv2d(in_channels, mid, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm2d(mid)
        self.conv4 = nn.Conv2d(mid, mid, 3, stride=2, padding=1, groups=mid, bias=False)
        self.bn4 = nn.BatchNorm2d(mid)
        self.conv5 = nn.Conv2d(mid, mid, kernel_size=1, bias=False)
        self.bn5 = nn.BatchNorm2d(mid)

    def forward(self, x: Tensor) -> Tensor:
        left = F.relu(self.bn2(self.conv2(self.bn1(self.conv1(x)))))
        right = F.relu(self.bn3(self.conv3(x)))
        right = F.relu(self.bn5(self.conv5(self.bn4(self.conv4(right)))))
        return channel_shuffle(torch.cat([left, right], dim=1), groups=2)


class ShuffleNetV2(FeatureModel):
    """ShuffleNet V2: 1x1 stem (24 ch), three stages (a down block + basic blocks), 1x1 conv to 1024."""

    def __init__(self, stage_channels=(116, 232, 464), num_blocks=(3, 7, 3), last_channels: int = 1024,
                 num_classes: int = 100):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 24, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm2d(24)
        in_channels = 24
        for index, (channels, count) in enumerate(zip(stage_channels, num_blocks, strict=True), start=1):
            blocks = [ShuffleV2DownBlock(in_channels, channels)]
            blocks += [ShuffleV2Block(channels) for _ in range(count)]
            self.add_module(f"layer{index}", nn.Sequential(*blocks))
            in_channels = channels
        self.conv2 = nn.Conv2d(in_channels, last_channels, kernel_size=1, bias=False)
        self.bn2 = nn.BatchNorm2d(last_channels)
        self.linear = nn.Linear(last_channels, num_classes)

    def forward_features(self, x: Tensor) -> dict[str, Tensor]:
        """(B, 3, H, W) -> stem (H px), stage1..3 (H/2, H/4, H/8 px), pooled (B, 1024), logits."""
        stem = F.relu(self.bn1(self.conv1(x)))
        stage1 = self.layer1(stem)
        stage2 = self.layer2(stage1)
        stage3 = self.layer3(stage2)
        pooled = global_pool(F.relu(self.bn2(self.conv2(stage3))))  # (B, 1024)
        return {"stem": stem, "stage1": stage1, "stage2": stage2, "stage3": stage3,
                "pooled": pooled, "logits": self.linear(pooled)}


def ShuffleV1(num_classes: int = 100) -> ShuffleNetV1:  # noqa: N802 (zoo name)
    return ShuffleNetV1(num_classes=num_classes)


def ShuffleV2(num_classes: int = 100) -> ShuffleNetV2:  # noqa: N802 (zoo name)
    return ShuffleNetV2(num_classes=num_classes)
