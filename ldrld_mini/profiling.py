"""What one call costs in operators, read from torch.profiler (the loss benchmark and the host-sync tests), and
what a measurement must be recorded with (`environment`: commit, device, torch, date).

    events = profile_events(lambda: loss(s, t, y).total.backward())
    top_level_ops(events)   # aten ops not called from inside another aten op: roughly one kernel launch each
    host_reads(events)      # aten::item / _local_scalar_dense: each one stalls a GPU step
"""
from __future__ import annotations

import datetime
import os
import subprocess
from pathlib import Path
from typing import Callable

__all__ = ["HOST_READS", "profile_events", "top_level_ops", "host_reads", "git_commit", "environment"]

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


def git_commit(root: str | os.PathLike | None = None) -> str:
    """`$LDRLD_COMMIT` if set (a copy without .git), else the checkout's short commit (+ uncommitted mark)."""
    if os.environ.get("LDRLD_COMMIT"):
        return os.environ["LDRLD_COMMIT"]
    root = Path(root) if root is not None else Path(__file__).resolve().parents[1]
    try:
        run = lambda *cmd: subprocess.run(cmd, cwd=root, capture_output=True, text=True,  # noqa: E731
                                          check=True).stdout.strip()
        commit = run("git", "rev-parse", "--short", "HEAD")
        dirty = run("git", "status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout; set LDRLD_COMMIT)"
    return commit + (" (with uncommitted changes)" if dirty else "")


def environment(device) -> dict:
    """Commit, torch version, device name (a CPU's cores, threads and load average), date: what a table of
    measurements must be recorded with."""
    import torch

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else \
        f"CPU ({os.cpu_count()} cores, {torch.get_num_threads()} torch threads, load average " \
        f"{os.getloadavg()[0]:.1f} at the end)"
    return {"commit": git_commit(), "device": name, "torch": torch.__version__,
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}
