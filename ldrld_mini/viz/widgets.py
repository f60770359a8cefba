"""Thin ipywidgets wrappers over the pure plotting functions (needs the `notebooks` extra: ipywidgets)."""
from __future__ import annotations

import matplotlib.pyplot as plt

from ldrld_mini.losses.weights import DELTA, EPSILON, LAMBDA
from ldrld_mini.viz.weight_plots import plot_adw_playground

__all__ = ["adw_playground"]


def adw_playground(logits_student, logits_teacher, target=None, *, k: int = 7, temperature: float = 4.0,
                   epsilon: float = EPSILON, delta: float = DELTA, lam: float = LAMBDA, max_k: int = 10):
    """Sliders for ε, δ, λ and k redrawing `plot_adw_playground` on (B, C) logits, titled with the local term
    (and, given the labels `target` (B,), its share of the total loss); `.result` is the last Figure."""
    import ipywidgets as widgets  # optional: the `notebooks` extra
    from IPython.display import display

    num_classes = logits_student.shape[1]
    if not 2 <= k <= min(max_k, num_classes):
        raise ValueError(f"k must lie in [2, {min(max_k, num_classes)}] (max_k and the number of classes), got {k!r}.")

    def draw(k, epsilon, delta, lam):
        fig = plot_adw_playground(logits_student, logits_teacher, k=k, temperature=temperature,
                                  epsilon=epsilon, delta=delta, lam=lam, target=target)
        display(fig)  # into the widget's output area, whatever the matplotlib backend
        plt.close(fig)  # so that the notebook does not show it a second time below the cell
        return fig

    common = dict(continuous_update=False, style={"description_width": "initial"})
    return widgets.interactive(
        draw,
        k=widgets.IntSlider(value=k, min=2, max=min(max_k, num_classes), description="k (top classes)", **common),
        epsilon=widgets.FloatSlider(value=epsilon, min=0.1, max=10.0, step=0.1, description="ε (IRW)", **common),
        delta=widgets.FloatSlider(value=delta, min=0.5, max=4.0, step=0.1, description="δ (ERD)", **common),
        lam=widgets.FloatSlider(value=lam, min=-0.2, max=0.5, step=0.01, description="λ (ERD)", **common),
    )
