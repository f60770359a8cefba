"""Slow, literal versions of LDRLD, written for reading and used as the oracle of the tests.

`ldrld_reference` loops over samples and groups and writes each formula of docs/method.md §2 as it stands.
`ldrld_masked` is the public code's vectorised formulation: one full-width softmax per group, the classes
outside the group pushed down by `-1000` (exact only while |logits| / T stays far below 1000); it computes
the published loss only (ADW pairs plus the whole-top-k group), without the ablation switches.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor


def local_kl(student: Tensor, teacher: Tensor, classes: list[int], temperature: float) -> Tensor:
    """`T^2 * KL(p^S(z_t) || p^S(z_s))` of one sample over the class set S, from (C,) logits."""
    zs = torch.stack([student[c] for c in classes]) / temperature
    zt = torch.stack([teacher[c] for c in classes]) / temperature
    log_p_s = zs - torch.logsumexp(zs, dim=0)
    log_p_t = zt - torch.logsumexp(zt, dim=0)
    total = student.new_zeros(())
    for i in range(len(classes)):
        if log_p_t[i] > float("-inf"):
            total = total + log_p_t[i].exp() * (log_p_t[i] - log_p_s[i])
    return total * temperature**2


def adaptive_decay_weight(rank_a: int, rank_b: int, epsilon=1.5, delta=2.0, lam=0.05) -> float:
    """ADW of two 1-based ranks: `1/(epsilon + |R-R'|) * delta * exp(-lam (R+R'))`."""
    return 1.0 / (epsilon + abs(rank_a - rank_b)) * delta * math.exp(-lam * (rank_a + rank_b))


def pair_weight(rank_a: int, rank_b: int, pair_weighting: str = "adw", epsilon=1.5, delta=2.0, lam=0.05) -> float:
    """Weight of a pair of 1-based ranks: ADW (IRW * ERD), IRW `1/(epsilon + |R-R'|)`, ERD
    `delta * exp(-lam (R+R'))`, or 1 (`"uniform"`)."""
    if pair_weighting == "adw":
        return adaptive_decay_weight(rank_a, rank_b, epsilon, delta, lam)
    if pair_weighting == "irw":
        return 1.0 / (epsilon + abs(rank_a - rank_b))
    if pair_weighting == "erd":
        return delta * math.exp(-lam * (rank_a + rank_b))
    if pair_weighting == "uniform":
        return 1.0
    raise ValueError(f"pair_weighting must be one of ('adw', 'irw', 'erd', 'uniform'), got {pair_weighting!r}.")


def ldrld_reference(logits_student: Tensor, logits_teacher: Tensor, *, k: int = 7, temperature: float = 4.0,
                    rank_by: str = "student", reduction: str = "mean", epsilon: float = 1.5,
                    delta: float = 2.0, lam: float = 0.05, remaining_at_full_k: str = "zero",
                    pair_weighting: str = "adw", whole_group: bool = True) -> tuple[Tensor, Tensor]:
    """The unweighted `(local, remaining)` terms by explicit loops over samples, pairs and groups.

    At k = C no class remains: the remaining term is 0 (`remaining_at_full_k="zero"`), or, as the public
    code computes it, KD over all C classes (`"full_kd"`). `pair_weighting` picks each pair's weight
    (`pair_weight`); the whole top-k group weighs 1, at k = 2 its single pair's weight; `whole_group=False`
    leaves the group out (and out of the mean's count).
    """
    if not isinstance(whole_group, bool):
        raise ValueError(f"whole_group must be one of (True, False), got {whole_group!r}.")
    pair_weight(1, 2, pair_weighting)  # a bad name fails here, before any loop
    teacher_all = logits_teacher.detach()
    batch, num_classes = logits_student.shape
    local_sum = logits_student.new_zeros(())
    remaining_sum = logits_student.new_zeros(())
    for row in range(batch):
        student, teacher = logits_student[row], teacher_all[row]
        ranking = student if rank_by == "student" else teacher
        top = torch.topk(ranking.detach(), k).indices.tolist()  # pi(1..k), descending
        # recursive decoupling: peel the top classes one by one, pairing the newest with all earlier ones
        groups, weights = [], []
        for newest in range(1, k):
            for earlier in range(newest):
                groups.append([top[earlier], top[newest]])
                weights.append(pair_weight(earlier + 1, newest + 1, pair_weighting, epsilon, delta, lam))
        if whole_group:
            groups.append(list(top))  # the whole top-k (local logit knowledge integrity)
            weights.append(weights[0] if k == 2 else 1.0)  # public code: a group of length 2 gets the pair's weight
        sample = logits_student.new_zeros(())
        for classes, weight in zip(groups, weights):
            sample = sample + weight * local_kl(student, teacher, classes, temperature)
        if reduction == "mean":
            sample = sample / len(groups)
        local_sum = local_sum + sample
        remaining = [c for c in range(num_classes) if c not in top]
        if not remaining and remaining_at_full_k == "full_kd":
            remaining = list(range(num_classes))  # the public code's mask selects nothing: all C classes
        if remaining:
            remaining_sum = remaining_sum + local_kl(student, teacher, remaining, temperature)
    return local_sum / batch, remaining_sum / batch


def ldrld_masked(logits_student: Tensor, logits_teacher: Tensor, *, k: int = 7, temperature: float = 4.0,
                 epsilon: float = 1.5, delta: float = 2.0, lam: float = 0.05,
                 remaining_at_full_k: str = "zero") -> tuple[Tensor, Tensor]:
    """The public code's formulation: a full-width softmax of `z/T - 1000 * mask` for every group.

    The published loss only (ADW pairs plus the whole top-k group): no `pair_weighting` / `whole_group`.

    At k = C the public code masks every class alike, so its remaining term is KD over all C classes:
    `remaining_at_full_k="full_kd"` keeps that, `"zero"` (default, as the other implementations) gives 0.
    """
    teacher = logits_teacher.detach()
    batch, num_classes = logits_student.shape
    top = torch.topk(logits_student.detach(), k, dim=1).indices  # (B, k)
    groups, weights = [], []
    for newest in range(1, k):
        for earlier in range(newest):
            groups.append(top[:, [earlier, newest]])  # (B, 2)
            weights.append(adaptive_decay_weight(earlier + 1, newest + 1, epsilon, delta, lam))
    groups.append(top)
    weights.append(weights[0] if k == 2 else 1.0)

    def masked_kl(keep: Tensor) -> Tensor:
        outside = 1.0 - keep  # (B, C): 1 for the classes left out of the group
        log_p_s = torch.log_softmax(logits_student / temperature - 1000.0 * outside, dim=1)
        p_t = torch.softmax(teacher / temperature - 1000.0 * outside, dim=1)
        return F.kl_div(log_p_s, p_t, reduction="sum") / batch * temperature**2

    local = logits_student.new_zeros(())
    for index, weight in zip(groups, weights):
        keep = torch.zeros_like(logits_student).scatter_(1, index, 1.0)
        local = local + weight * masked_kl(keep)
    local = local / len(groups)
    in_top = torch.zeros_like(logits_student).scatter_(1, top, 1.0)
    full_kd = remaining_at_full_k == "full_kd"
    remaining = masked_kl(1.0 - in_top) if k < num_classes or full_kd else logits_student.new_zeros(())
    return local, remaining
