"""`ldrld-mini eval RUN_FOLDER`: the model, dataset and data options come from the folder's config.yaml."""
import json

import pytest

from ldrld_mini.cli import main
from ldrld_mini.recipes import load_config
from ldrld_mini.train import fit

TINY = ["data.options.num_classes=10", "data.options.train_per_class=2", "data.options.val_per_class=3",
        "data.batch_size=10", "schedule.epochs=1", "schedule.milestones=[]", "train.device=cpu"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("eval") / "run"
    fit(load_config("synthetic", student="resnet8", method="vanilla", overrides=TINY), run_dir, quiet=True)
    return run_dir


def eval_cli(capsys, *argv):
    code = main(["eval", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_eval_of_a_run_folder_reads_its_config(capsys, run_dir):
    code, out, err = eval_cli(capsys, str(run_dir), "--device", "cpu")
    assert code == 0, err
    best = json.loads((run_dir / "summary.json").read_text())["best_top1"]
    # the run's own val set (10 classes x 3 images) and model: the top-1 its training measured for best.pt
    assert out.startswith(f"resnet8 on synthetic val (30 images): top-1 {best:.2f}  top-5 "), out


def test_eval_names_what_is_missing(capsys, run_dir, tmp_path):
    code, _, err = eval_cli(capsys, "--checkpoint", str(run_dir / "best.pt"), "--device", "cpu")
    assert code == 2 and "--model is required" in err and "best.pt" in err and "--model resnet8x4" in err
    code, _, err = eval_cli(capsys, str(run_dir), "--checkpoint", str(run_dir / "best.pt"))
    assert code == 2 and "give one of them" in err
    code, _, err = eval_cli(capsys)
    assert code == 2 and "RUN_FOLDER" not in err and "--checkpoint FILE" in err and "run folder" in err
