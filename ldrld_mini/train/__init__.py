"""The training engine: lr schedules, one-epoch loops, `fit` (resumable run folders), DDP and logging helpers."""
from .distributed import DistContext, init_from_env
from .loop import evaluate, train_one_epoch
from .schedule import decay_steps, lr_at, lr_schedule
from .rng import seed_everything
from .teacher import load_teacher, resolve_checkpoint
from .trainer import TrainingDivergedError, fit

__all__ = ["fit", "train_one_epoch", "evaluate", "lr_at", "lr_schedule", "decay_steps", "load_teacher",
           "resolve_checkpoint", "seed_everything", "DistContext", "init_from_env", "TrainingDivergedError"]
