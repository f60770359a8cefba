"""A run's teacher: which file it is loaded from, the one message for a missing file, loading it frozen, and
its identity (sha256) recorded in the run folder so a resume cannot silently switch teachers.

`check_teacher_checkpoint(cfg)` is the one check of the teacher's file: the CLI calls it before any data is
loaded, `load_teacher` calls it again, and both raise the same FileNotFoundError.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from ..recipes import Config
from ..runfolder import OVERWRITE_HINT, read_json

__all__ = ["resolve_checkpoint", "names_run_folder", "teacher_checkpoint_path", "check_teacher_checkpoint",
           "load_teacher", "freeze", "TEACHER_RECORD", "teacher_identity", "check_teacher_identity"]

PROG = "ldrld-mini"
CHECKPOINT_SUFFIXES = (".pt", ".pth", ".tar")
TEACHER_RECORD = "teacher.json"  # the teacher's identity, written when a distillation run starts


def resolve_checkpoint(path: str | os.PathLike) -> Path:
    """A checkpoint file, or a run folder (its best.pt, else last.pt)."""
    p = Path(path).expanduser()
    if p.is_dir():
        for name in ("best.pt", "last.pt"):
            if (p / name).is_file():
                return p / name
        raise FileNotFoundError(f"checkpoint folder {str(p)!r} holds neither best.pt nor last.pt; pass a "
                                f".pt/.pth file, or train into that run folder first (a teacher: method 'vanilla', "
                                f"`{PROG} train`).")
    return p


def names_run_folder(setting: str | None) -> bool:
    """True when a `model.teacher_checkpoint` names a run folder (no .pt/.pth/.tar suffix), not a file."""
    return bool(setting) and Path(setting).suffix not in CHECKPOINT_SUFFIXES


def _missing_teacher(cfg: Config, where: str) -> FileNotFoundError:
    """The one message for a teacher checkpoint that is not there; `where` says where it was looked for
    ("not found at 'path'"), the message how to get it."""
    from ..models import TEACHERS

    teacher, dataset, setting = cfg.model.teacher, cfg.dataset, cfg.model.teacher_checkpoint
    train_it = f"`{PROG} train --recipe {dataset} --model {teacher} --run-dir {{}}`"
    if dataset == "cifar100" and teacher in TEACHERS:
        hint = (f"Download the CRD teachers (`{PROG} teachers --fetch`; in Python ldrld_mini.models.fetch_teachers(); "
                "or by hand: mdistiller's cifar_teachers.tar / RepDistiller's fetch_pretrained_teachers.sh) and put "
                "the file there")
    elif dataset == "cifar100":
        hint = (f"{teacher!r} has no published CIFAR-100 checkpoint (`{PROG} teachers` lists those); train it "
                f"first ({train_it.format('DIR')}) and pass that folder")
    elif names_run_folder(setting):
        hint = f"Train the teacher into that folder first: {train_it.format(setting)}"
    elif dataset == "imagenet":
        hint = "Save torchvision's IMAGENET1K_V1 state dict there (V2 weights would inflate results)"
    elif dataset == "synthetic":
        hint = (f"Train the teacher first ({train_it.format('DIR')}; in Python fit a method='vanilla' config) "
                "and pass that folder")
    else:
        hint = "Put the teacher's checkpoint there"
    return FileNotFoundError(f"teacher checkpoint for {teacher!r} {where}. {hint}, or point "
                             "model.teacher_checkpoint=/path/to/checkpoint (a .pth/.pt file or a run folder).")


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


def teacher_checkpoint_path(cfg: Config) -> Path:
    """The file the teacher is loaded from: `model.teacher_checkpoint` (a file, or a run folder's best.pt /
    last.pt), else, for a published CIFAR-100 teacher, where `ldrld_mini.models.teacher_path` expects it
    (honouring $LDRLD_TEACHERS). The returned path may not exist (`check_teacher_checkpoint` says so);
    FileNotFoundError for an empty setting or a run folder holding no checkpoint."""
    setting = cfg.model.teacher_checkpoint
    if not setting:
        raise _missing_teacher(cfg, "is not set (model.teacher_checkpoint is empty)")
    try:
        path = resolve_checkpoint(setting)
    except FileNotFoundError:  # a run folder without best.pt / last.pt
        where = f"not found in {str(Path(setting).expanduser())!r} (a folder holding neither best.pt nor last.pt)"
        raise _missing_teacher(cfg, where) from None
    if not path.is_file():
        path = _published_teacher(cfg) or path
    return path


def check_teacher_checkpoint(cfg: Config) -> Path:
    """The teacher's checkpoint file (`teacher_checkpoint_path`); FileNotFoundError saying where it was looked
    for and how to get it when it is not there."""
    path = teacher_checkpoint_path(cfg)
    if not path.is_file():
        raise _missing_teacher(cfg, f"not found at {str(path)!r}")
    return path


def load_teacher(cfg: Config, num_classes: int, device: torch.device, *, trust_pickle: bool = False) -> nn.Module:
    """Build the teacher named in the config, load its checkpoint (strict), eval mode, frozen.

    `trust_pickle=True` (CLI `--trust-pickle`) also loads a whole checkpoint that pickles Python objects.
    """
    from ..models import build_model, load_checkpoint

    path = check_teacher_checkpoint(cfg)
    teacher = build_model(cfg.model.teacher, num_classes=num_classes, dataset=cfg.dataset)
    load_checkpoint(teacher, path, strict=True, trust_pickle=trust_pickle)
    return freeze(teacher.to(device))


def freeze(model: nn.Module) -> nn.Module:
    """Eval mode and no gradients (a teacher)."""
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def teacher_identity(path: str | os.PathLike) -> dict:
    """What the teacher file is, by content: its sha256 and size (and the path it was read from, for messages)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return {"path": str(path), "sha256": digest.hexdigest(), "bytes": Path(path).stat().st_size}


def check_teacher_identity(run_dir: Path, path: Path, say: Callable[[str], None]) -> None:
    """On resume: ValueError when the teacher file's content differs from the one the run started with
    (a moved but identical file is accepted); a folder without the record (older runs) is not checked."""
    record_path = run_dir / TEACHER_RECORD
    if not record_path.exists():
        say(f"{run_dir}: no {TEACHER_RECORD} (a run folder from before teachers were recorded); the teacher "
            f"{str(path)!r} is not checked against the one the run started with.")
        return
    saved = read_json(record_path, fix=f"delete it to resume unchecked, or {OVERWRITE_HINT}")
    now = teacher_identity(path)
    if saved.get("sha256") != now["sha256"]:
        raise ValueError(
            f"cannot resume {str(run_dir)!r}: the teacher differs from the one the run started with: "
            f"{saved.get('path')!r} (sha256 {str(saved.get('sha256'))[:12]}…, {saved.get('bytes')} bytes) then, "
            f"{now['path']!r} (sha256 {now['sha256'][:12]}…, {now['bytes']} bytes) now; resume with the "
            f"original teacher file, {OVERWRITE_HINT} with the new one, or choose another run folder.")
