"""The loss notebooks' plots: pure functions returning Figures with the expected axes and artists."""
import math

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from ldrld_mini.losses import adw_matrix, pair_weights
from ldrld_mini.viz.loss_plots import (
    plot_global_vs_local, plot_gradient_scaling, plot_irw_vs_gap, plot_rank_pair_heatmap, plot_tempered_softmax,
)


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def test_tempered_softmax_one_bar_group_per_temperature():
    fig = plot_tempered_softmax(torch.tensor([3.0, 1.0, 0.0, -1.0]), [1, 4, 8], class_names=list("abcd"))
    assert isinstance(fig, Figure) and len(fig.axes) == 1
    ax = fig.axes[0]
    assert len(ax.containers) == 3 and all(len(bars) == 4 for bars in ax.containers)
    heights = [bar.get_height() for bar in ax.containers[0]]
    assert sum(heights) == pytest.approx(1.0)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["T = 1", "T = 4", "T = 8"]


def test_tempered_softmax_rejects_wrong_names():
    with pytest.raises(ValueError, match="class_names"):
        plot_tempered_softmax([1.0, 2.0], [1.0], class_names=["only one"])


def test_gradient_scaling_lines_and_log_axes():
    t = [1, 2, 4, 8]
    fig = plot_gradient_scaling(t, {"KL": [1.0, 0.3, 0.08, 0.02], "T² KL": [1.0, 1.2, 1.3, 1.3]})
    ax = fig.axes[0]
    assert len(ax.lines) == 3  # two curves + the guide
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    guide = ax.lines[-1].get_ydata()
    assert guide[-1] == pytest.approx(0.02) and guide[0] == pytest.approx(0.02 * 8**2)


def test_global_vs_local_two_panels():
    logits = torch.linspace(5.0, -5.0, 20)
    fig = plot_global_vs_local(logits, 4.0, ranks=(3, 4))
    left, right = fig.axes
    assert len(left.patches) == 20
    red = [p for p in left.patches if p.get_facecolor()[:3] == pytest.approx((0.839, 0.153, 0.157), abs=1e-2)]
    assert len(red) == 2
    assert len(right.lines) == 3 and right.get_yscale() == "log"
    factor = right.lines[0].get_ydata()  # p_r + p_r+1 of the sorted global softmax
    assert np.all(factor < 1.0) and np.all(np.diff(factor) < 0)  # shrinks more and more down the ranking
    assert right.lines[1].get_ydata()[0] == pytest.approx(1.0)


def test_global_vs_local_rejects_bad_ranks():
    with pytest.raises(ValueError, match="ranks"):
        plot_global_vs_local(torch.zeros(5), 1.0, ranks=(4, 9))


def test_rank_pair_heatmap_from_vector_and_matrix():
    k = 7
    fig = plot_rank_pair_heatmap(pair_weights(k), title="ADW", label="weight")
    ax = fig.axes[0]
    assert len(fig.axes) == 2  # heat map + colour bar
    assert len(ax.images) == 1 and len(ax.texts) == math.comb(k, 2)
    assert [t.get_text() for t in ax.get_xticklabels()] == [str(r) for r in range(1, k + 1)]
    image = np.ma.getdata(ax.images[0].get_array())
    mask = np.ma.getmaskarray(ax.images[0].get_array())
    assert mask.sum() == k * k - math.comb(k, 2)
    assert image[0, 1] == pytest.approx(0.6886, abs=1e-4)
    fig2 = plot_rank_pair_heatmap(adw_matrix(k))
    assert len(fig2.axes[0].texts) == math.comb(k, 2)


def test_rank_pair_heatmap_rejects_bad_shape():
    with pytest.raises(ValueError, match="C\\(k, 2\\)"):
        plot_rank_pair_heatmap(torch.ones(5))


def test_irw_vs_gap_lines_per_epsilon():
    fig = plot_irw_vs_gap([0.5, 1.5, 10.0], k=7)
    left, right = fig.axes
    assert len(left.lines) == 3 and len(right.lines) == 3
    assert left.lines[1].get_ydata()[0] == pytest.approx(1 / 2.5)
    assert all(line.get_ydata()[0] == pytest.approx(1.0) for line in right.lines)
    assert list(left.lines[0].get_xdata()) == list(range(1, 7))


def test_irw_vs_gap_legend_on_both_panels():
    fig = plot_irw_vs_gap([0.5, 1.5], k=5)
    for ax in fig.axes:
        assert [t.get_text() for t in ax.get_legend().get_texts()] == ["ε = 0.5", "ε = 1.5"]
