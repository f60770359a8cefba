"""LDRLD: Local Dense Logit Relations (Xu et al., ICCV 2025), built from named pieces.

Conventions (those of the authors' public code, see docs/method.md): logits are divided by the temperature T
before every softmax; every KL is `KL(teacher || student)`, multiplied by T^2 and averaged over the batch;
the top-k is taken on the **student's** logits (ties as `torch.topk`); the teacher never gets a gradient.

This module is the readable formulation: `ldrld_terms_einops` assembles the two terms from the named pieces
(`top_k_decouple`, `pairwise_kl`, `group_kl`, `local_reduction`, `remaining_non_target_kl`), autograd does the
backward. `ldrld_loss` runs it with `impl="einops"`. The default, `impl="fused"`, runs `ldrld_fused.py`
instead: the same function as one autograd node with the analytic gradient, faster, and blind to edits here.
To train with a piece you changed, pass `impl="einops"` (`loss.impl=einops` as a recipe override).
`reference.py` holds the slow, literal loops both are tested against; `tests/test_golden_losses.py` holds
values computed by running the authors' public code.
Neither implementation reads a value back to the host (no `.item()`, no data-dependent shape), so a GPU
step never waits on them; see `common.check_logits` for how the inputs are checked without one.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from .common import ce_loss, check_logits, check_temperature, compute_dtype, kl_rows
from .weights import (DELTA, EPSILON, LAMBDA, PAIR_WEIGHTINGS, check_k, check_pair_weighting, pair_positions,
                      pair_weights, rank_weight)

RANK_BY = ("student", "teacher")
REDUCTIONS = ("mean", "sum")
IMPLEMENTATIONS = ("fused", "einops")  # ldrld_fused.py (the default, fast), ldrld_terms_einops below (readable)
REMAINING_AT_FULL_K = ("zero", "full_kd")  # the remaining term at k = C: the formula's 0 / the public code's KD
WHOLE_GROUP = (True, False)  # the whole-top-k group (LLKI) in the local term, or the C(k,2) pairs alone


class LDRLDParts(NamedTuple):
    """`total = ce_weight * ce + alpha * local + beta * remaining`; `local` (L_local, the local dense term) and
    `remaining` (L_rntk, the remaining non-target term) unweighted (docs/method.md §2)."""

    total: Tensor
    ce: Tensor
    local: Tensor
    remaining: Tensor

    @property
    def ldrld(self) -> Tensor:
        """The old name of `local` (kept so that code written before the rename still reads)."""
        return self.local

    @property
    def rntk(self) -> Tensor:
        """The old name of `remaining` (kept so that code written before the rename still reads)."""
        return self.remaining


LossParts = LDRLDParts  # the old name of LDRLDParts (the same class)


# ----------------------------------------------------------------------------------------------------------
# the named pieces (each works on per-sample values; the batch mean comes last)

def top_k_decouple(logits_student: Tensor, logits_teacher: Tensor, k: int, rank_by: str = "student"):
    """Positions of the k largest ranking logits and both models' logits there.

    Returns `(index (B, k), student_top (B, k), teacher_top (B, k))`, columns in descending rank order.
    """
    if rank_by not in RANK_BY:
        raise ValueError(f"rank_by must be one of {RANK_BY}, got {rank_by!r}; the paper ranks by the student.")
    check_k(k, logits_student.shape[1])
    ranking = logits_student if rank_by == "student" else logits_teacher
    index = torch.topk(ranking.detach(), k, dim=1).indices  # (B, k)
    return index, logits_student.gather(1, index), logits_teacher.detach().gather(1, index)


def pairwise_kl(student_top: Tensor, teacher_top: Tensor, temperature: float = 4.0) -> Tensor:
    """`T^2 * KL` of the 2-class local softmax of every top-k pair, (B, k), (B, k) -> (B, C(k,2)).

    A softmax over two classes is a sigmoid of their logit difference, so each term is a binary KL.
    """
    a, b = pair_positions(student_top.shape[1], device=student_top.device)
    teacher_top = teacher_top.detach()
    diff_s = rearrange(student_top, "b k -> b k 1") - rearrange(student_top, "b k -> b 1 k")  # (B, k, k)
    diff_t = rearrange(teacher_top, "b k -> b k 1") - rearrange(teacher_top, "b k -> b 1 k")  # (B, k, k)
    d_s = diff_s[:, a, b] / temperature  # (B, P): z_a - z_b for every pair a < b
    d_t = diff_t[:, a, b] / temperature  # (B, P)
    log_p_t, log_p_s = F.logsigmoid(d_t), F.logsigmoid(d_s)  # log p(a) within the pair
    log_q_t, log_q_s = F.logsigmoid(-d_t), F.logsigmoid(-d_s)  # log p(b) within the pair
    kl = log_p_t.exp() * (log_p_t - log_p_s) + log_q_t.exp() * (log_q_t - log_q_s)  # (B, P)
    return kl * temperature**2


def group_kl(student_group: Tensor, teacher_group: Tensor, temperature: float = 4.0) -> Tensor:
    """`T^2 * KL` of the local softmax over a group of classes, (B, n), (B, n) -> (B,)."""
    log_p_s = F.log_softmax(student_group / temperature, dim=1)  # (B, n)
    log_p_t = F.log_softmax(teacher_group.detach() / temperature, dim=1)  # (B, n)
    return kl_rows(log_p_t, log_p_s) * temperature**2


def remaining_non_target_kl(logits_student: Tensor, logits_teacher: Tensor, index: Tensor,
                            temperature: float = 4.0, remaining_at_full_k: str = "zero") -> Tensor:
    """`T^2 * KL` over the C - k classes outside the top-k `index`, (B, C), (B, C), (B, k) -> (B,).

    The softmax is renormalised over the remaining classes. At k = C no class remains:
    `remaining_at_full_k="zero"` (default) gives the exact 0 of the formula; `"full_kd"` gives what the
    authors' public code computes there (its mask selects nothing): plain KD over all C classes.
    """
    check_remaining_at_full_k(remaining_at_full_k)
    batch, classes = logits_student.shape
    k = index.shape[1]
    if k == classes:
        if remaining_at_full_k == "full_kd":
            return group_kl(logits_student, logits_teacher, temperature)
        return logits_student.new_zeros(batch) * logits_student.sum(dim=1)  # keeps the graph, exact 0
    inside = torch.zeros_like(logits_student, dtype=torch.int8).scatter_(1, index, 1)  # (B, C)
    # the C - k outside positions in class order (a stable sort puts the 0s first): no read-back of a count
    outside = torch.argsort(inside, dim=1, stable=True)[:, : classes - k]  # (B, C-k)
    outside_s = logits_student.gather(1, outside)  # (B, C-k)
    outside_t = logits_teacher.detach().gather(1, outside)  # (B, C-k)
    return group_kl(outside_s, outside_t, temperature)


def check_remaining_at_full_k(value: str) -> None:
    """Raise a ValueError unless `value` is one of `REMAINING_AT_FULL_K`."""
    if value not in REMAINING_AT_FULL_K:
        raise ValueError(
            f"remaining_at_full_k must be one of {REMAINING_AT_FULL_K}, got {value!r}; 'zero' is the formula "
            "(no class remains at k = C), 'full_kd' reproduces the public code (full-softmax KD at k = C)."
        )


def check_whole_group(value) -> None:
    """Raise a ValueError unless `value` is True or False."""
    if not isinstance(value, bool):
        raise ValueError(f"whole_group must be one of {WHOLE_GROUP}, got {value!r}; True keeps the whole-top-k "
                         "group (the paper's LLKI), False leaves the C(k,2) pairs alone.")


def llki_weight(k: int, epsilon: float = EPSILON, delta: float = DELTA, lam: float = LAMBDA,
                pair_weighting: str = "adw") -> float:
    """Weight of the whole-top-k group: 1, except k = 2, where the group is the single pair again and gets
    that pair's weight under `pair_weighting` (the public code's rule: its ADW by default)."""
    return rank_weight(1, 2, pair_weighting, epsilon, delta, lam) if k == 2 else 1.0


def local_reduction(pair_terms: Tensor, group_term: Tensor | None, weights: Tensor, group_weight: float = 1.0,
                    reduction: str = "mean") -> Tensor:
    """Combine per-sample pair KLs (B, P) and the top-k group KL (B,) into the scalar local term.

    `mean` divides by the number of groups C(k,2) + 1 as the public code; `sum` is the paper's formula.
    `group_term=None` leaves the group out (`whole_group=False`): the mean then runs over the C(k,2) pairs.
    """
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}.")
    per_sample = pair_terms @ weights  # (B,)
    if group_term is not None:
        per_sample = per_sample + group_weight * group_term
    if reduction == "mean":
        per_sample = per_sample / (pair_terms.shape[1] + (group_term is not None))
    return per_sample.mean()


# ----------------------------------------------------------------------------------------------------------
# implementation 1: readable, einops + autograd

def ldrld_terms_einops(logits_student: Tensor, logits_teacher: Tensor, *, k: int = 7,
                       temperature: float = 4.0, rank_by: str = "student", reduction: str = "mean",
                       epsilon: float = EPSILON, delta: float = DELTA, lam: float = LAMBDA,
                       remaining_at_full_k: str = "zero", pair_weighting: str = "adw", whole_group: bool = True):
    """The unweighted `(local, remaining)` terms assembled from the named pieces."""
    check_pair_weighting(pair_weighting)
    check_whole_group(whole_group)
    dtype = compute_dtype(logits_student)
    zs, zt = logits_student.to(dtype), logits_teacher.detach().to(dtype)
    index, zs_top, zt_top = top_k_decouple(zs, zt, k, rank_by)  # (B, k) each
    pairs = pairwise_kl(zs_top, zt_top, temperature)  # (B, P)
    whole = group_kl(zs_top, zt_top, temperature) if whole_group else None  # (B,)
    weights = pair_weights(k, epsilon, delta, lam, dtype=dtype, device=zs.device, pair_weighting=pair_weighting)
    local = local_reduction(pairs, whole, weights, llki_weight(k, epsilon, delta, lam, pair_weighting), reduction)
    remaining = remaining_non_target_kl(zs, zt, index, temperature, remaining_at_full_k).mean()
    return local, remaining


def check_impl(impl: str) -> None:
    """Raise a ValueError unless `impl` is one of `IMPLEMENTATIONS`."""
    if impl not in IMPLEMENTATIONS:
        hint = " ('fast' is now called 'fused')" if impl == "fast" else ""
        raise ValueError(f"impl must be one of {IMPLEMENTATIONS}, got {impl!r}{hint}; 'fused' is the default, 'einops' "
                         "trains with the named pieces of losses/ldrld.py.")


def check_ldrld_options(rank_by, reduction, remaining_at_full_k, pair_weighting="adw", whole_group=True) -> None:
    """Raise a ValueError naming the first of these options that is not one of its allowed values."""
    if rank_by not in RANK_BY:
        raise ValueError(f"rank_by must be one of {RANK_BY}, got {rank_by!r}; the paper ranks by the student.")
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}.")
    check_remaining_at_full_k(remaining_at_full_k)
    check_pair_weighting(pair_weighting)
    check_whole_group(whole_group)


# ----------------------------------------------------------------------------------------------------------
# the loss

def ldrld_loss(
    logits_student: Tensor,
    logits_teacher: Tensor,
    target: Tensor,
    *,
    k: int = 7,
    temperature: float = 4.0,
    alpha: float = 10.5,
    beta: float = 7.0,
    ce_weight: float = 1.0,
    rank_by: str = "student",
    reduction: str = "mean",
    epsilon: float = EPSILON,
    delta: float = DELTA,
    lam: float = LAMBDA,
    remaining_at_full_k: str = "zero",
    pair_weighting: str = "adw",
    whole_group: bool = True,
    impl: str = "fused",
) -> LDRLDParts:
    """LDRLD loss `ce_weight * CE + alpha * L_local + beta * L_rntk` -> LDRLDParts(total, ce, local, remaining).

    (B, C) student logits, (B, C) teacher logits (detached inside), (B,) labels. `k` in [2, C]; at k = 2 the
    whole-top-k group is the single pair again and, as in the public code, it gets that pair's ADW.
    `reduction="mean"` divides the local term by C(k,2)+1 groups (public code, what alpha was tuned for);
    `"sum"` follows the paper's formulas. float16/bfloat16 logits are computed in float32.
    `remaining_at_full_k`: the remaining term at k = C, where no class remains: `"zero"` (default, the
    formula) or `"full_kd"` (the public code, whose mask then selects nothing: plain full-softmax KD over all
    C classes). Below k = C the option changes nothing.
    Ablation switches: `pair_weighting` weighs each pair by `"adw"` (default, IRW * ERD), `"irw"`, `"erd"` or
    `"uniform"` (1); the whole-top-k group keeps weight 1 (at k = 2: the single pair's weight under that
    choice). `whole_group=False` drops the group, and `"mean"` then divides by the C(k,2) pairs alone.
    Nothing is read back to the host (see `common.check_logits`).
    `impl`: `"fused"` (default) runs `ldrld_fused.py`, one autograd node holding CE, both terms and the total,
    which does not call the pieces above; `"einops"` assembles the terms from them (`ldrld_terms_einops`).
    Same numbers to rounding; to train with an edited `pairwise_kl`, `group_kl`, ... pass `impl="einops"`.
    """
    check_logits(logits_student, logits_teacher, target)
    check_k(k, logits_student.shape[1])
    check_temperature(temperature)
    check_ldrld_options(rank_by, reduction, remaining_at_full_k, pair_weighting, whole_group)
    check_impl(impl)
    options = dict(k=k, temperature=temperature, rank_by=rank_by, reduction=reduction, epsilon=epsilon, delta=delta,
                   lam=lam, remaining_at_full_k=remaining_at_full_k, pair_weighting=pair_weighting,
                   whole_group=whole_group)
    if impl == "fused":
        from .ldrld_fused import ldrld_parts_fused  # imported here: ldrld_fused imports this module

        return ldrld_parts_fused(logits_student, logits_teacher, target, alpha=alpha, beta=beta, ce_weight=ce_weight,
                                 **options)
    local, remaining = ldrld_terms_einops(logits_student, logits_teacher, **options)
    ce = ce_loss(logits_student, target)
    return LDRLDParts(ce_weight * ce + alpha * local + beta * remaining, ce, local, remaining)


class LDRLDLoss(nn.Module):
    """`nn.Module` form of `ldrld_loss`; options are fixed at construction. The default `impl="fused"` does not
    call the pieces above; `impl="einops"` (`loss.impl=einops` in a recipe) trains with them, edits included."""

    needs_teacher = True

    def __init__(self, k: int = 7, temperature: float = 4.0, alpha: float = 10.5, beta: float = 7.0,
                 ce_weight: float = 1.0, rank_by: str = "student", reduction: str = "mean",
                 epsilon: float = EPSILON, delta: float = DELTA, lam: float = LAMBDA,
                 remaining_at_full_k: str = "zero", pair_weighting: str = "adw", whole_group: bool = True,
                 impl: str = "fused"):
        super().__init__()
        if isinstance(k, bool) or not isinstance(k, int) or k < 2:
            raise ValueError(f"k must be an integer >= 2, got {k!r}; the paper's default is 7.")
        check_temperature(temperature)
        check_ldrld_options(rank_by, reduction, remaining_at_full_k, pair_weighting, whole_group)
        check_impl(impl)
        self.options = dict(k=k, temperature=temperature, alpha=alpha, beta=beta, ce_weight=ce_weight,
                            rank_by=rank_by, reduction=reduction, epsilon=epsilon, delta=delta, lam=lam,
                            remaining_at_full_k=remaining_at_full_k, pair_weighting=pair_weighting,
                            whole_group=whole_group, impl=impl)

    def forward(self, logits_student, logits_teacher, target, epoch=None) -> LDRLDParts:
        return ldrld_loss(logits_student, logits_teacher, target, **self.options)

    def extra_repr(self) -> str:
        return ", ".join(f"{key}={value}" for key, value in self.options.items())
