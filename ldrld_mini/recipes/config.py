"""The resolved configuration of one run: a frozen tree of dataclasses that round-trips through YAML."""
from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "Config", "DataConfig", "ModelConfig", "OptimConfig", "ScheduleConfig", "TrainConfig",
    "METHODS", "AMP_MODES",
]

METHODS = ("vanilla", "kd", "dkd", "ldrld")
AMP_MODES = ("none", "bf16", "fp16")
# config keys that say where a run lives and how it is observed, not what it computes: they may differ when
# a run is resumed or a cached run is reused (train.trainer, demo) and never split a results group (results)
RUNTIME_KEYS = ("data.root", "data.num_workers", "model.teacher_checkpoint", "train.log_every",
                "train.device", "train.compile", "name")



def config_diff(a: dict, b: dict, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two nested config dicts (a tuple equals the same list)."""
    keys = []
    for k in sorted(set(a) | set(b)):
        va, vb = a.get(k), b.get(k)
        if isinstance(va, dict) and isinstance(vb, dict):
            keys += config_diff(va, vb, f"{prefix}{k}.")
        elif _as_list(va) != _as_list(vb):
            keys.append(f"{prefix}{k}")
    return keys


def experiment_diff(a: dict, b: dict) -> list[str]:
    """`config_diff` without the RUNTIME_KEYS: the keys in which two runs compute something different."""
    return [k for k in config_diff(a, b) if k not in RUNTIME_KEYS]


def _as_list(v):
    return list(v) if isinstance(v, tuple) else v

@dataclass(frozen=True)
class DataConfig:
    """Where the data lives and how it is batched; `options` go to the dataset builder as keywords."""

    root: str | None = None
    batch_size: int = 64  # total over all ranks; each rank gets batch_size // world_size
    val_batch_size: int | None = None  # None: same as batch_size
    num_workers: int = 0
    gpu_resident: bool = False
    options: dict = field(default_factory=dict)


@dataclass(frozen=True)
class ModelConfig:
    """Teacher and student names (model zoo names) and the teacher's weights (file or run folder)."""

    student: str = "resnet8"
    teacher: str | None = None
    teacher_checkpoint: str | None = None


@dataclass(frozen=True)
class OptimConfig:
    """SGD hyper-parameters (the only optimiser of the CRD protocol)."""

    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    nesterov: bool = False


@dataclass(frozen=True)
class ScheduleConfig:
    """Epoch budget and lr schedule: linear warm-up, then x gamma at each milestone (see train/schedule.py)."""

    epochs: int = 240
    milestones: tuple = (150, 180, 210)
    gamma: float = 0.1
    warmup_epochs: int = 0
    legacy_warmup: bool = False  # True: the public LDRLD code's warm-up that never restores the base lr


@dataclass(frozen=True)
class TrainConfig:
    """Engine switches: seeding, determinism, mixed precision, memory format, compile, logging cadence."""

    seed: int = 0
    deterministic: bool = False
    amp: str = "none"  # none | bf16 | fp16
    channels_last: bool = False
    compile: bool = False
    log_every: int = 100  # steps between progress-bar refreshes of the running loss
    eval_every: int = 1  # epochs between validations (the last epoch is always evaluated)
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    tensorboard: bool = False  # also log to run_dir/tb when tensorboard is installed
    fast: bool = False  # one-device fast path (train/fast.py: device-side sums, fused SGD, CUDA graphs)


SECTIONS = {"data": DataConfig, "model": ModelConfig, "optim": OptimConfig,
            "schedule": ScheduleConfig, "train": TrainConfig}


@dataclass(frozen=True)
class Config:
    """Everything one run needs; `loss` holds the keyword options of `losses.build_loss(method, ...)`."""

    name: str
    dataset: str
    method: str = "ldrld"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: dict = field(default_factory=dict)
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self):
        validate(self)

    def to_dict(self) -> dict:
        """A plain nested dict (lists, not tuples) ready for YAML or JSON."""
        return _plain(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, d: dict) -> "Config":
        """Build from a nested dict as written by `to_dict`; unknown keys raise a ValueError."""
        d = dict(d)
        _check_keys("config", d, [f.name for f in dataclasses.fields(cls)])
        for section, klass in SECTIONS.items():
            sub = dict(d.get(section) or {})
            _check_keys(section, sub, [f.name for f in dataclasses.fields(klass)])
            if "milestones" in sub:
                sub["milestones"] = tuple(sub["milestones"] or ())
            if "options" in sub:
                sub["options"] = dict(sub["options"] or {})
            d[section] = klass(**sub)
        d["loss"] = dict(d.get("loss") or {})
        return cls(**d)

    def save_yaml(self, path) -> Path:
        """Write the resolved config as YAML; returns the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))
        return path

    @classmethod
    def load_yaml(cls, path) -> "Config":
        """Read a config written by `save_yaml` (e.g. a run folder's config.yaml)."""
        return cls.from_dict(yaml.safe_load(Path(path).read_text()))


def _plain(x: Any) -> Any:
    """Tuples -> lists, recursively (YAML-safe)."""
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    return x


def _check_keys(where: str, d: dict, valid) -> None:
    unknown = sorted(set(d) - set(valid))
    if unknown:
        raise ValueError(f"unknown key(s) {unknown} in {where}; valid keys are {sorted(valid)}.")


def validate(cfg: Config) -> None:
    """Raise a ValueError naming the field when a value cannot work."""
    if cfg.method not in METHODS:
        raise ValueError(f"method={cfg.method!r} is not supported; use one of {list(METHODS)}.")
    if cfg.train.amp not in AMP_MODES:
        raise ValueError(f"train.amp={cfg.train.amp!r} is not supported; use one of {list(AMP_MODES)}.")
    s = cfg.schedule
    if not (isinstance(s.epochs, int) and s.epochs >= 1):
        raise ValueError(f"schedule.epochs={s.epochs!r} must be an integer >= 1.")
    if list(s.milestones) != sorted(s.milestones) or any(not isinstance(m, int) for m in s.milestones):
        raise ValueError(f"schedule.milestones={list(s.milestones)} must be increasing integers (epochs).")
    if not (isinstance(s.warmup_epochs, int) and s.warmup_epochs >= 0):
        raise ValueError(f"schedule.warmup_epochs={s.warmup_epochs!r} must be an integer >= 0 (0: no warm-up).")
    if not cfg.optim.lr > 0:
        raise ValueError(f"optim.lr={cfg.optim.lr!r} must be > 0.")
    if not (isinstance(cfg.data.batch_size, int) and cfg.data.batch_size >= 1):
        raise ValueError(f"data.batch_size={cfg.data.batch_size!r} must be an integer >= 1.")
    if cfg.method != "vanilla" and not cfg.model.teacher:
        raise ValueError(f"method={cfg.method!r} needs a teacher; set model.teacher (or use method='vanilla').")
    if cfg.loss.get("legacy_double_weight") and cfg.method != "ldrld":
        raise ValueError(f"loss.legacy_double_weight is the public LDRLD code's quirk and applies to method "
                         f"'ldrld' only, not method={cfg.method!r}; remove it.")
    for name in ("log_every", "eval_every"):
        if getattr(cfg.train, name) < 1:
            raise ValueError(f"train.{name}={getattr(cfg.train, name)!r} must be >= 1.")
    _validate_optim(cfg)
    _validate_loss(cfg.loss)
    _validate_train(cfg.train)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _validate_optim(cfg: Config) -> None:
    """Finite lr, momentum >= 0, weight_decay >= 0, gamma > 0; nesterov needs momentum."""
    o = cfg.optim
    if not (_is_number(o.lr) and math.isfinite(o.lr)):
        raise ValueError(f"optim.lr={o.lr!r} must be a finite number > 0, e.g. optim.lr=0.05.")
    for name in ("momentum", "weight_decay"):
        value = getattr(o, name)
        if not (_is_number(value) and math.isfinite(value) and value >= 0):
            raise ValueError(f"optim.{name}={value!r} must be a finite number >= 0 (the recipes use "
                             f"{'0.9' if name == 'momentum' else '5e-4'}).")
    if o.nesterov and o.momentum == 0:
        raise ValueError("optim.nesterov=true needs optim.momentum > 0; set optim.momentum=0.9 or nesterov=false.")
    g = cfg.schedule.gamma
    if not (_is_number(g) and math.isfinite(g) and g > 0):
        raise ValueError(f"schedule.gamma={g!r} must be a finite number > 0 (the lr is multiplied by it at each "
                         "milestone, e.g. 0.1).")


LOSS_WEIGHTS = ("alpha", "beta", "ce_weight", "kd_weight")  # loss terms' weights: >= 0
PAIR_WEIGHTINGS = ("adw", "irw", "erd", "uniform")  # = losses.PAIR_WEIGHTINGS (tested), without importing torch


def _validate_loss(loss: dict) -> None:
    """Loss numbers finite; temperature > 0; weights >= 0; k an integer >= 2; warmup an integer >= 0;
    LDRLD's ablation switches: pair_weighting one of PAIR_WEIGHTINGS, whole_group true or false."""
    for key, value in loss.items():
        if _is_number(value) and not math.isfinite(value):
            raise ValueError(f"loss.{key}={value!r} must be a finite number.")
    if "temperature" in loss and not (_is_number(loss["temperature"]) and loss["temperature"] > 0):
        raise ValueError(f"loss.temperature={loss['temperature']!r} must be a number > 0 (the papers use 4 on "
                         "CIFAR-100, 1 on ImageNet).")
    for key in LOSS_WEIGHTS:
        if key in loss and not (_is_number(loss[key]) and loss[key] >= 0):
            raise ValueError(f"loss.{key}={loss[key]!r} must be a number >= 0 (a loss weight; 0 switches the "
                             "term off).")
    k = loss.get("k")
    if k is not None and (isinstance(k, bool) or not isinstance(k, int) or k < 2):
        raise ValueError(f"loss.k={k!r} must be an integer >= 2 (the paper's default is 7).")
    warmup = loss.get("warmup")
    if warmup is not None and (isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0):
        raise ValueError(f"loss.warmup={warmup!r} must be an integer >= 0 (epochs of the DKD ramp).")
    if "pair_weighting" in loss and loss["pair_weighting"] not in PAIR_WEIGHTINGS:
        raise ValueError(f"loss.pair_weighting={loss['pair_weighting']!r} must be one of {list(PAIR_WEIGHTINGS)} "
                         "(adw = IRW * ERD, the paper's; irw or erd alone; uniform: every pair weighs 1).")
    if "whole_group" in loss and not isinstance(loss["whole_group"], bool):
        raise ValueError(f"loss.whole_group={loss['whole_group']!r} must be true or false (false drops the "
                         "whole-top-k group from LDRLD's local term).")


SEED_LIMIT = 2**32  # numpy's seed range; torch and the data order accept it too
DEVICE_PATTERN = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


def _validate_train(t: TrainConfig) -> None:
    """train.seed in [0, 2**32); train.device one of auto, cpu, mps, cuda, cuda:N."""
    if isinstance(t.seed, bool) or not isinstance(t.seed, int) or not 0 <= t.seed < SEED_LIMIT:
        raise ValueError(f"train.seed={t.seed!r} must be an integer in [0, {SEED_LIMIT - 1}], e.g. train.seed=0.")
    if not (isinstance(t.device, str) and DEVICE_PATTERN.match(t.device)):
        raise ValueError(f"train.device={t.device!r} is not a device; use auto, cpu, cuda or cuda:N (mps on Macs).")
