"""Float-rounding switches read from the environment, so a test suite can run once more on another path.

A training run is chaotic: the same code on another CPU, with another thread count or without oneDNN
rounds convolution sums in another order and ends at other numbers. The tests and the notebooks must not
depend on that, so CI runs them twice (README, "Tests"):

    LDRLD_ONEDNN=0     torch.backends.mkldnn.enabled = False (other convolution kernels)
    LDRLD_THREADS=N    N torch threads wherever the code asks for a fixed count (other reduction order)
    LDRLD_THREADS=other  the other of 1 and 2: code asking for 1 thread gets 2, code asking for 2 gets 1

`apply_environment()` runs when `ldrld_mini` is imported (only if a variable is set, so a plain import
stays cheap); `set_threads(n)` is what notebooks and the demo call instead of `torch.set_num_threads(n)`.
"""
from __future__ import annotations

import os

__all__ = ["apply_environment", "set_threads", "rounding_path"]

_ONEDNN = "LDRLD_ONEDNN"
_THREADS = "LDRLD_THREADS"


def _threads_override(asked: int | None = None) -> int | None:
    """The thread count LDRLD_THREADS gives code that asks for `asked`, or None when it is unset."""
    raw = os.environ.get(_THREADS, "").strip()
    if not raw:
        return None
    if raw == "other":
        return None if asked is None else (2 if asked == 1 else 1)
    if not raw.isdigit() or int(raw) < 1:
        raise ValueError(f"{_THREADS}={raw!r} must be a positive integer or 'other', e.g. {_THREADS}=2 "
                         f"(or unset it)")
    return int(raw)


def _onednn_off() -> bool:
    """True when LDRLD_ONEDNN asks to switch oneDNN off; a clear error for values other than 0/1."""
    raw = os.environ.get(_ONEDNN, "").strip()
    if raw not in ("", "0", "1"):
        raise ValueError(f"{_ONEDNN}={raw!r} must be 0 (oneDNN off) or 1 (on, the default), or unset")
    return raw == "0"


def apply_environment() -> None:
    """Apply LDRLD_ONEDNN / LDRLD_THREADS to torch (imports torch only when one of them is set)."""
    off, threads = _onednn_off(), _threads_override()
    if not off and threads is None:
        return
    import torch

    if off:
        torch.backends.mkldnn.enabled = False
    if threads is not None:
        torch.set_num_threads(threads)


def set_threads(n: int) -> int:
    """`torch.set_num_threads(n)`, unless LDRLD_THREADS overrides it; returns the count in use."""
    import torch

    override = _threads_override(int(n))
    torch.set_num_threads(override if override is not None else int(n))
    return torch.get_num_threads()


def rounding_path() -> str:
    """A short description of the rounding in effect, e.g. 'oneDNN on, 1 thread'."""
    import torch

    n = torch.get_num_threads()
    return f"oneDNN {'on' if torch.backends.mkldnn.enabled else 'off'}, {n} thread{'s' if n != 1 else ''}"
