"""The options each method's loss takes, declared as data: what a `loss.<option>=...` override may set.

The config layer reads this table instead of importing the loss classes (torch) to inspect their signatures;
`tests/test_loss_options.py` checks every loss class of `ldrld_mini.losses.LOSSES` against it, so a loss that gains
or loses an option fails there until the table says so.
"""
from __future__ import annotations

_CE = ("ce_weight",)
LOSS_OPTIONS: dict[str, tuple[str, ...]] = {  # method -> keyword options of its loss module (build_loss)
    "vanilla": _CE,
    "ce": _CE,
    "kd": ("temperature", "ce_weight", "kd_weight"),
    "dkd": ("alpha", "beta", "temperature", "ce_weight", "warmup"),
    "ldrld": ("k", "temperature", "alpha", "beta", "ce_weight", "rank_by", "reduction", "epsilon", "delta", "lam",
              "remaining_at_full_k", "pair_weighting", "whole_group", "impl"),
}
ENGINE_LOSS_KEYS = ("legacy_double_weight",)  # loss keys the engine consumes (not passed to build_loss)


def loss_option_names(method: str) -> frozenset[str]:
    """The `loss.*` keys an override may set for `method`: its loss's options and the engine's loss keys."""
    return frozenset(LOSS_OPTIONS.get(method, ())) | frozenset(ENGINE_LOSS_KEYS)
