"""The result of checking a dataset on disk, and the error raised when it is not ready."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["DatasetReport", "DatasetNotReadyError"]


@dataclass
class DatasetReport:
    """Outcome of `check_dataset`: `ok`, a list of human-readable `problems`, and what was counted."""

    name: str
    path: Path | None  # the folder that was checked (None for generated datasets)
    problems: list[str] = field(default_factory=list)
    counts: dict[str, object] = field(default_factory=dict)
    fix: str = ""  # how to repair a failed check (download / re-extract instructions)

    @property
    def ok(self) -> bool:
        """True when nothing is missing or extra."""
        return not self.problems

    def format(self, max_problems: int = 20) -> str:
        """Readable multi-line text: status, counts, every problem (up to `max_problems`), the fix."""
        where = f" at {self.path}" if self.path is not None else ""
        lines = [f"{self.name}{where}: {'OK' if self.ok else f'NOT READY ({len(self.problems)} problems)'}"]
        lines += [f"  {key}: {value}" for key, value in self.counts.items()]
        lines += [f"  - {p}" for p in self.problems[:max_problems]]
        if len(self.problems) > max_problems:
            lines.append(f"  - ... and {len(self.problems) - max_problems} more")
        if not self.ok and self.fix:
            lines.append("Fix: " + self.fix)
        return "\n".join(lines)

    def raise_if_failed(self, argument: str = "root", value: object = None) -> None:
        """Raise DatasetNotReadyError naming `argument=value` when the check failed."""
        if not self.ok:
            raise DatasetNotReadyError(self, argument, value)


class DatasetNotReadyError(FileNotFoundError):
    """A dataset folder is missing or half-prepared; the message says what is missing and the fix."""

    def __init__(self, report: DatasetReport, argument: str = "root", value: object = None):
        self.report = report
        head = f"{argument}={str(value)!r}: dataset {report.name!r} is not ready."
        super().__init__(head + "\n" + report.format())
