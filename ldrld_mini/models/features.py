"""`extract_features(model, x)`: every stage output of one forward pass, for plots and feature-based KD."""
from __future__ import annotations

from torch import Tensor, nn

from .imagenet import torchvision_resnet_features


def unwrap(model: nn.Module) -> nn.Module:
    """The network inside DataParallel / DistributedDataParallel / torch.compile wrappers."""
    while True:
        if isinstance(model, (nn.DataParallel, nn.parallel.DistributedDataParallel)):
            model = model.module
        elif hasattr(model, "_orig_mod"):  # torch.compile
            model = model._orig_mod
        else:
            return model


def extract_features(model: nn.Module, x: Tensor) -> dict[str, Tensor]:
    """(B, 3, H, W) -> {"stem", "stage1".."stageN", "pooled" (B, D), "logits" (B, K)} in one forward pass.

    Stage tensors are the zoo's feature list f0..fN (after activation); "logits" equals `model(x)`.
    """
    net = unwrap(model)
    if hasattr(net, "forward_features"):
        return net.forward_features(x)
    if type(net).__module__.startswith("torchvision."):
        from torchvision.models import ResNet

        if isinstance(net, ResNet):
            return torchvision_resnet_features(net, x)
    raise TypeError(f"extract_features: model of type {type(net).__name__} has no forward_features; "
                    "pass a model made by ldrld_mini.models.build_model")
