"""`fit`: one distillation (or vanilla) run from a resolved Config into a run folder, resumable exactly.

Run folder contract (what `ldrld-mini results` reads):
    config.yaml    the resolved config
    metrics.jsonl  one JSON object per epoch (epoch, lr, train_<loss part>, train_top1, val_top1, val_top5,
                   val_loss, epoch_time, images_per_s, ...); metrics.csv mirrors it
    last.pt        model, optimizer, scaler, epoch, best_acc, RNG states (python, numpy, torch, cuda, data)
    best.pt        {'epoch', 'model', 'accuracy', 'best_acc'} of the best validation epoch (CRD layout)
    summary.json   written when the run finishes (best_acc, best_epoch, last_acc, epochs, wall time, ...)
"""
from __future__ import annotations

import json
import os
import random
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from ..recipes import ENGINE_LOSS_KEYS, Config
from ..recipes.config import RUNTIME_KEYS
from .distributed import DistContext, barrier, broadcast_buffers, cleanup, init_from_env, wrap_ddp
from .logging import MetricsWriter, Printer, progress_enabled, truncate_metrics
from .loop import evaluate, make_scaler, train_one_epoch
from .schedule import lr_at

__all__ = ["fit", "seed_everything", "deterministic_mode", "load_teacher", "resolve_checkpoint",
           "rng_state", "set_rng_state", "config_diff", "RUNTIME_KEYS", "RUN_FILES"]

RUN_FILES = ("config.yaml", "metrics.jsonl", "metrics.csv", "last.pt", "best.pt", "summary.json")


# ----------------------------------------------------------------------------------------------------------
# seeding and determinism

def seed_everything(seed: int) -> None:
    """Seed python's `random`, numpy and torch (CPU and every GPU)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@contextmanager
def deterministic_mode(enabled: bool, device: torch.device):
    """`torch.use_deterministic_algorithms(enabled)` (+ cuDNN flags) for the block, restored afterwards."""
    previous = (torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.benchmark,
                torch.backends.cudnn.deterministic)
    if enabled:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(enabled)
    torch.backends.cudnn.deterministic = enabled
    torch.backends.cudnn.benchmark = (not enabled) and device.type == "cuda"
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous[0])
        torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = previous[1], previous[2]


def _generators(loader) -> dict[str, torch.Generator]:
    """The torch.Generators a loader draws its shuffling from (loader, sampler, batch sampler's sampler)."""
    found = {}
    candidates = {"loader": loader, "sampler": getattr(loader, "sampler", None),
                  "batch_sampler.sampler": getattr(getattr(loader, "batch_sampler", None), "sampler", None)}
    for name, obj in candidates.items():
        gen = getattr(obj, "generator", None)
        if isinstance(gen, torch.Generator) and all(gen is not g for g in found.values()):
            found[name] = gen
    return found


def rng_state(loader=None) -> dict:
    """Every RNG state a resumed run needs (tensors and plain lists only, so weights_only loads work)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": {"kind": kind, "keys": keys.tolist(), "pos": int(pos), "has_gauss": int(has_gauss),
                  "cached": float(cached)},
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "data": {name: g.get_state() for name, g in _generators(loader).items()} if loader is not None else {},
    }
    return state


def set_rng_state(state: dict, loader=None) -> None:
    """Restore what `rng_state` captured."""
    random.setstate(_as_tuple(state["python"]))
    n = state["numpy"]
    np.random.set_state((n["kind"], np.asarray(n["keys"], dtype=np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    if loader is not None:
        for name, gen in _generators(loader).items():
            if name in state.get("data", {}):
                gen.set_state(state["data"][name])


def _as_tuple(x):
    return tuple(_as_tuple(v) for v in x) if isinstance(x, (list, tuple)) else x


# ----------------------------------------------------------------------------------------------------------
# models

def resolve_checkpoint(path: str | os.PathLike) -> Path:
    """A checkpoint file, or a run folder (its best.pt, else last.pt)."""
    p = Path(path).expanduser()
    if p.is_dir():
        for name in ("best.pt", "last.pt"):
            if (p / name).is_file():
                return p / name
        raise FileNotFoundError(f"teacher checkpoint folder {str(p)!r} holds neither best.pt nor last.pt; "
                                "train the teacher first (method='vanilla') into that run folder.")
    return p


def _missing_teacher(cfg: Config, path) -> FileNotFoundError:
    hint = {
        "cifar100": "Download the CRD teachers (ldrld_mini.models.fetch_teachers(), or by hand: mdistiller's "
                    "cifar_teachers.tar / RepDistiller's fetch_pretrained_teachers.sh) and put the file there",
        "imagenet": "Save torchvision's IMAGENET1K_V1 state dict there (V2 weights would inflate results)",
        "synthetic": "Train the teacher first: load_config('synthetic', student=<teacher>, method='vanilla'), "
                     "fit it into a run folder and pass that folder",
    }.get(cfg.dataset, "Put the teacher's checkpoint there")
    return FileNotFoundError(
        f"teacher checkpoint for {cfg.model.teacher!r} not found at {str(path)!r}. {hint}, or point "
        f"model.teacher_checkpoint=/path/to/checkpoint (a .pth/.pt file or a run folder)."
    )


def _published_teacher(cfg: Config) -> Path | None:
    """For CIFAR-100: the CRD teacher file where `ldrld_mini.models.teacher_path` (honouring
    $LDRLD_TEACHERS) expects it, when it exists there."""
    if cfg.dataset != "cifar100":
        return None
    from ..models import TEACHERS, teacher_path
    if cfg.model.teacher not in TEACHERS:
        return None
    path = teacher_path(cfg.model.teacher)
    return path if path.is_file() else None


def load_teacher(cfg: Config, num_classes: int, device: torch.device) -> nn.Module:
    """Build the teacher named in the config, load its checkpoint (strict), eval mode, frozen."""
    from ..models import build_model, load_checkpoint

    if not cfg.model.teacher_checkpoint:
        raise _missing_teacher(cfg, "<model.teacher_checkpoint is empty>")
    path = resolve_checkpoint(cfg.model.teacher_checkpoint)
    if not path.is_file():
        path = _published_teacher(cfg) or path
    if not path.is_file():
        raise _missing_teacher(cfg, path)
    teacher = build_model(cfg.model.teacher, num_classes=num_classes, dataset=cfg.dataset)
    load_checkpoint(teacher, path, strict=True)
    return freeze(teacher.to(device))


def freeze(model: nn.Module) -> nn.Module:
    """Eval mode and no gradients (a teacher)."""
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def num_classes_of(cfg: Config) -> int:
    """Classes of the config's data: `data.options.num_classes`, else the dataset registry's."""
    if cfg.data.options.get("num_classes"):
        return int(cfg.data.options["num_classes"])
    from ..data import DATASETS
    return DATASETS[cfg.dataset].num_classes


# ----------------------------------------------------------------------------------------------------------
# run folder

def config_diff(a: dict, b: dict, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two nested config dicts."""
    keys = []
    for k in sorted(set(a) | set(b)):
        va, vb = a.get(k), b.get(k)
        if isinstance(va, dict) and isinstance(vb, dict):
            keys += config_diff(va, vb, f"{prefix}{k}.")
        elif _norm(va) != _norm(vb):
            keys.append(f"{prefix}{k}")
    return keys


def _norm(v):
    return list(v) if isinstance(v, tuple) else v


def _atomic_save(obj: Any, path: Path) -> None:
    """torch.save to a temporary file, then rename over `path` (a crash never leaves half a file)."""
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _atomic_write_text(text: str, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _prepare_run_dir(cfg: Config, run_dir: Path, resume: bool, overwrite: bool) -> str:
    """Check the folder against resume/overwrite; returns 'fresh', 'resume' or 'finished'."""
    exists = any((run_dir / f).exists() for f in ("last.pt", "summary.json"))
    if overwrite:
        for name in RUN_FILES:
            (run_dir / name).unlink(missing_ok=True)
        return "fresh"
    if not exists:
        return "fresh"
    if not resume:
        state = "a finished run" if (run_dir / "summary.json").exists() else "an unfinished run"
        raise FileExistsError(f"run_dir={str(run_dir)!r} already holds {state}; pass resume=True to continue "
                              "it, overwrite=True to start again, or choose another folder.")
    if (run_dir / "config.yaml").exists():
        saved = Config.load_yaml(run_dir / "config.yaml").to_dict()
        diff = [k for k in config_diff(saved, cfg.to_dict()) if k not in RUNTIME_KEYS]
        if diff:
            raise ValueError(f"cannot resume {str(run_dir)!r}: the config differs in {diff}; resume with the "
                             "saved config (Config.load_yaml(run_dir / 'config.yaml')) or start a new run.")
    return "finished" if (run_dir / "summary.json").exists() else "resume"


# ----------------------------------------------------------------------------------------------------------
# fit

def fit(config: Config | dict, run_dir: str | os.PathLike, *, resume: bool = False, quiet: bool | None = None,
        teacher: nn.Module | None = None, student: nn.Module | None = None, overwrite: bool = False,
        on_epoch_end: Callable[[dict], None] | None = None) -> dict:
    """Train the config's student (distilling from its teacher) into `run_dir`; returns the summary dict.

    `resume=True` continues from `last.pt` so the final weights equal an uninterrupted run; `teacher=` /
    `student=` accept ready modules instead of building them by name; `on_epoch_end(record)` is called
    after each epoch's checkpoint is written.
    """
    cfg = config if isinstance(config, Config) else Config.from_dict(config)
    ctx = init_from_env(cfg.train.device)
    try:
        with deterministic_mode(cfg.train.deterministic, ctx.device):
            return _fit(cfg, Path(run_dir), ctx, resume=resume, quiet=quiet, teacher=teacher,
                        student=student, overwrite=overwrite, on_epoch_end=on_epoch_end)
    finally:
        cleanup(ctx)


def _fit(cfg: Config, run_dir: Path, ctx: DistContext, *, resume, quiet, teacher, student, overwrite,
         on_epoch_end) -> dict:
    from ..losses import build_loss

    say = Printer(quiet, enabled=ctx.is_main)
    state, error = "fresh", None
    if ctx.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        try:
            state = _prepare_run_dir(cfg, run_dir, resume, overwrite)
        except (FileExistsError, ValueError) as e:
            state, error = f"error:{type(e).__name__}:{e}", e
    state = _broadcast_obj(state, ctx)
    if state.startswith("error:"):  # every rank raises what rank 0 found
        _, kind, message = state.split(":", 2)
        raise error if error is not None else {"FileExistsError": FileExistsError}.get(kind, ValueError)(message)
    if state == "finished":
        say(f"{run_dir}: already finished; returning its summary.")
        return json.loads((run_dir / "summary.json").read_text())

    seed_everything(cfg.train.seed)
    device = ctx.device
    train_loader, val_loader = _build_loaders(cfg, ctx)
    n_classes = num_classes_of(cfg)

    loss_options = {k: v for k, v in cfg.loss.items() if k not in ENGINE_LOSS_KEYS}
    loss_fn = build_loss(cfg.method, **loss_options)
    loss_scale = float(cfg.loss.get("ce_weight", 1.0)) if cfg.loss.get("legacy_double_weight") else 1.0
    if getattr(loss_fn, "needs_teacher", False):
        teacher = freeze(teacher.to(device)) if teacher is not None else load_teacher(cfg, n_classes, device)
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
    scaler = make_scaler(device, cfg.train.amp)
    progress_on = progress_enabled(quiet)
    eval_kw = dict(device=device, amp=cfg.train.amp, channels_last=cfg.train.channels_last, ctx=ctx)

    info = {"best_acc": -1.0, "best_epoch": 0, "last_acc": None, "elapsed": 0.0, "teacher_top1": None}
    start_epoch = 1
    if state == "resume" and (run_dir / "last.pt").exists():
        ckpt = torch.load(run_dir / "last.pt", map_location=device, weights_only=True)
        student.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scaler.load_state_dict(ckpt["scaler"])
        info.update({k: ckpt.get(k, v) for k, v in info.items()})
        start_epoch = ckpt["epoch"] + 1
        ranks = ckpt.get("rng_ranks") or []
        set_rng_state(ranks[ctx.rank] if len(ranks) == ctx.world_size else ckpt["rng"], train_loader)
        if ctx.is_main:
            truncate_metrics(run_dir, ckpt["epoch"])
        say(f"resuming {run_dir} after epoch {ckpt['epoch']}")
    else:
        torch.manual_seed(cfg.train.seed + ctx.rank)  # per-rank augmentation streams (rank 0: the seed)
        if ctx.is_main:
            cfg.save_yaml(run_dir / "config.yaml")
            (run_dir / "metrics.jsonl").unlink(missing_ok=True)
        if teacher is not None:
            rng = rng_state()
            info["teacher_top1"] = evaluate(teacher, val_loader, **eval_kw)["top1"]
            set_rng_state(rng)
            say(f"teacher {cfg.model.teacher}: val top-1 {info['teacher_top1']:.2f}")

    train_model, fast = _train_model(cfg, ctx, student, teacher, loss_fn, optimizer, loss_scale)
    if cfg.train.compile and fast is None:
        teacher = torch.compile(teacher) if teacher is not None else None
    writer = MetricsWriter(run_dir, enabled=ctx.is_main, tensorboard=cfg.train.tensorboard)
    for epoch in range(start_epoch, cfg.schedule.epochs + 1):
        t0 = time.perf_counter()
        lr = lr_at(epoch, cfg)
        for group in optimizer.param_groups:
            group["lr"] = lr
        _set_epoch(train_loader, epoch)
        if fast is not None:
            stats = fast.train_epoch(train_loader, epoch=epoch, lr=lr, show_progress=progress_on)
        else:
            stats = train_one_epoch(train_model, train_loader, loss_fn, optimizer, epoch=epoch, teacher=teacher,
                                    device=device, amp=cfg.train.amp, scaler=scaler,
                                    channels_last=cfg.train.channels_last, loss_scale=loss_scale,
                                    log_every=cfg.train.log_every, show_progress=progress_on, ctx=ctx)
        record = {"epoch": epoch, "lr": lr, **stats}
        if epoch % cfg.train.eval_every == 0 or epoch == cfg.schedule.epochs:
            broadcast_buffers(student, ctx)
            val = evaluate(student, val_loader, **eval_kw)
            record.update(val_top1=val["top1"], val_top5=val["top5"], val_loss=val["loss"])
            info["last_acc"] = val["top1"]
            if val["top1"] > info["best_acc"]:
                info.update(best_acc=val["top1"], best_epoch=epoch)
                if ctx.is_main:
                    _atomic_save({"epoch": epoch, "model": student.state_dict(), "accuracy": val["top1"],
                                  "best_acc": val["top1"]}, run_dir / "best.pt")
        record["epoch_time"] = time.perf_counter() - t0
        record["images_per_s"] = stats["train_images"] / max(stats["train_time"], 1e-9)
        record["best_acc"] = info["best_acc"] if info["best_acc"] >= 0 else None
        info["elapsed"] += record["epoch_time"]
        writer.append(record)
        rngs = _gather_obj(rng_state(train_loader), ctx)  # every rank's RNG states, for an exact resume
        if ctx.is_main:
            _atomic_save({"epoch": epoch, "model": student.state_dict(), "optimizer": optimizer.state_dict(),
                          "scaler": scaler.state_dict(), "rng": rngs[0], "rng_ranks": rngs, **info},
                         run_dir / "last.pt")
        barrier(ctx)
        say(_epoch_line(record, cfg.schedule.epochs))
        if on_epoch_end is not None:
            on_epoch_end(record)
    writer.close()
    summary = _broadcast_obj(_summary(cfg, run_dir, info, ctx), ctx)  # rank 0's, on every rank
    if ctx.is_main:
        _atomic_write_text(json.dumps(summary, indent=2) + "\n", run_dir / "summary.json")
    barrier(ctx)
    return summary


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


def _broadcast_obj(value, ctx: DistContext):
    """Rank 0's `value` on every rank (identity in a single process)."""
    if not (ctx.distributed and ctx.world_size > 1):
        return value
    box = [value]
    torch.distributed.broadcast_object_list(box, src=0)
    return box[0]


def _gather_obj(value, ctx: DistContext) -> list:
    """`[value of rank 0, value of rank 1, ...]` on every rank (`[value]` in a single process)."""
    if not (ctx.distributed and ctx.world_size > 1):
        return [value]
    out = [None] * ctx.world_size
    torch.distributed.all_gather_object(out, value)
    return out


def _epoch_line(r: dict, epochs: int) -> str:
    val = f" val {r['val_top1']:.2f} (best {r['best_acc']:.2f})" if "val_top1" in r else ""
    return (f"epoch {r['epoch']}/{epochs} lr {r['lr']:.5g} loss {r.get('train_total', float('nan')):.4f} "
            f"train {r['train_top1']:.2f}{val} {r['epoch_time']:.1f}s {r['images_per_s']:.0f} img/s")


def _summary(cfg: Config, run_dir: Path, info: dict, ctx: DistContext) -> dict:
    return {
        "name": cfg.name, "dataset": cfg.dataset, "method": cfg.method, "teacher": cfg.model.teacher,
        "student": cfg.model.student, "seed": cfg.train.seed, "epochs": cfg.schedule.epochs,
        "best_acc": info["best_acc"], "best_top1": info["best_acc"], "best_epoch": info["best_epoch"],
        "last_acc": info["last_acc"], "last_top1": info["last_acc"], "teacher_top1": info["teacher_top1"],
        "wall_time_s": info["elapsed"], "world_size": ctx.world_size, "run_dir": str(run_dir.name),
    }
