"""The fast path for CIFAR-size runs on one GPU: the same training step, with nothing wasted.

What changes is how the step runs, never what it computes (same recipe, same loss functions):
- batches come from a device-resident loader (`ldrld_mini.data.device_loader.DeviceLoader`), augmented there;
- the forward passes run under bf16 autocast (the losses stay float32), models and images channels_last;
- the loss parts come from the very term functions the loss modules call (`ldrld_parts_fused`,
  `kd_divergence`, ...), minus their per-call input checks, which read values back to the host: the
  checks run once, on the first batch;
- SGD runs as torch's fused kernel with the learning rate held in a device tensor (the same update:
  weight decay added to the gradient, momentum buffer, no Nesterov);
- loss parts and correct predictions are summed on the device and read once per epoch: no host
  synchronisation inside the epoch;
- on CUDA the whole step (teacher forward, student forward and backward, optimizer step, metric sums) is
  captured once as a CUDA graph after a few eager warm-up steps, then replayed: one launch per step.
  Batches of another size (the last one of an epoch) run eagerly through the same function.
On a CPU the same code runs without graphs and, by default, in float32 (CPUs without bf16 units emulate
it slowly). `compile_models` / `compile_loss` add torch.compile (inductor) inside the captured step.

    fast = FastDistiller(student, teacher, loss_fn, optimizer, device="cuda")
    for epoch in range(1, epochs + 1):
        stats = fast.train_epoch(train_loader, epoch=epoch, lr=lr_at(epoch, cfg))
"""
from __future__ import annotations

import contextlib
import itertools
import time
import warnings
from typing import Iterable, NamedTuple

import torch
from torch import Tensor, nn

from ..losses import CELoss, CEParts, DKDLoss, DKDParts, KDLoss, KDParts, LDRLDLoss
from ..losses.common import ce_loss, check_logits
from ..losses.dkd import target_non_target_kl
from ..losses.kd import kd_divergence
from ..losses.ldrld import LDRLDParts, ldrld_terms_einops
from ..losses.ldrld_fused import ldrld_parts_fused
from ..losses.weights import check_k
from ..models.evaluate import topk_correct
from .logging import progress

__all__ = ["FastDistiller", "FastLoss", "FAST_OVERRIDES", "resolve_amp", "resolve_graphs", "graph_safe_sgd"]

AMP_DTYPES = {"none": None, "bf16": torch.bfloat16}
# What `--fast` sets in a run's config (the lead's CLI applies these; `train.fast` selects FastDistiller).
FAST_OVERRIDES = ("train.fast=true", "data.gpu_resident=true", "train.amp=bf16", "train.channels_last=true")


def resolve_amp(amp: str, device: torch.device) -> str:
    """`auto` -> `bf16` on CUDA, `none` elsewhere; `none` / `bf16` as given."""
    if amp == "auto":
        return "bf16" if device.type == "cuda" else "none"
    if amp not in AMP_DTYPES:
        raise ValueError(f"amp={amp!r} is not supported by the fast path; use 'auto', 'bf16' or 'none' "
                         "(fp16 needs a GradScaler, which the standard path provides).")
    return amp


def resolve_graphs(cuda_graphs, device: torch.device) -> bool:
    """`auto` -> True on CUDA; True on a non-CUDA device is an error."""
    if cuda_graphs == "auto":
        return device.type == "cuda"
    if cuda_graphs and device.type != "cuda":
        raise ValueError(f"cuda_graphs=True needs a CUDA device, got device={str(device)!r}; "
                         "use cuda_graphs='auto' (graphs on CUDA only) or False.")
    return bool(cuda_graphs)


# ----------------------------------------------------------------------------------------------------------
# the loss, without host reads

class FastLoss:
    """A loss module's parts from the same term functions, with no value read back to the host.

    `check(ls, lt, y)` runs the module's input checks (once); `set_epoch(e)` updates the epoch-dependent
    weight (DKD's warm-up ramp) in a device tensor, so a captured graph sees it.
    """

    def __init__(self, loss_fn: nn.Module, device: torch.device):
        self.loss_fn, self.device = loss_fn, device
        self.ramp = torch.ones((), device=device)  # DKD's min(epoch / warmup, 1)
        self.epoch = None
        kinds = ((LDRLDLoss, self._ldrld), (KDLoss, self._kd), (DKDLoss, self._dkd), (CELoss, self._ce))
        self._terms = next((fn for kind, fn in kinds if type(loss_fn) is kind), None)
        self.graph_safe = self._terms is not None  # unknown modules run as they are (eagerly)

    def set_epoch(self, epoch: int) -> None:
        """Epoch (1-based) for epoch-dependent weights."""
        self.epoch = epoch
        if isinstance(self.loss_fn, DKDLoss):
            warmup = self.loss_fn.warmup
            self.ramp.fill_(1.0 if epoch is None or warmup <= 0 else min(epoch / warmup, 1.0))

    def check(self, logits_student: Tensor, logits_teacher: Tensor | None, target: Tensor) -> None:
        """The module's own input checks, once per run: `sync=True` reads the labels back, so a bad label is
        the loss's ValueError on any device (per step, the losses check without reading back)."""
        check_logits(logits_student, logits_teacher, target, sync=True)
        if isinstance(self.loss_fn, LDRLDLoss):
            check_k(self.loss_fn.options["k"], logits_student.shape[1])

    def __call__(self, logits_student: Tensor, logits_teacher: Tensor | None, target: Tensor) -> NamedTuple:
        if self._terms is None:
            return self.loss_fn(logits_student, logits_teacher, target, epoch=self.epoch)
        return self._terms(logits_student, logits_teacher, target)

    def _ldrld(self, ls, lt, y) -> LDRLDParts:
        o = self.loss_fn.options
        options = {key: value for key, value in o.items() if key != "impl"}
        if o["impl"] == "fused":  # the module's own fused node, minus its checks: the same numbers, bit for bit
            return ldrld_parts_fused(ls, lt, y, **options)
        # impl="einops": the named pieces of losses/ldrld.py, so an edit there trains here too
        ce_weight, alpha, beta = (options.pop(key) for key in ("ce_weight", "alpha", "beta"))
        local, remaining = ldrld_terms_einops(ls, lt, **options)
        ce = ce_loss(ls, y)
        return LDRLDParts(ce_weight * ce + alpha * local + beta * remaining, ce, local, remaining)

    def _kd(self, ls, lt, y):
        f = self.loss_fn
        ce, kd = ce_loss(ls, y), kd_divergence(ls, lt, f.temperature)
        return KDParts(f.ce_weight * ce + f.kd_weight * kd, ce, kd)

    def _dkd(self, ls, lt, y):
        f = self.loss_fn
        ce = ce_loss(ls, y)
        tckd, nckd = target_non_target_kl(ls, lt, y, f.temperature)
        return DKDParts(f.ce_weight * ce + self.ramp * (f.alpha * tckd + f.beta * nckd), ce, tckd, nckd)

    def _ce(self, ls, lt, y):
        ce = ce_loss(ls, y)
        return CEParts(self.loss_fn.ce_weight * ce, ce)


# ----------------------------------------------------------------------------------------------------------
# the optimizer

def graph_safe_sgd(optimizer: torch.optim.Optimizer, device: torch.device,
                   lrs: list[Tensor] | None = None) -> list[Tensor]:
    """Switch an SGD optimizer to the fused kernel with a device-tensor lr per group; returns those tensors.

    Same update rule (torch's SGD: `g + wd * p`, momentum buffer, `p -= lr * buf`); the fused kernel reads
    the lr from device memory, so a captured graph follows later lr changes without re-capture. Given
    `lrs` (the tensors of an earlier call), they are re-installed and take the value a group holds now
    (a float written by the caller, or the value restored by `optimizer.load_state_dict`).
    Momentum buffers get their parameter's memory layout (the fused kernel walks both in storage order).
    """
    if type(optimizer) is not torch.optim.SGD:
        raise ValueError(f"optimizer must be torch.optim.SGD (the CRD recipe), got {type(optimizer).__name__}; "
                         "the fast path relies on SGD's fused kernel with a tensor learning rate.")
    if lrs is None:
        lrs = [torch.zeros((), dtype=torch.float32, device=device) for _ in optimizer.param_groups]
        for tensor, group in zip(lrs, optimizer.param_groups):
            tensor.fill_(_as_float(group["lr"]))  # once, before training
    if len(lrs) != len(optimizer.param_groups):
        raise ValueError(f"optimizer has {len(optimizer.param_groups)} param groups, the fast path was set up "
                         f"with {len(lrs)}; do not add groups after creating the FastDistiller.")
    for tensor, group in zip(lrs, optimizer.param_groups):
        if group.get("differentiable"):
            raise ValueError("optimizer has differentiable=True, which the fused SGD kernel does not support.")
        if group["lr"] is not tensor:
            tensor.fill_(_as_float(group["lr"]))
        group.update(lr=tensor, fused=True, foreach=False)
        for p in group["params"]:
            buf = optimizer.state.get(p, {}).get("momentum_buffer")
            if buf is not None and buf.stride() != p.stride():  # e.g. resumed, then made channels_last
                optimizer.state[p]["momentum_buffer"] = torch.empty_like(p).copy_(buf)
    return lrs


def _as_float(value) -> float:
    """A python float from a float or a one-element tensor (a host read: only outside the epoch)."""
    return float(value.item() if isinstance(value, Tensor) else value)


# ----------------------------------------------------------------------------------------------------------
# the distiller

class FastDistiller:
    """Runs training steps and epochs of `student` distilled from `teacher` (None: plain CE) on one device.

    `step(images, labels)` performs one SGD step (eager, or a CUDA-graph replay) and only adds to on-device
    sums; `train_epoch(loader, epoch=, lr=)` runs a whole epoch and returns the same keys as
    `loop.train_one_epoch` (`train_<part>`, `train_top1`, `train_images`, `train_time`), reading the device
    once at the end. The optimizer is switched to fused SGD with device-tensor lrs (`graph_safe_sgd`).
    """

    def __init__(self, student: nn.Module, teacher: nn.Module | None, loss_fn: nn.Module,
                 optimizer: torch.optim.Optimizer, *, device: torch.device | str | None = None,
                 amp: str = "auto", channels_last: bool = True, cuda_graphs="auto", compile_models: bool = False,
                 compile_loss: bool = False, loss_scale: float = 1.0, warmup_steps: int = 3):
        if isinstance(student, nn.parallel.DistributedDataParallel):
            raise ValueError("student is wrapped in DistributedDataParallel; the fast path runs one GPU per run "
                             "(use several runs at once, see train/multirun.py, or the standard path with torchrun).")
        if getattr(loss_fn, "needs_teacher", False) and teacher is None:
            raise ValueError(f"loss_fn {type(loss_fn).__name__} needs a teacher, got teacher=None.")
        if warmup_steps < 1:
            raise ValueError(f"warmup_steps={warmup_steps} must be >= 1 (eager steps before a graph capture).")
        self.device = torch.device(device) if device is not None else next(student.parameters()).device
        self.amp = resolve_amp(amp, self.device)
        self.graphs = resolve_graphs(cuda_graphs, self.device)
        self.channels_last, self.loss_scale, self.warmup_steps = channels_last, float(loss_scale), warmup_steps
        self.student, self.teacher, self.optimizer = student, teacher, optimizer
        self.loss = FastLoss(loss_fn, self.device)
        if self.graphs and not self.loss.graph_safe:
            warnings.warn(f"loss {type(loss_fn).__name__} has no host-sync-free form here; CUDA graphs are off.",
                          stacklevel=2)
            self.graphs = False
        if channels_last:
            for model in (student, teacher):
                if model is not None:
                    model.to(memory_format=torch.channels_last)  # in place: the Parameters stay the same
        self._lrs = graph_safe_sgd(optimizer, self.device)
        self._student = torch.compile(student, dynamic=False) if compile_models else student
        self._teacher = torch.compile(teacher, dynamic=False) if (compile_models and teacher is not None) \
            else teacher
        self._loss = torch.compile(self.loss.__call__, dynamic=False) if compile_loss else self.loss
        self._checked = False
        self._sums: Tensor | None = None  # (parts,) sum over samples of each loss part
        self._correct = torch.zeros((), dtype=torch.int64, device=self.device)
        self._fields: tuple[str, ...] = ()
        self._graph, self._graph_fingerprint = None, ()
        self._static: tuple[Tensor, Tensor] | None = None
        self._graph_batch: int | None = None  # the batch size the graph is (or will be) captured for
        self._eager_full_steps = 0
        self._side = torch.cuda.Stream(self.device) if self.graphs else None

    # -- settings --------------------------------------------------------------------------------------

    def set_lr(self, lr: float | None = None) -> None:
        """Write `lr` into every group's device lr (None: adopt what the caller wrote into param_groups)."""
        if lr is not None:
            for group in self.optimizer.param_groups:
                group["lr"] = float(lr)
        graph_safe_sgd(self.optimizer, self.device, self._lrs)

    def set_epoch(self, epoch: int) -> None:
        """Epoch (1-based) for epoch-dependent loss weights."""
        self.loss.set_epoch(epoch)

    def _fingerprint(self) -> tuple:
        """Where every tensor a captured graph reads or writes lives (parameters, buffers, momentum)."""
        models = [m for m in (self.student, self.teacher) if m is not None]
        tensors = [t for m in models for t in itertools.chain(m.parameters(), m.buffers())]
        tensors += [self.optimizer.state.get(p, {}).get("momentum_buffer") for p in self.student.parameters()]
        return tuple(0 if t is None else t.data_ptr() for t in tensors)

    def _check_graph(self) -> None:
        """Drop the graph (a new capture follows) if a tensor it uses was replaced, e.g. by load_state_dict."""
        if self._graph is not None and self._fingerprint() != self._graph_fingerprint:
            self._graph, self._static, self._eager_full_steps = None, None, 0

    @property
    def captured(self) -> bool:
        """True once the step has been captured as a CUDA graph."""
        return self._graph is not None

    # -- one step --------------------------------------------------------------------------------------

    def _autocast(self):
        dtype = AMP_DTYPES[self.amp]
        if dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=dtype, cache_enabled=False)  # graphs need no cast cache

    def _prepare(self, images: Tensor) -> Tensor:
        return images.contiguous(memory_format=torch.channels_last) if self.channels_last else images

    def forward_backward(self, images: Tensor, labels: Tensor):
        """Teacher and student forward, loss parts, backward (gradients accumulate into `.grad`)."""
        with self._autocast():
            logits_t = None
            if self.teacher is not None:
                with torch.no_grad():
                    logits_t = self._teacher(images)
            logits_s = self._student(images)
        ls, lt = logits_s.float(), None if logits_t is None else logits_t.float()
        if not self._checked:
            self.loss.check(ls, lt, labels)
            self._checked = True
        parts = self._loss(ls, lt, labels)
        loss = parts.total * self.loss_scale if self.loss_scale != 1.0 else parts.total
        loss.backward()
        return parts, logits_s

    def _train_step(self, images: Tensor, labels: Tensor) -> None:
        """forward_backward + optimizer step + on-device sums (the body a CUDA graph captures)."""
        parts, logits_s = self.forward_backward(images, labels)
        self.optimizer.step()
        values = torch.stack([p.detach().float() for p in parts])  # (parts,)
        if self._sums is None:
            self._sums, self._fields = torch.zeros_like(values), parts._fields
        self._sums.add_(values * labels.shape[0])
        self._correct.add_(topk_correct(logits_s.detach(), labels, ks=(1,))[0])

    def _eager_step(self, images: Tensor, labels: Tensor) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        self._train_step(self._prepare(images), labels)

    def step(self, images: Tensor, labels: Tensor) -> None:
        """One training step on a batch already on the device: (B, 3, H, W) float, (B,) int64."""
        if not self.graphs:
            return self._eager_step(images, labels)
        if self._graph_batch is None:
            self._graph_batch = labels.shape[0]
        if labels.shape[0] != self._graph_batch:
            return self._eager_step(images, labels)  # e.g. the last, smaller batch of an epoch
        if self._graph is not None:
            self._static[0].copy_(images)
            self._static[1].copy_(labels)
            return self._graph.replay()
        if self._eager_full_steps < self.warmup_steps:
            self._eager_full_steps += 1
            return self._side_stream_step(images, labels)
        self._capture(images, labels)

    def _side_stream_step(self, images: Tensor, labels: Tensor) -> None:
        """An eager warm-up step on a side stream (lazy initialisations happen outside any capture)."""
        current = torch.cuda.current_stream(self.device)
        self._side.wait_stream(current)
        with torch.cuda.stream(self._side):
            self._eager_step(images, labels)
        current.wait_stream(self._side)

    def _capture(self, images: Tensor, labels: Tensor) -> None:
        """Capture the step on static buffers, then replay it for this batch (capture runs nothing)."""
        static_x = torch.empty_like(self._prepare(images))
        static_x.copy_(images)
        self._static = (static_x, labels.clone())
        self.optimizer.zero_grad(set_to_none=True)  # the graph writes fresh gradients each replay
        graph = torch.cuda.CUDAGraph()
        try:
            with torch.cuda.graph(graph, capture_error_mode="thread_local"):
                self._train_step(*self._static)
        except Exception as error:  # noqa: BLE001 - fall back to eager steps, never lose the run
            warnings.warn(f"CUDA graph capture failed ({type(error).__name__}: {error}); continuing eagerly.",
                          stacklevel=3)
            self.graphs, self._static = False, None
            torch.cuda.synchronize(self.device)
            return self._eager_step(images, labels)
        self._graph, self._graph_fingerprint = graph, self._fingerprint()
        graph.replay()

    # -- one epoch -------------------------------------------------------------------------------------

    def reset_sums(self) -> None:
        """Zero the on-device sums (in place: a captured graph keeps adding to the same memory)."""
        if self._sums is not None:
            self._sums.zero_()
        self._correct.zero_()

    def read_sums(self, seen: int) -> dict:
        """Per-sample means of the loss parts (`train_<part>`) and `train_top1`: the one host read."""
        values = torch.cat([self._sums, self._correct.float()[None]]).tolist() if self._sums is not None \
            else [float(self._correct)]
        n = max(seen, 1)
        out = {f"train_{name}": value / n for name, value in zip(self._fields, values[:-1])}
        out["train_top1"] = 100.0 * values[-1] / n
        out["train_images"] = int(seen)
        return out

    def train_epoch(self, loader: Iterable, *, epoch: int, lr: float | None = None, show_progress: bool = False,
                    max_steps: int | None = None) -> dict:
        """Train one epoch over `loader` (device batches); returns the keys of `loop.train_one_epoch`.

        `lr=None` adopts what the caller wrote into `optimizer.param_groups` (the trainer's habit).
        """
        self.student.train()
        if self.teacher is not None:
            self.teacher.eval()
        self.set_lr(lr)
        self._check_graph()
        self.set_epoch(epoch)
        self.reset_sums()
        seen, start = 0, time.perf_counter()
        total = _len(loader) if max_steps is None else max_steps
        for step, (images, labels) in enumerate(progress(loader, enabled=show_progress, total=total,
                                                         desc=f"epoch {epoch}")):
            if max_steps is not None and step >= max_steps:
                break
            self.step(images.to(self.device, non_blocking=True), labels.to(self.device, non_blocking=True))
            seen += labels.shape[0]
        out = self.read_sums(seen)
        out["train_time"] = time.perf_counter() - start
        return out


def _len(loader) -> int | None:
    try:
        return len(loader)
    except TypeError:
        return None
