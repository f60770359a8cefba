"""One name per thing (issue 22): summaries, metrics and last.pt say `best_top1` / `last_top1`; run folders an
older version wrote (`best_acc` / `last_acc`) still read in `results`, resume, and `ldrld-mini eval`. best.pt
keeps the CRD checkpoint layout (`accuracy` and `best_acc`)."""
import json
from pathlib import Path

import pytest
import torch

from ldrld_mini.recipes import load_config
from ldrld_mini.results import load_run
from ldrld_mini.runfolder import RENAMED, current_names

TINY = ["data.options.num_classes=10", "data.options.train_per_class=2", "data.options.val_per_class=1",
        "batch_size=10", "epochs=2", "milestones=[]", "train.device=cpu"]


def test_current_names_renames_only_what_is_missing():
    assert current_names({"best_acc": 5.0, "last_acc": 4.0, "epoch": 3}) == {"best_top1": 5.0, "last_top1": 4.0,
                                                                             "epoch": 3}
    both = {"best_acc": 5.0, "best_top1": 5.0, "last_top1": 4.0}  # a summary of the version that wrote both
    assert current_names(both) == {"best_top1": 5.0, "last_top1": 4.0}
    assert {"best_acc": "best_top1", "last_acc": "last_top1"}.items() <= RENAMED.items()


def test_results_read_an_old_style_summary(old_run_folder):
    run_dir = old_run_folder([{"epoch": 1, "val_top1": 30.0, "best_acc": 30.0},
                              {"epoch": 2, "val_top1": 20.0, "best_acc": 30.0}])
    # the summary's numbers differ from the curve's, so reading the curve instead would show
    (run_dir / "summary.json").write_text(json.dumps({"best_acc": 31.5, "best_epoch": 1, "last_acc": 21.5,
                                                      "epochs": 2, "seed": 0}))
    run = load_run(run_dir)
    assert run.finished and (run.best_top1, run.last_top1) == (31.5, 21.5)
    assert (run.summary["best_top1"], run.summary["last_top1"]) == (31.5, 21.5)  # the summary under today's names


class _Stop(RuntimeError):
    pass


def _stop_after_first_epoch(record):
    if record["epoch"] == 1:
        raise _Stop("killed after epoch 1")


def _make_old_style(run_dir: Path, best: float) -> None:
    """Rewrite an unfinished folder as an older version wrote it: best_acc / last_acc in last.pt and metrics."""
    ckpt = torch.load(run_dir / "last.pt", map_location="cpu", weights_only=True)
    old = {k: v for k, v in ckpt.items() if k not in ("best_top1", "last_top1")}
    old.update(best_acc=best, last_acc=ckpt["last_top1"], best_epoch=1)
    torch.save(old, run_dir / "last.pt")
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    for row in rows:
        row["best_acc"] = best
        del row["best_top1"]
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_an_old_style_folder_resumes_and_finishes_under_the_new_names(tmp_path, capsys):
    from ldrld_mini.models import build_model
    from ldrld_mini.train import fit

    cfg = load_config("synthetic", student="resnet8", method="vanilla", overrides=TINY)
    run_dir = tmp_path / "run"
    with pytest.raises(_Stop):
        fit(cfg, run_dir, quiet=True, student=build_model("resnet8", num_classes=10),
            on_epoch_end=_stop_after_first_epoch)
    # 99.0: a best no 2-epoch run on 10 images reaches, so the resumed summary can only have it from last.pt
    _make_old_style(run_dir, best=99.0)
    summary = fit(cfg, run_dir, resume=True, quiet=True)
    assert (summary["best_top1"], summary["best_epoch"]) == (99.0, 1) and "best_acc" not in summary
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["best_top1"] for r in rows] == [99.0, 99.0] and not any("best_acc" in r for r in rows)
    assert "best_acc" not in (run_dir / "metrics.csv").read_text().splitlines()[0]
    last = torch.load(run_dir / "last.pt", map_location="cpu", weights_only=True)
    assert last["best_top1"] == 99.0 and not {"best_acc", "last_acc"} & set(last)

    # a finished older folder: resume returns its summary under today's names
    (run_dir / "summary.json").write_text(json.dumps({"best_acc": 99.0, "best_epoch": 1, "last_acc": 7.0}))
    again = fit(cfg, run_dir, resume=True, quiet=True)
    assert (again["best_top1"], again["last_top1"]) == (99.0, 7.0)


@pytest.mark.parametrize("key", ["best_top1", "best_acc"])
def test_eval_of_last_pt_says_the_runs_best_so_far_under_either_name(key):
    from ldrld_mini.cli import _stored_accuracy

    text = _stored_accuracy({"epoch": 3, key: 12.5, "best_epoch": 2}, Path("run") / "last.pt")
    assert text == " (last.pt of epoch 3; the run's best top-1 so far, 12.50 at epoch 2, is what best.pt would hold)"
