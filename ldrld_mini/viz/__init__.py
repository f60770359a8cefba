"""Plots (pure functions returning matplotlib Figures) for training curves and the demo."""
from ldrld_mini.viz.plots import plot_group_curves, plot_method_bars, plot_run_curves, plot_training_curves

__all__ = ["plot_training_curves", "plot_run_curves", "plot_method_bars", "plot_group_curves"]
