"""The loss-pipeline diagram of notebooks 00 and 08: every stage drawn, the weights written on the arrows."""
import matplotlib.pyplot as plt
import pytest
from matplotlib.figure import Figure

from ldrld_mini.viz.pipeline import plot_loss_pipeline


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def _texts(fig):
    return {t.get_gid(): t.get_text() for t in fig.axes[0].texts if t.get_gid()}


def test_pipeline_draws_every_stage_and_the_weights():
    fig = plot_loss_pipeline(alpha=10.5, beta=7.0, ce_weight=1.0, k=5)
    assert isinstance(fig, Figure) and len(fig.axes) == 1
    texts = _texts(fig)
    for key in ("logits", "topk", "outside", "pairs", "adw", "local", "remaining", "ce", "total"):
        assert key in texts, key
    assert "top-5" in texts["topk"]
    assert texts["arrow:total:× α"] == "× α = 10.5"
    assert texts["arrow:total:× β"] == "× β = 7"
    assert texts["arrow:total:× ce_weight"] == "× 1"
    assert "LDRLDParts.local" in texts["local"] and "LDRLDParts.remaining" in texts["remaining"]
    # ten arrows: logits to top-k, the others, CE; top-k to pairs to ADW to local; others to RNTK; three into total
    assert sum(1 for child in fig.axes[0].texts if getattr(child, "arrow_patch", None) is not None) == 10


def test_pipeline_weights_follow_the_arguments():
    texts = _texts(plot_loss_pipeline(alpha=2.0, beta=0.5, ce_weight=0.0))
    assert texts["arrow:total:× α"] == "× α = 2" and texts["arrow:total:× β"] == "× β = 0.5"


@pytest.mark.parametrize("kwargs, name", [({"alpha": -1.0}, "alpha"), ({"beta": "7"}, "beta"), ({"k": 1}, "k")])
def test_pipeline_rejects_bad_arguments(kwargs, name):
    with pytest.raises(ValueError, match=name):
        plot_loss_pipeline(**kwargs)
