"""The engine on tiny built-in data: run-folder contract, distillation, exact resume, guards, legacy switches."""
import json
import math

import pytest
import torch

from ldrld_mini.models import build_model, load_checkpoint
from ldrld_mini.recipes import Config, load_config
from ldrld_mini.train import fit

TINY = ["data.options.num_classes=10", "data.options.train_per_class=8", "data.options.val_per_class=4",
        "batch_size=16", "data.val_batch_size=40", "train.device=cpu", "train.deterministic=true"]
NON_TIMING = ("epoch", "lr", "train_total", "train_top1", "val_top1", "val_top5", "val_loss", "best_top1")


def tiny_config(method="ldrld", epochs=2, extra=(), **kw):
    overrides = [*TINY, f"epochs={epochs}", "milestones=[]", *extra]
    return load_config("synthetic", teacher="resnet8", student="resnet8", method=method,
                       overrides=overrides, **kw)


def state_of(run_dir, name="last.pt"):
    return torch.load(run_dir / name, map_location="cpu", weights_only=True)["model"]


def metrics_of(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def teacher_run(tmp_path_factory):
    """A vanilla resnet8 'teacher' trained for 2 epochs (the synthetic recipe's teacher workflow)."""
    run_dir = tmp_path_factory.mktemp("runs") / "teacher"
    cfg = load_config("synthetic", student="resnet8", method="vanilla",
                      overrides=[*TINY, "epochs=2", "milestones=[]"])
    summary = fit(cfg, run_dir, quiet=True)
    return run_dir, summary


def test_vanilla_run_folder_contract(teacher_run):
    run_dir, summary = teacher_run
    for name in ("config.yaml", "metrics.jsonl", "metrics.csv", "last.pt", "best.pt", "summary.json"):
        assert (run_dir / name).is_file(), name
    assert not list(run_dir.glob("*.tmp"))
    rows = metrics_of(run_dir)
    assert [r["epoch"] for r in rows] == [1, 2]
    for key in ("lr", "train_total", "train_ce", "train_top1", "val_top1", "val_top5", "val_loss",
                "epoch_time", "images_per_s"):
        assert key in rows[0], key
    assert json.loads((run_dir / "summary.json").read_text()) == summary
    assert summary["best_top1"] == max(r["val_top1"] for r in rows)
    assert summary["last_top1"] == rows[-1]["val_top1"] and summary["epochs"] == 2
    assert not {"best_acc", "last_acc"} & set(summary)  # one name per thing (older folders: runfolder.RENAMED)
    accs = [r["val_top1"] for r in rows]
    assert summary["best_epoch"] == 1 + accs.index(max(accs)) and summary["wall_time_s"] > 0  # first best
    best = torch.load(run_dir / "best.pt", map_location="cpu", weights_only=True)
    assert (best["epoch"], best["accuracy"], best["best_acc"]) == (summary["best_epoch"], summary["best_top1"],
                                                                   summary["best_top1"])  # the CRD layout
    if summary["best_epoch"] == 2:  # the last epoch: best.pt and last.pt hold the same weights
        assert all(torch.equal(v, state_of(run_dir)[k]) for k, v in best["model"].items())
    cfg = Config.load_yaml(run_dir / "config.yaml")
    assert cfg.method == "vanilla" and cfg.model.student == "resnet8"
    model = build_model("resnet8", num_classes=10)
    load_checkpoint(model, run_dir / "best.pt")  # best.pt has the CRD layout, loads strictly


def test_distillation_logs_every_loss_part(teacher_run, tmp_path, monkeypatch):
    """Each logged train_<part> is the sample-weighted mean of what the loss returned during that epoch."""
    import ldrld_mini.losses as losses

    calls, built = [], []
    real_build = losses.build_loss

    def recording_build(name, **options):  # the trainer's loss module, with a hook that records each call
        module = real_build(name, **options)
        module.register_forward_hook(lambda m, args, out: calls.append(
            (args[2].shape[0], {k: float(v.detach()) for k, v in out._asdict().items()})))
        built.append(module)
        return module

    monkeypatch.setattr(losses, "build_loss", recording_build)
    teacher_dir, _ = teacher_run
    cfg = tiny_config("ldrld", extra=[f"model.teacher_checkpoint={teacher_dir}"])
    epoch_calls, rows = [], []  # the loss calls of each epoch; the records fit logs (before JSON rounding)
    summary = fit(cfg, tmp_path / "ldrld", quiet=True,
                  on_epoch_end=lambda record: (epoch_calls.append(list(calls)), calls.clear(), rows.append(record)))
    (module,) = built
    assert {k: module.options[k] for k in ("k", "temperature", "alpha", "beta")} == \
        {"k": 7, "temperature": 4.0, "alpha": 10.5, "beta": 7.0}  # the recipe's values reached the loss
    for row, steps in zip(rows, epoch_calls):
        assert [n for n, _ in steps] == [16] * 5  # 80 images, batch 16
        for part in ("total", "ce", "local", "remaining"):
            mean = sum(n * parts[part] for n, parts in steps) / sum(n for n, _ in steps)
            assert row[f"train_{part}"] == pytest.approx(mean, rel=1e-6), part
    assert len(epoch_calls) == len(rows) == 2
    for row, logged in zip(rows, metrics_of(tmp_path / "ldrld")):  # metrics.jsonl: 6 significant digits
        assert logged["train_total"] == pytest.approx(row["train_total"], rel=1e-5)
    assert summary["teacher_top1"] is not None and summary["method"] == "ldrld"


def test_dkd_receives_the_epoch(teacher_run, tmp_path):
    teacher_dir, _ = teacher_run
    cfg = tiny_config("dkd", extra=[f"model.teacher_checkpoint={teacher_dir}", "loss.warmup=2"])
    fit(cfg, tmp_path / "dkd", quiet=True)
    first, second = metrics_of(tmp_path / "dkd")
    for row, ramp in ((first, 0.5), (second, 1.0)):  # min(epoch / warmup, 1)
        kd = 1.0 * row["train_tckd"] + 8.0 * row["train_nckd"]
        assert math.isclose(row["train_total"], row["train_ce"] + ramp * kd, rel_tol=1e-4), row


class _Stop(RuntimeError):
    pass


def _stop_after(epoch):
    def hook(record):
        if record["epoch"] == epoch:
            raise _Stop(f"killed after epoch {epoch}")
    return hook


@pytest.mark.parametrize("gpu_resident", [False, True], ids=["dataloader", "device_loader"])
def test_resume_equals_uninterrupted(teacher_run, tmp_path, gpu_resident):
    teacher_dir, _ = teacher_run
    cfg = tiny_config("ldrld", epochs=4, extra=[f"model.teacher_checkpoint={teacher_dir}", "milestones=[3]",
                                                f"data.gpu_resident={str(gpu_resident).lower()}"])
    straight = fit(cfg, tmp_path / "straight", quiet=True)
    with pytest.raises(_Stop):
        fit(cfg, tmp_path / "resumed", quiet=True, on_epoch_end=_stop_after(2))
    assert not (tmp_path / "resumed" / "summary.json").exists()
    with pytest.raises(FileExistsError, match="resume=True"):
        fit(cfg, tmp_path / "resumed", quiet=True)
    resumed = fit(cfg, tmp_path / "resumed", resume=True, quiet=True)
    a, b = state_of(tmp_path / "straight"), state_of(tmp_path / "resumed")
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    strip = lambda rows: [{k: r[k] for k in NON_TIMING} for r in rows]  # noqa: E731
    assert strip(metrics_of(tmp_path / "straight")) == strip(metrics_of(tmp_path / "resumed"))
    assert straight["best_top1"] == resumed["best_top1"] and straight["last_top1"] == resumed["last_top1"]


def test_run_folder_guards(teacher_run, tmp_path):
    teacher_dir, _ = teacher_run
    cfg = tiny_config("kd", epochs=1, extra=[f"model.teacher_checkpoint={teacher_dir}"])
    run_dir = tmp_path / "kd"
    first = fit(cfg, run_dir, quiet=True)
    with pytest.raises(FileExistsError, match="finished"):
        fit(cfg, run_dir, quiet=True)
    assert fit(cfg, run_dir, resume=True, quiet=True) == first  # nothing left to do
    changed = tiny_config("kd", epochs=1, extra=[f"model.teacher_checkpoint={teacher_dir}", "loss.kd_weight=0.5",
                                                 "lr=0.1"])
    with pytest.raises(ValueError, match=r"loss\.kd_weight.*optim\.lr|optim\.lr.*loss\.kd_weight"):
        fit(changed, run_dir, resume=True, quiet=True)
    again = fit(changed, run_dir, overwrite=True, quiet=True)
    assert again["epochs"] == 1 and len(metrics_of(run_dir)) == 1
    assert Config.load_yaml(run_dir / "config.yaml").loss["kd_weight"] == 0.5


def test_missing_teacher_says_where_to_put_it(tmp_path):
    cfg = tiny_config("ldrld", extra=[f"model.teacher_checkpoint={tmp_path / 'nowhere.pth'}"])
    with pytest.raises(FileNotFoundError, match=r"nowhere\.pth.*model\.teacher_checkpoint"):
        fit(cfg, tmp_path / "run", quiet=True)


@pytest.mark.parametrize("fast", [False, True], ids=["standard", "fast"])
def test_legacy_double_weight_scales_the_whole_loss(teacher_run, tmp_path, fast):
    """With ce_weight w, plain SGD (no momentum, no weight decay) on w * L equals lr * w on L."""
    teacher_dir, _ = teacher_run
    common = [f"model.teacher_checkpoint={teacher_dir}", "optim.momentum=0.0", "optim.weight_decay=0.0",
              "loss.ce_weight=0.5", f"train.fast={str(fast).lower()}", "data.gpu_resident=true"]
    legacy = tiny_config("ldrld", epochs=1, extra=[*common, "loss.legacy_double_weight=true", "lr=0.04"])
    scaled_lr = tiny_config("ldrld", epochs=1, extra=[*common, "lr=0.02"])
    fit(legacy, tmp_path / "legacy", quiet=True)
    fit(scaled_lr, tmp_path / "scaled", quiet=True)
    a, b = state_of(tmp_path / "legacy"), state_of(tmp_path / "scaled")
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=1e-6)


def test_bf16_autocast_and_channels_last_train(teacher_run, tmp_path, capsys):
    teacher_dir, _ = teacher_run
    cfg = tiny_config("ldrld", epochs=1, extra=[f"model.teacher_checkpoint={teacher_dir}", "train.amp=bf16",
                                                "data.options.train_per_class=4",
                                                "train.channels_last=true", "train.deterministic=false"])
    summary = fit(cfg, tmp_path / "bf16", quiet=True)
    assert math.isfinite(metrics_of(tmp_path / "bf16")[0]["train_total"]) and summary["last_top1"] is not None
    assert capsys.readouterr().err == ""  # quiet: no progress bars


def test_teacher_module_and_eval_every(tmp_path):
    teacher = build_model("resnet8", num_classes=10)
    cfg = tiny_config("kd", epochs=2, extra=["train.eval_every=2"])
    fit(cfg, tmp_path / "kd", quiet=True, teacher=teacher)
    rows = metrics_of(tmp_path / "kd")
    assert "val_top1" not in rows[0] and "val_top1" in rows[1]
    assert not any(p.requires_grad for p in teacher.parameters()) and not teacher.training


def test_resume_after_the_last_checkpoint_only_writes_the_summary(tmp_path):
    cfg = tiny_config("vanilla", epochs=1, extra=["data.options.train_per_class=4"])
    with pytest.raises(_Stop):
        fit(cfg, tmp_path / "run", quiet=True, on_epoch_end=_stop_after(1))
    before = state_of(tmp_path / "run")
    summary = fit(cfg, tmp_path / "run", resume=True, quiet=True)
    assert summary["last_top1"] == metrics_of(tmp_path / "run")[0]["val_top1"] and summary["best_epoch"] == 1
    assert all(torch.equal(before[k], v) for k, v in state_of(tmp_path / "run").items())


def test_progress_and_printing_rules(monkeypatch, capsys):
    from ldrld_mini.train.logging import Printer, progress_enabled

    monkeypatch.delenv("LDRLD_QUIET", raising=False)
    assert progress_enabled(True) is False
    assert progress_enabled(None) is False  # pytest captures stderr: not a TTY
    assert progress_enabled(False) is True
    monkeypatch.setenv("LDRLD_QUIET", "1")
    assert progress_enabled(False) is False
    Printer(False)("hidden")
    monkeypatch.delenv("LDRLD_QUIET")
    Printer(True)("hidden")
    Printer(None)("shown")
    assert capsys.readouterr().out == "shown\n"


def test_metrics_writer_csv_and_optional_tensorboard(tmp_path):
    import importlib.util

    from ldrld_mini.train.logging import MetricsWriter, read_metrics, truncate_metrics

    if importlib.util.find_spec("tensorboard") is None:
        with pytest.warns(UserWarning, match="tensorboard"):
            writer = MetricsWriter(tmp_path, tensorboard=True)
    else:
        writer = MetricsWriter(tmp_path, tensorboard=True)
    writer.append({"epoch": 1, "lr": 0.1, "train_total": float("nan")})
    writer.append({"epoch": 2, "lr": 0.1, "val_top1": 12.5})
    writer.close()
    assert read_metrics(tmp_path) == [{"epoch": 1, "lr": 0.1, "train_total": None},
                                      {"epoch": 2, "lr": 0.1, "val_top1": 12.5}]
    assert (tmp_path / "metrics.csv").read_text().splitlines()[0] == "epoch,lr,train_total,val_top1"
    truncate_metrics(tmp_path, 1)
    assert [r["epoch"] for r in read_metrics(tmp_path)] == [1]


def test_fast_path_equals_standard_path_and_resumes(teacher_run, tmp_path):
    """train.fast=true (train/fast.py) on CPU in fp32: the standard run's weights; resume stays exact.

    The weights are compared for KD, whose fast and standard steps are the same arithmetic. LDRLD's fast
    terms are another implementation of the loss (equal to it within float32 round-off, tests/test_losses.py
    and test_fast_path.py), and its top-k on the student's logits turns such round-off into a different
    selection now and then, so two LDRLD trainings drift apart by more than round-off on some CPUs."""
    teacher_dir, _ = teacher_run
    extra = [f"model.teacher_checkpoint={teacher_dir}", "data.gpu_resident=true"]
    fit(tiny_config("kd", epochs=2, extra=extra), tmp_path / "standard", quiet=True)
    fit(tiny_config("kd", epochs=2, extra=[*extra, "train.fast=true"]), tmp_path / "fast", quiet=True)
    a, b = (state_of(tmp_path / name) for name in ("standard", "fast"))
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=1e-4, atol=1e-5)
    fast = tiny_config("ldrld", epochs=2, extra=[*extra, "train.fast=true"])
    fit(fast, tmp_path / "ldrld", quiet=True)
    with pytest.raises(_Stop):
        fit(fast, tmp_path / "resumed", quiet=True, on_epoch_end=_stop_after(1))
    fit(fast, tmp_path / "resumed", resume=True, quiet=True)
    b, c = (state_of(tmp_path / name) for name in ("ldrld", "resumed"))
    for key in b:
        assert torch.equal(b[key], c[key]), key
    assert {"train_ce", "train_local", "train_remaining"} <= set(metrics_of(tmp_path / "ldrld")[0])
