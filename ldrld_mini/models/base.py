"""The one contract every model of the zoo follows: `forward` returns logits, `forward_features` returns more."""
from __future__ import annotations

from torch import Tensor, nn


class FeatureModel(nn.Module):
    """Base class: subclasses implement `forward_features`; `forward(x)` returns its "logits" entry.

    `forward_features(x)` returns an ordered dict: "stem", "stage1".."stageN" (the zoo's feature list
    f0..fN, after their activation), "pooled" (B, D) and "logits" (B, num_classes).
    """

    def forward_features(self, x: Tensor) -> dict[str, Tensor]:
        raise NotImplementedError

    def forward(self, x: Tensor) -> Tensor:
        """(B, 3, H, W) -> logits (B, num_classes)."""
        return self.forward_features(x)["logits"]


def global_pool(x: Tensor) -> Tensor:
    """Average over all positions: (B, C, H, W) -> (B, C). Equals the zoo's fixed-size pools at 32x32."""
    return x.mean(dim=(2, 3))  # (B, C)
