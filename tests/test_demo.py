"""The built-in experiment (`ldrld_mini.demo`): configs, multi-seed summary, files, CLI, the notebook helpers.

Nothing here asserts a trained number: those depend on the CPU's rounding. The statistics are checked on
hand-made rows, and the end-to-end run only for its structure (quick sizes).
"""
import json
import math

import pytest
import torch

from ldrld_mini.cli import main
from ldrld_mini.demo import (DEMO, METHODS, QUICK, TEACHER_FILE, _cached, comparisons, confusion, demo_configs,
                             format_comparisons, format_demo_table, packaged_teacher, read_curve, relations, run_demo,
                             summarise, val_logits, verdict, STUDY_ROWS, measured, paired_against, plot_study,
                             study_table)
from ldrld_mini.results import mean_interval, t_quantile
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


def test_summarise_one_seed_has_zero_spread_and_no_interval():
    s = summarise([_row("vanilla", 3, 40.0, 40.0), _row("ldrld", 3, 42.5, 41.0)])
    assert (s["ldrld"]["gain_best_mean"], s["ldrld"]["gain_best_std"], s["vanilla"]["best_std"]) == (2.5, 0.0, 0.0)
    assert all(math.isnan(x) for x in s["ldrld"]["gain_best_ci"]) and verdict(*s["ldrld"]["gain_best_ci"]) == "not resolved"


@pytest.mark.parametrize("df, value", [(1, 12.7062), (2, 4.3027), (4, 2.7764), (5, 2.5706), (9, 2.2622), (30, 2.0423)])
def test_t_quantile_matches_the_printed_tables(df, value):
    assert t_quantile(0.95, df) == pytest.approx(value, abs=1e-4)


def test_t_quantile_bad_arguments_name_them():
    for level, df in ((1.0, 3), (0.95, 0), (0.95, 2.5)):
        with pytest.raises(ValueError, match="level="):
            t_quantile(level, df)


def test_gain_interval_is_the_t_interval_of_the_paired_differences():
    gains = [3.0, 5.0, 4.0, 6.0, 2.0]
    rows = [_row("vanilla", k, 40.0 + k, 40.0) for k in range(5)] + [
        _row("kd", k, 40.0 + k + g, 40.0 - g) for k, g in enumerate(gains)]
    s = summarise(rows)
    half = 2.7764451 * math.sqrt(2.5) / math.sqrt(5)  # t(0.975, 4) * sample std / sqrt(n), by hand
    assert s["kd"]["gain_best"] == gains and s["kd"]["gain_best_ci"] == pytest.approx((4.0 - half, 4.0 + half))
    assert s["kd"]["gain_last_ci"] == pytest.approx((-4.0 - half, -4.0 + half))
    assert verdict(*s["kd"]["gain_best_ci"]) == "> 0" and verdict(*s["kd"]["gain_last_ci"]) == "< 0"
    assert mean_interval(gains)[1] == pytest.approx(half)
    table = format_demo_table(s)
    assert f"| kd | resnet8 | 5 | 46.0 ± 2.1 | 36.0 ± 1.6 | +4.0 [{4 - half:+.1f}, {4 + half:+.1f}] | > 0 |" in table


def test_comparisons_pair_the_distillers_by_seed():
    rows = []
    for k in range(4):
        rows += [_row("vanilla", k, 30.0, 30.0), _row("kd", k, 35.0 + k, 35.0), _row("dkd", k, 36.0 + k, 36.0),
                 _row("ldrld", k, 35.0 + k + (k % 2) * 2 - 1, 35.0)]
    cmp = {(c["a"], c["b"]): c for c in comparisons(summarise(rows))}
    assert set(cmp) == {("kd", "dkd"), ("kd", "ldrld"), ("dkd", "ldrld")}
    assert cmp[("kd", "dkd")]["diffs"] == [-1.0] * 4 and cmp[("kd", "dkd")]["verdict"] == "< 0"  # zero spread
    assert cmp[("kd", "ldrld")]["diffs"] == [1.0, -1.0, 1.0, -1.0] and cmp[("kd", "ldrld")]["verdict"] == "not resolved"
    text = format_comparisons(summarise(rows))
    assert "| kd − dkd | -1.0 ± 0.0 | [-1.0, -1.0] | < 0 |" in text and "| dkd − ldrld |" in text


def test_format_demo_table_rows_and_order():
    rows = [_row(m, k, 40.0 + i + k, 39.0 + i) for i, m in enumerate(("vanilla", "ldrld", "kd")) for k in (0, 1)]
    table = format_demo_table(summarise(rows))
    lines = table.splitlines()
    assert lines[0].startswith("| method | model | runs | best top-1 | last top-1 | best − vanilla [95 % CI]")
    assert [line.split("|")[1].strip() for line in lines[2:]] == ["vanilla", "kd", "ldrld"]  # METHODS order
    assert "| kd | resnet8 | 2 | 42.5 ± 0.7 | 41.0 ± 0.0 | +2.0 [+2.0, +2.0] | > 0 | +2.0 [+2.0, +2.0] |" in table
    assert "| vanilla | resnet8 | 2 | 40.5 ± 0.7 | 39.0 ± 0.0 | – | – | – |" in table


def test_demo_configs_same_budget_for_every_student_and_the_paper_values(tmp_path):
    configs = demo_configs(DEMO, 4, tmp_path / "teacher")
    assert configs["teacher"].schedule.warmup_epochs == 0 and configs["teacher"].model.student == DEMO.teacher
    assert configs["teacher"].schedule.epochs == DEMO.teacher_epochs
    assert configs["teacher"].train.seed == DEMO.teacher_seed  # one teacher, whatever the students' seed
    assert configs["teacher"].data.options["train_per_class"] == DEMO.teacher_train_per_class
    for method in METHODS:  # the same budget, schedule, data and seed for every student
        cfg = configs[method]
        assert (cfg.schedule.epochs, cfg.schedule.warmup_epochs, cfg.optim.lr, cfg.train.seed, cfg.model.student) == (
            DEMO.student_epochs, DEMO.warmup_epochs, DEMO.lr, 4, DEMO.student)
        assert cfg.data.options["image_size"] == DEMO.image_size and cfg.data.options["num_classes"] == DEMO.num_classes
    assert configs["vanilla"].model.teacher is None and configs["kd"].model.teacher == DEMO.teacher
    assert configs["dkd"].loss["warmup"] == max(DEMO.warmup_epochs, 1)
    assert (configs["ldrld"].loss["k"], configs["ldrld"].loss["temperature"], configs["ldrld"].loss["alpha"],
            configs["ldrld"].loss["beta"]) == (7, 4.0, 10.5, 7.0)  # the paper's values
    assert (configs["kd"].loss["temperature"], configs["kd"].loss["ce_weight"], configs["kd"].loss["kd_weight"]) == (
        4.0, 0.1, 0.9)
    assert (configs["dkd"].loss["alpha"], configs["dkd"].loss["beta"]) == (1.0, 8.0)


def test_demo_configs_pass_per_method_overrides(tmp_path):
    configs = demo_configs(QUICK, 0, tmp_path / "t.pt", overrides={"ldrld": ["loss.rank_by=teacher", "loss.k=3"]})
    assert configs["ldrld"].loss["rank_by"] == "teacher" and configs["ldrld"].loss["k"] == 3
    assert "rank_by" not in configs["kd"].loss and configs["kd"].model.teacher_checkpoint == str(tmp_path / "t.pt")


def test_demo_defaults_several_seeds_and_a_larger_teacher():
    assert len(DEMO.seeds) >= 5 and len(set(DEMO.seeds)) == len(DEMO.seeds)
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
    assert "seeds [3, 4]" in results and "95 % t interval" in results and "| kd − dkd |" in results
    for method in ("teacher", *METHODS):
        assert f"| {method} |" in results and f"| {method} |" in out
    record = json.loads((out_dir / "results.json").read_text())
    assert record["settings"]["seeds"] == [3, 4] and len(record["runs"]) == 1 + 2 * len(METHODS)  # one teacher
    assert record["summary"]["ldrld"]["seeds"] == [3, 4] and len(record["summary"]["ldrld"]["gain_best"]) == 2
    assert record["summary"]["teacher"]["seeds"] == [QUICK.teacher_seed]
    assert (out_dir / "curves.png").stat().st_size > 1000
    assert packaged_teacher(QUICK) is None  # QUICK has no shipped teacher: it was trained once into <out>/teacher
    assert (out_dir / "teacher" / "best.pt").is_file() and not (out_dir / "seed3" / "teacher").exists()
    for seed in (3, 4):
        configs = demo_configs(QUICK, seed, out_dir / "teacher", cache_dir=out_dir / "data")
        assert _cached(configs["teacher"], out_dir / "teacher")  # a second demo reuses the teacher
        assert configs["kd"].model.teacher_checkpoint == str(out_dir / "teacher")
    assert main(["demo", "--quick", "--quiet", "--threads", "1", "--out", str(out_dir), "--seed", "3",
                 "--seeds", "1"]) == 0
    assert "cached in" in capsys.readouterr().out


def test_make_teacher_file_writes_a_file_the_demo_recognises(capsys, tmp_path):
    path = tmp_path / "quick_teacher.pt"
    assert main(["demo", "--quick", "--quiet", "--threads", "1", "--out", str(tmp_path / "w"), "--make-teacher",
                 "--teacher-file", str(path)]) == 0
    assert f"wrote {path}" in capsys.readouterr().out
    assert packaged_teacher(QUICK, path) == path and packaged_teacher(DEMO, path) is None  # keyed by its settings
    saved = torch.load(path, weights_only=True)
    assert json.loads(saved["demo_teacher"]) == QUICK.teacher_key() and 0 <= saved["accuracy"] <= 100
    model = build_model(QUICK.teacher, num_classes=QUICK.num_classes)
    model.load_state_dict(saved["model"])  # strict: the whole state dict of the teacher
    logits, labels = val_logits(model.eval(), QUICK)
    assert 100.0 * float((logits.argmax(1) == labels).double().mean()) == pytest.approx(saved["accuracy"], abs=1e-9)


def test_a_foreign_or_corrupt_teacher_file_is_not_used(tmp_path):
    corrupt, foreign = tmp_path / "corrupt.pt", tmp_path / "foreign.pt"
    corrupt.write_bytes(b"not a checkpoint")
    torch.save({"model": build_model("resnet8", num_classes=10).state_dict(), "accuracy": 50.0}, foreign)
    assert packaged_teacher(QUICK, corrupt) is None and packaged_teacher(QUICK, foreign) is None
    assert packaged_teacher(QUICK, tmp_path / "missing.pt") is None


def test_the_shipped_teacher_is_demo_s_and_as_accurate_as_it_says():
    """The one checkpoint in git: DEMO's teacher, regenerated by `ldrld-mini demo --make-teacher`."""
    assert TEACHER_FILE.is_file() and TEACHER_FILE.stat().st_size < 2_000_000
    assert packaged_teacher(DEMO) == TEACHER_FILE
    saved = torch.load(TEACHER_FILE, weights_only=True)
    model = build_model(DEMO.teacher, num_classes=DEMO.num_classes)
    model.load_state_dict(saved["model"])
    logits, labels = val_logits(model.eval(), DEMO)
    top1 = 100.0 * float((logits.argmax(1) == labels).double().mean())
    # a few of the 1000 val images may flip on another CPU's rounding; far more is another teacher
    assert top1 == pytest.approx(saved["accuracy"], abs=1.0) and top1 >= 70.0


@pytest.mark.parametrize("argv, text", [(["--seeds", "0"], "--seeds 0"), (["--seed", "-2"], "--seed -2")])
def test_demo_cli_bad_seed_options_exit_2(capsys, tmp_path, argv, text):
    code = main(["demo", "--quick", "--out", str(tmp_path), *argv])
    _, err = capsys.readouterr()
    assert code == 2 and text in err and "Traceback" not in err


def test_study_table_pairs_every_row_with_vanilla_and_full_ldrld():
    best = {"vanilla": {"0": 20.0, "1": 22.0, "2": 21.0}, "full": {"0": 30.0, "1": 33.0, "2": 30.0},
            "k3": {"0": 31.0, "1": 34.0, "2": 31.0}, "no-local": {"0": 30.5, "1": 31.0, "2": 31.5}}
    table = study_table(best)
    assert "| k3 | k = 3 | 32.0 ± 1.7 | +11.0 [+8.5, +13.5] | > 0 | +1.0 [+1.0, +1.0] | > 0 |" in table
    assert "| full | LDRLD as published" in table and "| vanilla | cross-entropy only | 21.0 ± 1.0 | – | – | – | – |" in table
    d = paired_against(best["no-local"], best["full"])
    assert d["diffs"] == [0.5, -2.0, 1.5] and d["verdict"] == "not resolved"
    assert [r[0] for r in STUDY_ROWS][:4] == ["vanilla", "kd", "dkd", "full"]
    assert all(method == "ldrld" for _, method, _, _ in STUDY_ROWS[3:])
    fig = plot_study(best)
    assert len(fig.axes[0].patches) == 2  # one bar per LDRLD variant (k3, no-local)


def test_the_committed_measurements_are_what_the_notebook_and_readme_quote():
    m = measured()
    for name, path in m["robustness"]["paths"].items():
        s = summarise(path["runs"])
        assert set(s) == {"teacher", *METHODS} and len(s["ldrld"]["seeds"]) >= 5, name
        assert all(s[k]["best_std"] <= 3.0 for k in METHODS), name  # the spread target on every path
    study = m["study"]["best"]
    assert set(study) == {r[0] for r in STUDY_ROWS} and all(len(v) >= 5 for v in study.values())
