"""Rank-based pair weights of LDRLD: Inverse Rank Weighting, Exponential Rank Decay and their product.

Ranks are 1-based positions in the top-k (rank 1 = the largest ranking logit). The weights depend on
positions only, never on logit values, so they carry no gradient.
"""
from __future__ import annotations

import math
from functools import lru_cache

import torch
from torch import Tensor

EPSILON = 1.5  # IRW offset
DELTA = 2.0  # ERD scale
LAMBDA = 0.05  # ERD decay rate
PAIR_WEIGHTINGS = ("adw", "irw", "erd", "uniform")  # IRW * ERD (the paper), IRW alone, ERD alone, all 1


def irw(rank_a, rank_b, epsilon: float = EPSILON):
    """Inverse Rank Weighting `1 / (epsilon + |R - R'|)`: pairs of close rank count more."""
    if isinstance(rank_a, Tensor) or isinstance(rank_b, Tensor):
        return 1.0 / (epsilon + (torch.as_tensor(rank_a) - torch.as_tensor(rank_b)).abs())
    return 1.0 / (epsilon + abs(rank_a - rank_b))


def erd(rank_a, rank_b, delta: float = DELTA, lam: float = LAMBDA):
    """Exponential Rank Decay `delta * exp(-lam * (R + R'))`: higher-ranked pairs count more."""
    if isinstance(rank_a, Tensor) or isinstance(rank_b, Tensor):
        return delta * torch.exp(-lam * (torch.as_tensor(rank_a) + torch.as_tensor(rank_b)))
    return delta * math.exp(-lam * (rank_a + rank_b))


def adw(rank_a, rank_b, epsilon: float = EPSILON, delta: float = DELTA, lam: float = LAMBDA):
    """Adaptive Decay Weight `IRW * ERD` of the pair of 1-based ranks (R, R')."""
    return irw(rank_a, rank_b, epsilon) * erd(rank_a, rank_b, delta, lam)


def rank_weight(rank_a, rank_b, pair_weighting: str = "adw", epsilon: float = EPSILON, delta: float = DELTA,
                lam: float = LAMBDA):
    """Weight of the pair of 1-based ranks (R, R') under `pair_weighting`: ADW, IRW, ERD or 1 ("uniform")."""
    check_pair_weighting(pair_weighting)
    if pair_weighting == "adw":
        return adw(rank_a, rank_b, epsilon, delta, lam)
    if pair_weighting == "irw":
        return irw(rank_a, rank_b, epsilon)
    if pair_weighting == "erd":
        return erd(rank_a, rank_b, delta, lam)
    if isinstance(rank_a, Tensor) or isinstance(rank_b, Tensor):
        return torch.ones_like(irw(rank_a, rank_b, epsilon))  # the shape and dtype the other weightings give
    return 1.0


def check_pair_weighting(value) -> None:
    """Raise a ValueError unless `value` is one of `PAIR_WEIGHTINGS`."""
    if not isinstance(value, str) or value not in PAIR_WEIGHTINGS:
        raise ValueError(f"pair_weighting must be one of {PAIR_WEIGHTINGS}, got {value!r}; 'adw' (IRW * ERD) is the "
                         "paper's, 'irw' / 'erd' keep one factor, 'uniform' weighs every pair 1.")


def check_k(k: int, num_classes: int) -> None:
    """Raise a ValueError unless 2 <= k <= num_classes."""
    if isinstance(k, bool) or not isinstance(k, int) or not 2 <= k <= num_classes:
        raise ValueError(
            f"k must be an integer in [2, {num_classes}] (the number of classes of the logits), got {k!r}; "
            "the paper's default is k=7 (k=2 follows the public code, see ldrld_loss)."
        )


@lru_cache(maxsize=None)
def _pair_positions(k: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    first, second = [], []
    for newest in range(1, k):  # peel classes one by one; the newest pairs with every earlier one
        for earlier in range(newest):
            first.append(earlier)
            second.append(newest)
    return tuple(first), tuple(second)


def _on_accelerator(device) -> bool:
    """True for a device other than the CPU (where building a constant means a blocking host-to-device copy)."""
    return device is not None and torch.device(device).type != "cpu"


@lru_cache(maxsize=64)
def _cached_constant(builder, *args):
    """One copy per (builder, arguments, device) of a constant tensor off the CPU: read-only, never modify it."""
    return builder(*args)


def pair_positions(k: int, device=None) -> tuple[Tensor, Tensor]:
    """0-based top-k positions `(a, b)`, `a < b`, of all C(k, 2) pairs in recursive-peeling order.

    On a GPU the tensors are built once per (k, device) and shared (a fresh copy each call would wait for a
    host-to-device transfer); treat them as read-only.
    """
    if k < 2:
        raise ValueError(f"k must be at least 2 to form a pair, got {k!r}.")
    if _on_accelerator(device):
        return _cached_constant(_build_pair_positions, k, torch.device(device))
    return _build_pair_positions(k, device)


def _build_pair_positions(k: int, device) -> tuple[Tensor, Tensor]:
    first, second = _pair_positions(k)
    return (torch.tensor(first, dtype=torch.long, device=device),
            torch.tensor(second, dtype=torch.long, device=device))


def pair_weights(k: int, epsilon: float = EPSILON, delta: float = DELTA, lam: float = LAMBDA,
                 dtype=torch.float32, device=None, pair_weighting: str = "adw") -> Tensor:
    """Weight (ADW by default, see `rank_weight`) of every pair of `pair_positions(k)`, shape (C(k,2),).

    On a GPU the result is built once per arguments and device and shared: treat it as read-only."""
    if _on_accelerator(device):
        return _cached_constant(_build_pair_weights, k, epsilon, delta, lam, dtype, torch.device(device),
                                pair_weighting)
    return _build_pair_weights(k, epsilon, delta, lam, dtype, device, pair_weighting)


def _build_pair_weights(k, epsilon, delta, lam, dtype, device, pair_weighting) -> Tensor:
    a, b = pair_positions(k)
    w = rank_weight(a.double() + 1, b.double() + 1, pair_weighting, epsilon, delta, lam)  # (P,) from 1-based ranks
    return w.to(dtype=dtype, device=device)


def adw_matrix(k: int, epsilon: float = EPSILON, delta: float = DELTA, lam: float = LAMBDA,
               dtype=torch.float32, device=None) -> Tensor:
    """Symmetric (k, k) matrix of pair weights with a zero diagonal (entry [a, b] = ADW(a+1, b+1))."""
    rank = torch.arange(1, k + 1, dtype=torch.float64)
    w = adw(rank[:, None], rank[None, :], epsilon, delta, lam)  # (k, k)
    w.fill_diagonal_(0.0)
    return w.to(dtype=dtype, device=device)
