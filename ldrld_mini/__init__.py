"""ldrld-mini: learn and reproduce LDRLD (Local Dense Logit Relations for Enhanced Knowledge Distillation).

Importing the package is cheap and never touches the network; rooms are imported on use:
`ldrld_mini.losses`, `ldrld_mini.models`, `ldrld_mini.data`, `ldrld_mini.recipes`, `ldrld_mini.train`.
The environment variables LDRLD_ONEDNN, LDRLD_THREADS and LDRLD_PERTURB switch float rounding
(`ldrld_mini.rounding`).
"""
from ldrld_mini.rounding import apply_environment as _apply_rounding_environment

__version__ = "0.1.0"

_apply_rounding_environment()
