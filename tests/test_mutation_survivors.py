"""Tests written for mutations of tests/mutate.py that survived the existing suite: the demo's verdict at the
interval's boundary, and a folder passed where a checkpoint file is expected."""
import pytest

from ldrld_mini.demo import verdict
from ldrld_mini.models.checkpoints import CheckpointError, read_checkpoint


@pytest.mark.parametrize("lo, hi, expected", [(0.0, 1.0, "not resolved"), (-1.0, 0.0, "not resolved"),
                                              (0.0, 0.0, "not resolved"), (1e-9, 1.0, "> 0"),
                                              (-1.0, -1e-9, "< 0"), (-1.0, 1.0, "not resolved")])
def test_verdict_an_interval_touching_zero_is_not_resolved(lo, hi, expected):
    assert verdict(lo, hi) == expected


def test_a_folder_passed_as_checkpoint_names_the_fix(tmp_path):
    (tmp_path / "best.pt").write_bytes(b"")
    with pytest.raises(CheckpointError, match="is a folder, not a file; pass the .pt/.pth file inside it"):
        read_checkpoint(tmp_path)


@pytest.mark.parametrize("epochs, expected", [(3, []), (4, [3]), (7, [6]), (8, [6]), (16, [12])])
def test_demo_milestones_one_decay_in_the_last_quarter_from_four_epochs(epochs, expected):
    from ldrld_mini.demo import QUICK
    assert QUICK.milestones(epochs) == expected
