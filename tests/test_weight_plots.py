"""The weighting notebooks' plots (05-08) and the ADW widget: Figures with the expected axes and artists."""
import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from ldrld_mini.losses import adw, adw_matrix, erd, pair_weights, pairwise_kl, top_k_decouple
from ldrld_mini.viz.weight_plots import (
    pair_contributions, pair_matrix, plot_adw_by_gap, plot_adw_playground, plot_erd_curves,
    plot_gradient_by_rank, plot_rank_profiles, plot_weight_heatmaps,
)


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


@pytest.fixture
def logits():
    gen = torch.Generator().manual_seed(0)
    teacher = torch.randn(8, 20, generator=gen, dtype=torch.float64) * 2.0  # (B, C)
    student = teacher + torch.randn(8, 20, generator=gen, dtype=torch.float64)  # (B, C)
    return student, teacher


def _image_array(ax) -> np.ma.MaskedArray:
    return ax.images[0].get_array()


def test_pair_matrix_from_vector_and_matrix():
    m = pair_matrix(pair_weights(7, dtype=torch.float64))
    assert m.shape == (7, 7)
    assert np.isnan(m[np.tril_indices(7)]).all()
    assert m[0, 1] == pytest.approx(adw(1, 2)) and m[5, 6] == pytest.approx(adw(6, 7))
    np.testing.assert_allclose(pair_matrix(adw_matrix(7, dtype=torch.float64)), m)


@pytest.mark.parametrize("bad", [np.zeros(4), np.zeros((3, 4)), np.zeros((1, 1, 3)), np.float64(1.0)])
def test_pair_matrix_rejects_bad_shapes(bad):
    with pytest.raises(ValueError, match="values must"):
        pair_matrix(bad)


def test_weight_heatmaps_one_panel_per_entry():
    ranks = torch.arange(1, 8, dtype=torch.float64)
    fig = plot_weight_heatmaps({"ERD": erd(ranks[:, None], ranks[None, :]), "ADW": pair_weights(7)})
    assert isinstance(fig, Figure)
    panels = [ax for ax in fig.axes if ax.images]
    assert [ax.get_title() for ax in panels] == ["ERD", "ADW"]
    assert len(fig.axes) == 4  # two heat maps, two colour bars
    assert len(panels[0].texts) == 21  # one annotation per pair
    assert _image_array(panels[0])[0, 1] == pytest.approx(erd(1, 2))
    assert _image_array(panels[1]).mask[3, 3]  # the diagonal is blank


def test_weight_heatmaps_shared_scale_and_empty():
    fig = plot_weight_heatmaps({"a": pair_weights(4), "b": 2 * pair_weights(4)}, shared_scale=True)
    assert len(fig.axes) == 3  # one colour bar for both panels
    assert fig.axes[0].images[0].get_clim() == fig.axes[1].images[0].get_clim()
    with pytest.raises(ValueError, match="matrices is empty"):
        plot_weight_heatmaps({})


def test_erd_curves_lines_per_lambda():
    fig = plot_erd_curves([0.0, 0.05, 0.1], k=7)
    left, right = fig.axes
    assert len(left.lines) == 3 and len(right.lines) == 3
    np.testing.assert_array_equal(left.lines[1].get_xdata(), np.arange(3, 14))
    assert left.lines[1].get_ydata()[0] == pytest.approx(erd(1, 2))
    assert np.allclose(right.lines[0].get_ydata(), 1.0)  # λ = 0: no decay
    assert right.lines[2].get_ydata()[-1] == pytest.approx(np.exp(-0.1 * 10))


def test_adw_by_gap_one_line_per_gap():
    fig = plot_adw_by_gap(7)
    ax = fig.axes[0]
    assert len(ax.lines) == 6
    assert ax.lines[0].get_ydata()[0] == pytest.approx(adw(1, 2))
    assert len(ax.lines[5].get_xdata()) == 1 and ax.lines[5].get_ydata()[0] == pytest.approx(adw(1, 7))


def test_pair_contributions_match_the_loss_pieces(logits):
    student, teacher = logits
    weights, pair_kl = pair_contributions(student, teacher, k=5, epsilon=2.0)
    _, s_top, t_top = top_k_decouple(student, teacher, 5)
    torch.testing.assert_close(pair_kl, pairwise_kl(s_top, t_top, 4.0).mean(0))
    torch.testing.assert_close(weights, pair_weights(5, epsilon=2.0, dtype=torch.float64))


def test_adw_playground_three_heatmaps(logits):
    student, teacher = logits
    fig = plot_adw_playground(student, teacher, k=6, lam=0.0)
    weights_ax, kl_ax, contributions_ax = [ax for ax in fig.axes if ax.images]
    assert _image_array(weights_ax).shape == (6, 6) and len(weights_ax.texts) == 15
    weights, pair_kl = pair_contributions(student, teacher, k=6, lam=0.0)
    assert _image_array(weights_ax)[0, 1] == pytest.approx(weights[0].item())
    assert _image_array(kl_ax)[4, 5] == pytest.approx(pair_kl[-1].item())
    assert _image_array(contributions_ax)[0, 1] == pytest.approx((weights * pair_kl)[0].item())
    assert f"{(weights * pair_kl).sum().item():.3f}" in contributions_ax.get_title()


def test_gradient_by_rank_sorts_and_colours():
    ranking = torch.tensor([0.0, 3.0, 1.0, 2.0])
    grad = torch.tensor([10.0, 20.0, 30.0, 40.0])
    fig = plot_gradient_by_rank({"a": grad, "b": -grad}, ranking, k=2)
    top, bottom = fig.axes
    assert [p.get_height() for p in top.patches] == [20.0, 40.0, 30.0, 10.0]  # classes by descending rank
    colors = [p.get_facecolor()[:3] for p in top.patches]
    assert colors[0] == colors[1] != colors[2] == colors[3]
    assert bottom.patches[0].get_height() == -20.0
    with pytest.raises(ValueError, match="shape"):
        plot_gradient_by_rank({"a": torch.zeros(3)}, ranking, k=2)


def test_rank_profiles_lines_and_shading():
    fig = plot_rank_profiles({"x": np.ones(10), "y": np.arange(1, 11)}, k=3, title="t")
    ax = fig.axes[0]
    assert len(ax.lines) == 2 and ax.get_yscale() == "log" and ax.get_title() == "t"
    assert len(ax.patches) == 1  # the shaded top-k span
    assert "top-3" in [t.get_text() for t in ax.get_legend().get_texts()]


def test_rank_profiles_leave_zeros_out_on_a_log_axis():
    fig = plot_rank_profiles({"local": np.array([2.0, 1.0, 0.0, 0.0])}, k=2)
    y = fig.axes[0].lines[0].get_ydata()
    assert list(y[:2]) == [2.0, 1.0] and np.isnan(y[2:]).all()
    with pytest.raises(ValueError, match="profiles is empty"):
        plot_rank_profiles({}, k=2)


def test_widget_slider_change_redraws(logits):
    pytest.importorskip("ipywidgets")
    from ldrld_mini.viz.widgets import adw_playground

    student, teacher = logits
    box = adw_playground(student, teacher, k=7)
    sliders = {child.description.split()[0]: child for child in box.children if hasattr(child, "value")}
    assert set(sliders) == {"k", "ε", "δ", "λ"}
    first = box.result
    assert isinstance(first, Figure) and _image_array(first.axes[0]).shape == (7, 7)
    sliders["k"].value = 4
    assert box.result is not first and _image_array(box.result.axes[0]).shape == (4, 4)
    sliders["λ"].value = 0.0
    assert "λ = 0" in box.result.get_suptitle()
    with pytest.raises(ValueError, match="k must lie"):
        adw_playground(student, teacher, k=11)


def test_heatmap_colour_scale_runs_from_the_data_minimum():
    # weights far from 0: a scale anchored at 0 would paint them all alike
    values = pair_weights(7)
    image = plot_weight_heatmaps({"ADW": values}).axes[0].images[0]
    assert image.norm.vmin == pytest.approx(values.min().item())
    assert image.norm.vmax == pytest.approx(values.max().item())
    shared = plot_weight_heatmaps({"a": values, "b": 2 * values}, shared_scale=True)
    assert shared.axes[0].images[0].norm.vmin == pytest.approx(values.min().item())
    assert shared.axes[1].images[0].norm.vmax == pytest.approx(2 * values.max().item())
