"""The built-in experiment (`ldrld_mini.demo`): configs, multi-seed summary, files, CLI, the notebook helpers.

Nothing here asserts a trained number: those depend on the CPU's rounding. The statistics are checked on
hand-made rows, and the end-to-end run only for its structure (quick sizes).
"""
import json
import math

import pytest
import torch

from ldrld_mini.cli import main
from ldrld_mini.demo import (DEMO, METHODS, QUICK, _cached, confusion, demo_configs, format_demo_table, read_curve,
                             relations, run_demo, summarise)
from ldrld_mini.models import build_model


def _row(method, seed, best, last, seconds=1.0, model="resnet8"):
    return {"method": method, "seed": seed, "model": model, "best_top1": best, "last_top1": last,
            "seconds": seconds, "curve": ([1], [best])}


def test_summarise_pairs_gains_by_seed():
    rows = [_row("teacher", 0, 90.0, 89.0, model="resnet20"), _row("teacher", 1, 80.0, 80.0, model="resnet20"),
            _row("vanilla", 0, 40.0, 39.0), _row("vanilla", 1, 50.0, 50.0),
            _row("kd", 0, 45.0, 44.0, 2.0), _row("kd", 1, 51.0, 49.0, 3.0)]
    s = summarise(rows)
    assert s["teacher"]["best"] == [90.0, 80.0] and s["teacher"]["best_mean"] == 85.0
    assert math.isclose(s["teacher"]["best_std"], math.sqrt(50.0))  # sample std (ddof 1) of 90, 80
    assert "gain_best" not in s["teacher"] and "gain_best" not in s["vanilla"]
    assert s["kd"]["gain_best"] == [5.0, 1.0] and s["kd"]["gain_last"] == [5.0, -1.0]
    assert s["kd"]["gain_best_mean"] == 3.0 and math.isclose(s["kd"]["gain_best_std"], math.sqrt(8.0))
    assert s["kd"]["best_mean"] - s["vanilla"]["best_mean"] == 3.0  # the mean of paired gains = difference of means
    assert s["kd"]["seconds"] == 5.0 and s["kd"]["model"] == "resnet8"


def test_summarise_one_seed_has_zero_spread():
    s = summarise([_row("vanilla", 3, 40.0, 40.0), _row("ldrld", 3, 42.5, 41.0)])
    assert (s["ldrld"]["gain_best_mean"], s["ldrld"]["gain_best_std"], s["vanilla"]["best_std"]) == (2.5, 0.0, 0.0)


def test_format_demo_table_rows_and_order():
    rows = [_row(m, k, 40.0 + i + k, 39.0 + i) for i, m in enumerate(("vanilla", "ldrld", "kd")) for k in (0, 1)]
    table = format_demo_table(summarise(rows))
    lines = table.splitlines()
    assert lines[0].startswith("| method | model | seeds | best top-1 | last top-1 | best − vanilla")
    assert [line.split("|")[1].strip() for line in lines[2:]] == ["vanilla", "kd", "ldrld"]  # METHODS order
    assert "| kd | resnet8 | 2 | 42.50 ± 0.71 | 41.00 ± 0.00 | +2.00 ± 0.00 | +2.00 ± 0.00 |" in table
    assert "| vanilla | resnet8 | 2 | 40.50 ± 0.71 | 39.00 ± 0.00 | – | – |" in table


def test_demo_configs_same_budget_for_every_student_and_the_paper_values(tmp_path):
    configs = demo_configs(DEMO, 4, tmp_path / "teacher")
    assert configs["teacher"].schedule.warmup_epochs == 0 and configs["teacher"].model.student == DEMO.teacher
    assert configs["teacher"].schedule.epochs == DEMO.teacher_epochs
    for method in METHODS:  # the same budget, schedule, data and seed for every student
        cfg = configs[method]
        assert (cfg.schedule.epochs, cfg.schedule.warmup_epochs, cfg.optim.lr, cfg.train.seed, cfg.model.student) == (
            DEMO.student_epochs, DEMO.warmup_epochs, DEMO.lr, 4, DEMO.student)
        assert cfg.data.options["image_size"] == DEMO.image_size and cfg.data.options["num_classes"] == DEMO.num_classes
    assert configs["vanilla"].model.teacher is None and configs["kd"].model.teacher == DEMO.teacher
    assert configs["dkd"].loss["warmup"] == DEMO.warmup_epochs
    assert (configs["ldrld"].loss["k"], configs["ldrld"].loss["temperature"], configs["ldrld"].loss["alpha"],
            configs["ldrld"].loss["beta"]) == (7, 4.0, 10.5, 7.0)  # the paper's values
    assert (configs["kd"].loss["temperature"], configs["kd"].loss["ce_weight"], configs["kd"].loss["kd_weight"]) == (
        4.0, 0.1, 0.9)
    assert (configs["dkd"].loss["alpha"], configs["dkd"].loss["beta"]) == (1.0, 8.0)


def test_demo_defaults_several_seeds_and_a_larger_teacher():
    assert len(DEMO.seeds) >= 3 and len(set(DEMO.seeds)) == len(DEMO.seeds)
    count = lambda name: sum(p.numel() for p in build_model(name, num_classes=DEMO.num_classes).parameters())
    assert count(DEMO.teacher) > 2 * count(DEMO.student)
    assert DEMO.student_epochs <= DEMO.teacher_epochs and DEMO.teacher_lr >= DEMO.lr


@pytest.mark.parametrize("seeds", [(), (1, 1), (-1,), (0.5,)])
def test_bad_seeds_name_the_argument(seeds):
    with pytest.raises(ValueError, match="seeds="):
        run_demo(seeds=seeds, quick=True, threads=None)


def test_bad_methods_name_the_argument():
    with pytest.raises(ValueError, match="methods="):
        run_demo(methods=("kd",), quick=True, threads=None)


def test_read_curve_skips_a_torn_last_line(tmp_path):
    lines = [json.dumps({"epoch": 1, "val_top1": 10.0}), json.dumps({"epoch": 2, "lr": 0.1}),
             json.dumps({"epoch": 3, "val_top1": 30.5}), '{"epoch": 4, "val_to']
    (tmp_path / "metrics.jsonl").write_text("\n".join(lines))
    assert read_curve(tmp_path) == ([1, 3], [10.0, 30.5])


def test_relations_and_confusion_on_crafted_logits():
    labels = torch.tensor([0, 1, 5, 6])
    eye = torch.eye(10)
    student = eye[torch.tensor([0, 2, 3, 6])] * 5  # right, wrong inside superclass 0, wrong across, right
    teacher = eye[torch.tensor([0, 1, 3, 6])] * 5
    sup = torch.arange(10) // 5
    r = relations(student, labels, teacher, sup)
    assert r["top1"] == 50.0 and r["errors_in_superclass"] == 50.0 and r["agreement"] == 75.0
    assert r["kl_to_teacher"] > 0 and relations(teacher, labels, teacher, sup)["kl_to_teacher"] == pytest.approx(0)
    m = confusion(student, labels, 10)
    assert m[0, 0] == 1 and m[1, 2] == 1 and m[5, 3] == 1 and m[2].sum() == 0 and m.sum() == 4


def test_demo_quick_end_to_end_through_the_cli(capsys, tmp_path):
    out_dir = tmp_path / "demo"
    code = main(["demo", "--quick", "--quiet", "--threads", "1", "--out", str(out_dir), "--seed", "3", "--seeds", "2"])
    out, err = capsys.readouterr()
    assert code == 0, err
    results = (out_dir / "results.md").read_text()
    assert "seeds [3, 4]" in results and "Mean ± std over the seeds" in results
    for method in ("teacher", *METHODS):
        assert f"| {method} |" in results and f"| {method} |" in out
    record = json.loads((out_dir / "results.json").read_text())
    assert record["settings"]["seeds"] == [3, 4] and len(record["runs"]) == 10
    assert record["summary"]["ldrld"]["seeds"] == [3, 4] and len(record["summary"]["ldrld"]["gain_best"]) == 2
    assert (out_dir / "curves.png").stat().st_size > 1000
    for seed in (3, 4):
        assert (out_dir / f"seed{seed}" / "teacher" / "best.pt").is_file()
        configs = demo_configs(QUICK, seed, out_dir / f"seed{seed}" / "teacher", cache_dir=out_dir / "data")
        assert _cached(configs["teacher"], out_dir / f"seed{seed}" / "teacher")  # a second demo reuses the teacher
        assert not _cached(configs["vanilla"], out_dir / f"seed{seed}" / "teacher")
    assert main(["demo", "--quick", "--quiet", "--threads", "1", "--out", str(out_dir), "--seed", "3",
                 "--seeds", "1"]) == 0
    assert "cached in" in capsys.readouterr().out


@pytest.mark.parametrize("argv, text", [(["--seeds", "0"], "--seeds 0"), (["--seed", "-2"], "--seed -2")])
def test_demo_cli_bad_seed_options_exit_2(capsys, tmp_path, argv, text):
    code = main(["demo", "--quick", "--out", str(tmp_path), *argv])
    _, err = capsys.readouterr()
    assert code == 2 and text in err and "Traceback" not in err
