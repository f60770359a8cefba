"""Pure plotting functions for the weighting and full-loss notebooks (05-08): data in, a Figure out."""
from __future__ import annotations

from typing import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from ldrld_mini.losses import (
    ldrld_loss, ldrld_terms_einops, pair_positions, pair_weights, pairwise_kl, top_k_decouple,
)
from ldrld_mini.losses.weights import DELTA, EPSILON, LAMBDA, adw, erd

__all__ = [
    "pair_matrix", "plot_weight_heatmaps", "plot_erd_curves", "plot_adw_by_gap", "pair_contributions",
    "plot_adw_playground", "local_term_summary", "format_local_term", "plot_gradient_by_rank", "plot_rank_profiles",
]

TOP_COLOR, REST_COLOR = "tab:red", "tab:blue"  # bars of the top-k classes and of the remaining ones


def _as_numpy(values) -> np.ndarray:
    """A float64 numpy copy of a tensor, array or sequence (detached, on the CPU)."""
    if isinstance(values, torch.Tensor):
        return values.detach().cpu().double().numpy()
    return np.asarray(values, dtype=np.float64)


def pair_matrix(values) -> np.ndarray:
    """(k, k) array holding a (C(k,2),) pair vector (pair_positions order) above the diagonal, NaN elsewhere."""
    v = _as_numpy(values)
    if v.ndim == 2:
        if v.shape[0] != v.shape[1]:
            raise ValueError(f"values must be a square (k, k) matrix or a (C(k,2),) vector, got shape {v.shape}.")
        return np.where(np.triu(np.ones(v.shape, dtype=bool), k=1), v, np.nan)
    k = int(round((1 + np.sqrt(1 + 8 * v.size)) / 2))
    if v.ndim != 1 or k * (k - 1) // 2 != v.size:
        raise ValueError(f"values must hold C(k, 2) pair entries (1, 3, 6, 10, 15, 21, ...), got shape {v.shape}; "
                         "pass the output of pair_weights(k) or pairwise_kl(...).mean(0).")
    a, b = (t.numpy() for t in pair_positions(k))
    m = np.full((k, k), np.nan)
    m[a, b] = v
    return m


def _draw_pair_heatmap(ax: Axes, values, *, title: str, fmt: str, cmap: str, vmax: float | None = None,
                       vmin: float | None = None):
    """Draw an annotated upper-triangle heat map of pair values on `ax`; returns the image.

    The colour scale runs from the values' minimum to their maximum (or `vmin`, `vmax` when given), not from
    0: pair weights and pair KLs sit far from 0, and a scale anchored there would show them all in one colour.
    """
    m = pair_matrix(values)
    k = m.shape[0]
    low = vmin if vmin is not None else np.nanmin(m)
    high = vmax if vmax is not None else np.nanmax(m)
    image = ax.imshow(np.ma.masked_invalid(m), cmap=cmap, vmin=low, vmax=high)
    if k <= 10:  # beyond 10 ranks the numbers no longer fit in the cells
        for a, b in zip(*np.nonzero(~np.isnan(m))):
            dark = m[a, b] < 0.5 * (low + high)  # white text on the dark end of the colour map
            ax.text(b, a, fmt.format(m[a, b]), ha="center", va="center", fontsize=8 if k <= 7 else 6.5,
                    color="white" if dark else "black")
    ticks = np.arange(k)
    ax.set_xticks(ticks, [str(r + 1) for r in ticks])
    ax.set_yticks(ticks, [str(r + 1) for r in ticks])
    ax.set_xlabel("rank R'")
    ax.set_ylabel("rank R")
    ax.set_title(title)
    return image


def plot_weight_heatmaps(matrices: Mapping[str, object], *, fmt: str = "{:.3f}", cmap: str = "viridis",
                         shared_scale: bool = False, panel_size: float = 3.9) -> Figure:
    """One annotated rank-pair heat map per entry; values (k, k) or (C(k,2),), titles from the keys."""
    if not matrices:
        raise ValueError("matrices is empty; pass e.g. {'ERD': erd(...)} with at least one entry.")
    # colours run from the smallest to the largest value shown (of each panel, or of all with shared_scale)
    vmax = max(np.nanmax(pair_matrix(v)) for v in matrices.values()) if shared_scale else None
    vmin = min(np.nanmin(pair_matrix(v)) for v in matrices.values()) if shared_scale else None
    fig, axes = plt.subplots(1, len(matrices), figsize=(panel_size * len(matrices) + 0.6, panel_size - 0.4),
                             layout="constrained", squeeze=False)
    for ax, (title, values) in zip(axes[0], matrices.items()):
        image = _draw_pair_heatmap(ax, values, title=title, fmt=fmt, cmap=cmap, vmax=vmax, vmin=vmin)
        if not shared_scale:
            fig.colorbar(image, ax=ax, shrink=0.8)
    if shared_scale:
        fig.colorbar(image, ax=list(axes[0]), shrink=0.8)
    return fig


def plot_erd_curves(lams: Sequence[float], *, delta: float = DELTA, k: int = 7,
                    figsize: tuple[float, float] = (9.5, 3.6)) -> Figure:
    """ERD against the rank sum R + R' for several λ: raw (left) and relative to the top pair (1, 2) (right)."""
    sums = np.arange(3, 2 * k)  # rank sums of the pairs of the top-k: 1 + 2 ... (k - 1) + k
    fig, (left, right) = plt.subplots(1, 2, figsize=figsize, layout="constrained")
    for lam in lams:
        w = np.array([erd(1, s - 1, delta, lam) for s in sums])  # ERD depends on R + R' only
        left.plot(sums, w, "o-", label=f"λ = {lam:g}")
        right.plot(sums, w / w[0], "o-", label=f"λ = {lam:g}")
    left.set_ylabel("ERD = δ · exp(−λ (R + R'))")
    left.set_title(f"exponential rank decay, δ = {delta:g}")
    right.set_ylabel("ERD / ERD(1, 2)")
    right.set_title("relative to the top pair (1, 2)")
    for ax in (left, right):
        ax.set_xlabel("rank sum R + R'")
        ax.set_xticks(sums)
        ax.grid(alpha=0.3)
    right.legend()
    return fig


def plot_adw_by_gap(k: int = 7, *, epsilon: float = EPSILON, delta: float = DELTA, lam: float = LAMBDA,
                    figsize: tuple[float, float] = (5.8, 3.8)) -> Figure:
    """ADW against the higher rank R of the pair (R, R + gap), one line per rank gap."""
    fig, ax = plt.subplots(figsize=figsize, layout="constrained")
    colors = plt.cm.viridis(np.linspace(0.0, 0.9, k - 1))
    for gap, color in zip(range(1, k), colors):
        ranks = np.arange(1, k - gap + 1)
        ax.plot(ranks, [adw(r, r + gap, epsilon, delta, lam) for r in ranks], "o-", color=color,
                label=f"gap {gap}")
    ax.set_xlabel("higher rank R of the pair (R, R + gap)")
    ax.set_ylabel("ADW = IRW · ERD")
    ax.set_title(f"ADW, ε = {epsilon:g}, δ = {delta:g}, λ = {lam:g}")
    ax.set_xticks(np.arange(1, k))
    ax.grid(alpha=0.3)
    ax.legend(ncol=2, fontsize=8)
    return fig


def pair_contributions(logits_student, logits_teacher, *, k: int = 7, temperature: float = 4.0,
                       epsilon: float = EPSILON, delta: float = DELTA, lam: float = LAMBDA,
                       rank_by: str = "student") -> tuple[torch.Tensor, torch.Tensor]:
    """`(ADW (P,), batch-mean pair KL (P,))` of the top-k pairs of (B, C) logits, P = C(k, 2)."""
    zs, zt = torch.as_tensor(logits_student).double(), torch.as_tensor(logits_teacher).double()
    _, student_top, teacher_top = top_k_decouple(zs, zt, k, rank_by)  # (B, k) each
    pair_kl = pairwise_kl(student_top, teacher_top, temperature).mean(dim=0)  # (P,)
    return pair_weights(k, epsilon, delta, lam, dtype=torch.float64), pair_kl


def local_term_summary(logits_student, logits_teacher, target=None, *, k: int = 7, temperature: float = 4.0,
                       epsilon: float = EPSILON, delta: float = DELTA, lam: float = LAMBDA, alpha: float = 10.5,
                       beta: float = 7.0, rank_by: str = "student") -> dict[str, float]:
    """The local term of (B, C) logits for these knobs, from `ldrld_mini.losses`: `local`, `remaining` and, with
    `target` (B,), `ce`, `total` and `share` = α · local / total (α, β: the published 10.5 and 7)."""
    zs, zt = torch.as_tensor(logits_student).double(), torch.as_tensor(logits_teacher).double()
    knobs = dict(k=k, temperature=temperature, epsilon=epsilon, delta=delta, lam=lam, rank_by=rank_by)
    if target is None:
        local, remaining = ldrld_terms_einops(zs, zt, **knobs)
        return {"local": local.item(), "remaining": remaining.item()}
    parts = ldrld_loss(zs, zt, torch.as_tensor(target), alpha=alpha, beta=beta, **knobs)
    return {"local": parts.local.item(), "remaining": parts.remaining.item(), "ce": parts.ce.item(),
            "total": parts.total.item(), "share": alpha * parts.local.item() / parts.total.item(), "alpha": alpha}


def format_local_term(summary: dict[str, float]) -> str:
    """One line for `local_term_summary`'s result, e.g. 'local term 0.5379 · α = 10.5 → 5.648, 34.1 % of the total 16.55'."""
    line = f"local term {summary['local']:.4f}"
    if "total" in summary:
        weighted = summary["alpha"] * summary["local"]
        line += (f" · α = {summary['alpha']:g} → {weighted:.3f}, {100 * summary['share']:.1f} % of the total "
                 f"loss {summary['total']:.3f}")
    return line


def plot_adw_playground(logits_student, logits_teacher, *, k: int = 7, temperature: float = 4.0,
                        epsilon: float = EPSILON, delta: float = DELTA, lam: float = LAMBDA,
                        rank_by: str = "student", panel_size: float = 3.7, target=None) -> Figure:
    """Heat maps of the pair weights ADW, the batch-mean pair KLs and the loss contributions ADW · KL, titled
    with the local term these knobs give (and its share of the total loss when `target` (B,) is given)."""
    weights, pair_kl = pair_contributions(logits_student, logits_teacher, k=k, temperature=temperature,
                                          epsilon=epsilon, delta=delta, lam=lam, rank_by=rank_by)
    panels = {"ADW": (weights, "viridis"), "pair KL": (pair_kl, "cividis"),
              "ADW · pair KL": (weights * pair_kl, "magma")}
    fig, axes = plt.subplots(1, 3, figsize=(3 * panel_size + 1.2, panel_size - 0.2), layout="constrained")
    for ax, (name, (values, cmap)) in zip(axes, panels.items()):
        image = _draw_pair_heatmap(ax, values, title=f"{name} (sum {values.sum().item():.3f})", fmt="{:.2f}",
                                   cmap=cmap)
        fig.colorbar(image, ax=ax, shrink=0.8)
    summary = local_term_summary(logits_student, logits_teacher, target, k=k, temperature=temperature,
                                 epsilon=epsilon, delta=delta, lam=lam, rank_by=rank_by)
    fig.suptitle(f"k = {k}, ε = {epsilon:g}, δ = {delta:g}, λ = {lam:g}, T = {temperature:g}, "
                 f"ranked by the {rank_by}\n{format_local_term(summary)}")
    return fig


def plot_gradient_by_rank(gradients: Mapping[str, object], ranking_logits, *, k: int,
                          figsize: tuple[float, float] | None = None) -> Figure:
    """One panel of bars per (C,) gradient, classes sorted by `ranking_logits` (C,), the top-k red, own y-scales."""
    if not gradients:
        raise ValueError("gradients is empty; pass e.g. {'KD': grad_kd} with at least one (C,) entry.")
    order = np.argsort(-_as_numpy(ranking_logits), kind="stable")  # (C,) class indices, highest first
    num_classes = len(order)
    if not 1 <= k <= num_classes:
        raise ValueError(f"k must lie in [1, {num_classes}] (the number of classes), got {k!r}.")
    figsize = figsize or (9.0, 1.9 * len(gradients) + 0.6)
    fig, axes = plt.subplots(len(gradients), 1, figsize=figsize, sharex=True, layout="constrained",
                             squeeze=False)
    rank = np.arange(1, num_classes + 1)
    colors = [TOP_COLOR if r <= k else REST_COLOR for r in rank]
    for ax, (title, grad) in zip(axes[:, 0], gradients.items()):
        g = _as_numpy(grad)
        if g.shape != (num_classes,):
            raise ValueError(f"gradient {title!r} has shape {g.shape}; pass one sample's (C,) = ({num_classes},).")
        ax.bar(rank, g[order], width=0.85, color=colors)
        ax.axvline(k + 0.5, color="gray", linestyle="--", linewidth=1)
        ax.axhline(0.0, color="black", linewidth=0.6)
        ax.set_title(title, fontsize=10, loc="left")
        ax.set_ylabel("∂L / ∂z")
        ax.grid(axis="y", alpha=0.3)
    axes[-1, 0].set_xlabel(f"class, by student rank (red: top-{k}, blue: the {num_classes - k} remaining)")
    return fig


def plot_rank_profiles(profiles: Mapping[str, object], *, k: int, ylabel: str = "mean |∂L / ∂z|",
                       title: str = "", logy: bool = True, figsize: tuple[float, float] = (7.0, 3.8)) -> Figure:
    """One line per (C,) profile over rank positions 1..C, the top-k shaded; zeros left out on a log axis."""
    if not profiles:
        raise ValueError("profiles is empty; pass e.g. {'KD': profile} with at least one (C,) entry.")
    fig, ax = plt.subplots(figsize=figsize, layout="constrained")
    for label, values in profiles.items():
        v = _as_numpy(values)
        if logy:
            v = np.where(v > 0, v, np.nan)  # a gap in the line rather than a plunge to the clip value
        ax.plot(np.arange(1, len(v) + 1), v, ".-", label=label, linewidth=1.2, markersize=4)
    ax.axvspan(0.5, k + 0.5, color=TOP_COLOR, alpha=0.08, label=f"top-{k}")
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel("rank position (by the student's logits)")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    return fig

