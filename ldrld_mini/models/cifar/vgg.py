"""VGG-BN networks of the CRD zoo: vgg8, vgg11, vgg13, vgg16, vgg19 (zoo aliases vgg8_bn ... vgg19_bn).

Five conv blocks (`block0..block4`, each conv-bn-relu repeated, ending on a BatchNorm), max-pools between
them, global average pooling and one Linear `classifier` (512 -> num_classes), as in RepDistiller's
`models/vgg.py`. Zoo quirk kept: the pool after block3 is applied only to 64x64 inputs, so a 32x32 image
reaches block4 at 4x4.
"""
from __future__ import annotations

import math

import torch.nn.functional as F
from torch import Tensor, nn

from ..base import FeatureModel, global_pool

# output channels of the convolutions in each of the five blocks
CONFIGS = {
    "vgg8": [[64], [128], [256], [512], [512]],
    "vgg11": [[64], [128], [256, 256], [512, 512], [512, 512]],
    "vgg13": [[64, 64], [128, 128], [256, 256], [512, 512], [512, 512]],
    "vgg16": [[64, 64], [128, 128], [256, 256, 256], [512, 512, 512], [512, 512, 512]],
    "vgg19": [[64, 64], [128, 128], [256] * 4, [512] * 4, [512] * 4],
}


def make_block(widths: list[int], in_channels: int, batch_norm: bool = True) -> nn.Sequential:
    """conv3x3 (+bn) (+relu) per width; the last relu is dropped (applied in forward)."""
    layers: list[nn.Module] = []
    for width in widths:
        layers.append(nn.Conv2d(in_channels, width, kernel_size=3, padding=1))
        if batch_norm:
            layers.append(nn.BatchNorm2d(width))
        layers.append(nn.ReLU(inplace=True))
        in_channels = width
    return nn.Sequential(*layers[:-1])


class VGG(FeatureModel):
    """VGG with 5 blocks and one linear classifier for 32x32 (or 64x64) inputs."""

    def __init__(self, config: list[list[int]], num_classes: int = 100, batch_norm: bool = True):
        super().__init__()
        in_channels = [3] + [widths[-1] for widths in config[:-1]]
        self.block0 = make_block(config[0], in_channels[0], batch_norm)
        self.block1 = make_block(config[1], in_channels[1], batch_norm)
        self.block2 = make_block(config[2], in_channels[2], batch_norm)
        self.block3 = make_block(config[3], in_channels[3], batch_norm)
        self.block4 = make_block(config[4], in_channels[4], batch_norm)
        self.pool0 = nn.MaxPool2d(kernel_size=2, stride=2)
        self.pool1 = nn.MaxPool2d(kernel_size=2, stride=2)
        self.pool2 = nn.MaxPool2d(kernel_size=2, stride=2)
        self.pool3 = nn.MaxPool2d(kernel_size=2, stride=2)
        self.classifier = nn.Linear(config[4][-1], num_classes)
        init_weights(self)

    def forward_features(self, x: Tensor) -> dict[str, Tensor]:
        """(B, 3, 32, 32) -> stem (32 px), stage1..4 (16, 8, 4, 4 px), pooled (B, 512), logits."""
        pool_after_block3 = x.shape[-2] == 64  # the zoo's rule (Tiny-ImageNet inputs)
        stem = F.relu(self.block0(x))
        stage1 = F.relu(self.block1(self.pool0(stem)))
        stage2 = F.relu(self.block2(self.pool1(stage1)))
        stage3 = F.relu(self.block3(self.pool2(stage2)))
        stage4 = F.relu(self.block4(self.pool3(stage3) if pool_after_block3 else stage3))
        pooled = global_pool(stage4)  # (B, 512)
        return {"stem": stem, "stage1": stage1, "stage2": stage2, "stage3": stage3, "stage4": stage4,
                "pooled": pooled, "logits": self.classifier(pooled)}


def init_weights(model: nn.Module) -> None:
    """The zoo's init: conv N(0, 2/(k*k*out)) bias 0, BatchNorm 1/0, Linear N(0, 0.01) bias 0."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
            nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / fan_out))
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0.0, 0.01)
            nn.init.zeros_(m.bias)


def vgg8(num_classes: int = 100) -> VGG:
    return VGG(CONFIGS["vgg8"], num_classes)


def vgg11(num_classes: int = 100) -> VGG:
    return VGG(CONFIGS["vgg11"], num_classes)


def vgg13(num_classes: int = 100) -> VGG:
    return VGG(CONFIGS["vgg13"], num_classes)


def vgg16(num_classes: int = 100) -> VGG:
    return VGG(CONFIGS["vgg16"], num_classes)


def vgg19(num_classes: int = 100) -> VGG:
    return VGG(CONFIGS["vgg19"], num_classes)
