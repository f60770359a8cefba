"""Tiny-ImageNet (64x64, 200 classes) models of mdistiller's DOT recipe: tiny_ResNet18, tiny_MobileNetV2,
tiny_ShuffleV2.

tiny_ResNet18 and tiny_ShuffleV2 are the CIFAR classes (both pool globally, so 64x64 works).
tiny_MobileNetV2 follows mdistiller's `mv2_tinyimagenet.py` (width 1, ReLU6, biased convs, a 1x1
convolution as classifier). Its quirk is kept: the 1x1 stem convolution has padding 1, so a 64x64 image
becomes 66x66 (a border of constant values) and reaches the head at 9x9.
"""
from __future__ import annotations

from torch import Tensor, nn

from .base import FeatureModel, global_pool
from .cifar import ResNet18, ShuffleV2


class LinearBottleneck(nn.Module):
    """1x1 expand (x t), 3x3 depthwise (stride s), 1x1 project (all with bias); residual when shapes match."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, expansion: int = 6):
        super().__init__()
        hidden = in_channels * expansion
        self.use_residual = stride == 1 and in_channels == out_channels
        self.residual = nn.Sequential(  # the branch; its name is mdistiller's checkpoint key
            nn.Conv2d(in_channels, hidden, 1),
            nn.BatchNorm2d(hidden),
            nn.ReLU6(inplace=True),
            nn.Conv2d(hidden, hidden, 3, stride=stride, padding=1, groups=hidden),
            nn.BatchNorm2d(hidden),
            nn.ReLU6(inplace=True),
            nn.Conv2d(hidden, out_channels, 1),
            nn.BatchNorm2d(out_channels),
        )

    def forward(self, x: Tensor) -> Tensor:
        out = self.residual(x)
        return out + x if self.use_residual else out


def make_stage(repeats: int, in_channels: int, out_channels: int, stride: int, expansion: int) -> nn.Sequential:
    """`repeats` LinearBottlenecks; the first one changes stride/width."""
    blocks = [LinearBottleneck(in_channels, out_channels, stride, expansion)]
    blocks += [LinearBottleneck(out_channels, out_channels, 1, expansion) for _ in range(repeats - 1)]
    return nn.Sequential(*blocks)


class TinyMobileNetV2(FeatureModel):
    """mdistiller's Tiny-ImageNet MobileNetV2 (width 1): pre, stage1..7, conv1 (to 1280), conv2 (classifier)."""

    def __init__(self, num_classes: int = 200):
        super().__init__()
        self.pre = nn.Sequential(nn.Conv2d(3, 32, 1, padding=1), nn.BatchNorm2d(32), nn.ReLU6(inplace=True))
        self.stage1 = LinearBottleneck(32, 16, 1, 1)
        self.stage2 = make_stage(2, 16, 24, 2, 6)
        self.stage3 = make_stage(3, 24, 32, 2, 6)
        self.stage4 = make_stage(4, 32, 64, 2, 6)
        self.stage5 = make_stage(3, 64, 96, 1, 6)
        self.stage6 = make_stage(3, 96, 160, 1, 6)
        self.stage7 = LinearBottleneck(160, 320, 1, 6)
        self.conv1 = nn.Sequential(nn.Conv2d(320, 1280, 1), nn.BatchNorm2d(1280), nn.ReLU6(inplace=True))
        self.conv2 = nn.Conv2d(1280, num_classes, 1)

    def forward_features(self, x: Tensor) -> dict[str, Tensor]:
        """(B, 3, 64, 64) -> stem (66 px), stage1..4 (33, 17, 9, 9 px), pooled (B, 1280), logits (B, K)."""
        stem = self.pre(x)
        stage1 = self.stage2(self.stage1(stem))
        stage2 = self.stage3(stage1)
        stage3 = self.stage4(stage2)
        stage4 = self.conv1(self.stage7(self.stage6(self.stage5(stage3))))
        pooled = global_pool(stage4)  # (B, 1280)
        logits = self.conv2(pooled[:, :, None, None]).flatten(1)  # (B, 1280, 1, 1) -> (B, K)
        return {"stem": stem, "stage1": stage1, "stage2": stage2, "stage3": stage3, "stage4": stage4,
                "pooled": pooled, "logits": logits}


def tiny_ResNet18(num_classes: int = 200) -> nn.Module:  # noqa: N802 (zoo name)
    """CIFAR-stem ResNet18 (3x3 stride-1 stem, no max-pool) for 64x64 inputs."""
    return ResNet18(num_classes)


def tiny_MobileNetV2(num_classes: int = 200) -> TinyMobileNetV2:  # noqa: N802
    """mdistiller's `mobilenetv2_tinyimagenet` layout."""
    return TinyMobileNetV2(num_classes)


def tiny_ShuffleV2(num_classes: int = 200) -> nn.Module:  # noqa: N802
    """The CIFAR ShuffleV2 with global pooling (the zoo's fixed pool by 4 breaks at 64x64)."""
    return ShuffleV2(num_classes)


BUILDERS = {"tiny_ResNet18": tiny_ResNet18, "tiny_MobileNetV2": tiny_MobileNetV2, "tiny_ShuffleV2": tiny_ShuffleV2}
