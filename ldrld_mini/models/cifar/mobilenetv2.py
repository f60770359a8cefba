"""MobileNetV2 of the CRD zoo (`MobileNetV2`, zoo alias `mobile_half`): width 0.5, expansion 6, 32x32 input.

Parameter names follow RepDistiller's `models/mobilenetv2.py`: conv1 (conv-bn-relu), blocks (7 groups of
InvertedResiduals, each holding `.conv` = pw conv, bn, relu, dw conv, bn, relu, pw-linear conv, bn),
conv2 (1x1 to 1280, bn, relu) and classifier (a Sequential holding one Linear). Zoo quirks kept: the stem
has stride 2 and the first group also has a (t = 1) expansion conv.
"""
from __future__ import annotations

import math

from torch import Tensor, nn

from ..base import FeatureModel, global_pool


def conv_bn_relu(in_channels: int, out_channels: int, kernel_size: int, stride: int = 1) -> nn.Sequential:
    """conv (no bias) + BN + ReLU."""
    padding = kernel_size // 2
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class InvertedResidual(nn.Module):
    """1x1 expand (x t), 3x3 depthwise (stride s), 1x1 project; residual when shapes match."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, expansion: int):
        super().__init__()
        hidden = in_channels * expansion
        self.use_residual = stride == 1 and in_channels == out_channels
        self.conv = nn.Sequential(
            nn.Conv2d(in_channels, hidden, 1, 1, 0, bias=False),
            nn.BatchNorm2d(hidden),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False),
            nn.BatchNorm2d(hidden),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, out_channels, 1, 1, 0, bias=False),
            nn.BatchNorm2d(out_channels),
        )

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv(x)
        return x + out if self.use_residual else out


class MobileNetV2(FeatureModel):
    """MobileNetV2 (t, c, n, s table of the paper) scaled by `width`; `expansion` replaces t = 6."""

    def __init__(self, num_classes: int = 100, width: float = 0.5, expansion: int = 6):
        super().__init__()
        settings = [  # expansion t, channels c, repeats n, first stride s
            (1, 16, 1, 1), (expansion, 24, 2, 1), (expansion, 32, 3, 2), (expansion, 64, 4, 2),
            (expansion, 96, 3, 1), (expansion, 160, 3, 2), (expansion, 320, 1, 1),
        ]
        in_channels = int(32 * width)
        self.conv1 = conv_bn_relu(3, in_channels, 3, stride=2)
        self.blocks = nn.ModuleList()
        for t, c, n, s in settings:
            out_channels = int(c * width)
            group = []
            for stride in [s] + [1] * (n - 1):
                group.append(InvertedResidual(in_channels, out_channels, stride, t))
                in_channels = out_channels
            self.blocks.append(nn.Sequential(*group))
        last_channels = int(1280 * width) if width > 1.0 else 1280
        self.conv2 = conv_bn_relu(in_channels, last_channels, 1)
        self.classifier = nn.Sequential(nn.Linear(last_channels, num_classes))
        init_weights(self)

    def forward_features(self, x: Tensor) -> dict[str, Tensor]:
        """(B, 3, 32, 32) -> stem (16 px), stage1..4 (16, 8, 4, 2 px), pooled (B, 1280), logits."""
        stem = self.conv1(x)
        stage1 = self.blocks[1](self.blocks[0](stem))
        stage2 = self.blocks[2](stage1)
        stage3 = self.blocks[4](self.blocks[3](stage2))
        stage4 = self.blocks[6](self.blocks[5](stage3))
        pooled = global_pool(self.conv2(stage4))  # (B, 1280)
        return {"stem": stem, "stage1": stage1, "stage2": stage2, "stage3": stage3, "stage4": stage4,
                "pooled": pooled, "logits": self.classifier(pooled)}


def init_weights(model: nn.Module) -> None:
    """The zoo's init: conv N(0, 2/(k*k*out)), BatchNorm 1/0, Linear N(0, 0.01) bias 0."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
            nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / fan_out))
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0.0, 0.01)
            nn.init.zeros_(m.bias)


def mobilenetv2_half(num_classes: int = 100) -> MobileNetV2:
    """The zoo's `MobileNetV2` / `mobile_half`: width 0.5, expansion 6."""
    return MobileNetV2(num_classes, width=0.5, expansion=6)
