"""The fast path computes what the standard path computes: loss parts, gradients, training, on CPU (and CUDA).

CPU tests use a tiny conv net; the CUDA tests at the end (skipped without a GPU) check the graph-captured
step against the eager one and the standard path on ResNet32x4 -> ResNet8x4, and that an epoch never
synchronises with the host. `benchmarks/gpu_checks.sh` runs this file on a GPU machine.
"""
import copy
import json
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from ldrld_mini.data.device_loader import DeviceLoader
from ldrld_mini.losses import build_loss
from ldrld_mini.train.fast import FAST_OVERRIDES, FastDistiller, FastLoss, graph_safe_sgd
from ldrld_mini.train.loop import forward_loss, train_one_epoch
from ldrld_mini.train.multirun import RunSpec, format_outcomes, plan_table, run_many
from ldrld_mini.train.multirun import main as multirun_main

ROOT = Path(__file__).resolve().parents[1]
CUDA = torch.cuda.is_available()
METHOD_OPTIONS = {"ldrld": {"k": 4}, "kd": {}, "dkd": {"warmup": 4}, "ce": {}}


def tiny_net(seed=0, classes=10):
    """Conv + BatchNorm + ReLU + pool + linear: every kind of layer the zoo's step touches, in milliseconds."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1),
                         nn.BatchNorm2d(8), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(32, classes))


def frozen(model):
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def sgd(model, lr=0.05):
    return torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4, nesterov=False)


def tiny_data(n=40, size=12, classes=10, seed=0):
    gen = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, size, size, 3), dtype=torch.uint8, generator=gen)
    return images, torch.randint(0, classes, (n,), generator=gen)


def loader(data, batch_size=16, device="cpu"):
    return DeviceLoader(*data, batch_size=batch_size, mean=(0.5, 0.45, 0.4), std=(0.25, 0.25, 0.25), seed=0,
                        device=device)


def batch(n=16, size=12, classes=10, seed=1):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, size, size, generator=gen), torch.randint(0, classes, (n,), generator=gen)


def standard_forward_backward(student, teacher, loss_fn, images, labels, amp="none", epoch=1):
    """What `loop.train_one_epoch` does up to the backward (its `forward_loss`), then the backward."""
    _, parts = forward_loss(student, teacher, loss_fn, images, labels, amp=amp, epoch=epoch)
    parts.total.backward()
    return parts


def grads(model):
    return torch.cat([p.grad.flatten() for p in model.parameters()])


def params(model):
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def rel_err(a, b):
    return float((a - b).norm() / b.norm().clamp_min(1e-12))


# ----------------------------------------------------------------------------------------------------------
# the loss without host reads

@pytest.mark.parametrize("method", ["ldrld", "kd", "dkd", "ce"])
def test_fast_loss_equals_the_loss_module(method):
    loss_fn = build_loss(method, **METHOD_OPTIONS[method])
    fast = FastLoss(loss_fn, torch.device("cpu"))
    assert fast.graph_safe
    fast.set_epoch(2)  # DKD: ramp 2 / 4
    gen = torch.Generator().manual_seed(0)
    ls = (torch.randn(8, 10, generator=gen) * 3).requires_grad_()
    lt, y = torch.randn(8, 10, generator=gen) * 3, torch.randint(0, 10, (8,), generator=gen)
    expected = loss_fn(ls, lt, y, epoch=2)
    expected.total.backward()
    grad, ls.grad = ls.grad.clone(), None
    got = fast(ls, lt, y)
    got.total.backward()
    assert got._fields == expected._fields
    for a, b in zip(got, expected):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    torch.testing.assert_close(ls.grad, grad, rtol=0, atol=0)


def test_unknown_loss_module_runs_eagerly(monkeypatch):
    class Plain(nn.Module):
        needs_teacher = True

        def __init__(self):
            super().__init__()
            self.epochs = []

        def forward(self, ls, lt, y, epoch=None):
            self.epochs.append(epoch)
            return build_loss("kd")(ls, lt, y)

    import ldrld_mini.train.fast as fast_module

    monkeypatch.setattr(fast_module, "resolve_graphs", lambda cuda_graphs, device: True)  # as on a GPU
    student, loss = tiny_net(), Plain()
    with pytest.warns(UserWarning, match="CUDA graphs are off"):
        fast = FastDistiller(student, frozen(tiny_net(1)), loss, sgd(student), device="cpu")
    assert not fast.loss.graph_safe and not fast.graphs
    stats = fast.train_epoch(loader(tiny_data()), epoch=3)  # the module itself, called with the epoch
    assert loss.epochs == [3, 3, 3] and stats["train_images"] == 40


# ----------------------------------------------------------------------------------------------------------
# one step: loss and gradients on the same batch

@pytest.mark.parametrize("method", ["ldrld", "kd", "dkd"])
@pytest.mark.parametrize("channels_last", [False, True])
def test_fp32_step_equals_standard_step(method, channels_last):
    """No autocast: the fast step is the standard step. The networks run in float64 (the loss, as on both
    paths, in float32 on the logits): channels_last convolutions sum in another order, which in float32
    moved gradients by up to 5e-7 (half the atol), in float64 by ~1e-16 relative, so the tolerances below
    hold on any CPU, thread count and with oneDNN off, while a real difference stays far outside them."""
    loss_fn = build_loss(method, **METHOD_OPTIONS[method])
    teacher, student = frozen(tiny_net(1).double()), tiny_net(0).double()
    reference = copy.deepcopy(student)
    x, y = batch()
    x = x.double()
    expected = standard_forward_backward(reference, teacher, loss_fn, x, y)
    fast = FastDistiller(student, copy.deepcopy(teacher), loss_fn, sgd(student), device="cpu", amp="none",
                         channels_last=channels_last)
    fast.set_epoch(1)
    got, _ = fast.forward_backward(fast._prepare(x), y)
    for a, b in zip(got, expected):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(grads(student), grads(reference), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("method", ["ldrld", "kd"])
def test_bf16_step_equals_standard_step_within_bf16_tolerance(method):
    loss_fn = build_loss(method, **METHOD_OPTIONS[method])
    teacher, student = frozen(tiny_net(1)), tiny_net(0)
    fp32, bf16_std = copy.deepcopy(student), copy.deepcopy(student)
    x, y = batch()
    expected = standard_forward_backward(fp32, teacher, loss_fn, x, y)  # the fp32 standard step
    same_amp = standard_forward_backward(bf16_std, teacher, loss_fn, x, y, amp="bf16")
    fast = FastDistiller(student, copy.deepcopy(teacher), loss_fn, sgd(student), device="cpu", amp="bf16")
    got, _ = fast.forward_backward(fast._prepare(x), y)
    for a, b in zip(got, expected):  # bf16 keeps 8 bits of mantissa: ~0.4% per rounding
        assert abs(a.item() - b.item()) <= 2e-2 * abs(b.item()) + 2e-3
    assert rel_err(grads(student), grads(fp32)) < 5e-2
    for a, b in zip(got, same_amp):  # against the standard path under the same autocast: much closer
        assert abs(a.item() - b.item()) <= 5e-3 * abs(b.item()) + 1e-4
    assert rel_err(grads(student), grads(bf16_std)) < 2e-2


# ----------------------------------------------------------------------------------------------------------
# a few epochs of training

def train_both(method, amp, channels_last, epochs=2):
    """Train twice from the same weights on the same batches: loop.train_one_epoch vs FastDistiller."""
    loss_fn = build_loss(method, **METHOD_OPTIONS[method])
    teacher = frozen(tiny_net(1))
    std_student, fast_student = tiny_net(0), tiny_net(0)
    std_opt, fast_opt = sgd(std_student), sgd(fast_student)
    data = tiny_data()  # 40 images, batch 16: two full batches and a tail of 8 each epoch
    std_loader, fast_loader = loader(data), loader(data)
    fast = FastDistiller(fast_student, copy.deepcopy(teacher), loss_fn, fast_opt, device="cpu", amp=amp,
                         channels_last=channels_last)
    history = []
    for epoch in range(1, epochs + 1):
        lr = 0.05 / epoch
        for group in std_opt.param_groups + fast_opt.param_groups:  # what the trainer does each epoch
            group["lr"] = lr
        std_loader.set_epoch(epoch)
        fast_loader.set_epoch(epoch)
        a = train_one_epoch(std_student, std_loader, loss_fn, std_opt, epoch=epoch, teacher=teacher, amp=amp,
                            channels_last=channels_last)
        b = fast.train_epoch(fast_loader, epoch=epoch)
        history.append((a, b))
    return std_student, fast_student, history, fast


@pytest.mark.parametrize("method", ["ldrld", "dkd"])
def test_fp32_training_equals_standard_training(method):
    std_student, fast_student, history, fast = train_both(method, "none", channels_last=False)
    torch.testing.assert_close(params(fast_student), params(std_student), rtol=1e-5, atol=1e-6)
    for a, b in history:
        assert set(a) - {"train_time"} <= set(b)
        for key in a:
            if key != "train_time":
                assert b[key] == pytest.approx(a[key], rel=1e-5, abs=1e-6), key
    assert float(fast.optimizer.param_groups[0]["lr"]) == pytest.approx(0.025)  # the trainer's float was adopted
    parts = {"ldrld": ("train_ce", "train_local", "train_remaining"), "dkd": ("train_ce", "train_tckd", "train_nckd")}
    for a, b in history:
        assert {"train_total", *parts[method]} <= set(a) & set(b), method


def test_bf16_channels_last_training_stays_close_to_standard():
    std_student, fast_student, history, _ = train_both("ldrld", "bf16", channels_last=True)
    assert rel_err(params(fast_student), params(std_student)) < 1e-2
    for a, b in history:
        assert b["train_total"] == pytest.approx(a["train_total"], rel=2e-2)
        assert b["train_images"] == a["train_images"] == 40


# ----------------------------------------------------------------------------------------------------------
# no host reads inside an epoch, settings, errors

def test_no_value_is_read_back_to_the_host_inside_the_epoch(monkeypatch):
    """A CPU stand-in for CUDA's sync check: after the first (checked) step, no Python-level host read."""
    loss_fn = build_loss("ldrld", k=4)
    student = tiny_net(0)
    fast = FastDistiller(student, frozen(tiny_net(1)), loss_fn, sgd(student), device="cpu")
    data_loader = loader(tiny_data())
    batches = iter(data_loader)
    fast.reset_sums()
    fast.step(*next(batches))  # the first step runs the loss's input checks (they read the labels)

    def forbidden(*args, **kwargs):
        raise AssertionError("a tensor value was read on the host inside the epoch")

    for name in ("item", "tolist", "__bool__", "__int__", "__float__"):
        monkeypatch.setattr(torch.Tensor, name, forbidden)
    fast.set_lr(0.01)
    for images, labels in batches:  # a full batch and the smaller tail
        fast.step(images, labels)
    monkeypatch.undo()
    stats = fast.read_sums(40)
    assert stats["train_images"] == 40 and stats["train_total"] > 0


def test_optimizer_becomes_fused_with_a_device_lr_and_keeps_momentum_layout():
    model = tiny_net(0)
    opt = sgd(model, lr=0.1)
    model(torch.randn(2, 3, 8, 8)).sum().backward()
    opt.step()
    model.to(memory_format=torch.channels_last)
    (lrs,) = [graph_safe_sgd(opt, torch.device("cpu"))]
    assert opt.param_groups[0]["fused"] and isinstance(opt.param_groups[0]["lr"], torch.Tensor)
    assert float(lrs[0]) == pytest.approx(0.1)
    for p in model.parameters():
        assert opt.state[p]["momentum_buffer"].stride() == p.stride()


def test_errors_name_the_argument():
    student = tiny_net(0)
    with pytest.raises(ValueError, match="cuda_graphs"):
        FastDistiller(student, frozen(tiny_net(1)), build_loss("kd"), sgd(student), device="cpu", cuda_graphs=True)
    with pytest.raises(ValueError, match="amp"):
        FastDistiller(student, frozen(tiny_net(1)), build_loss("kd"), sgd(student), device="cpu", amp="fp16")
    with pytest.raises(ValueError, match="optimizer"):
        FastDistiller(student, frozen(tiny_net(1)), build_loss("kd"), torch.optim.Adam(student.parameters()),
                      device="cpu")
    with pytest.raises(ValueError, match="teacher"):
        FastDistiller(student, None, build_loss("kd"), sgd(student), device="cpu")
    fast = FastDistiller(student, frozen(tiny_net(1)), build_loss("ldrld", k=11), sgd(student), device="cpu")
    with pytest.raises(ValueError, match="k must be"):  # the input checks still run, once
        fast.step(*batch())


# ----------------------------------------------------------------------------------------------------------
# the benchmark and several runs at once

def test_benchmark_runs_on_cpu_and_writes_its_table(tmp_path):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import bench_train_step
    finally:
        sys.path.pop(0)
    report = bench_train_step.main(["--device", "cpu", "--steps", "1", "--warmup", "1", "--batch-size", "4",
                                    "--teacher", "resnet8", "--student", "resnet8", "--num-classes", "10",
                                    "--eval-images", "8", "--val-batch-size", "8", "--out", str(tmp_path)])
    table = (tmp_path / "bench_train_step.md").read_text()
    assert report.strip() == table.strip()
    for path in ("baseline", "standard", "fast"):
        for method in ("kd", "ldrld"):
            assert f"| {path} | {method} |" in table
    rows = json.loads((tmp_path / "bench_train_step.json").read_text())["rows"]
    assert len(rows) == 6 and all(r["ms_per_step"] > 0 and r["projected_min"] > 0 for r in rows)


def test_plan_table_covers_pairs_methods_seeds():
    specs = plan_table("cifar100", seeds=[0, 1], methods=["kd", "dkd", "ldrld"], runs_root="runs")
    assert len(specs) == 13 * 3 * 2 and all(s.stage == 1 for s in specs)  # CRD teachers are files: no stage 0
    assert len({s.run_dir for s in specs}) == len(specs)
    assert [s.seed for s in specs[:39]] == [0] * 39  # a whole table of seed 0 first
    spec = next(s for s in specs if s.method == "ldrld" and s.student == "resnet8x4" and s.seed == 1)
    assert spec.run_dir == str(Path("runs") / "cifar100" / "resnet32x4-resnet8x4" / "ldrld" / "seed1")
    cfg = spec.config()
    assert cfg.train.seed == 1 and cfg.loss["alpha"] == 10.5 and cfg.data.batch_size == 64
    assert RunSpec.from_json(spec.to_json()) == spec


@pytest.mark.parametrize("table", ["cifar100", "synthetic"])
def test_plan_table_matches_the_cli_reproduce_plan(table):
    from ldrld_mini.cli import default_run_dir, reproduce_plan

    specs = plan_table(table, seeds=[0, 1])
    assert reproduce_plan(table, seeds=[0, 1]) == specs
    for spec in specs:  # the scheduler's folders are the ones `ldrld-mini distill/train` would use
        assert Path(spec.run_dir) == default_run_dir(table, spec.method, spec.student, spec.teacher, spec.seed)
    assert (table == "synthetic") == any(s.stage == 0 for s in specs)  # only synthetic trains its teacher


def test_plan_table_vanilla_students_once_and_bad_input():
    specs = plan_table("cifar100", seeds=[0], methods=["vanilla"], pairs=["resnet56:resnet20", "resnet110:resnet20"])
    assert [(s.teacher, s.student) for s in specs] == [(None, "resnet20")]
    with pytest.raises(ValueError, match="seeds"):
        plan_table("cifar100", seeds=[0, 0])
    with pytest.raises(ValueError, match="teacher:student"):
        plan_table("cifar100", pairs=["resnet32x4"])
    with pytest.raises(ValueError):
        plan_table("cifar100", overrides=["no.such_key=1"])


def test_plan_table_fast_sets_the_fast_overrides():
    spec = plan_table("cifar100", fast=True, pairs=["resnet32x4:resnet8x4"], methods=["ldrld"])[0]
    assert set(FAST_OVERRIDES) <= set(spec.overrides)
    cfg = spec.config()
    assert cfg.train.fast is True
    assert cfg.train.amp == "bf16" and cfg.data.gpu_resident and cfg.train.channels_last
    plain = plan_table("cifar100", pairs=["resnet32x4:resnet8x4"], methods=["ldrld"])[0].config()
    assert plain.train.fast is False and plain.train.amp == "none"


def test_run_many_keeps_n_runs_going_and_survives_a_failure(tmp_path):
    specs = [RunSpec("cifar100", "kd", "resnet32x4", "resnet8x4", seed, str(tmp_path / f"seed{seed}"))
             for seed in range(4)]
    specs.append(RunSpec("cifar100", "vanilla", None, "resnet32x4", 0, str(tmp_path / "teacher"), stage=0))
    (tmp_path / "seed3").mkdir()
    (tmp_path / "seed3" / "summary.json").write_text("{}")  # already finished: skipped
    script = ("import sys, time, pathlib; d = pathlib.Path(sys.argv[1]); (d / 'start').write_text(repr(time.time()));"
              " time.sleep(0.6); (d / 'end').write_text(repr(time.time())); sys.exit(3 if d.name == 'seed1' else 0)")
    outcomes = run_many(specs, parallel=2, poll_s=0.05, say=lambda s: None,
                        command=lambda spec: [sys.executable, "-c", script, spec.run_dir])
    assert [o.status for o in outcomes] == ["done", "failed", "done", "skipped", "done"]
    assert outcomes[1].returncode == 3 and Path(outcomes[1].log).exists()
    spans = [(float((tmp_path / f"seed{i}" / "start").read_text()), float((tmp_path / f"seed{i}" / "end").read_text()))
             for i in range(3)]
    teacher_end = float((tmp_path / "teacher" / "end").read_text())
    assert all(start >= teacher_end for start, _ in spans)  # stage 0 (teachers) before stage 1
    overlap = lambda a, b: a[0] < b[1] and b[0] < a[1]  # noqa: E731
    assert overlap(spans[0], spans[1])  # two at once ...
    assert not (overlap(spans[0], spans[2]) and overlap(spans[1], spans[2]))  # ... never three
    assert "| failed |" in format_outcomes(outcomes)
    with pytest.raises(ValueError, match="parallel"):
        run_many(specs, parallel=0)


def test_worker_process_trains_a_real_run(tmp_path):
    tiny = ["data.options.num_classes=10", "data.options.train_per_class=4", "data.options.val_per_class=2",
            "batch_size=20", "data.val_batch_size=20", "train.device=cpu", "epochs=1", "milestones=[]"]
    specs = plan_table("synthetic", seeds=[0], methods=["vanilla"], pairs=["resnet8:resnet8"],
                       runs_root=tmp_path, overrides=tiny)
    (outcome,) = run_many(specs, parallel=1, poll_s=0.1, say=lambda s: None)
    log = Path(specs[0].run_dir) / "run.log"
    assert outcome.status == "done", log.read_text()[-2000:]
    summary = json.loads((Path(specs[0].run_dir) / "summary.json").read_text())
    assert summary["epochs"] == 1
    assert run_many(specs, parallel=1)[0].status == "skipped"


def test_multirun_command_line_prints_the_plan(capsys):
    argv = ["cifar100", "--seeds", "0", "1", "--methods", "ldrld", "--pairs", "resnet32x4:resnet8x4"]
    assert multirun_main(argv) == 0
    out = capsys.readouterr().out
    assert "ldrld_resnet32x4_resnet8x4_seed1" in out and "2 runs planned" in out


# ----------------------------------------------------------------------------------------------------------
# CUDA only (benchmarks/gpu_checks.sh runs these on a GPU machine)

needs_cuda = pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU")


def zoo_pair(device):
    from ldrld_mini.models import build_model

    torch.manual_seed(0)
    teacher = frozen(build_model("resnet32x4", num_classes=100).to(device))
    student = build_model("resnet8x4", num_classes=100).to(device)
    return teacher, student


def cifar_loader(device, n=64 * 6 + 16, seed=0):
    gen = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 32, 32, 3), dtype=torch.uint8, generator=gen)
    labels = torch.randint(0, 100, (n,), generator=gen)
    return DeviceLoader(images, labels, batch_size=64, mean=(0.5071, 0.4867, 0.4408), std=(0.2675, 0.2565, 0.2761),
                        seed=seed, device=device)


@needs_cuda
def test_cuda_graph_training_equals_eager_training():
    """Captured and replayed steps (with an lr change and tail batches) match the same steps run eagerly."""
    device = torch.device("cuda")
    teacher, student = zoo_pair(device)
    runs = []
    for graphs in (False, True):
        s, t = copy.deepcopy(student), copy.deepcopy(teacher)
        fast = FastDistiller(s, t, build_loss("ldrld"), sgd(s), device=device, amp="bf16", cuda_graphs=graphs)
        data_loader = cifar_loader(device)
        stats = [fast.train_epoch(data_loader, epoch=e, lr=0.05 / e) for e in (1, 2, 3)]
        runs.append((s, stats, fast))
    (eager, eager_stats, _), (graphed, graph_stats, fast) = runs
    assert fast.captured
    assert rel_err(params(graphed), params(eager)) < 1e-4
    for a, b in zip(eager_stats, graph_stats):
        assert b["train_total"] == pytest.approx(a["train_total"], rel=1e-3)
        assert b["train_images"] == a["train_images"] == 6 * 64 + 16


@needs_cuda
def test_cuda_fast_step_equals_standard_step_within_bf16_tolerance():
    device = torch.device("cuda")
    teacher, student = zoo_pair(device)
    x, y = next(iter(cifar_loader(device)))
    for method in ("kd", "ldrld"):
        reference, s = copy.deepcopy(student), copy.deepcopy(student)
        expected = standard_forward_backward(reference, teacher, build_loss(method), x, y)  # fp32 standard
        fast = FastDistiller(s, copy.deepcopy(teacher), build_loss(method), sgd(s), device=device)
        got, _ = fast.forward_backward(fast._prepare(x), y)
        for a, b in zip(got, expected):
            assert abs(a.item() - b.item()) <= 3e-2 * abs(b.item()) + 3e-3, (method, got, expected)
        assert rel_err(grads(s), grads(reference)) < 5e-2, method


@needs_cuda
def test_cuda_epoch_never_synchronises_with_the_host():
    device = torch.device("cuda")
    teacher, student = zoo_pair(device)
    fast = FastDistiller(student, teacher, build_loss("ldrld"), sgd(student), device=device)
    data_loader = cifar_loader(device, n=64 * 12 + 16)
    fast.train_epoch(data_loader, epoch=1, max_steps=5)  # warm-up and capture (a capture synchronises once)
    batches = iter(data_loader)
    first = next(batches)  # the epoch's plan is copied to the device when the iteration starts
    fast.reset_sums()
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        fast.set_lr(0.01)
        fast.step(*first)
        for images, labels in batches:  # the full batches (graph replays) and the tail (eager)
            fast.step(images, labels)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert fast.captured
    assert fast.read_sums(12 * 64 + 16)["train_images"] == 12 * 64 + 16


@needs_cuda
def test_cuda_runs_on_separate_streams_match_runs_alone():
    device = torch.device("cuda")
    teacher, student = zoo_pair(device)
    alone = copy.deepcopy(student)
    fast = FastDistiller(alone, copy.deepcopy(teacher), build_loss("kd"), sgd(alone), device=device)
    fast.train_epoch(cifar_loader(device), epoch=1)
    pair = []
    for _ in range(2):
        s = copy.deepcopy(student)
        stream = torch.cuda.Stream()
        with torch.cuda.stream(stream):
            f = FastDistiller(s, copy.deepcopy(teacher), build_loss("kd"), sgd(s), device=device)
        pair.append((s, f, stream, iter(cifar_loader(device))))
    for _ in range(len(cifar_loader(device))):
        for _, f, stream, batches in pair:
            with torch.cuda.stream(stream):
                f.step(*next(batches))
    torch.cuda.synchronize()
    for s, *_ in pair:
        assert rel_err(params(s), params(alone)) < 1e-4

