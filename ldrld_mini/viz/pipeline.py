"""The LDRLD loss as a flow diagram: a pure function returning a matplotlib Figure (notebooks 00 and 08)."""
from __future__ import annotations

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

# (key, text, x, y): the boxes of the diagram, in axes coordinates (0..1)
_BOXES = (
    ("logits", "student and teacher logits\n(B, C), softened by T", 0.10, 0.50),
    ("topk", "student's top-k classes\n(k = paper's d)", 0.33, 0.72),
    ("outside", "the other C − k classes", 0.33, 0.22),
    ("pairs", "pairs (a, b), a < b\nand the whole top-k group", 0.56, 0.72),
    ("adw", "ADW weights\n(IRW × ERD)", 0.76, 0.72),
    ("local", "L_local = weighted mean\n(LDRLDParts.local)", 0.76, 0.46),
    ("remaining", "L_RNTK = KL on the others\n(LDRLDParts.remaining)", 0.56, 0.22),
    ("ce", "cross-entropy with the label\n(LDRLDParts.ce)", 0.33, 0.04),
    ("total", "total", 0.93, 0.22),
)
# (from, to, label on the arrow, where the arrow leaves `from` and enters `to` as fractions of each box,
# where the label goes); arrows run from box edge to box edge
_R, _L, _T, _B = (1.0, 0.5), (0.0, 0.5), (0.5, 1.0), (0.5, 0.0)
_ARROWS = (
    ("logits", "topk", "", (0.8, 1.0), _L, None),
    ("logits", "outside", "", (0.8, 0.0), _L, None),
    ("logits", "ce", "", (0.3, 0.0), _L, None),
    ("topk", "pairs", "", _R, _L, None),
    ("pairs", "adw", "pair KLs", _R, _L, (0.665, 0.76)),
    ("adw", "local", "", _B, _T, None),
    ("outside", "remaining", "", _R, _L, None),
    ("local", "total", "× α", _R, _T, (0.885, 0.36)),
    ("remaining", "total", "× β", _R, _L, (0.79, 0.25)),
    ("ce", "total", "× ce_weight", _R, _B, (0.66, 0.13)),
)


def plot_loss_pipeline(alpha: float = 10.5, beta: float = 7.0, ce_weight: float = 1.0,
                       k: int = 7) -> Figure:
    """Draw how LDRLD turns a batch of logits into its loss: CE, the local dense term and RNTK.

    The numbers written on the arrows into `total` are `alpha`, `beta` and `ce_weight` (the defaults are
    the paper's CIFAR-100 values), and the top-k box names `k`.
    """
    for name, value in (("alpha", alpha), ("beta", beta), ("ce_weight", ce_weight)):
        if not isinstance(value, (int, float)) or value < 0:
            raise ValueError(f"{name} must be a number >= 0, got {value!r}: pass the loss weight, e.g. {name}=1.0")
    if not isinstance(k, int) or k < 2:
        raise ValueError(f"k must be an integer >= 2 (pairs need two classes), got {k!r}: e.g. k=7")
    fig, ax = plt.subplots(figsize=(11, 4.6))
    ax.set_xlim(0, 1.02)
    ax.set_ylim(-0.06, 0.86)
    ax.axis("off")
    boxes = {}
    for key, text, x, y in _BOXES:
        if key == "topk":
            text = f"student's top-{k} classes\n(k = paper's d)"
        colour = {"local": "#cfe3f5", "remaining": "#fde2c8", "ce": "#e2e2e2", "total": "#d5efd2"}.get(key, "white")
        boxes[key] = ax.text(x, y, text, ha="center", va="center", fontsize=9, gid=key,
                bbox=dict(boxstyle="round,pad=0.4", facecolor=colour, edgecolor="0.3"))
    values = {"× α": f"× α = {alpha:g}", "× β": f"× β = {beta:g}", "× ce_weight": f"× {ce_weight:g}"}
    fig.canvas.draw()  # the boxes' extents, which the arrows attach to
    for start, end, label, leave, enter, where in _ARROWS:
        ax.annotate("", xy=enter, xycoords=boxes[end], xytext=leave, textcoords=boxes[start],
                    arrowprops=dict(arrowstyle="->", color="0.25", shrinkA=2, shrinkB=2))
        if label:
            ax.text(*where, values[label] if label in values else label, ha="center", va="center", fontsize=9,
                    color="tab:red" if label.startswith("×") else "0.2", gid=f"arrow:{end}:{label}")
    ax.set_title("LDRLD: total = ce_weight · CE + α · L_local + β · L_RNTK")
    fig.tight_layout()
    return fig


__all__ = ["plot_loss_pipeline"]
