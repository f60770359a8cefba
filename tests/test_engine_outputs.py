"""What the engine hands out, checked against independent facts (not against itself).

- `best.pt` holds the weights of the best validation epoch, also when a later epoch is worse;
- the lr the optimizer holds during each epoch's steps is the schedule's lr of that epoch;
- `evaluate` runs in eval mode and leaves BatchNorm statistics untouched;
- top-1 / top-5 against a hand count on crafted logits; `reduce`, amp and channels_last of the one `evaluate`;
- the fast path honours the legacy double weight (`loss_scale`).
Each property holds on any CPU, thread count and with oneDNN off: no trained number is pinned, and
compared computations are the same arithmetic (or differ by an exact power-of-two scale).
"""
from __future__ import annotations

import copy
import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ldrld_mini.losses import build_loss
from ldrld_mini.models import evaluate as models_evaluate
from ldrld_mini.models.evaluate import topk_correct
from ldrld_mini.recipes import load_config
from ldrld_mini.rounding import set_threads
from ldrld_mini.train import fit
from ldrld_mini.train import loop as loop_module
from ldrld_mini.train import trainer as trainer_module
from ldrld_mini.train.fast import FastDistiller
from ldrld_mini.train.schedule import lr_schedule

TINY = ["data.options.num_classes=10", "data.options.train_per_class=2", "data.options.val_per_class=2",
        "batch_size=16", "data.val_batch_size=20", "train.device=cpu", "train.deterministic=true"]


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    set_threads(1)  # LDRLD_THREADS overrides (ldrld_mini.rounding)
    yield
    torch.set_num_threads(before)


def bn_net(seed=0, classes=10):
    """Conv + BatchNorm + ReLU + pool + linear, with non-default running statistics (eval != train mode)."""
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                        nn.Flatten(), nn.Linear(8, classes))
    with torch.no_grad():
        net[1].running_mean.uniform_(-1.0, 1.0)
        net[1].running_var.uniform_(0.5, 3.0)
        net[1].num_batches_tracked.fill_(7)
        net[-1].weight.mul_(10.0)  # confident logits: a loss that tells the two modes apart
    return net


def batches(n_batches=2, size=12, classes=10, seed=3):
    gen = torch.Generator().manual_seed(seed)
    return [(torch.randn(8, 3, size, size, generator=gen) * 2 + 0.5, torch.randint(0, classes, (8,), generator=gen))
            for _ in range(n_batches)]


# ----------------------------------------------------------------------------------------------------------
# best.pt

def test_best_pt_holds_the_best_epoch_when_a_later_epoch_is_worse(tmp_path, monkeypatch):
    """Validation accuracies are scripted (40, 60, 30): best.pt must be epoch 2's weights, not epoch 3's."""
    scripted = iter([40.0, 60.0, 30.0])

    def scripted_evaluate(model, loader, **kw):
        return {"top1": next(scripted), "top5": 90.0, "loss": 1.0, "n": 20}

    monkeypatch.setattr(trainer_module, "evaluate", scripted_evaluate)
    snapshots = {}

    def keep_last(record):  # last.pt right after each epoch: that epoch's weights
        ckpt = torch.load(tmp_path / "run" / "last.pt", map_location="cpu", weights_only=True)
        snapshots[record["epoch"]] = ckpt["model"]

    cfg = load_config("synthetic", student="resnet8", method="vanilla", overrides=[*TINY, "epochs=3", "milestones=[]"])
    summary = fit(cfg, tmp_path / "run", quiet=True, on_epoch_end=keep_last)
    best = torch.load(tmp_path / "run" / "best.pt", map_location="cpu", weights_only=True)
    assert (best["epoch"], best["accuracy"], best["best_acc"]) == (2, 60.0, 60.0)
    assert (summary["best_epoch"], summary["best_top1"], summary["last_top1"]) == (2, 60.0, 30.0)
    for key, value in snapshots[2].items():
        assert torch.equal(best["model"][key], value), key
    assert any(not torch.equal(best["model"][k], snapshots[3][k]) for k in snapshots[3])  # epoch 3 moved on
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["best_top1"] for r in rows] == [40.0, 60.0, 60.0]


# ----------------------------------------------------------------------------------------------------------
# the lr during each epoch

@pytest.mark.parametrize("path", ["standard", "fast", "legacy_warmup"])
def test_lr_used_in_each_epochs_steps_is_that_epochs_schedule(tmp_path, monkeypatch, path):
    """A spy on SGD.step records the lr each step runs with; warm-up then a step: every epoch differs."""
    seen, per_epoch = [], []
    original_step = torch.optim.SGD.step

    def spy(self, *args, **kwargs):
        seen.append(float(self.param_groups[0]["lr"]))  # a float, or the fast path's device tensor
        return original_step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.SGD, "step", spy)
    extra = {"standard": [], "fast": ["train.fast=true", "data.gpu_resident=true"],
             "legacy_warmup": ["schedule.legacy_warmup=true"]}[path]
    cfg = load_config("synthetic", student="resnet8", method="vanilla",
                      overrides=[*TINY, "epochs=4", "milestones=[3]", "schedule.warmup_epochs=3", "lr=0.06", *extra])
    expected = lr_schedule(cfg)
    assert len(set(expected[:2] + expected[3:])) == 3  # the schedule itself changes from epoch to epoch

    logged = []

    def cut(record):
        per_epoch.append(list(seen))
        seen.clear()
        logged.append(record["lr"])

    fit(cfg, tmp_path / "run", quiet=True, on_epoch_end=cut)
    assert [len(steps) for steps in per_epoch] == [2, 2, 2, 2]  # 20 images, batch 16
    rel = 1e-7 if path == "fast" else 1e-15  # the fast path holds the lr in a float32 tensor
    for epoch, (steps, lr) in enumerate(zip(per_epoch, expected), start=1):
        for got in steps:
            assert got == pytest.approx(lr, rel=rel), (epoch, got, lr)
    assert logged == expected  # the logged lr is the schedule's, as computed


# ----------------------------------------------------------------------------------------------------------
# evaluate: eval mode, BatchNorm untouched, hand-counted accuracy

def _buffers(model):
    return {k: v.clone() for k, v in model.named_buffers()}


@pytest.mark.parametrize("which", ["train.loop", "models"])
def test_evaluate_uses_eval_mode_and_leaves_batchnorm_statistics_alone(which):
    model = bn_net().train()
    before = _buffers(model)
    data = batches()
    if which == "train.loop":
        result = loop_module.evaluate(model, data)
    else:
        result = models_evaluate(model, data, "cpu", progress=False)
    after = _buffers(model)
    for key in before:  # running_mean, running_var and num_batches_tracked
        assert torch.equal(after[key], before[key]), key
    assert model.training  # the caller's mode is restored
    reference = copy.deepcopy(model).eval()  # what an eval-mode pass gives (running statistics)
    with torch.no_grad():
        logits = torch.cat([reference(x) for x, _ in data])
    labels = torch.cat([y for _, y in data])
    expected_loss = F.cross_entropy(logits, labels).item()
    with torch.no_grad():
        train_mode_loss = F.cross_entropy(torch.cat([model(x) for x, _ in data]), labels).item()
    assert abs(train_mode_loss - expected_loss) > 1e-2 * expected_loss  # the two modes are far apart here
    assert result["loss"] == pytest.approx(expected_loss, rel=1e-5)
    assert result["n"] == 16


def _ranked_logits(label_ranks, classes):
    """(B, C) logits whose row i ranks the label i (= 0) at position label_ranks[i] (1 = top); no ties."""
    rows = []
    for rank in label_ranks:
        scores = torch.arange(classes, 0, -1, dtype=torch.float32)  # class order 1..C gets C..1
        order = list(range(1, classes))
        order.insert(rank - 1, 0)  # class 0 (the label) at position `rank`
        row = torch.empty(classes)
        row[torch.tensor(order)] = scores
        rows.append(row)
    return torch.stack(rows)


def test_loop_top1_top5_equal_a_hand_count():
    ranks = [1, 2, 5, 6, 10, 3, 1, 7]  # label positions: top-1 hits 2, top-5 hits 5 of 8
    logits = _ranked_logits(ranks, classes=10)
    labels = torch.zeros(len(ranks), dtype=torch.long)
    assert (logits.argsort(dim=1, descending=True) == 0).float().argmax(dim=1).add(1).tolist() == ranks
    top1, top5 = topk_correct(logits, labels)
    assert (int(top1), int(top5)) == (2, 5)
    loader = [(logits[:5], labels[:5]), (logits[5:], labels[5:])]
    result = loop_module.evaluate(nn.Identity(), loader)
    assert result["top1"] == pytest.approx(100 * 2 / 8) and result["top5"] == pytest.approx(100 * 5 / 8)
    assert result["loss"] == pytest.approx(F.cross_entropy(logits, labels).item(), rel=1e-6)
    few = _ranked_logits([1, 3, 4], classes=4)  # fewer than 5 classes: top-5 is every row
    assert [int(c) for c in topk_correct(few, torch.zeros(3, dtype=torch.long))] == [1, 3]
    assert [int(c) for c in topk_correct(logits, labels, ks=(1, 2, 3))] == [2, 3, 4]


def test_one_evaluate_behind_every_entry_point():
    # the engine's evaluate, the CLI's and the models' are one implementation: the same numbers, bit for bit
    model, data = bn_net(), batches()
    engine = loop_module.evaluate(model, data)
    assert models_evaluate(model, data, "cpu", progress=False) == engine
    assert models_evaluate(model, data, "cpu", progress=False, channels_last=False, amp="none") == engine


def test_evaluate_reduce_adds_the_sums_of_other_processes():
    # a second process's sums come in through `reduce`: the result is the pass over both processes' data
    model, data = bn_net(), batches()
    first, second = data[:1], data[1:]
    other = {}

    def remember(sums):
        other.update(sums)
        return sums

    models_evaluate(model, second, progress=False, reduce=remember)
    assert set(other) == {"loss", "c1", "c5", "n"}
    both = models_evaluate(model, first, progress=False, reduce=lambda sums: {k: v + other[k] for k, v in sums.items()})
    whole = models_evaluate(model, data, progress=False)
    assert both["n"] == whole["n"] == 16
    assert both["top1"] == whole["top1"] and both["top5"] == whole["top5"]
    assert both["loss"] == pytest.approx(whole["loss"], rel=1e-12)


def test_evaluate_channels_last_and_amp_and_bad_input():
    model, data = bn_net(), batches()
    plain = models_evaluate(model, data, progress=False)
    assert models_evaluate(model, data, channels_last=True, progress=False)["loss"] == pytest.approx(plain["loss"],
                                                                                                      rel=1e-5)
    seen = []
    hook = model.register_forward_pre_hook(lambda module, args: seen.append(torch.is_autocast_enabled("cpu")))
    low = models_evaluate(model, data, amp="bf16", progress=False)
    hook.remove()
    assert seen and all(seen)  # the model ran under autocast
    assert low["n"] == 16 and low["loss"] == pytest.approx(plain["loss"], rel=0.05)
    with pytest.raises(ValueError, match="amp='fp8'"):
        models_evaluate(model, data, amp="fp8", progress=False)
    with pytest.raises(ValueError, match="no samples"):
        models_evaluate(model, [], progress=False)


# ----------------------------------------------------------------------------------------------------------
# the fast path's legacy double weight

def test_fast_distiller_scales_the_backward_by_loss_scale():
    """loss_scale = ce_weight (the legacy double weight): the gradients are the unscaled ones times it.

    The scale is 0.5, a power of two, and backward is linear in the incoming gradient, so the two
    computations round identically (exact up to underflow).
    """
    teacher = bn_net(1).eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    students = [bn_net(0), bn_net(0)]
    (x, y), = batches(1)
    results = []
    for student, scale in zip(students, (1.0, 0.5)):
        fast = FastDistiller(student, copy.deepcopy(teacher), build_loss("kd"),
                             torch.optim.SGD(student.parameters(), lr=0.1), device="cpu", amp="none",
                             channels_last=False, loss_scale=scale)
        parts, _ = fast.forward_backward(x, y)
        results.append((parts, torch.cat([p.grad.flatten() for p in student.parameters()])))
    (parts_1, grads_1), (parts_half, grads_half) = results
    for a, b in zip(parts_half, parts_1):  # the logged parts are the unscaled loss
        assert torch.equal(a, b)
    assert grads_1.abs().max() > 0
    torch.testing.assert_close(grads_half, 0.5 * grads_1, rtol=1e-6, atol=1e-12)


def test_evaluate_sums_the_loss_in_a_dtype_the_device_has():
    from ldrld_mini.models.evaluate import _sum_dtype

    assert _sum_dtype(torch.device("cpu")) == torch.float64
    assert _sum_dtype(torch.device("mps")) == torch.float32  # MPS cannot hold float64 tensors

