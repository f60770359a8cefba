"""What one call costs in operators, read from torch.profiler (the loss benchmark and the host-sync tests).

    events = profile_events(lambda: loss(s, t, y).total.backward())
    top_level_ops(events)   # aten ops not called from inside another aten op: roughly one kernel launch each
    host_reads(events)      # aten::item / _local_scalar_dense: each one stalls a GPU step
"""
from __future__ import annotations

from typing import Callable

__all__ = ["HOST_READS", "profile_events", "top_level_ops", "host_reads"]

HOST_READS = ("aten::item", "aten::_local_scalar_dense")


def profile_events(fn: Callable[[], object]):
    """The CPU profiler's events of one call of `fn()`."""
    import torch

    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        fn()
    return prof.events()


def _is_top_level(event) -> bool:
    """True when no enclosing event is an aten op."""
    parent = event.cpu_parent
    while parent is not None:
        if parent.name.startswith("aten::"):
            return False
        parent = parent.cpu_parent
    return True


def top_level_ops(events) -> list[str]:
    """Names of the top-level aten ops, in order."""
    return [e.name for e in events if e.name.startswith("aten::") and _is_top_level(e)]


def host_reads(events) -> list[str]:
    """Names of the events that read a value back to the host."""
    return [e.name for e in events if e.name in HOST_READS]
