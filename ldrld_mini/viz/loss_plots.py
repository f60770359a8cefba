"""Pure plotting functions for the loss notebooks: each takes data and returns a matplotlib Figure."""
from __future__ import annotations

from typing import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.ticker import ScalarFormatter

from ldrld_mini.losses.weights import irw, pair_positions

__all__ = [
    "plot_tempered_softmax", "plot_gradient_scaling", "plot_global_vs_local", "plot_rank_pair_heatmap",
    "plot_irw_vs_gap",
]


def _as_numpy(values) -> np.ndarray:
    """A float64 numpy copy of a tensor, array or sequence (detached, on the CPU)."""
    if isinstance(values, torch.Tensor):
        return values.detach().cpu().double().numpy()
    return np.asarray(values, dtype=np.float64)


def _softmax(z: np.ndarray) -> np.ndarray:
    """Numerically stable softmax of a 1-D array."""
    e = np.exp(z - z.max())
    return e / e.sum()


def plot_tempered_softmax(logits, temperatures: Sequence[float], *, class_names: Sequence[str] | None = None,
                          figsize: tuple[float, float] = (7.0, 3.6)) -> Figure:
    """Grouped bars of `softmax(logits / T)` over the classes, one colour per temperature; logits (C,)."""
    z = _as_numpy(logits)
    names = list(class_names) if class_names is not None else [str(c) for c in range(len(z))]
    if len(names) != len(z):
        raise ValueError(f"class_names has {len(names)} names but logits has {len(z)} classes; pass one per class.")
    fig, ax = plt.subplots(figsize=figsize, layout="constrained")
    width = 0.8 / len(temperatures)
    colors = plt.cm.viridis(np.linspace(0.0, 0.85, len(temperatures)))
    for i, (temperature, color) in enumerate(zip(temperatures, colors)):
        offsets = np.arange(len(z)) - 0.4 + (i + 0.5) * width
        ax.bar(offsets, _softmax(z / temperature), width=width, color=color, label=f"T = {temperature:g}")
    ax.set_xticks(np.arange(len(z)), names)
    ax.set_ylabel("probability")
    ax.set_title("softmax(z / T): a higher temperature reveals the small probabilities")
    ax.legend()
    ax.grid(axis="y", alpha=0.3)
    return fig


def plot_gradient_scaling(temperatures: Sequence[float], norms: Mapping[str, Sequence[float]], *,
                          reference_slope: float = -2.0, figsize: tuple[float, float] = (5.5, 3.8)) -> Figure:
    """Log-log gradient norm against temperature, one line per label, with a dashed `T^slope` guide."""
    t = _as_numpy(temperatures)
    fig, ax = plt.subplots(figsize=figsize, layout="constrained")
    for label, values in norms.items():
        ax.plot(t, _as_numpy(values), "o-", label=label)
    if norms:
        anchor = _as_numpy(next(iter(norms.values())))[-1]
        guide = anchor * (t / t[-1]) ** reference_slope  # passes through the first line's last point
        ax.plot(t, guide, "--", color="gray", label=f"slope {reference_slope:g} guide")
    ax.set_xscale("log", base=2)
    ax.xaxis.set_major_formatter(ScalarFormatter())  # 1, 2, 4, ... rather than 2^0, 2^1, ...
    ax.set_yscale("log")
    ax.set_xlabel("temperature T")
    ax.set_ylabel("gradient norm w.r.t. student logits")
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    return fig


def plot_global_vs_local(logits, temperature: float, *, ranks: tuple[int, int] = (6, 7),
                         figsize: tuple[float, float] = (10.0, 3.8)) -> Figure:
    """Global softmax by rank, a pair in red (left); the factor `p_r + p_r+1` that shrinks each pair (right)."""
    z = np.sort(_as_numpy(logits))[::-1] / temperature  # (C,) descending
    if not 1 <= ranks[0] < ranks[1] <= len(z):
        raise ValueError(f"ranks must be two 1-based ranks r1 < r2 <= {len(z)}, got {ranks!r}.")
    p = _softmax(z)
    fig, (left, right) = plt.subplots(1, 2, figsize=figsize, layout="constrained")
    rank = np.arange(1, len(z) + 1)
    colors = ["tab:red" if r in ranks else "tab:blue" for r in rank]
    left.bar(rank, p, color=colors)
    left.set_xlabel("rank of the class")
    left.set_ylabel("global softmax probability")
    left.set_title(f"global softmax, T = {temperature:g} (ranks {ranks[0]}, {ranks[1]} in red)")
    # global difference p_r - p_r+1 = (p_r + p_r+1) * local difference q_r - q_r+1 of the 2-class softmax
    right.semilogy(rank[:-1], p[:-1] + p[1:], ".-", color="tab:blue", label="global softmax: p_r + p_r+1")
    right.axhline(1.0, color="tab:orange", label="2-class local softmax: 1")
    right.plot([ranks[0]], [p[ranks[0] - 1] + p[ranks[0]]], "o", color="tab:red")
    right.set_xlabel("rank r of the pair (r, r + 1)")
    right.set_ylabel("factor on the pair's difference")
    right.set_title("how much of a pair's contrast survives")
    right.grid(alpha=0.3, which="both")
    right.legend(loc="center right")
    return fig


def _pair_matrix(values) -> np.ndarray:
    """A (k, k) array with NaN off the upper triangle, from a (k, k) matrix or a (C(k,2),) pair vector."""
    v = _as_numpy(values)
    if v.ndim == 1:
        k = int(round((1 + np.sqrt(1 + 8 * len(v))) / 2))
        if k * (k - 1) // 2 != len(v):
            raise ValueError(f"a pair vector must have C(k, 2) entries, got {len(v)}; pass a (k, k) matrix instead.")
        a, b = (t.numpy() for t in pair_positions(k))
        m = np.full((k, k), np.nan)
        m[a, b] = v
        return m
    if v.ndim != 2 or v.shape[0] != v.shape[1]:
        raise ValueError(f"matrix must be (k, k) or a (C(k,2),) pair vector, got shape {v.shape}.")
    return np.where(np.triu(np.ones_like(v, dtype=bool), k=1), v, np.nan)


def plot_rank_pair_heatmap(values, *, title: str = "", label: str = "", fmt: str = "{:.3f}",
                           cmap: str = "viridis", figsize: tuple[float, float] = (5.0, 4.2)) -> Figure:
    """Annotated heat map over rank pairs (R < R'); values (k, k) or (C(k,2),) in `pair_positions` order."""
    m = _pair_matrix(values)
    k = m.shape[0]
    fig, ax = plt.subplots(figsize=figsize, layout="constrained")
    image = ax.imshow(np.ma.masked_invalid(m), cmap=cmap)
    low, high = np.nanmin(m), np.nanmax(m)
    for a, b in zip(*np.nonzero(~np.isnan(m))):
        dark = m[a, b] < low + 0.5 * (high - low)  # white text on the dark end of the colour map
        ax.text(b, a, fmt.format(m[a, b]), ha="center", va="center", fontsize=8,
                color="white" if dark else "black")
    ticks = np.arange(k)
    ax.set_xticks(ticks, [str(r + 1) for r in ticks])
    ax.set_yticks(ticks, [str(r + 1) for r in ticks])
    ax.set_xlabel("rank R'")
    ax.set_ylabel("rank R")
    ax.set_title(title)
    fig.colorbar(image, ax=ax, label=label)
    return fig


def plot_irw_vs_gap(epsilons: Sequence[float], *, k: int = 7,
                    figsize: tuple[float, float] = (9.5, 3.6)) -> Figure:
    """IRW against the rank gap |R - R'| for several epsilons: raw (left) and divided by its gap-1 value (right)."""
    gaps = np.arange(1, k)
    fig, (left, right) = plt.subplots(1, 2, figsize=figsize, layout="constrained")
    for epsilon in epsilons:
        w = np.array([irw(1, 1 + g, epsilon) for g in gaps])
        left.plot(gaps, w, "o-", label=f"ε = {epsilon:g}")
        right.plot(gaps, w / w[0], "o-", label=f"ε = {epsilon:g}")
    left.set_ylabel("IRW = 1 / (ε + |R − R'|)")
    left.set_title("inverse rank weighting")
    right.set_ylabel("IRW / IRW(gap 1)")
    right.set_title("relative to the adjacent pairs")
    for ax in (left, right):
        ax.set_xlabel("rank gap |R − R'|")
        ax.set_xticks(gaps)
        ax.grid(alpha=0.3)
        ax.legend()
    return fig
