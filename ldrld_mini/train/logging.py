"""Run-folder logging: metrics.jsonl (+ metrics.csv), optional TensorBoard, and quiet-aware progress bars."""
from __future__ import annotations

import csv
import io
import json
import math
import os
import sys
import warnings
from pathlib import Path
from typing import Iterable

from ..runfolder import append_line, atomic_write_text, current_names, read_jsonl

__all__ = ["MetricsWriter", "read_metrics", "truncate_metrics", "progress_enabled", "in_notebook",
           "progress", "Printer"]


def _clean(value):
    """JSON-safe scalar: floats rounded to 6 significant digits, NaN/inf as None."""
    if isinstance(value, float):
        return None if not math.isfinite(value) else float(f"{value:.6g}")
    return value


class MetricsWriter:
    """Appends one JSON object per epoch to `metrics.jsonl`, mirrors it to `metrics.csv` and TensorBoard."""

    def __init__(self, run_dir, *, enabled: bool = True, tensorboard: bool = False):
        self.run_dir, self.enabled = Path(run_dir), enabled
        self.jsonl, self.csv = self.run_dir / "metrics.jsonl", self.run_dir / "metrics.csv"
        self.tb = _tensorboard_writer(self.run_dir / "tb") if (enabled and tensorboard) else None

    def append(self, record: dict) -> None:
        """Write one epoch's record (rank 0 only; other ranks are disabled writers)."""
        if not self.enabled:
            return
        record = {k: _clean(v) for k, v in record.items()}
        append_line(self.jsonl, json.dumps(record))
        self._rewrite_csv()
        if self.tb is not None:
            for key, value in record.items():
                if isinstance(value, (int, float)) and key != "epoch" and value is not None:
                    self.tb.add_scalar(key, value, record.get("epoch", 0))
            self.tb.flush()

    def _rewrite_csv(self) -> None:
        rows = read_metrics(self.run_dir)
        fields = list(dict.fromkeys(k for row in rows for k in row))
        text = io.StringIO(newline="")
        writer = csv.DictWriter(text, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
        atomic_write_text(text.getvalue(), self.csv)

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


def _tensorboard_writer(log_dir: Path):
    """A SummaryWriter, or None (with one warning) when tensorboard is not installed."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        warnings.warn("train.tensorboard=true but tensorboard is not installed (pip install "
                      "\"ldrld-mini[tensorboard]\" or pip install tensorboard); metrics still go to metrics.jsonl and "
                      "metrics.csv.", stacklevel=3)
        return None
    return SummaryWriter(log_dir=str(log_dir))


METRICS_FIX = ("delete that line, or the file to lose the curve (a resumed run keeps training from last.pt); "
               "`ldrld-mini results` skips this run until then")


def read_metrics(run_dir) -> list[dict]:
    """All records of `run_dir/metrics.jsonl` (an empty list when there is none); a torn last line (a run
    killed mid-write) is skipped, a damaged line before it raises RunFileError naming the line. Older runs'
    keys come under today's names (`runfolder.current_names`: `train_ldrld` -> `train_local`, ...)."""
    return [current_names(r) for r in read_jsonl(Path(run_dir) / "metrics.jsonl", fix=METRICS_FIX)]


def truncate_metrics(run_dir, last_epoch: int) -> None:
    """Keep only records with `epoch <= last_epoch` (used on resume: a crash may leave a newer or torn line);
    the file is rewritten as `read_metrics` reads it, so an older run's keys take today's names."""
    path = Path(run_dir) / "metrics.jsonl"
    if path.exists():
        rows = [r for r in read_metrics(run_dir) if r.get("epoch", 0) <= last_epoch]
        atomic_write_text("".join(json.dumps(r) + "\n" for r in rows), path)


def in_notebook() -> bool:
    """True inside a Jupyter kernel (including the kernels nbval starts)."""
    return "ipykernel" in sys.modules and type(_get_ipython()).__name__ == "ZMQInteractiveShell"


def _get_ipython():
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    return get_ipython()


def progress_enabled(quiet: bool | None) -> bool:
    """Progress bars: never when quiet=True or LDRLD_QUIET=1; when quiet=None only in a terminal (TTY),
    never in a notebook; when quiet=False also in notebooks."""
    if quiet or os.environ.get("LDRLD_QUIET", "") not in ("", "0"):
        return False
    if quiet is False:
        return True
    return sys.stderr.isatty() and not in_notebook()


def progress(iterable: Iterable, *, enabled: bool, total: int | None = None, desc: str = "", leave: bool = False):
    """`tqdm(iterable)` when enabled (tqdm.auto in notebooks), else the iterable itself."""
    if not enabled:
        return iterable
    from tqdm.auto import tqdm
    return tqdm(iterable, total=total, desc=desc, leave=leave, dynamic_ncols=True)


class Printer:
    """One line per epoch on stdout: on unless quiet=True / LDRLD_QUIET=1, off in notebooks unless quiet=False."""

    def __init__(self, quiet: bool | None, enabled: bool = True):
        silent = bool(quiet) or os.environ.get("LDRLD_QUIET", "") not in ("", "0")
        self.on = enabled and not silent and (quiet is False or not in_notebook())

    def __call__(self, text: str) -> None:
        if self.on:
            print(text, flush=True)
