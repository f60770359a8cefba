"""LDRLD: Local Dense Logit Relations (Xu et al., ICCV 2025), built from named pieces.

Conventions (those of the authors' public code, see METHOD.md): logits are divided by the temperature T
before every softmax; every KL is `KL(teacher || student)`, multiplied by T^2 and averaged over the batch;
the top-k is taken on the **student's** logits (ties as `torch.topk`); the teacher never gets a gradient.

Two implementations compute the same function:
- `impl="einops"`: readable, every piece a differentiable tensor expression (autograd does the backward);
- `impl="fast"` (default): one custom autograd function whose backward is the analytic gradient.
`reference.py` holds the slow, literal loops both are tested against.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from .common import ce_loss, check_logits, check_temperature, compute_dtype, kl_rows
from .weights import DELTA, EPSILON, LAMBDA, adw, adw_matrix, check_k, pair_positions, pair_weights

RANK_BY = ("student", "teacher")
REDUCTIONS = ("mean", "sum")


class LossParts(NamedTuple):
    """`total = ce_weight * ce + alpha * ldrld + beta * rntk`; `ldrld`, `rntk` unweighted (METHOD.md §2)."""

    total: Tensor
    ce: Tensor
    ldrld: Tensor
    rntk: Tensor


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
                            temperature: float = 4.0) -> Tensor:
    """`T^2 * KL` over the C - k classes outside the top-k `index`, (B, C), (B, C), (B, k) -> (B,).

    The softmax is renormalised over the remaining classes; the term is 0 when k = C.
    """
    batch, classes = logits_student.shape
    k = index.shape[1]
    if k == classes:
        return logits_student.new_zeros(batch) * logits_student.sum(dim=1)  # keeps the graph, exact 0
    outside = torch.ones_like(logits_student, dtype=torch.bool).scatter_(1, index, False)  # (B, C)
    rest_s = logits_student.masked_select(outside).view(batch, classes - k)  # (B, C-k), class order kept
    rest_t = logits_teacher.detach().masked_select(outside).view(batch, classes - k)  # (B, C-k)
    return group_kl(rest_s, rest_t, temperature)


def llki_weight(k: int, epsilon: float = EPSILON, delta: float = DELTA, lam: float = LAMBDA) -> float:
    """Weight of the whole-top-k group: 1, except k = 2 where the public code gives it the pair's ADW."""
    return adw(1, 2, epsilon, delta, lam) if k == 2 else 1.0


def local_reduction(pair_terms: Tensor, group_term: Tensor, weights: Tensor, group_weight: float = 1.0,
                    reduction: str = "mean") -> Tensor:
    """Combine per-sample pair KLs (B, P) and the top-k group KL (B,) into the scalar local term.

    `mean` divides by the number of groups C(k,2) + 1 as the public code; `sum` is the paper's formula.
    """
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}.")
    per_sample = pair_terms @ weights + group_weight * group_term  # (B,)
    if reduction == "mean":
        per_sample = per_sample / (pair_terms.shape[1] + 1)
    return per_sample.mean()


# ----------------------------------------------------------------------------------------------------------
# implementation 1: readable, einops + autograd

def ldrld_terms_einops(logits_student: Tensor, logits_teacher: Tensor, *, k: int = 7,
                       temperature: float = 4.0, rank_by: str = "student", reduction: str = "mean",
                       epsilon: float = EPSILON, delta: float = DELTA, lam: float = LAMBDA):
    """The unweighted `(ldrld, rntk)` terms assembled from the named pieces."""
    dtype = compute_dtype(logits_student)
    zs, zt = logits_student.to(dtype), logits_teacher.detach().to(dtype)
    index, zs_top, zt_top = top_k_decouple(zs, zt, k, rank_by)  # (B, k) each
    pairs = pairwise_kl(zs_top, zt_top, temperature)  # (B, P)
    whole = group_kl(zs_top, zt_top, temperature)  # (B,)
    weights = pair_weights(k, epsilon, delta, lam, dtype=dtype, device=zs.device)  # (P,)
    local = local_reduction(pairs, whole, weights, llki_weight(k, epsilon, delta, lam), reduction)
    rntk = remaining_non_target_kl(zs, zt, index, temperature).mean()
    return local, rntk


# ----------------------------------------------------------------------------------------------------------
# implementation 2: fast, one autograd node with the analytic gradient

class _LDRLDTerms(torch.autograd.Function):
    """Forward computes both terms and, when needed, their gradients w.r.t. the student logits."""

    @staticmethod
    def forward(ctx, logits_student, logits_teacher, index, pair_matrix, group_weight, temperature, groups,
                need_grad):
        batch, classes = logits_student.shape
        k = index.shape[1]
        u = logits_student / temperature  # (B, C)
        v = logits_teacher / temperature  # (B, C)
        u_top, v_top = u.gather(1, index), v.gather(1, index)  # (B, k)
        d_s = u_top[:, :, None] - u_top[:, None, :]  # (B, k, k)
        d_t = v_top[:, :, None] - v_top[:, None, :]  # (B, k, k)
        log_p_s, log_p_t = F.logsigmoid(d_s), F.logsigmoid(d_t)  # (B, k, k)
        p_t = log_p_t.exp()
        # binary KL of every ordered pair: (ls_t - ls_s) + (1 - p_t)(d_s - d_t); symmetric in (a, b)
        pair_kl = (log_p_t - log_p_s) + (1 - p_t) * (d_s - d_t)  # (B, k, k)
        pair_sum = 0.5 * (pair_kl * pair_matrix).sum(dim=(1, 2))  # (B,)
        log_q_s, log_q_t = F.log_softmax(u_top, dim=1), F.log_softmax(v_top, dim=1)  # (B, k)
        q_t = log_q_t.exp()
        whole = (q_t * (log_q_t - log_q_s)).sum(dim=1)  # (B,)
        scale = temperature**2 / batch
        local = (pair_sum + group_weight * whole).sum() * scale / groups

        if k < classes:
            inside = torch.zeros_like(u, dtype=torch.bool).scatter_(1, index, True)  # (B, C)
            log_r_s = F.log_softmax(u.masked_fill(inside, float("-inf")), dim=1)  # (B, C), -inf inside
            log_r_t = F.log_softmax(v.masked_fill(inside, float("-inf")), dim=1)
            r_t = log_r_t.exp()
            rest = torch.where(inside, 0.0, r_t * (log_r_t - log_r_s)).sum() * scale
        else:
            rest = u.new_zeros(())

        if need_grad:  # skipped under torch.no_grad() or for a student that needs no gradient
            g_scale = temperature / batch  # d/dz = (1/T) d/du, times T^2 / B
            sigma_gap = torch.sigmoid(d_s) - p_t  # (B, k, k) dKL/dd_s
            g_top = (pair_matrix * sigma_gap).sum(dim=2) + group_weight * (log_q_s.exp() - q_t)  # (B, k)
            g_local = torch.zeros_like(u).scatter_(1, index, g_top * (g_scale / groups))  # (B, C)
            if k < classes:
                g_rest = torch.where(inside, 0.0, log_r_s.exp() - r_t) * g_scale  # (B, C)
            else:
                g_rest = torch.zeros_like(u)
            ctx.save_for_backward(g_local, g_rest)
        return local, rest

    @staticmethod
    def backward(ctx, grad_local, grad_rest):
        g_local, g_rest = ctx.saved_tensors
        return grad_local * g_local + grad_rest * g_rest, None, None, None, None, None, None, None


def ldrld_terms_fast(logits_student: Tensor, logits_teacher: Tensor, *, k: int = 7,
                     temperature: float = 4.0, rank_by: str = "student", reduction: str = "mean",
                     epsilon: float = EPSILON, delta: float = DELTA, lam: float = LAMBDA):
    """The unweighted `(ldrld, rntk)` terms from one fused autograd node (same values as einops)."""
    if rank_by not in RANK_BY:
        raise ValueError(f"rank_by must be one of {RANK_BY}, got {rank_by!r}; the paper ranks by the student.")
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}.")
    check_k(k, logits_student.shape[1])
    dtype = compute_dtype(logits_student)
    zs, zt = logits_student.to(dtype), logits_teacher.detach().to(dtype)
    ranking = zs if rank_by == "student" else zt
    index = torch.topk(ranking.detach(), k, dim=1).indices  # (B, k)
    matrix = _cached_matrix(k, epsilon, delta, lam, dtype, zs.device)
    groups = k * (k - 1) // 2 + 1 if reduction == "mean" else 1
    need_grad = torch.is_grad_enabled() and zs.requires_grad
    return _LDRLDTerms.apply(zs, zt, index, matrix, llki_weight(k, epsilon, delta, lam),
                             float(temperature), groups, need_grad)


_MATRICES: dict = {}


def _cached_matrix(k, epsilon, delta, lam, dtype, device) -> Tensor:
    key = (k, float(epsilon), float(delta), float(lam), dtype, str(device))
    if key not in _MATRICES:
        _MATRICES[key] = adw_matrix(k, epsilon, delta, lam, dtype=dtype, device=device)
    return _MATRICES[key]


IMPLEMENTATIONS = {"fast": ldrld_terms_fast, "einops": ldrld_terms_einops}


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
    impl: str = "fast",
) -> LossParts:
    """LDRLD loss `ce_weight * CE + alpha * L_local + beta * L_rntk` -> LossParts(total, ce, ldrld, rntk).

    (B, C) student logits, (B, C) teacher logits (detached inside), (B,) labels. `k` in [2, C]; at k = 2 the
    whole-top-k group is the single pair again and, as in the public code, it gets that pair's ADW.
    `reduction="mean"` divides the local term by C(k,2)+1 groups (public code, what alpha was tuned for);
    `"sum"` follows the paper's formulas. float16/bfloat16 logits are computed in float32.
    """
    check_logits(logits_student, logits_teacher, target)
    check_k(k, logits_student.shape[1])
    check_temperature(temperature)
    if impl not in IMPLEMENTATIONS:
        raise ValueError(f"impl must be one of {tuple(IMPLEMENTATIONS)}, got {impl!r}.")
    local, rntk = IMPLEMENTATIONS[impl](logits_student, logits_teacher, k=k, temperature=temperature,
                                        rank_by=rank_by, reduction=reduction, epsilon=epsilon,
                                        delta=delta, lam=lam)
    ce = ce_loss(logits_student, target)
    return LossParts(ce_weight * ce + alpha * local + beta * rntk, ce, local, rntk)


class LDRLDLoss(nn.Module):
    """`nn.Module` form of `ldrld_loss`; options are fixed at construction."""

    needs_teacher = True

    def __init__(self, k: int = 7, temperature: float = 4.0, alpha: float = 10.5, beta: float = 7.0,
                 ce_weight: float = 1.0, rank_by: str = "student", reduction: str = "mean",
                 epsilon: float = EPSILON, delta: float = DELTA, lam: float = LAMBDA, impl: str = "fast"):
        super().__init__()
        if isinstance(k, bool) or not isinstance(k, int) or k < 2:
            raise ValueError(f"k must be an integer >= 2, got {k!r}; the paper's default is 7.")
        check_temperature(temperature)
        for name, value, allowed in (("rank_by", rank_by, RANK_BY), ("reduction", reduction, REDUCTIONS),
                                     ("impl", impl, tuple(IMPLEMENTATIONS))):
            if value not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {value!r}.")
        self.options = dict(k=k, temperature=temperature, alpha=alpha, beta=beta, ce_weight=ce_weight,
                            rank_by=rank_by, reduction=reduction, epsilon=epsilon, delta=delta, lam=lam,
                            impl=impl)

    def forward(self, logits_student, logits_teacher, target, epoch=None) -> LossParts:
        return ldrld_loss(logits_student, logits_teacher, target, **self.options)

    def extra_repr(self) -> str:
        return ", ".join(f"{key}={value}" for key, value in self.options.items())
