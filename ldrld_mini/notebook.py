"""Small helpers the course notebooks share: the checkout they run in, and printing without machine paths.

    REPO = repo_root()                      # the checkout, from notebooks/ or from the checkout itself
    show(check_dataset("cifar100").format())  # 'data/cifar-100-python', not '/home/you/ldrld-mini/data/...'
"""
from __future__ import annotations

import os
from pathlib import Path

__all__ = ["repo_root", "show"]


def repo_root(cwd: str | os.PathLike | None = None) -> Path:
    """The checkout a notebook runs in: the parent of `cwd` when it is `notebooks/`, else `cwd` (default: now)."""
    cwd = Path.cwd() if cwd is None else Path(cwd)
    return cwd.parent if cwd.name == "notebooks" else cwd


def show(text, root: str | os.PathLike | None = None) -> None:
    """Print `text` with the paths under `root` (default: `repo_root()`) written relative to it."""
    root = repo_root() if root is None else Path(root)
    print(str(text).replace(f"{root}/", ""))
