"""Old run folders keep reading after the loss parts' rename: `train_ldrld` -> `train_local`, `train_rntk` ->
`train_remaining` (runfolder.RENAMED), in `results` and on resume."""
import csv
import json

import pytest

from ldrld_mini.recipes import load_config
from ldrld_mini.results import load_run
from ldrld_mini.runfolder import RENAMED

OLD_METRIC_NAMES = {old: new for old, new in RENAMED.items() if old.startswith("train_")}

OLD_RECORD = {"epoch": 1, "lr": 0.05, "train_total": 9.5, "train_ce": 4.25, "train_ldrld": 0.375,
              "train_rntk": 0.5, "train_top1": 3.0, "val_top1": 12.5, "val_top5": 30.0, "best_acc": 12.5}


def test_the_loss_parts_are_logged_under_their_current_names():
    from ldrld_mini.losses import LDRLDParts

    assert {f"train_{name}" for name in LDRLDParts._fields} >= set(OLD_METRIC_NAMES.values())


def test_results_read_an_old_style_metrics_file(old_run_folder):
    second = {**OLD_RECORD, "epoch": 2, "train_ldrld": 0.25, "val_top1": 20.0, "best_acc": 20.0}
    run_dir = old_run_folder([OLD_RECORD, second])
    run = load_run(run_dir)
    assert [r["train_local"] for r in run.metrics] == [0.375, 0.25]
    assert [r["train_remaining"] for r in run.metrics] == [0.5, 0.5]
    assert not any(old in r for r in run.metrics for old in OLD_METRIC_NAMES)
    assert run.epochs_done == 2


class _Stop(RuntimeError):
    pass


def _stop_after_first_epoch(record):
    if record["epoch"] == 1:
        raise _Stop("killed after epoch 1")


def test_resume_of_an_old_run_folder_rewrites_its_metrics_under_the_new_names(tmp_path):
    from ldrld_mini.models import build_model
    from ldrld_mini.train import fit

    cfg = load_config("synthetic", teacher="resnet8", student="resnet8", method="ldrld", overrides=[
        "data.options.num_classes=10", "data.options.train_per_class=2", "data.options.val_per_class=1",
        "batch_size=10", "epochs=2", "milestones=[]", "train.device=cpu"])
    teacher = build_model("resnet8", num_classes=10)
    run_dir = tmp_path / "run"
    with pytest.raises(_Stop):
        fit(cfg, run_dir, quiet=True, teacher=teacher, on_epoch_end=_stop_after_first_epoch)
    # make it a folder an older version wrote: the loss parts under their old keys
    (first,) = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    renamed = {new: old for old, new in OLD_METRIC_NAMES.items()}
    (run_dir / "metrics.jsonl").write_text(json.dumps({renamed.get(k, k): v for k, v in first.items()}) + "\n")
    fit(cfg, run_dir, resume=True, quiet=True, teacher=teacher)
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2]
    assert records[0]["train_local"] == first["train_local"]
    assert records[0]["train_remaining"] == first["train_remaining"]
    with (run_dir / "metrics.csv").open(newline="") as f:
        header = next(csv.reader(f))
    for record_keys in [set(r) for r in records] + [set(header)]:
        assert {"train_local", "train_remaining"} <= record_keys and not record_keys & set(OLD_METRIC_NAMES)
