"""results.py on hand-made run folders: grouping over seeds, mean ± std, paper numbers, unfinished runs."""
import json
import statistics

import pytest
import yaml

from ldrld_mini.recipes import load_config
from ldrld_mini.results import (epoch_curves, mean_curve, format_results, group_runs, load_run, load_runs, mean_std,
                                paper_number, results_table, unfinished_table)


def write_run(run_dir, *, dataset="cifar100", teacher="resnet32x4", student="resnet8x4", method="ldrld",
              seed=0, curve=(50.0, 60.0, 70.0), finished=True, overrides=()):
    """A run folder as `fit` writes it: config.yaml (real resolved config), metrics.jsonl, summary.json."""
    epochs = len(curve) + (0 if finished else 2)
    cfg = load_config(dataset, teacher=None if method == "vanilla" else teacher, student=student, method=method,
                      overrides=[f"train.seed={seed}", f"schedule.epochs={epochs}", *overrides])
    run_dir.mkdir(parents=True)
    (run_dir / "config.yaml").write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    best = 0.0
    with (run_dir / "metrics.jsonl").open("w") as f:
        for epoch, top1 in enumerate(curve, 1):
            best = max(best, top1)
            f.write(json.dumps({"epoch": epoch, "lr": 0.05, "train_total": 1.0, "val_top1": top1,
                                "val_top5": top1 + 10, "best_acc": best}) + "\n")
    if finished:
        summary = {"best_top1": max(curve), "last_top1": curve[-1], "best_acc": max(curve),
                   "last_acc": curve[-1], "epochs": len(curve), "seed": seed}
        (run_dir / "summary.json").write_text(json.dumps(summary))
    return run_dir


@pytest.fixture
def runs(tmp_path):
    """3 LDRLD seeds, 2 KD seeds, 1 vanilla student, 1 unfinished DKD run (cifar100, resnet32x4 → resnet8x4)."""
    root = tmp_path / "runs"
    pair = root / "cifar100" / "resnet32x4-resnet8x4"
    curves = {0: (70.0, 76.0, 75.5), 1: (71.0, 77.0, 76.8), 2: (69.0, 77.6, 77.1)}
    for seed, curve in curves.items():
        write_run(pair / "ldrld" / f"seed{seed}", seed=seed, curve=curve)
    write_run(pair / "kd" / "seed0", method="kd", seed=0, curve=(70.0, 73.0))
    write_run(pair / "kd" / "seed1", method="kd", seed=1, curve=(70.0, 74.0))
    write_run(root / "cifar100" / "resnet8x4" / "vanilla" / "seed0", method="vanilla", curve=(60.0, 72.0))
    write_run(pair / "dkd" / "seed0", method="dkd", curve=(40.0, 99.0), finished=False)
    return root


def test_load_runs_reads_identity_from_config(runs):
    found = load_runs(runs)
    assert len(found) == 7
    ldrld = [r for r in found if r.method == "ldrld"]
    assert sorted(r.seed for r in ldrld) == [0, 1, 2]
    assert {r.key for r in ldrld} == {("cifar100", "resnet32x4", "resnet8x4", "ldrld")}
    vanilla = next(r for r in found if r.method == "vanilla")
    assert vanilla.teacher is None and vanilla.key == ("cifar100", "-", "resnet8x4", "vanilla")
    unfinished = [r for r in found if not r.finished]
    assert [r.method for r in unfinished] == ["dkd"]
    assert unfinished[0].epochs_done == 2 and unfinished[0].epochs_planned == 4


def test_mean_std_over_seeds(runs):
    groups = {g.key: g for g in group_runs(load_runs(runs))}
    ldrld = groups[("cifar100", "resnet32x4", "resnet8x4", "ldrld")]
    best, last = [76.0, 77.0, 77.6], [75.5, 76.8, 77.1]
    assert ldrld.seeds == [0, 1, 2]
    assert ldrld.best == pytest.approx((statistics.fmean(best), statistics.stdev(best)))
    assert ldrld.last == pytest.approx((statistics.fmean(last), statistics.stdev(last)))
    assert ("cifar100", "resnet32x4", "resnet8x4", "dkd") not in groups  # unfinished: never averaged
    assert mean_std([5.0]) == (5.0, 0.0)


def test_table_has_mean_std_paper_and_difference(runs):
    table = results_table(load_runs(runs))
    row = next(line for line in table.splitlines() if "| ldrld |" in line)
    cells = [c.strip() for c in row.strip("|").split("|")]
    # dataset, pair, method, seeds, best, last, paper, Δ best, Δ last
    assert cells[3] == "3"
    assert cells[4] == f"{statistics.fmean([76.0, 77.0, 77.6]):.2f} ± {statistics.stdev([76.0, 77.0, 77.6]):.2f}"
    assert cells[5] == "76.47 ± 0.85"  # sd of 75.5, 76.8, 77.1 (ddof=1)
    assert cells[6] == "77.20"  # the paper's LDRLD number for resnet32x4 → resnet8x4
    assert cells[7] == f"{statistics.fmean([76.0, 77.0, 77.6]) - 77.20:+.2f}"
    kd = next(line for line in table.splitlines() if "| kd |" in line)
    assert "73.50 ± 0.71" in kd and "73.33" in kd
    vanilla = next(line for line in table.splitlines() if "| vanilla |" in line)
    assert "| 72.00 | 72.00 | 72.50 | -0.50 | -0.50 |" in vanilla  # one seed: no ±; paper student 72.50
    # rows ordered vanilla, kd, dkd, ldrld
    methods = [line.split("|")[3].strip() for line in table.splitlines()[2:]]
    assert methods == ["vanilla", "kd", "ldrld"]


def test_unfinished_runs_are_listed_not_averaged(runs):
    text = format_results(runs)
    assert "## cifar100" in text and "## Unfinished runs (not averaged)" in text
    unfinished = text.split("## Unfinished")[1]
    assert "dkd" in unfinished and "2/4" in unfinished and "99.00" in unfinished
    assert "| dkd |" not in text.split("## Unfinished")[0]
    assert unfinished_table([r for r in load_runs(runs) if r.finished]) == ""


def test_runs_with_other_settings_are_not_averaged_together(runs):
    pair = runs / "cifar100" / "resnet32x4-resnet8x4"
    write_run(pair / "ldrld_alpha8" / "seed0", curve=(60.0, 70.0, 71.0), overrides=["loss.alpha=8"])
    write_run(pair / "ldrld_alpha8" / "seed1", seed=1, curve=(60.0, 72.0, 73.0), overrides=["loss.alpha=8",
                                                                                            "data.root=/elsewhere"])
    groups = [g for g in group_runs(load_runs(runs)) if g.key[3] == "ldrld"]
    assert sorted(len(g.runs) for g in groups) == [2, 3]  # data.root is where, not what: still one group
    assert sorted(g.variant for g in groups) == ["loss.alpha=10.5", "loss.alpha=8.0"]
    table = results_table(load_runs(runs))
    assert "| setting |" in table and "| ldrld | loss.alpha=8.0 | 2 | 72.00 ± 1.41 |" in table


def test_paper_number_lookup():
    assert paper_number("cifar100", "resnet32x4", "resnet8x4", "ldrld") == pytest.approx(77.20)
    assert paper_number("cifar100", "vgg13", "vgg8", "dkd") == pytest.approx(74.68)
    assert paper_number("cifar100", None, "resnet8x4", "vanilla") == pytest.approx(72.50)  # as a student
    assert paper_number("cifar100", None, "resnet32x4", "vanilla") == pytest.approx(79.42)  # as a teacher
    assert paper_number("cifar100", "resnet110", "resnet32", "ldrld") is None  # not relayed
    assert paper_number("synthetic", "resnet20", "resnet8", "ldrld") is None


def test_epoch_curves_average_per_epoch(runs):
    curves = epoch_curves(load_runs(runs))
    ldrld = curves["ldrld"]
    assert ldrld.epochs == [1, 2, 3] and ldrld.num_runs == 3
    assert ldrld.mean == pytest.approx([70.0, statistics.fmean([76.0, 77.0, 77.6]), statistics.fmean([75.5, 76.8, 77.1])])
    assert ldrld.std[0] == pytest.approx(1.0)
    assert "dkd" not in curves  # unfinished left out by default
    assert epoch_curves(load_runs(runs), include_unfinished=True)["dkd"].mean == [40.0, 99.0]


def test_torn_metrics_line_and_missing_folder(tmp_path):
    run = write_run(tmp_path / "r", finished=False, curve=(10.0, 20.0))
    with (run / "metrics.jsonl").open("a") as f:
        f.write('{"epoch": 3, "val_to')  # killed mid-write
    assert load_run(run).curve == ([1, 2], [10.0, 20.0])
    with pytest.raises(FileNotFoundError, match="runs_dir="):
        load_runs(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="config.yaml"):
        load_run(tmp_path)


def test_training_curves_plot(runs):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ldrld_mini.viz import plot_method_bars, plot_run_curves, plot_training_curves

    fig = plot_training_curves(epoch_curves(load_runs(runs)))
    ax = fig.axes[0]
    assert sorted(line.get_label() for line in ax.get_lines()) == ["kd", "ldrld", "vanilla"]
    assert len(ax.collections) == 2  # ± std bands for the multi-seed kd and ldrld
    fig_level = plot_training_curves(epoch_curves(load_runs(runs)), levels={"member guessed": 20.0})
    level_lines = [line for line in fig_level.axes[0].get_lines() if list(line.get_ydata()) == [20.0, 20.0]]
    assert len(level_lines) == 1 and [t.get_text() for t in fig_level.axes[0].texts] == ["member guessed"]
    plt.close(fig_level)
    fig2 = plot_run_curves(load_runs(runs))
    assert len(fig2.axes[0].get_lines()) == 7
    fig3 = plot_method_bars({"vanilla": 72.0, "ldrld": 77.0}, reference=79.4)
    assert len(fig3.axes[0].patches) == 2
    for f in (fig, fig2, fig3):
        plt.close(f)


# --- issue 12: broken, failed and file-less runs are accounted for, never fatal ---------------------------

def _mixed_folder(root):
    """One finished run and one of each kind that must not be averaged: unfinished, failed, and three unreadable
    (torn summary.json, unparseable config.yaml, no config.yaml)."""
    pair = root / "cifar100" / "resnet32x4-resnet8x4"
    write_run(pair / "ldrld" / "seed0", curve=(70.0, 76.0))
    write_run(pair / "ldrld" / "seed1", seed=1, curve=(70.0,), finished=False)
    failed = write_run(pair / "kd" / "seed0", method="kd", curve=(10.0,), finished=False)
    (failed / "failed.json").write_text(json.dumps({"status": "diverged", "epoch": 2,
                                                    "reason": "the train loss is not finite (train_total=nan)"}))
    torn = write_run(pair / "dkd" / "seed0", method="dkd", curve=(50.0, 60.0))
    (torn / "summary.json").write_text('{"best_top1": 6')
    bad_yaml = write_run(pair / "dkd" / "seed1", method="dkd", seed=1, curve=(50.0, 61.0))
    (bad_yaml / "config.yaml").write_text("dataset: cifar100\nmodel: {student: [\n")
    no_config = write_run(pair / "dkd" / "seed2", method="dkd", seed=2, curve=(50.0, 62.0))
    (no_config / "config.yaml").unlink()
    return torn, bad_yaml, no_config


def test_mixed_folder_reports_every_run(tmp_path):
    from ldrld_mini.results import scan_runs

    torn, bad_yaml, no_config = _mixed_folder(tmp_path)
    scan = scan_runs(tmp_path)
    assert scan.counts() == {"finished": 1, "unfinished": 1, "failed": 1, "unreadable": 3}
    text = format_results(tmp_path)
    table = text.split("## Unfinished")[0]
    assert "| ldrld |" in table and "| kd |" not in table and "| dkd |" not in table and "| ? |" not in table
    assert "## Failed runs (diverged; not averaged)" in text and "train_total=nan" in text
    unreadable = text.split("## Unreadable run folders (skipped)")[1]
    assert f"{torn}: " in unreadable and "summary.json' is not valid JSON" in unreadable
    assert f"{bad_yaml}: " in unreadable and "config.yaml' is not valid YAML" in unreadable
    assert f"{no_config}: no config.yaml (it holds metrics.jsonl, summary.json)" in unreadable
    assert text.rstrip().endswith(f"6 run folders under {tmp_path}: 1 finished, 1 unfinished, 1 failed, "
                                  "3 unreadable.")
    with pytest.warns(UserWarning, match="skipped unreadable run folder"):
        assert len(load_runs(tmp_path)) == 3


def test_results_command_on_a_mixed_folder(tmp_path, capsys):
    from ldrld_mini.cli import main

    _mixed_folder(tmp_path / "runs")
    code = main(["results", str(tmp_path / "runs"), "--plot", str(tmp_path / "c.png")])
    out, err = capsys.readouterr()
    assert code == 0 and "Traceback" not in err and "3 unreadable" in out
    assert (tmp_path / "c.png").stat().st_size > 1000


def test_plot_groups_exactly_as_the_table(runs):
    from ldrld_mini.results import group_curves

    pair = runs / "cifar100" / "resnet32x4-resnet8x4"
    write_run(pair / "ldrld_alpha8" / "seed0", curve=(10.0, 20.0, 30.0), overrides=["loss.alpha=8"])
    curves = group_curves(load_runs(runs))
    groups = group_runs(load_runs(runs))
    assert len(curves) == len(groups) == 4  # vanilla, kd, ldrld (alpha 10.5), ldrld (alpha 8)
    eight = curves["cifar100 resnet32x4→resnet8x4 ldrld [loss.alpha=8.0]"]
    assert eight.num_runs == 1 and eight.mean == [10.0, 20.0, 30.0]
    assert curves["cifar100 resnet32x4→resnet8x4 ldrld [loss.alpha=10.5]"].num_runs == 3


def test_mean_curve_keeps_only_the_epochs_every_run_reached():
    """An interrupted seed (2 of 3 epochs) must not leave epoch 3 averaged over one run or fail on it."""
    curve = mean_curve([([1, 2, 3], [10.0, 20.0, 30.0]), ([1, 2], [12.0, 24.0])])
    assert curve.epochs == [1, 2] and curve.mean == [11.0, 22.0]
    assert curve.std == pytest.approx([statistics.stdev([10, 12]), statistics.stdev([20, 24])])
    assert mean_curve([]).epochs == []

