"""Models: the CRD CIFAR-100 zoo (checkpoint-compatible), ImageNet and Tiny-ImageNet models, checkpoints.

`build_model(name, num_classes)` -> nn.Module whose `model(x)` returns logits; `list_models()`;
`extract_features(model, x)` -> stage outputs, "pooled" and "logits"; `load_checkpoint(model, path)`;
the published teachers in `TEACHERS` (see `teachers.py`); `evaluate(model, loader, device)`.
"""
from .base import FeatureModel
from .checkpoints import CheckpointError, CorruptCheckpointError, UntrustedCheckpointError, load_checkpoint
from .evaluate import evaluate
from .features import extract_features
from .registry import ALIASES, ModelInfo, build_model, list_models
from .teachers import (
    TEACHERS,
    TeacherCheckError,
    TeacherDownloadError,
    TeacherInfo,
    fetch_teachers,
    find_teacher,
    format_teacher_table,
    teacher_path,
)

__all__ = [
    "ALIASES", "TEACHERS", "CheckpointError", "CorruptCheckpointError", "FeatureModel", "ModelInfo",
    "TeacherCheckError", "TeacherDownloadError", "TeacherInfo", "UntrustedCheckpointError", "build_model",
    "evaluate", "extract_features", "fetch_teachers", "find_teacher", "format_teacher_table", "list_models",
    "load_checkpoint", "teacher_path",
]
