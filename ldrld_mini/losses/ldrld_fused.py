"""The fused LDRLD: CE, both terms and the total in one autograd node with the analytic gradient.

The same function as the readable `ldrld.ldrld_terms_einops` (tested equal to it and to `reference.py`, values
and gradients, and to the public code's numbers in `tests/test_golden_losses.py`), written for speed: on a CPU
one forward+backward takes about 0.4x the readable form's time (`benchmarks/bench_losses.py`, docs/losses.md).
It is what `ldrld_loss(..., impl="fused")`, the default, runs. It does not call the named pieces of `ldrld.py`
(`pairwise_kl`, `group_kl`, `remaining_non_target_kl`, ...): an edit there changes training only with
`impl="einops"` (`loss.impl=einops` in a recipe override).
"""
from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.autograd.function import once_differentiable

from .common import ce_loss, compute_dtype
from .ldrld import LDRLDParts, check_ldrld_options, ldrld_terms_einops, llki_weight
from .weights import DELTA, EPSILON, LAMBDA, check_k, pair_positions, pair_weights

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
PAIR_MATRIX_MAX_K = 64  # D is (k, C(k,2)): O(k^3) memory; above this k the fused impl runs the einops form


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
    remaining_scale: float  # T^2 / B
    remaining_grad: float  # T / B
    ce_scale: float  # 1 / B
    remaining_mode: str  # "mask" (k < C), "all" (k = C, remaining_at_full_k="full_kd"), "zero" (k = C)
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
    remaining_mode = "mask" if k < classes else ("all" if remaining_at_full_k == "full_kd" else "zero")
    on = dict(dtype=dtype, device=device)
    factor = float(ce_weight) / batch if ce_weight != 0 else 1.0
    to_total = float(alpha) / factor
    plan = _Plan(diff.to(**on), signed.to(**on), pair_grad.to(**on), whole_grad.to(**on),
                 (pair_grad * to_total).to(**on), (whole_grad * to_total).to(**on), whole * t * t, factor, t,
                 t * t / batch, t / batch, 1.0 / batch, remaining_mode, bool(whole_group), classes, float(ce_weight),
                 float(alpha), float(beta))
    if len(_PLANS) >= 256:
        _PLANS.clear()
    _PLANS[key] = plan
    return plan


class _LDRLDFused(torch.autograd.Function):
    """`(total, ce, local, remaining)` of LDRLD in one node; `target=None` gives `(None, None, local, remaining)`."""

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
        if plan.remaining_mode == "zero":
            remaining = u.new_zeros(())
        else:
            if plan.remaining_mode == "mask":  # in place: u and v are this node's own temporaries
                u, v = u.scatter_(1, index, FILL), v.scatter_(1, index, FILL)
            r_t = v.softmax(dim=1)  # (B, C), exactly 0 at the top-k
            remaining = torch.sub(v.log_softmax(dim=1), u.log_softmax(dim=1)).mul_(r_t).sum().mul_(plan.remaining_scale)
        total = ce = None
        if target is not None:  # CE on raw logits, and the weighted total
            ce = F.nll_loss(logits_student.log_softmax(dim=1), target)
            total = torch.add(ce if plan.ce_weight == 1.0 else ce * plan.ce_weight, local, alpha=plan.alpha)
            if plan.remaining_mode != "zero":
                total = torch.add(total, remaining, alpha=plan.beta)
        if need_grad:
            ctx.save_for_backward(logits_student, index, target, sigma, log_q, u, r_t)
            ctx.plan = plan
        return total, ce, local, remaining

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_total, grad_ce, grad_local, grad_remaining):
        plan, saved = ctx.plan, ctx.saved_tensors
        if grad_ce is None and grad_local is None and grad_remaining is None:  # the usual: total.backward()
            if grad_total is None:
                return (None,) * 7
            # d total / dz = f * [(softmax - one-hot) + alpha/f d local/dz + beta/f d remaining/dz], f = ce_weight / B
            with_ce = plan.ce_weight != 0.0
            factor = plan.total_factor
            grad = _fused_gradient(saved, plan, 1.0 if with_ce else None, plan.total_pair_grad,
                                   plan.total_whole_grad, 1.0, plan.beta * plan.remaining_grad / factor)
            return grad.mul_(grad_total * factor if factor != 1.0 else grad_total), None, None, None, None, None, None

        def coefficient(own, weight):  # d out / d part, a 0-d tensor or None
            if grad_total is None:
                return own
            return grad_total * weight if own is None else grad_total * weight + own

        c_ce, c_local, c_remaining = (coefficient(grad_ce, plan.ce_weight), coefficient(grad_local, plan.alpha),
                                      coefficient(grad_remaining, plan.beta))
        grad = _fused_gradient(saved, plan, None if c_ce is None else c_ce * plan.ce_scale, plan.pair_grad,
                               plan.whole_grad, c_local,
                               None if c_remaining is None else c_remaining * plan.remaining_grad)
        return grad, None, None, None, None, None, None


def _fused_gradient(saved, plan, ce_scale, pair_grad, whole_grad, local_scale, remaining_scale) -> Tensor:
    """`ce_scale (softmax - one-hot) + remaining_scale (r_s - r_t) + local_scale * (top-k part)` as a (B, C) tensor.

    Each scale is a float, a 0-d tensor or None (that part left out); the top-k part is
    `(sigma(d_s) - p_t) @ pair_grad + whole_grad (q_s - q_t)` (pair_grad, whole_grad signed per model and
    summed over the stack; the whole_grad part only with the whole-top-k group), scattered to the top-k classes.
    """
    logits, index, target, sigma, log_q, u_remaining, r_t = saved
    grad = None
    if ce_scale is not None and target is not None:
        grad = logits.softmax(dim=1)
        if isinstance(ce_scale, Tensor):
            grad.mul_(ce_scale).scatter_add_(1, target.unsqueeze(1), ce_scale.neg().expand(target.shape[0], 1))
        else:
            if ce_scale != 1.0:
                grad.mul_(ce_scale)
            grad.scatter_(1, target.unsqueeze(1), -ce_scale, reduce="add")
    if remaining_scale is not None and r_t is not None:
        if grad is None or isinstance(remaining_scale, Tensor):
            grad = _add_scaled(grad, u_remaining.softmax(dim=1).sub_(r_t), remaining_scale)
        else:
            grad.add_(u_remaining.softmax(dim=1), alpha=remaining_scale).sub_(r_t, alpha=remaining_scale)
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


def ldrld_terms_fused(logits_student: Tensor, logits_teacher: Tensor, *, k: int = 7,
                     temperature: float = 4.0, rank_by: str = "student", reduction: str = "mean",
                     epsilon: float = EPSILON, delta: float = DELTA, lam: float = LAMBDA,
                     remaining_at_full_k: str = "zero", pair_weighting: str = "adw", whole_group: bool = True):
    """The unweighted `(local, remaining)` terms from one fused autograd node (same values as einops)."""
    check_ldrld_options(rank_by, reduction, remaining_at_full_k, pair_weighting, whole_group)
    check_k(k, logits_student.shape[1])
    options = dict(k=k, temperature=temperature, rank_by=rank_by, reduction=reduction, epsilon=epsilon, delta=delta,
                   lam=lam, remaining_at_full_k=remaining_at_full_k, pair_weighting=pair_weighting,
                   whole_group=whole_group)
    if k > PAIR_MATRIX_MAX_K:
        return ldrld_terms_einops(logits_student, logits_teacher, **options)
    _, _, local, remaining = _fused(logits_student, logits_teacher, None, **options)
    return local, remaining


def ldrld_parts_fused(logits_student: Tensor, logits_teacher: Tensor, target: Tensor, *, k: int = 7,
                     temperature: float = 4.0, alpha: float = 10.5, beta: float = 7.0, ce_weight: float = 1.0,
                     rank_by: str = "student", reduction: str = "mean", epsilon: float = EPSILON,
                     delta: float = DELTA, lam: float = LAMBDA, remaining_at_full_k: str = "zero",
                     pair_weighting: str = "adw", whole_group: bool = True) -> LDRLDParts:
    """`ldrld_loss(..., impl="fused")` without its input checks: one fused node for CE, both terms and total.

    For callers that checked the inputs and options once (the fast training path); same numbers, bit for bit.
    """
    options = dict(k=k, temperature=temperature, rank_by=rank_by, reduction=reduction, epsilon=epsilon, delta=delta,
                   lam=lam, remaining_at_full_k=remaining_at_full_k, pair_weighting=pair_weighting,
                   whole_group=whole_group)
    if k > PAIR_MATRIX_MAX_K:
        local, remaining = ldrld_terms_fused(logits_student, logits_teacher, **options)
        ce = ce_loss(logits_student, target)
        return LDRLDParts(ce_weight * ce + alpha * local + beta * remaining, ce, local, remaining)
    return LDRLDParts(*_fused(logits_student, logits_teacher, target, ce_weight=ce_weight, alpha=alpha, beta=beta,
                             **options))
