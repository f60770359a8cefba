"""Seeding, determinism and the RNG states a run saves so that a resumed run draws exactly what it would have.

`rng_state(loader)` captures python's, numpy's, torch's (CPU and every GPU) and the loader's shuffling
generators; `set_rng_state(state, loader)` puts them back. Everything is a tensor or a plain list, so a
checkpoint holding it loads with `torch.load(..., weights_only=True)`.
"""
from __future__ import annotations

import os
import random
from contextlib import contextmanager

import numpy as np
import torch

__all__ = ["seed_everything", "deterministic_mode", "rng_state", "set_rng_state"]


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
