"""LDRLD: Local Dense Logit Relations (Xu et al., ICCV 2025), built from named pieces.

Conventions (those of the authors' public code, see docs/method.md): logits are divided by the temperature T
before every softmax; every KL is `KL(teacher || student)`, multiplied by T^2 and averaged over the batch;
the top-k is taken on the **student's** logits (ties as `torch.topk`); the teacher never gets a gradient.

Two implementations compute the same function:
- `impl="einops"`: readable, every piece a differentiable tensor expression (autograd does the backward);
- `impl="fast"` (default): one custom autograd node for CE, both terms and the total, whose backward is the
  analytic gradient (`ldrld_parts_fast` is that node without the input checks, for the fast training path).
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
from torch.autograd.function import once_differentiable

from .common import ce_loss, check_logits, check_temperature, compute_dtype, kl_rows
from .weights import (DELTA, EPSILON, LAMBDA, PAIR_WEIGHTINGS, check_k, check_pair_weighting, pair_positions,
                      pair_weights, rank_weight)

RANK_BY = ("student", "teacher")
REDUCTIONS = ("mean", "sum")
REMAINING_AT_FULL_K = ("zero", "full_kd")  # the remaining term at k = C: the formula's 0 / the public code's KD
WHOLE_GROUP = (True, False)  # the whole-top-k group (LLKI) in the local term, or the C(k,2) pairs alone


class LossParts(NamedTuple):
    """`total = ce_weight * ce + alpha * ldrld + beta * rntk`; `ldrld`, `rntk` unweighted (docs/method.md §2)."""

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
    rest = torch.argsort(inside, dim=1, stable=True)[:, : classes - k]  # (B, C-k)
    rest_s = logits_student.gather(1, rest)  # (B, C-k)
    rest_t = logits_teacher.detach().gather(1, rest)  # (B, C-k)
    return group_kl(rest_s, rest_t, temperature)


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
    """The unweighted `(ldrld, rntk)` terms assembled from the named pieces."""
    check_pair_weighting(pair_weighting)
    check_whole_group(whole_group)
    dtype = compute_dtype(logits_student)
    zs, zt = logits_student.to(dtype), logits_teacher.detach().to(dtype)
    index, zs_top, zt_top = top_k_decouple(zs, zt, k, rank_by)  # (B, k) each
    pairs = pairwise_kl(zs_top, zt_top, temperature)  # (B, P)
    whole = group_kl(zs_top, zt_top, temperature) if whole_group else None  # (B,)
    weights = pair_weights(k, epsilon, delta, lam, dtype=dtype, device=zs.device, pair_weighting=pair_weighting)
    local = local_reduction(pairs, whole, weights, llki_weight(k, epsilon, delta, lam, pair_weighting), reduction)
    rntk = remaining_non_target_kl(zs, zt, index, temperature, remaining_at_full_k).mean()
    return local, rntk


# ----------------------------------------------------------------------------------------------------------
# implementation 2: fast, one autograd node with the analytic gradient (CE folded in)
#
# What makes it fast, for the same numbers:
# - student and teacher top-k logits are stacked, (2, B, k): each step below runs once for both models;
# - the C(k,2) pair differences come from one small matmul, `top @ D`, D (k, P) holding +1/-1 (exact:
#   every product is by +-1 or 0); a pair's binary KL is CE(p_t, sigma(d_s)) - CE(p_t, sigma(d_t)): one
#   `binary_cross_entropy_with_logits` over the stack with signed pair weights gives the weighted sum;
# - the remaining term is a log-softmax of the scaled logits with FILL scattered at the top-k; its teacher
#   softmax serves the value and the gradient (softmax is cheaper than exp of a log-softmax on CPUs);
# - CE, the local and the remaining terms and the total are one node whose backward writes the gradient
#   of `total` in a handful of in-place ops; the pair weights and 1/B, T, T^2, alpha are folded into cached
#   constant tensors; nothing is read back to the host.
# FILL: exp(FILL - max) is exactly 0 in float32 and float64, so the remaining classes get bit for bit the
# softmax over them alone (the public code's -1000 is exact only while |logits| / T << 1000), and
# FILL - logsumexp stays finite, so a KL entry at a top-k class is 0 * finite = 0 (with -inf: 0 * nan).
# Exact while |logits / T| < 1e29.

FILL = -1e30
PAIR_MATRIX_MAX_K = 64  # D is (k, C(k,2)): O(k^3) memory; above this k the fast impl runs the einops form


class _Plan(NamedTuple):
    """The constants of one call: cached tensors and folded python factors."""

    diff: Tensor  # (k, P): column p is e_a - e_b of pair p = (a, b); top @ diff = all pair differences
    pair_value: Tensor  # (2, 1, P): +-w_p T^2 / (B groups): BCE(student) - BCE(teacher), pair-weighted
    pair_grad: Tensor  # (2, P, k): +-diag(w_p T / (B groups)) @ diff.T: sigma(d) of both models -> top-k
    whole_grad: Tensor  # (2, 1, 1): +-w_whole T / (B groups): softmax of both models -> top-k
    total_pair_grad: Tensor  # alpha / total_factor * pair_grad (the gradient of `total`)
    total_whole_grad: Tensor  # alpha / total_factor * whole_grad
    whole_value: float  # w_whole T^2 / (B groups)
    total_factor: float  # ce_weight / B (1 without CE): d total / dz = total_factor * (CE part + ...)
    temperature: float
    rest_scale: float  # T^2 / B
    rest_grad: float  # T / B
    ce_scale: float  # 1 / B
    rest_mode: str  # "mask" (k < C), "all" (k = C, remaining_at_full_k="full_kd"), "zero" (k = C)
    whole_group: bool  # False: no whole-top-k group (its value and gradient are not computed)
    classes: int
    ce_weight: float
    alpha: float
    beta: float


_PLANS: dict = {}


def _plan(k, classes, batch, temperature, reduction, epsilon, delta, lam, remaining_at_full_k, dtype, device,
          ce_weight=1.0, alpha=1.0, beta=1.0, pair_weighting="adw", whole_group=True) -> _Plan:
    key = (k, classes, batch, float(temperature), reduction, float(epsilon), float(delta), float(lam),
           remaining_at_full_k, dtype, str(device), float(ce_weight), float(alpha), float(beta), pair_weighting,
           bool(whole_group))
    plan = _PLANS.get(key)
    if plan is not None:
        return plan
    first, second = pair_positions(k)
    pairs = len(first)
    diff = torch.zeros(k, pairs, dtype=torch.float64)
    diff[first, torch.arange(pairs)] = 1.0
    diff[second, torch.arange(pairs)] = -1.0
    t = float(temperature)
    groups = pairs + 1 if whole_group else pairs
    per_group = 1.0 / (batch * (groups if reduction == "mean" else 1))
    weights = pair_weights(k, epsilon, delta, lam, dtype=torch.float64, pair_weighting=pair_weighting) * per_group
    whole = llki_weight(k, epsilon, delta, lam, pair_weighting) * per_group if whole_group else 0.0
    pair_grad = (weights * t)[:, None] * diff.T  # (P, k)
    pair_grad = torch.stack([pair_grad, -pair_grad])  # (2, P, k): student +, teacher -
    whole_grad = torch.tensor([whole * t, -whole * t], dtype=torch.float64).view(2, 1, 1)
    signed = torch.stack([weights, -weights])[:, None, :] * (t * t)  # (2, 1, P)
    rest_mode = "mask" if k < classes else ("all" if remaining_at_full_k == "full_kd" else "zero")
    on = dict(dtype=dtype, device=device)
    factor = float(ce_weight) / batch if ce_weight != 0 else 1.0
    to_total = float(alpha) / factor
    plan = _Plan(diff.to(**on), signed.to(**on), pair_grad.to(**on), whole_grad.to(**on),
                 (pair_grad * to_total).to(**on), (whole_grad * to_total).to(**on), whole * t * t, factor, t,
                 t * t / batch, t / batch, 1.0 / batch, rest_mode, bool(whole_group), classes, float(ce_weight),
                 float(alpha), float(beta))
    if len(_PLANS) >= 256:
        _PLANS.clear()
    _PLANS[key] = plan
    return plan


class _LDRLDFused(torch.autograd.Function):
    """`(total, ce, ldrld, rntk)` of LDRLD in one node; `target=None` gives `(None, None, ldrld, rntk)`."""

    @staticmethod
    def forward(ctx, logits_student, logits_teacher, target, rank_by_teacher, k, plan, need_grad):
        ctx.set_materialize_grads(False)
        ranking = logits_teacher if rank_by_teacher else logits_student
        index = torch.topk(ranking, k, dim=1).indices  # (B, k), descending rank
        u = logits_student / plan.temperature  # (B, C)
        v = logits_teacher / plan.temperature  # (B, C)
        top = torch.stack((u.gather(1, index), v.gather(1, index)))  # (2, B, k): student, teacher
        # the pairs: d = z_a - z_b of every pair a < b; binary KL = CE(p_t, sigma(d_s)) - CE(p_t, sigma(d_t))
        d = top @ plan.diff  # (2, B, P)
        sigma = torch.sigmoid(d)  # (2, B, P): p_t is sigma[1]; sigma[0] serves the gradient
        pairs = F.binary_cross_entropy_with_logits(d, sigma[1].expand_as(d), weight=plan.pair_value,
                                                   reduction="sum")
        # the whole top-k (LLKI), unless switched off
        log_q, local = None, pairs
        if plan.whole_group:
            log_q = top.log_softmax(dim=2)  # (2, B, k)
            log_qs, log_qt = log_q.unbind(0)
            local = torch.add(pairs, F.kl_div(log_qs, log_qt, reduction="sum", log_target=True),
                              alpha=plan.whole_value)
        # remaining: softmax over the classes outside the top-k (all of them for the public k = C case)
        r_t = None
        if plan.rest_mode == "zero":
            rest = u.new_zeros(())
        else:
            if plan.rest_mode == "mask":  # in place: u and v are this node's own temporaries
                u, v = u.scatter_(1, index, FILL), v.scatter_(1, index, FILL)
            r_t = v.softmax(dim=1)  # (B, C), exactly 0 at the top-k
            rest = torch.sub(v.log_softmax(dim=1), u.log_softmax(dim=1)).mul_(r_t).sum().mul_(plan.rest_scale)
        total = ce = None
        if target is not None:  # CE on raw logits, and the weighted total
            ce = F.nll_loss(logits_student.log_softmax(dim=1), target)
            total = torch.add(ce if plan.ce_weight == 1.0 else ce * plan.ce_weight, local, alpha=plan.alpha)
            if plan.rest_mode != "zero":
                total = torch.add(total, rest, alpha=plan.beta)
        if need_grad:
            ctx.save_for_backward(logits_student, index, target, sigma, log_q, u, r_t)
            ctx.plan = plan
        return total, ce, local, rest

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_total, grad_ce, grad_local, grad_rest):
        plan, saved = ctx.plan, ctx.saved_tensors
        if grad_ce is None and grad_local is None and grad_rest is None:  # the usual: total.backward()
            if grad_total is None:
                return (None,) * 7
            # d total / dz = f * [(softmax - one-hot) + alpha/f d ldrld/dz + beta/f d rntk/dz], f = ce_weight / B
            with_ce = plan.ce_weight != 0.0
            factor = plan.total_factor
            grad = _fused_gradient(saved, plan, 1.0 if with_ce else None, plan.total_pair_grad,
                                   plan.total_whole_grad, 1.0, plan.beta * plan.rest_grad / factor)
            return grad.mul_(grad_total * factor if factor != 1.0 else grad_total), None, None, None, None, None, None

        def coefficient(own, weight):  # d out / d part, a 0-d tensor or None
            if grad_total is None:
                return own
            return grad_total * weight if own is None else grad_total * weight + own

        c_ce, c_local, c_rest = (coefficient(grad_ce, plan.ce_weight), coefficient(grad_local, plan.alpha),
                                 coefficient(grad_rest, plan.beta))
        grad = _fused_gradient(saved, plan, None if c_ce is None else c_ce * plan.ce_scale, plan.pair_grad,
                               plan.whole_grad, c_local, None if c_rest is None else c_rest * plan.rest_grad)
        return grad, None, None, None, None, None, None


def _fused_gradient(saved, plan, ce_scale, pair_grad, whole_grad, local_scale, rest_scale) -> Tensor:
    """`ce_scale (softmax - one-hot) + rest_scale (r_s - r_t) + local_scale * (top-k part)` as a (B, C) tensor.

    Each scale is a float, a 0-d tensor or None (that part left out); the top-k part is
    `(sigma(d_s) - p_t) @ pair_grad + whole_grad (q_s - q_t)` (pair_grad, whole_grad signed per model and
    summed over the stack; the whole_grad part only with the whole-top-k group), scattered to the top-k classes.
    """
    logits, index, target, sigma, log_q, u_rest, r_t = saved
    grad = None
    if ce_scale is not None and target is not None:
        grad = logits.softmax(dim=1)
        if isinstance(ce_scale, Tensor):
            grad.mul_(ce_scale).scatter_add_(1, target.unsqueeze(1), ce_scale.neg().expand(target.shape[0], 1))
        else:
            if ce_scale != 1.0:
                grad.mul_(ce_scale)
            grad.scatter_(1, target.unsqueeze(1), -ce_scale, reduce="add")
    if rest_scale is not None and r_t is not None:
        if grad is None or isinstance(rest_scale, Tensor):
            grad = _add_scaled(grad, u_rest.softmax(dim=1).sub_(r_t), rest_scale)
        else:
            grad.add_(u_rest.softmax(dim=1), alpha=rest_scale).sub_(r_t, alpha=rest_scale)
    if local_scale is not None:
        if log_q is None:  # whole_group=False
            top = torch.bmm(sigma, pair_grad).sum(0)  # (2, B, k) -> (B, k)
        else:
            top = torch.baddbmm(log_q.exp().mul_(whole_grad), sigma, pair_grad).sum(0)  # (2, B, k) -> (B, k)
        if isinstance(local_scale, Tensor) or local_scale != 1.0:
            top.mul_(local_scale)
        if grad is None:
            grad = top.new_zeros((index.shape[0], plan.classes))
        grad.scatter_add_(1, index, top)
    return grad


def _add_scaled(grad, x, scale):
    if grad is None:
        return x.mul_(scale)
    if isinstance(scale, Tensor):
        return grad.addcmul_(x, scale)
    return grad.add_(x, alpha=scale)


def _fused(logits_student, logits_teacher, target, *, k, temperature, rank_by, reduction, epsilon, delta, lam,
           remaining_at_full_k, ce_weight=1.0, alpha=1.0, beta=1.0, pair_weighting="adw", whole_group=True):
    """Run `_LDRLDFused` on the computation dtype (checks done by the caller)."""
    dtype = compute_dtype(logits_student)
    zs = logits_student if logits_student.dtype == dtype else logits_student.to(dtype)
    zt = logits_teacher if logits_teacher.dtype == dtype else logits_teacher.to(dtype)
    if target is not None and target.dtype != torch.int64:
        target = target.long()
    plan = _plan(k, zs.shape[1], zs.shape[0], temperature, reduction, epsilon, delta, lam, remaining_at_full_k,
                 dtype, zs.device, ce_weight, alpha, beta, pair_weighting, whole_group)
    need_grad = torch.is_grad_enabled() and zs.requires_grad
    return _LDRLDFused.apply(zs, zt, target, rank_by == "teacher", k, plan, need_grad)


def ldrld_terms_fast(logits_student: Tensor, logits_teacher: Tensor, *, k: int = 7,
                     temperature: float = 4.0, rank_by: str = "student", reduction: str = "mean",
                     epsilon: float = EPSILON, delta: float = DELTA, lam: float = LAMBDA,
                     remaining_at_full_k: str = "zero", pair_weighting: str = "adw", whole_group: bool = True):
    """The unweighted `(ldrld, rntk)` terms from one fused autograd node (same values as einops)."""
    _check_options(rank_by, reduction, remaining_at_full_k, pair_weighting, whole_group)
    check_k(k, logits_student.shape[1])
    options = dict(k=k, temperature=temperature, rank_by=rank_by, reduction=reduction, epsilon=epsilon, delta=delta,
                   lam=lam, remaining_at_full_k=remaining_at_full_k, pair_weighting=pair_weighting,
                   whole_group=whole_group)
    if k > PAIR_MATRIX_MAX_K:
        return ldrld_terms_einops(logits_student, logits_teacher, **options)
    _, _, local, rest = _fused(logits_student, logits_teacher, None, **options)
    return local, rest


def ldrld_parts_fast(logits_student: Tensor, logits_teacher: Tensor, target: Tensor, *, k: int = 7,
                     temperature: float = 4.0, alpha: float = 10.5, beta: float = 7.0, ce_weight: float = 1.0,
                     rank_by: str = "student", reduction: str = "mean", epsilon: float = EPSILON,
                     delta: float = DELTA, lam: float = LAMBDA, remaining_at_full_k: str = "zero",
                     pair_weighting: str = "adw", whole_group: bool = True) -> LossParts:
    """`ldrld_loss(..., impl="fast")` without its input checks: one fused node for CE, both terms and total.

    For callers that checked the inputs and options once (the fast training path); same numbers, bit for bit.
    """
    options = dict(k=k, temperature=temperature, rank_by=rank_by, reduction=reduction, epsilon=epsilon, delta=delta,
                   lam=lam, remaining_at_full_k=remaining_at_full_k, pair_weighting=pair_weighting,
                   whole_group=whole_group)
    if k > PAIR_MATRIX_MAX_K:
        local, rntk = ldrld_terms_fast(logits_student, logits_teacher, **options)
        ce = ce_loss(logits_student, target)
        return LossParts(ce_weight * ce + alpha * local + beta * rntk, ce, local, rntk)
    return LossParts(*_fused(logits_student, logits_teacher, target, ce_weight=ce_weight, alpha=alpha, beta=beta,
                             **options))


def _check_options(rank_by, reduction, remaining_at_full_k, pair_weighting="adw", whole_group=True) -> None:
    if rank_by not in RANK_BY:
        raise ValueError(f"rank_by must be one of {RANK_BY}, got {rank_by!r}; the paper ranks by the student.")
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}.")
    check_remaining_at_full_k(remaining_at_full_k)
    check_pair_weighting(pair_weighting)
    check_whole_group(whole_group)


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
    remaining_at_full_k: str = "zero",
    pair_weighting: str = "adw",
    whole_group: bool = True,
    impl: str = "fast",
) -> LossParts:
    """LDRLD loss `ce_weight * CE + alpha * L_local + beta * L_rntk` -> LossParts(total, ce, ldrld, rntk).

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
    Nothing is read back to the host (see `common.check_logits`); `impl="fast"` is one autograd node
    holding CE, both terms and the total.
    """
    check_logits(logits_student, logits_teacher, target)
    check_k(k, logits_student.shape[1])
    check_temperature(temperature)
    _check_options(rank_by, reduction, remaining_at_full_k, pair_weighting, whole_group)
    if impl not in IMPLEMENTATIONS:
        raise ValueError(f"impl must be one of {tuple(IMPLEMENTATIONS)}, got {impl!r}.")
    options = dict(k=k, temperature=temperature, rank_by=rank_by, reduction=reduction, epsilon=epsilon, delta=delta,
                   lam=lam, remaining_at_full_k=remaining_at_full_k, pair_weighting=pair_weighting,
                   whole_group=whole_group)
    if impl == "fast" and k <= PAIR_MATRIX_MAX_K:
        return ldrld_parts_fast(logits_student, logits_teacher, target, alpha=alpha, beta=beta, ce_weight=ce_weight,
                                **options)
    local, rntk = IMPLEMENTATIONS[impl](logits_student, logits_teacher, **options)
    ce = ce_loss(logits_student, target)
    return LossParts(ce_weight * ce + alpha * local + beta * rntk, ce, local, rntk)


class LDRLDLoss(nn.Module):
    """`nn.Module` form of `ldrld_loss`; options are fixed at construction."""

    needs_teacher = True

    def __init__(self, k: int = 7, temperature: float = 4.0, alpha: float = 10.5, beta: float = 7.0,
                 ce_weight: float = 1.0, rank_by: str = "student", reduction: str = "mean",
                 epsilon: float = EPSILON, delta: float = DELTA, lam: float = LAMBDA,
                 remaining_at_full_k: str = "zero", pair_weighting: str = "adw", whole_group: bool = True,
                 impl: str = "fast"):
        super().__init__()
        if isinstance(k, bool) or not isinstance(k, int) or k < 2:
            raise ValueError(f"k must be an integer >= 2, got {k!r}; the paper's default is 7.")
        check_temperature(temperature)
        for name, value, allowed in (("rank_by", rank_by, RANK_BY), ("reduction", reduction, REDUCTIONS),
                                     ("impl", impl, tuple(IMPLEMENTATIONS))):
            if value not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {value!r}.")
        check_remaining_at_full_k(remaining_at_full_k)
        check_pair_weighting(pair_weighting)
        check_whole_group(whole_group)
        self.options = dict(k=k, temperature=temperature, alpha=alpha, beta=beta, ce_weight=ce_weight,
                            rank_by=rank_by, reduction=reduction, epsilon=epsilon, delta=delta, lam=lam,
                            remaining_at_full_k=remaining_at_full_k, pair_weighting=pair_weighting,
                            whole_group=whole_group, impl=impl)

    def forward(self, logits_student, logits_teacher, target, epoch=None) -> LossParts:
        return ldrld_loss(logits_student, logits_teacher, target, **self.options)

    def extra_repr(self) -> str:
        return ", ".join(f"{key}={value}" for key, value in self.options.items())
