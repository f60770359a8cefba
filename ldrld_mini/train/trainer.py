"""`fit`: one distillation (or vanilla) run from a resolved Config into a run folder, resumable exactly.

The loop: build (loaders, teacher, student, optimizer), then per epoch train, evaluate, write the epoch's
checkpoints; the folder itself (lock, resume / overwrite decision, files, failure record) is a
`ldrld_mini.runfolder.RunFolder`, whose module docstring lists the files. Every file is written atomically (a
.tmp renamed over it); a full or read-only disk raises RunWriteError naming the file, with the previous version
intact. Damaged files raise RunFileError naming the file.
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from ..recipes import ENGINE_LOSS_KEYS, Config
from ..recipes.config import LOSS_WEIGHTS, RUNTIME_KEYS
from ..runfolder import OVERWRITE_HINT, RUN_FILES, RunFileError, RunFolder, RunLockedError, RunWriteError
from .checks import check_config, num_classes_of
from .distributed import (DistContext, barrier, broadcast_buffers, broadcast_obj, cleanup, gather_obj, init_from_env,
                          main_decides, wrap_ddp)
from .logging import MetricsWriter, Printer, progress_enabled, truncate_metrics
from .loop import evaluate, make_scaler, train_one_epoch
from .rng import deterministic_mode, rng_state, seed_everything, set_rng_state
from .schedule import lr_at
from .teacher import (TEACHER_RECORD, check_teacher_identity, freeze, load_teacher, teacher_checkpoint_path,
                      teacher_identity)

__all__ = ["fit", "seed_everything", "deterministic_mode", "rng_state", "set_rng_state", "RUNTIME_KEYS",
           "RUN_FILES", "TrainingDivergedError", "RunFileError", "RunLockedError", "RunWriteError"]


class TrainingDivergedError(RuntimeError):
    """The loss (or the weights) stopped being finite; the run folder is marked failed (failed.json)."""


# ----------------------------------------------------------------------------------------------------------
# fit

def fit(config: Config | dict, run_dir: str | os.PathLike, *, resume: bool = False, quiet: bool | None = None,
        teacher: nn.Module | None = None, student: nn.Module | None = None, overwrite: bool = False,
        on_epoch_end: Callable[[dict], None] | None = None, trust_pickle: bool = False) -> dict:
    """Train the config's student (distilling from its teacher) into `run_dir`; returns the summary dict.

    `resume=True` continues from `last.pt` so the final weights equal an uninterrupted run; `overwrite=True`
    deletes the folder's run files, but only once the run has been built (config, data, teacher, student);
    `teacher=` / `student=` accept ready modules instead of building them by name; `on_epoch_end(record)` is
    called after each epoch's checkpoint is written; `trust_pickle=True` lets the teacher's checkpoint
    pickle Python objects. The folder is locked for the run's life (RunLockedError for a second writer);
    a non-finite loss stops the run with TrainingDivergedError and a failed.json.
    """
    from ..versions import check_torch

    check_torch()  # one clear error below the floor (an install that skipped the dependency check)
    cfg = config if isinstance(config, Config) else Config.from_dict(config)
    check_config(cfg)
    ctx = init_from_env(cfg.train.device)
    folder = RunFolder(run_dir, writes=ctx.is_main)
    try:
        with deterministic_mode(cfg.train.deterministic, ctx.device):
            return _fit(cfg, folder, ctx, resume=resume, quiet=quiet, teacher=teacher, student=student,
                        overwrite=overwrite, on_epoch_end=on_epoch_end, trust_pickle=trust_pickle)
    finally:
        folder.release()
        cleanup(ctx)


_CLAIM_ERRORS = (FileExistsError, FileNotFoundError, ValueError, RunFileError, RunLockedError, RunWriteError)


def _fit(cfg: Config, folder: RunFolder, ctx: DistContext, *, resume, quiet, teacher, student, overwrite,
         on_epoch_end, trust_pickle) -> dict:
    from ..losses import build_loss

    say = Printer(quiet, enabled=ctx.is_main)
    loss_options = {k: v for k, v in cfg.loss.items() if k not in ENGINE_LOSS_KEYS}
    loss_fn = build_loss(cfg.method, **loss_options)  # bad loss options fail before the folder is touched
    # rank 0 creates, locks and checks the folder; every rank gets its verdict (or raises its error)
    state = main_decides(lambda: folder.claim(cfg, resume=resume, overwrite=overwrite), ctx, _CLAIM_ERRORS)
    if state == "finished":
        say(f"{folder.path}: already finished; returning its summary.")
        return folder.read_summary()

    run = _build(cfg, ctx, loss_fn, teacher=teacher, student=student, trust_pickle=trust_pickle)
    if state == "resume":
        info, start_epoch = _resume(folder, ctx, run, say)
    else:
        info, start_epoch = _start(cfg, folder, ctx, run, say, clear=state == "overwrite", quiet=quiet), 1
    train_epoch = _epoch_trainer(cfg, ctx, run, quiet)
    writer = MetricsWriter(folder.path, enabled=ctx.is_main, tensorboard=cfg.train.tensorboard)
    try:
        for epoch in range(start_epoch, cfg.schedule.epochs + 1):
            t0 = time.perf_counter()
            lr = lr_at(epoch, cfg)
            stats = train_epoch(epoch, lr)
            problem = _divergence(stats, run.student)
            if problem:  # failed.json, then every rank stops
                raise TrainingDivergedError(folder.mark_failed(epoch=epoch, reason=problem, lr=lr,
                                                               losses=_losses(stats), causes=_likely_causes(cfg)))
            record = {"epoch": epoch, "lr": lr, **stats}
            if epoch % cfg.train.eval_every == 0 or epoch == cfg.schedule.epochs:
                broadcast_buffers(run.student, ctx)
                val = evaluate(run.student, run.val_loader, **run.eval_kw)
                record.update(val_top1=val["top1"], val_top5=val["top5"], val_loss=val["loss"])
                info["last_top1"] = val["top1"]
                if val["top1"] > info["best_top1"]:
                    info.update(best_top1=val["top1"], best_epoch=epoch)
                    folder.save_best(epoch, run.student, val["top1"])
            record["epoch_time"] = time.perf_counter() - t0
            record["images_per_s"] = stats["train_images"] / max(stats["train_time"], 1e-9)
            record["best_top1"] = info["best_top1"] if info["best_top1"] >= 0 else None
            info["elapsed"] += record["epoch_time"]
            writer.append(record)
            rngs = gather_obj(rng_state(run.train_loader), ctx)  # every rank's RNG states, for an exact resume
            folder.save_last(epoch, run.student, run.optimizer, run.scaler, rngs, info)
            barrier(ctx)
            say(_epoch_line(record, cfg.schedule.epochs))
            if on_epoch_end is not None:
                on_epoch_end(record)
    finally:
        writer.close()
    summary = folder.finish(broadcast_obj(folder.summary(cfg, info, world_size=ctx.world_size), ctx))  # rank 0's
    barrier(ctx)
    return summary


# ----------------------------------------------------------------------------------------------------------
# building, resuming, starting

@dataclass
class _Run:
    """What one run trains with; built before the run folder is written."""

    train_loader: Any
    val_loader: Any
    student: nn.Module
    teacher: nn.Module | None
    teacher_file: Path | None  # the teacher's checkpoint when it is loaded by name (its identity is recorded)
    optimizer: torch.optim.Optimizer
    scaler: Any  # torch.amp.GradScaler
    loss_fn: nn.Module
    loss_scale: float  # loss.legacy_double_weight: the loss is multiplied by ce_weight once more
    eval_kw: dict


def _build(cfg: Config, ctx: DistContext, loss_fn: nn.Module, *, teacher, student, trust_pickle) -> _Run:
    """Seed; then loaders, the teacher (loaded by name, or the module given; frozen), the student, SGD, scaler."""
    seed_everything(cfg.train.seed)
    device = ctx.device
    train_loader, val_loader = _build_loaders(cfg, ctx)
    n_classes = num_classes_of(cfg)
    teacher_file = None
    if getattr(loss_fn, "needs_teacher", False):
        if teacher is None:
            teacher_file = teacher_checkpoint_path(cfg)
            teacher = load_teacher(cfg, n_classes, device, trust_pickle=trust_pickle)
        else:
            teacher = freeze(teacher.to(device))
    else:
        teacher = None
    if student is None:
        from ..models import build_model
        student = build_model(cfg.model.student, num_classes=n_classes, dataset=cfg.dataset)
    student = student.to(device)
    if cfg.train.channels_last:
        student = student.to(memory_format=torch.channels_last)
        teacher = teacher.to(memory_format=torch.channels_last) if teacher is not None else None
    optimizer = torch.optim.SGD(student.parameters(), lr=lr_at(1, cfg), momentum=cfg.optim.momentum,
                                weight_decay=cfg.optim.weight_decay, nesterov=cfg.optim.nesterov)
    loss_scale = float(cfg.loss.get("ce_weight", 1.0)) if cfg.loss.get("legacy_double_weight") else 1.0
    eval_kw = dict(device=device, amp=cfg.train.amp, channels_last=cfg.train.channels_last, ctx=ctx)
    return _Run(train_loader, val_loader, student, teacher, teacher_file, optimizer, make_scaler(device, cfg.train.amp),
                loss_fn, loss_scale, eval_kw)


_NEW_INFO = {"best_top1": -1.0, "best_epoch": 0, "last_top1": None, "elapsed": 0.0, "teacher_top1": None}


def _resume(folder: RunFolder, ctx: DistContext, run: _Run, say) -> tuple[dict, int]:
    """Load last.pt into the run (weights, optimizer, scaler, this rank's RNG states); (info, first epoch)."""
    if run.teacher_file is not None:  # every rank: all raise alike
        check_teacher_identity(folder.path, run.teacher_file, say)
    ckpt = folder.read_last(ctx.device)
    run.student.load_state_dict(ckpt["model"])
    if not _finite_weights(run.student):
        raise RunFileError(f"{str(folder.path / 'last.pt')!r} (epoch {ckpt['epoch']}) holds non-finite weights: "
                           f"that run had diverged. {OVERWRITE_HINT}, e.g. with a smaller optim.lr.")
    run.optimizer.load_state_dict(ckpt["optimizer"])
    run.scaler.load_state_dict(ckpt["scaler"])
    info = {k: ckpt.get(k, v) for k, v in _NEW_INFO.items()}
    ranks = ckpt.get("rng_ranks") or []
    set_rng_state(ranks[ctx.rank] if len(ranks) == ctx.world_size else ckpt["rng"], run.train_loader)
    if ctx.is_main:
        truncate_metrics(folder.path, ckpt["epoch"])
    say(f"resuming {folder.path} after epoch {ckpt['epoch']}")
    return info, ckpt["epoch"] + 1


def _start(cfg: Config, folder: RunFolder, ctx: DistContext, run: _Run, say, *, clear: bool, quiet) -> dict:
    """A fresh start: per-rank seeds, the folder's first files (after --overwrite's deletions), the teacher's
    top-1 (its evaluation draws nothing from the training RNG streams); the info dict."""
    torch.manual_seed(cfg.train.seed + ctx.rank)  # per-rank augmentation streams (rank 0: the seed)
    if clear:  # named even with quiet=True (not in notebooks): files are deleted
        folder.clear(Printer(None if quiet else quiet))
    identity = teacher_identity(run.teacher_file) if run.teacher_file is not None and ctx.is_main else None
    folder.start(cfg, records={TEACHER_RECORD: identity})
    info = dict(_NEW_INFO)
    if run.teacher is not None:
        rng = rng_state()
        info["teacher_top1"] = evaluate(run.teacher, run.val_loader, **run.eval_kw)["top1"]
        set_rng_state(rng)
        say(f"teacher {cfg.model.teacher}: val top-1 {info['teacher_top1']:.2f}")
    return info


def _epoch_trainer(cfg: Config, ctx: DistContext, run: _Run, quiet) -> Callable[[int, float], dict]:
    """`train(epoch, lr)`: one epoch at `lr`, on the standard path (DDP-wrapped / compiled student) or the fast
    one (train.fast); returns the epoch's train statistics."""
    train_model, fast = _train_model(cfg, ctx, run.student, run.teacher, run.loss_fn, run.optimizer, run.loss_scale)
    teacher = run.teacher
    if cfg.train.compile and fast is None and teacher is not None:
        teacher = torch.compile(teacher)
    progress_on = progress_enabled(quiet)

    def train(epoch: int, lr: float) -> dict:
        for group in run.optimizer.param_groups:
            group["lr"] = lr
        _set_epoch(run.train_loader, epoch)
        if fast is not None:
            return fast.train_epoch(run.train_loader, epoch=epoch, lr=lr, show_progress=progress_on)
        return train_one_epoch(train_model, run.train_loader, run.loss_fn, run.optimizer, epoch=epoch,
                               teacher=teacher, device=ctx.device, amp=cfg.train.amp, scaler=run.scaler,
                               channels_last=cfg.train.channels_last, loss_scale=run.loss_scale,
                               log_every=cfg.train.log_every, show_progress=progress_on, ctx=ctx)

    return train


# ----------------------------------------------------------------------------------------------------------
# divergence

_NOT_LOSSES = ("train_top1", "train_images", "train_time")


def _finite_weights(model: nn.Module) -> bool:
    """True when every floating tensor of the model's state is finite (one host read)."""
    tensors = [t.detach() for t in model.state_dict().values() if t.is_floating_point() and t.numel()]
    if not tensors:
        return True
    return bool(torch.stack([t.abs().amax().float() for t in tensors]).isfinite().all())


def _divergence(stats: dict, model: nn.Module) -> str | None:
    """What is no longer finite after an epoch (the logged loss parts, else the weights), or None."""
    bad = {k: v for k, v in stats.items() if k.startswith("train_") and k not in _NOT_LOSSES
           and isinstance(v, float) and not math.isfinite(v)}
    if bad:
        return "the train loss is not finite (" + ", ".join(f"{k}={v}" for k, v in bad.items()) + ")"
    if not _finite_weights(model):
        return "the student's weights are no longer finite (inf or nan)"
    return None


def _likely_causes(cfg: Config) -> str:
    """'optim.lr=1000000.0 too large; loss.temperature=...; loss weights ...' for the divergence message."""
    causes = [f"optim.lr={cfg.optim.lr:g} too large"]
    if "temperature" in cfg.loss:
        causes.append(f"loss.temperature={cfg.loss['temperature']:g} too extreme")
    weights = [f"loss.{k}={cfg.loss[k]:g}" for k in LOSS_WEIGHTS if isinstance(cfg.loss.get(k), (int, float))]
    if weights:
        causes.append(f"loss weights too large ({', '.join(weights)})")
    return "; ".join(causes)


def _losses(stats: dict) -> dict:
    """The epoch's logged loss parts, a non-finite value as None (for failed.json)."""
    return {k: (v if isinstance(v, float) and math.isfinite(v) else None) for k, v in stats.items()
            if k.startswith("train_") and k not in _NOT_LOSSES}


def _train_model(cfg: Config, ctx: DistContext, student, teacher, loss_fn, optimizer, loss_scale):
    """(module the standard loop trains: DDP-wrapped / compiled student, None) or (None, FastDistiller)."""
    if not cfg.train.fast:
        model = wrap_ddp(student, ctx)
        return (torch.compile(model) if cfg.train.compile else model), None
    if ctx.world_size > 1:
        raise ValueError("train.fast=true runs one device per run; with torchrun use the standard path "
                         "(train.fast=false), or several single-device runs (ldrld_mini.train.multirun).")
    from .fast import FastDistiller
    fast = FastDistiller(student, teacher, loss_fn, optimizer, device=ctx.device, amp=cfg.train.amp,
                         channels_last=cfg.train.channels_last, compile_models=cfg.train.compile,
                         loss_scale=loss_scale)
    return None, fast


def _build_loaders(cfg: Config, ctx: DistContext):
    """Train / val loaders of the config; `data.batch_size` is the total over all ranks."""
    from ..data import build_loaders

    if cfg.data.batch_size % ctx.world_size:
        raise ValueError(f"data.batch_size={cfg.data.batch_size} is the total batch and must be divisible by "
                         f"the {ctx.world_size} ranks; choose a multiple of {ctx.world_size}.")
    kw = dict(cfg.data.options)
    if cfg.data.val_batch_size:
        kw["val_batch_size"] = max(cfg.data.val_batch_size // ctx.world_size, 1)
    return build_loaders(cfg.dataset, cfg.data.root, batch_size=cfg.data.batch_size // ctx.world_size,
                         num_workers=cfg.data.num_workers, distributed=ctx.distributed, seed=cfg.train.seed,
                         gpu_resident=cfg.data.gpu_resident, device=ctx.device, **kw)


def _set_epoch(loader, epoch: int) -> None:
    """Tell the loader (or its DistributedSampler) which epoch it is, for per-epoch shuffles."""
    if hasattr(loader, "set_epoch"):
        loader.set_epoch(epoch)
    elif hasattr(getattr(loader, "sampler", None), "set_epoch"):
        loader.sampler.set_epoch(epoch)


def _epoch_line(r: dict, epochs: int) -> str:
    val = f" val {r['val_top1']:.2f} (best {r['best_top1']:.2f})" if "val_top1" in r else ""
    return (f"epoch {r['epoch']}/{epochs} lr {r['lr']:.5g} loss {r.get('train_total', float('nan')):.4f} "
            f"train {r['train_top1']:.2f}{val} {r['epoch_time']:.1f}s {r['images_per_s']:.0f} img/s")
