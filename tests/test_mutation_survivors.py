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


def _cli(capsys, *argv):
    from ldrld_mini.cli import main
    try:
        code = main(list(argv))
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_seed_limit_is_exclusive(capsys):
    from ldrld_mini.recipes.config import SEED_LIMIT
    base = ("train", "--recipe", "synthetic", "--model", "resnet8", "--print-config", "--seed")
    code, _, err = _cli(capsys, *base, str(SEED_LIMIT))
    assert code == 2 and f"--seed {SEED_LIMIT} must be an integer in [0, {SEED_LIMIT - 1}]" in err
    code, out, _ = _cli(capsys, *base, str(SEED_LIMIT - 1))
    assert code == 0 and f"seed: {SEED_LIMIT - 1}" in out


def test_cli_ablation_refuses_a_repeated_seed(capsys):
    code, _, err = _cli(capsys, "reproduce", "cifar100", "--ablation", "--seeds", "0", "0")
    assert code == 2 and "repeats a seed" in err and "Traceback" not in err


def test_cli_printed_commands_are_shell_quoted(capsys):
    import shlex
    code, out, _ = _cli(capsys, "reproduce", "cifar100", "--methods", "ldrld", "--seeds", "0", "data.root=/my data")
    lines = [line for line in out.splitlines() if "data.root" in line]
    assert code == 0 and lines
    for line in lines:
        assert "'data.root=/my data'" in line and "data.root=/my data" in shlex.split(line)
