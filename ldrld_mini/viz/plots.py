"""Pure plotting functions: each takes data and returns a matplotlib Figure (never shows it)."""
from __future__ import annotations

from typing import Mapping, Sequence

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

__all__ = ["plot_training_curves", "plot_run_curves", "plot_method_bars", "plot_group_curves"]

# training curves -------------------------------------------------------------------------------

METHOD_COLORS = {"teacher": "black", "vanilla": "tab:gray", "kd": "tab:blue", "dkd": "tab:orange",
                 "ldrld": "tab:red"}


def _new_axes(figsize: tuple[float, float]):
    """A pyplot-managed Figure and one Axes (so a notebook's `plt.show()` shows it; scripts close it)."""
    return plt.subplots(figsize=figsize, layout="constrained")


def plot_training_curves(curves: Mapping[str, object], *, title: str = "validation top-1",
                         ylabel: str = "val top-1 (%)", levels: Mapping[str, float] | None = None,
                         figsize: tuple[float, float] = (6.0, 4.0)) -> Figure:
    """Val top-1 vs epoch, one line per label; `curves[label]` has `.epochs`, `.mean`, `.std` (lists).

    A band of ± std is drawn where a curve averages more than one run (see `results.epoch_curves`);
    `levels` adds labelled horizontal dotted lines (e.g. {"chance": 1.0}).
    """
    fig, ax = _new_axes(figsize)
    for label, value in (levels or {}).items():
        ax.axhline(value, linestyle=":", color="tab:gray", linewidth=1.0)
        ax.annotate(label, (0.01, value), xycoords=("axes fraction", "data"), xytext=(0, 2),
                    textcoords="offset points", fontsize=8, color="tab:gray")
    for label, curve in curves.items():
        color = METHOD_COLORS.get(str(label).lower())
        style = "--" if str(label).lower() == "teacher" else "-"
        ax.plot(curve.epochs, curve.mean, style, color=color, label=str(label), linewidth=1.6)
        if getattr(curve, "num_runs", 1) > 1:
            low = [m - s for m, s in zip(curve.mean, curve.std)]
            high = [m + s for m, s in zip(curve.mean, curve.std)]
            ax.fill_between(curve.epochs, low, high, color=color, alpha=0.2, linewidth=0)
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if curves:
        ax.legend(loc="lower right")
    return fig


def plot_group_curves(curves: Mapping[str, object], *, title: str) -> Figure:
    """`ldrld-mini results --plot`: one axis per dataset (a label's first word), stacked; every curve with markers
    (a one-epoch run is a dot), a distinct (colour, line style) for up to 20 x 4 curves per axis, integer epoch
    ticks, and each axis's legend outside it, on the right (save with bbox_inches="tight")."""
    from matplotlib.ticker import MaxNLocator

    by_dataset: dict[str, dict] = {}
    for label, curve in curves.items():
        by_dataset.setdefault(str(label).split(" ", 1)[0], {})[label] = curve
    n = max(len(by_dataset), 1)
    fig, axes = plt.subplots(n, 1, figsize=(7.0, 3.6 * n), squeeze=False)
    colors = plt.get_cmap("tab20").colors
    styles = ("-", "--", "-.", ":")
    for ax, (dataset, group) in zip(axes[:, 0], sorted(by_dataset.items())):
        for i, (label, curve) in enumerate(group.items()):
            color, style = colors[i % len(colors)], styles[(i // len(colors)) % len(styles)]
            ax.plot(curve.epochs, curve.mean, linestyle=style, marker="o", markersize=3.5, color=color,
                    label=str(label), linewidth=1.4)
            if getattr(curve, "num_runs", 1) > 1:
                low = [m - s for m, s in zip(curve.mean, curve.std)]
                high = [m + s for m, s in zip(curve.mean, curve.std)]
                ax.fill_between(curve.epochs, low, high, color=color, alpha=0.15, linewidth=0)
        epochs = sorted({e for curve in group.values() for e in curve.epochs})
        if epochs and epochs[-1] - epochs[0] < 3:  # a few epochs: a tick at each, half an epoch of margin
            ax.set_xticks(epochs)
            ax.set_xlim(epochs[0] - 0.5, epochs[-1] + 0.5)
        else:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
        ax.set_ylabel("val top-1 (%)")
        ax.set_title(f"{title}: {dataset}", fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=7, frameon=False)
    fig.tight_layout()
    return fig


def plot_run_curves(runs: Sequence[object], *, title: str = "validation top-1 per run",
                    figsize: tuple[float, float] = (6.0, 4.0)) -> Figure:
    """Val top-1 vs epoch for each run (`results.Run`), coloured by method, one line per seed."""
    fig, ax = _new_axes(figsize)
    labelled: set[str] = set()
    for run in runs:
        epochs, values = run.curve
        method = run.method
        ax.plot(epochs, values, color=METHOD_COLORS.get(method), linewidth=1.2, alpha=0.8,
                label=None if method in labelled else method)
        labelled.add(method)
    ax.set_xlabel("epoch")
    ax.set_ylabel("val top-1 (%)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if labelled:
        ax.legend(loc="lower right")
    return fig


def plot_method_bars(values: Mapping[str, float], *, reference: float | None = None,
                     reference_label: str = "teacher", title: str = "best val top-1",
                     figsize: tuple[float, float] = (5.0, 3.5)) -> Figure:
    """Bar chart of one number per method (e.g. best top-1), with an optional dashed reference line."""
    fig, ax = _new_axes(figsize)
    labels = list(values)
    bars = ax.bar(labels, [values[k] for k in labels],
                  color=[METHOD_COLORS.get(k.lower(), "tab:green") for k in labels])
    ax.bar_label(bars, fmt="%.1f", padding=2)
    if reference is not None:
        ax.axhline(reference, linestyle="--", color="black", linewidth=1.0, label=reference_label)
        ax.legend(loc="lower right")
    ax.set_ylabel("top-1 (%)")
    ax.set_title(title)
    return fig
