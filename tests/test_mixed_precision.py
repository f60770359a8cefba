"""Mixed precision on the standard path (issue 18 point 1): bf16 autocast through `fit` on the CPU, and the
fp16 GradScaler logic under a forced overflow (the step is skipped, the scale backs off, then grows again).

torch 2.14's `torch.amp.GradScaler("cpu")` and CPU float16 autocast run for real here: nothing is mocked. The
overflow is forced in the gradient only (an identity whose backward multiplies by inf on one chosen step), so
the logged loss stays finite and the engine's divergence guard does not stop the run.
"""
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from ldrld_mini.recipes import load_config
from ldrld_mini.rounding import set_threads
from ldrld_mini.train import fit
from ldrld_mini.train.loop import train_one_epoch

OVERRIDES = ["data.options.num_classes=10", "data.options.train_per_class=4", "data.options.val_per_class=2",
             "batch_size=20", "data.val_batch_size=20", "train.device=cpu", "epochs=1", "milestones=[]"]


class _InfGrad(torch.autograd.Function):
    """Identity; its backward returns inf gradients when `flag[0]` is set."""

    @staticmethod
    def forward(ctx, x, flag):
        ctx.flag = flag
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return (grad * float("inf") if ctx.flag[0] else grad), None


class Net(nn.Module):
    """Conv -> pooled features -> linear head; records the conv output dtype of each train-mode forward and can
    make the gradient of one chosen training step (1-based) infinite."""

    def __init__(self, overflow_step=None, on_forward=None, num_classes=10):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.head = nn.Linear(8, num_classes)
        self.overflow_step, self.on_forward = overflow_step, on_forward
        self.steps, self.dtypes = 0, []

    def forward(self, x):
        h = self.conv(x)
        if self.training:
            self.steps += 1
            self.dtypes.append(h.dtype)
            if self.on_forward is not None:
                self.on_forward(self)
            h = _InfGrad.apply(h, [self.steps == self.overflow_step])
        return self.head(torch.relu(h).mean(dim=(2, 3)))


def _net(**kw):
    torch.manual_seed(0)
    return Net(**kw)


def _cfg(*extra):
    return load_config("synthetic", teacher="resnet8", student="resnet8", method="ldrld",
                       overrides=OVERRIDES + list(extra))


def _teacher():
    torch.manual_seed(1)
    return Net()


def test_bf16_autocast_trains_through_fit_on_the_standard_path(tmp_path):
    set_threads(1)
    student, teacher_bf16 = _net(), _teacher()
    summary = fit(_cfg("train.amp=bf16"), tmp_path / "bf16", quiet=True, student=student, teacher=teacher_bf16)
    reference = _net()
    fit(_cfg(), tmp_path / "fp32", quiet=True, student=reference, teacher=_teacher())
    assert student.dtypes and set(student.dtypes) == {torch.bfloat16}  # every training forward autocast
    assert set(reference.dtypes) == {torch.float32}
    assert all(p.dtype == torch.float32 and p.isfinite().all() for p in student.parameters())
    assert summary["last_top1"] is not None
    init = _net().state_dict()
    trained, fp32 = student.state_dict(), reference.state_dict()
    for key in ("conv.weight", "head.weight"):
        assert not torch.equal(trained[key], init[key]), key  # it trained
        assert not torch.equal(trained[key], fp32[key]), key  # in bf16, not in float32
        torch.testing.assert_close(trained[key], fp32[key], rtol=0.05, atol=0.02)  # to bf16 precision


class Parts(NamedTuple):
    total: torch.Tensor


def _ce(logits_s, logits_t, labels, epoch=None):
    return Parts(F.cross_entropy(logits_s, labels))


def test_grad_scaler_skips_the_overflow_step_backs_off_and_grows(tmp_path):
    """train_one_epoch with amp=fp16 and a scaler that grows after every finite step: step 2 overflows."""
    set_threads(1)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0 ** 10, growth_interval=1)
    scales, weights = [], []

    def seen(net):  # the state at the start of each step, i.e. after the previous step's update
        scales.append(scaler.get_scale())
        weights.append(net.head.weight.detach().clone())

    student = _net(overflow_step=2, on_forward=seen)
    g = torch.Generator().manual_seed(0)
    batches = [(torch.randn(4, 3, 8, 8, generator=g), torch.randint(0, 10, (4,), generator=g)) for _ in range(4)]
    optimizer = torch.optim.SGD(student.parameters(), lr=0.1)
    steps = []
    optimizer.register_step_post_hook(lambda *a: steps.append(1))
    stats = train_one_epoch(student, batches, _ce, optimizer, epoch=1, amp="fp16", scaler=scaler)
    assert set(student.dtypes) == {torch.float16}
    assert scales == [2.0 ** 10, 2.0 ** 11, 2.0 ** 10, 2.0 ** 11]  # grow, back off (overflow), grow
    assert scaler.get_scale() == 2.0 ** 12
    assert len(steps) == 3  # the overflow step was skipped ...
    assert torch.equal(weights[2], weights[1]) and not torch.equal(weights[1], weights[0])  # ... its weights kept
    assert not torch.equal(weights[3], weights[2])
    assert all(p.isfinite().all() for p in student.parameters())
    assert torch.isfinite(torch.tensor(stats["train_total"]))


def test_fp16_run_through_fit_survives_an_overflow_and_checkpoints_the_backed_off_scale(tmp_path):
    """The engine's own scaler (make_scaler: init 65536, growth every 2000 steps): one overflowing step halves
    the scale, the weights stay finite, and last.pt stores the halved scale for the resume."""
    set_threads(1)
    student = _net(overflow_step=1)
    fit(_cfg("train.amp=fp16"), tmp_path / "fp16", quiet=True, student=student, teacher=_teacher())
    assert student.steps == 2 and set(student.dtypes) == {torch.float16}
    last = torch.load(tmp_path / "fp16" / "last.pt", weights_only=True)
    assert last["scaler"]["scale"] == 2.0 ** 15
    assert all(p.isfinite().all() for p in student.parameters())
