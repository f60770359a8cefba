"""The loss library: pure functions of logits (and labels) returning named loss parts."""
from __future__ import annotations

from torch import nn

from .common import CEParts, ce_loss
from .dkd import DKDLoss, DKDParts, dkd_loss, target_non_target_kl
from .kd import KDLoss, KDParts, kd_divergence, kd_loss
from .ldrld import (
    PAIR_WEIGHTINGS,
    LDRLDLoss,
    LDRLDParts,
    LossParts,
    group_kl,
    ldrld_loss,
    ldrld_terms_einops,
    llki_weight,
    local_reduction,
    pairwise_kl,
    remaining_non_target_kl,
    top_k_decouple,
)
from .ldrld_fused import ldrld_parts_fused, ldrld_terms_fused
from .weights import adw, adw_matrix, erd, irw, pair_positions, pair_weights, rank_weight


class CELoss(nn.Module):
    """Plain cross-entropy training (no teacher): `total = ce_weight * CE`."""

    needs_teacher = False

    def __init__(self, ce_weight: float = 1.0):
        super().__init__()
        self.ce_weight = ce_weight

    def forward(self, logits_student, logits_teacher=None, target=None, epoch=None) -> CEParts:
        from .common import check_logits

        check_logits(logits_student, None, target)
        ce = ce_loss(logits_student, target)
        return CEParts(self.ce_weight * ce, ce)


LOSSES = {"ce": CELoss, "vanilla": CELoss, "kd": KDLoss, "dkd": DKDLoss, "ldrld": LDRLDLoss}


def build_loss(name: str, **options) -> nn.Module:
    """Loss module by name (`ce`/`vanilla`, `kd`, `dkd`, `ldrld`) with keyword options."""
    if name not in LOSSES:
        raise ValueError(f"loss name {name!r} is unknown; choose one of {sorted(LOSSES)}.")
    try:
        return LOSSES[name](**options)
    except TypeError as error:
        raise ValueError(f"bad option for loss {name!r}: {error}") from None


def list_losses() -> list[str]:
    """Names accepted by `build_loss`."""
    return sorted(LOSSES)


__all__ = [
    "CELoss", "CEParts", "DKDLoss", "DKDParts", "KDLoss", "KDParts", "LDRLDLoss", "LDRLDParts", "LOSSES", "LossParts",
    "PAIR_WEIGHTINGS", "adw", "adw_matrix", "build_loss", "ce_loss", "dkd_loss", "erd", "group_kl", "irw",
    "kd_divergence", "kd_loss", "ldrld_loss", "ldrld_parts_fused", "ldrld_terms_einops", "ldrld_terms_fused",
    "list_losses", "llki_weight", "local_reduction", "pair_positions", "pair_weights", "pairwise_kl", "rank_weight",
    "remaining_non_target_kl", "target_non_target_kl", "top_k_decouple",
]
