"""The CRD (RepDistiller) CIFAR-100 model zoo, rebuilt so its teacher checkpoints load with `strict=True`."""
from .mobilenetv2 import MobileNetV2, mobilenetv2_half
from .resnet import (CifarResNet, resnet8, resnet8x4, resnet14, resnet20, resnet32, resnet32x4, resnet44,
                     resnet56, resnet110)
from .resnetv2 import ResNet18, ResNet34, ResNet50, ResNet101, ResNet152, ResNetV2
from .shufflenet import ShuffleNetV1, ShuffleNetV2, ShuffleV1, ShuffleV2
from .vgg import VGG, vgg8, vgg11, vgg13, vgg16, vgg19
from .wrn import WideResNet, wrn_16_1, wrn_16_2, wrn_40_1, wrn_40_2

BUILDERS = {
    "resnet8": resnet8, "resnet14": resnet14, "resnet20": resnet20, "resnet32": resnet32,
    "resnet44": resnet44, "resnet56": resnet56, "resnet110": resnet110,
    "resnet8x4": resnet8x4, "resnet32x4": resnet32x4,
    "wrn_16_1": wrn_16_1, "wrn_16_2": wrn_16_2, "wrn_40_1": wrn_40_1, "wrn_40_2": wrn_40_2,
    "vgg8": vgg8, "vgg11": vgg11, "vgg13": vgg13, "vgg16": vgg16, "vgg19": vgg19,
    "ResNet18": ResNet18, "ResNet34": ResNet34, "ResNet50": ResNet50, "ResNet101": ResNet101,
    "ResNet152": ResNet152,
    "MobileNetV2": mobilenetv2_half, "ShuffleV1": ShuffleV1, "ShuffleV2": ShuffleV2,
}

__all__ = ["BUILDERS", "CifarResNet", "MobileNetV2", "ResNetV2", "ShuffleNetV1", "ShuffleNetV2", "VGG",
           "WideResNet"]
