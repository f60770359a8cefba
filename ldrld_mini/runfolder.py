"""The files of a run folder, read and written safely (torch only inside the checkpoint methods, so `results`
stays light): where a run's folder is (`default_run_dir`) and `RunFolder`, the folder of a run being written.

The run folder contract (what `fit` writes and `ldrld-mini results` reads):
    config.yaml    the resolved config
    metrics.jsonl  one JSON object per epoch (epoch, lr, train_<loss part>, train_top1, val_top1, val_top5,
                   val_loss, best_top1, epoch_time, images_per_s, ...); metrics.csv mirrors it
    last.pt        model, optimizer, scaler, epoch, best_top1, best_epoch, last_top1, RNG states (python, numpy,
                   torch, cuda, data; per rank)
    best.pt        {'epoch', 'model', 'accuracy', 'best_acc'} of the best validation epoch (the CRD layout, so a
                   run folder can serve as a teacher)
    summary.json   written when the run finishes (best_top1, best_epoch, last_top1, teacher_top1, epochs, wall
                   time, ...)
    failed.json    written instead when the run diverged (a non-finite loss or weights); last.pt keeps the
                   last finite epoch
    teacher.json   the teacher file's identity (sha256), checked on resume
    .lock          the folder's lock (`RunLock`), held while a run writes there
    .lock.holder   who holds it: pid, host, start time, command (removed on release)
Older run folders' names (`best_acc`, `last_acc`, `train_ldrld`, `train_rntk`) read as today's (`current_names`).

One lock per folder (an OS lock on `<run_dir>/.lock` through `filelock`, any OS; held for a run's life,
released on any exit, a dead holder's lock taken over; who holds it in `.lock.holder`); reads that name the
damaged file, what is wrong and the fix; atomic writes whose disk errors (full, read-only) name the path and
leave the previous file intact.
"""
from __future__ import annotations

import errno
import json
import os
import socket
import sys
import time
from pathlib import Path

import yaml

__all__ = ["RUN_FILES", "LOCK_NAME", "HOLDER_NAME", "RunFileError", "RunLockedError", "RunWriteError", "RunLock",
           "read_json", "read_yaml_dict", "read_jsonl", "atomic_write_bytes", "atomic_write_text",
           "append_line", "write_error", "folder_state", "FolderState", "check_unlocked", "ensure_dir",
           "default_run_dir", "RunFolder", "OVERWRITE_HINT", "LAST_KEYS", "RENAMED", "current_names"]

RUN_FILES = ("config.yaml", "metrics.jsonl", "metrics.csv", "last.pt", "best.pt", "summary.json", "failed.json")
LOCK_NAME = ".lock"
HOLDER_NAME = ".lock.holder"
_REASONS = {errno.ENOSPC: "no space left on device", errno.EROFS: "read-only file system",
            errno.EACCES: "permission denied", errno.EPERM: "permission denied",
            errno.EDQUOT: "disk quota exceeded", errno.EFBIG: "file too large"}


class RunFileError(ValueError):
    """A run-folder file is damaged (truncated, not JSON/YAML, a folder, ...); the message names path and fix."""


class RunLockedError(RuntimeError):
    """Another live process holds the run folder's lock."""


class RunWriteError(RuntimeError):
    """A run-folder file could not be written (disk full, read-only, no permission)."""

    def __init__(self, message: str, errno_: int | None = None):
        super().__init__(message)
        self.errno = errno_


# ----------------------------------------------------------------------------------------------------------
# writing

def write_error(path: Path, err: OSError) -> RunWriteError:
    """A RunWriteError for `err` while writing `path`: the reason in words and what to do."""
    reason = _REASONS.get(err.errno, err.strerror or str(err))
    if err.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        fix = "Free some space (or choose another --run-dir on a bigger disk), then continue with --resume"
    else:
        fix = "Make the folder writable or choose another --run-dir"
    return RunWriteError(f"cannot write {str(path)!r}: {reason}. {fix}; the files already there are left as "
                         "they were.", err.errno)


def _remove_quietly(path: Path) -> None:
    try:
        path.unlink(missing_ok=True)
    except OSError:
        pass


def _write_file(f, data: bytes | memoryview) -> None:
    """Write, flush and fsync an open binary file (the one place where bytes reach the disk)."""
    f.write(data)
    f.flush()
    os.fsync(f.fileno())


def atomic_write_bytes(data: bytes | memoryview, path: Path) -> None:
    """Write `data` to `path.tmp`, fsync, rename over `path`; on a disk error remove the .tmp (RunWriteError)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb") as f:
            _write_file(f, data)
        os.replace(tmp, path)
    except OSError as err:
        _remove_quietly(tmp)
        raise write_error(path, err) from err


def atomic_write_text(text: str, path: Path) -> None:
    """`atomic_write_bytes` of UTF-8 text."""
    atomic_write_bytes(text.encode("utf-8"), path)


def append_line(path: Path, line: str) -> None:
    """Append one line; on a disk error cut the file back to where it was (no torn line), RunWriteError."""
    path = Path(path)
    size = path.stat().st_size if path.exists() else 0
    try:
        with open(path, "ab") as f:
            _write_file(f, (line.rstrip("\n") + "\n").encode("utf-8"))
    except OSError as err:
        try:
            os.truncate(path, size)
        except OSError:
            pass
        raise write_error(path, err) from err


def ensure_dir(path: Path) -> None:
    """`mkdir -p path`; a disk error becomes a RunWriteError naming the folder."""
    try:
        Path(path).mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise RunFileError(f"run folder {str(path)!r} is a file, not a folder; choose another --run-dir.") from None
    except OSError as err:
        raise write_error(Path(path), err) from err


# ----------------------------------------------------------------------------------------------------------
# reading

def _check_file(path: Path, fix: str) -> None:
    """RunFileError when `path` is a folder (where a file belongs)."""
    if path.is_dir():
        raise RunFileError(f"{str(path)!r} is a folder, not a file; {fix}.")


def _read_text(path: Path, fix: str) -> str:
    _check_file(path, fix)
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise RunFileError(f"{str(path)!r} is not text (binary bytes, damaged); {fix}.") from None


def read_json(path: Path, *, fix: str) -> dict:
    """The JSON object in `path`; RunFileError (path, what is wrong, `fix`) if it is damaged."""
    path = Path(path)
    text = _read_text(path, fix)
    if not text.strip():
        raise RunFileError(f"{str(path)!r} is empty (a write cut short?); {fix}.")
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise RunFileError(f"{str(path)!r} is not valid JSON (truncated or damaged: {err.msg} at line "
                           f"{err.lineno} column {err.colno}); {fix}.") from None
    if not isinstance(value, dict):
        raise RunFileError(f"{str(path)!r} holds a JSON {type(value).__name__}, not an object; {fix}.")
    return value


def read_yaml_dict(path: Path, *, fix: str) -> dict:
    """The YAML mapping in `path`; RunFileError if it is not valid YAML or not a mapping."""
    path = Path(path)
    text = _read_text(path, fix)
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as err:
        where = getattr(err, "problem_mark", None)
        at = f" at line {where.line + 1}" if where is not None else ""
        raise RunFileError(f"{str(path)!r} is not valid YAML{at} (truncated or damaged); {fix}.") from None
    if not isinstance(value, dict):
        kind = "empty" if value is None else f"a YAML {type(value).__name__}, not a mapping"
        raise RunFileError(f"{str(path)!r} is {kind}; {fix}.")
    return value


def read_jsonl(path: Path, *, fix: str) -> list[dict]:
    """The JSON objects of a `.jsonl` file; a torn last line (a run killed mid-write) is skipped, a damaged
    line before it is a RunFileError naming the line."""
    path = Path(path)
    if not path.exists():
        return []
    lines = [(i, line) for i, line in enumerate(_read_text(path, fix).splitlines(), 1) if line.strip()]
    rows = []
    for n, (number, line) in enumerate(lines):
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            if n == len(lines) - 1:  # torn last line
                break
            raise RunFileError(f"{str(path)!r} line {number} is not valid JSON ({err.msg}); {fix}.") from None
        if not isinstance(row, dict):
            raise RunFileError(f"{str(path)!r} line {number} is not a JSON object; {fix}.")
        rows.append(row)
    return rows


# ----------------------------------------------------------------------------------------------------------
# what a folder holds

class FolderState:
    """What a run folder holds: `kind` is empty, fresh (only config.yaml), unfinished, finished or failed."""

    def __init__(self, run_dir: Path):
        self.run_dir = Path(run_dir)
        self.present = [name for name in RUN_FILES if (self.run_dir / name).exists()]
        history = [name for name in self.present if name != "config.yaml"]
        if "failed.json" in self.present:
            self.kind = "failed"
        elif "summary.json" in self.present:
            self.kind = "finished"
        elif history:
            self.kind = "unfinished"
        else:
            self.kind = "fresh" if self.present else "empty"

    @property
    def history(self) -> list[str]:
        """The files a fresh start would lose (everything but config.yaml)."""
        return [name for name in self.present if name != "config.yaml"]

    def failure(self) -> str:
        """One phrase about a failed run, from its failed.json ('' when unreadable)."""
        try:
            info = read_json(self.run_dir / "failed.json", fix="")
        except (RunFileError, OSError):
            return ""
        return f"{info.get('status', 'failed')} at epoch {info.get('epoch', '?')}"

    def describe(self) -> str:
        """'a finished run', 'an unfinished run', 'a failed run (diverged at epoch 3)'."""
        if self.kind == "failed":
            what = self.failure()
            return f"a failed run ({what})" if what else "a failed run"
        return {"finished": "a finished run", "unfinished": "an unfinished run"}.get(self.kind, "no run")


def folder_state(run_dir: Path) -> FolderState:
    """The FolderState of `run_dir`."""
    return FolderState(run_dir)


# ----------------------------------------------------------------------------------------------------------
# the lock

def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _holder_text(info: dict) -> str:
    """'pid 123 on host h (since 2024-01-01 10:00:00: ldrld-mini train ...)'."""
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(info["started"])) if "started" in info else "?"
    command = f": {info['command']}" if info.get("command") else ""
    return f"pid {info.get('pid', '?')} on host {info.get('host', '?')} (since {since}{command})"


class RunLock:
    """An exclusive OS lock on `<run_dir>/.lock` (the `filelock` library: flock on Linux and macOS, LockFileEx
    on Windows); `acquire()` raises RunLockedError naming the holder.

    The OS drops the lock when its process ends (even killed), so a dead holder's lock is simply taken over;
    it is dropped too when this object is garbage-collected, so keep a reference for as long as it should hold.
    Who holds it (pid, host, start, command) is written beside it in `.lock.holder`, removed on release; a
    killed holder's note stays until the next holder replaces it.
    """

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / LOCK_NAME
        self.note = Path(run_dir) / HOLDER_NAME
        self._lock = None

    def acquire(self) -> "RunLock":
        """Take the lock (non-blocking) and write this process's pid/host beside it."""
        if self._lock is not None:
            return self
        self._lock = _take(self.path)
        self._write_holder()
        return self

    def _write_holder(self) -> None:
        info = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time(),
                "command": _shorten(" ".join([Path(sys.argv[0]).name, *sys.argv[1:]]), 160)}
        try:
            atomic_write_text(json.dumps(info) + "\n", self.note)
        except RunWriteError:
            pass  # the lock holds even when its note cannot be written (e.g. disk full)

    def release(self) -> None:
        """Remove the holder note and drop the lock (idempotent)."""
        if self._lock is None:
            return
        _remove_quietly(self.note)  # before the lock goes, so a next holder's note is never removed
        if self._lock is not _UNLOCKED:
            self._lock.release()
        self._lock = None

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


_UNLOCKED = object()  # stands for the lock on a file system that has none


def _take(path: Path):
    """A held `filelock.FileLock` on `path`, or _UNLOCKED (with a warning) where the file system cannot lock."""
    from filelock import FileLock, Timeout

    lock = FileLock(str(path), thread_local=False)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        holder = _holder_text(_read_holder(path.with_name(HOLDER_NAME)))
        raise RunLockedError(
            f"run folder {str(path.parent)!r} is in use by another run: {holder}. Wait for it to finish (or "
            "stop it), or choose another --run-dir.") from None
    except (NotImplementedError, OSError) as err:
        if isinstance(err, OSError) and err.errno in _REASONS:  # the folder is not writable, the disk is full
            raise write_error(path, err) from err
        import warnings
        warnings.warn(f"cannot lock {str(path)!r} ({err}); a second run writing this folder at the same time "
                      "would not be refused.", stacklevel=3)
        return _UNLOCKED
    return lock


def _read_holder(note: Path) -> dict:
    """The JSON note of the lock's holder ({} if none or unreadable)."""
    try:
        text = note.read_text(encoding="utf-8", errors="replace")
        info = json.loads(text) if text.strip() else {}
        return info if isinstance(info, dict) else {}
    except (OSError, ValueError):
        return {}


def check_unlocked(run_dir: Path) -> None:
    """RunLockedError when a live process holds `run_dir`'s lock (nothing is created when there is none)."""
    path = Path(run_dir) / LOCK_NAME
    if path.is_file():
        lock = _take(path)
        if lock is not _UNLOCKED:
            lock.release()


# ----------------------------------------------------------------------------------------------------------
# where a run's folder is, and the folder of a run being written

def default_run_dir(dataset: str, method: str, student: str, teacher: str | None, seed: int,
                    runs_root: str | os.PathLike = "runs") -> Path:
    """`<runs_root>/<dataset>/<teacher>-<student>/<method>/seed<k>` (vanilla: `<dataset>/<student>/vanilla/...`).

    The one naming rule: `ldrld-mini train` / `distill` / `reproduce`, the multi-run planner and the notebooks
    all find the same runs there.
    """
    pair = student if method == "vanilla" or not teacher else f"{teacher}-{student}"
    return Path(runs_root) / dataset / pair / method / f"seed{seed}"


OVERWRITE_HINT = "pass overwrite=True (--overwrite) to start again"
# older run folders' names -> today's: the best and last top-1, and the LDRLD loss parts' metrics (LDRLDParts
# fields `local`, `remaining`: formerly `ldrld`, `rntk`)
RENAMED = {"best_acc": "best_top1", "last_acc": "last_top1", "train_ldrld": "train_local",
           "train_rntk": "train_remaining"}


def current_names(record: dict) -> dict:
    """`record` (summary.json, last.pt, a metrics.jsonl row) with older run folders' names as today's
    (`RENAMED`: `best_acc` -> `best_top1`, `train_ldrld` -> `train_local`, ...); an old name is dropped where
    the new one is there too. best.pt keeps `best_acc` beside `accuracy`: the CRD checkpoint layout."""
    return {RENAMED.get(k, k): v for k, v in record.items() if not (k in RENAMED and RENAMED[k] in record)}


LAST_KEYS = ("model", "optimizer", "scaler", "epoch")  # what every last.pt holds (besides RNG states, best, ...)
_LAST_FIX = "restore last.pt from a backup, or pass --overwrite (overwrite=True) to start the run again"
_SUMMARY_FIX = "delete it and resume (--resume): the run's last.pt rewrites it without training again"


class RunFolder:
    """The folder a run writes: its lock, the resume / overwrite decision, config, checkpoints, summary and
    failure record (the files: this module's docstring). Only a folder made with `writes=True`
    (rank 0 of a distributed run) touches the disk; the other ranks' calls only compute what rank 0 writes.

        folder = RunFolder(run_dir)
        state = folder.claim(cfg, resume=False, overwrite=False)   # 'fresh', 'overwrite', 'resume', 'finished'
        if state == "overwrite": folder.clear(say=print)            # --overwrite deletes only now
        folder.start(cfg, records={"teacher.json": identity})      # config.yaml, the teacher's identity
        folder.save_best(epoch, student, top1); folder.save_last(epoch, student, ...)  # per epoch
        folder.finish(folder.summary(cfg, info, world_size=1))           # summary.json
    """

    def __init__(self, path: str | os.PathLike, *, writes: bool = True):
        self.path = Path(path)
        self.writes = writes
        self.lock = RunLock(self.path)

    def __repr__(self) -> str:
        return f"RunFolder({str(self.path)!r})"

    # -- deciding what to do with what is there ------------------------------------------------------------

    def claim(self, cfg, *, resume: bool, overwrite: bool) -> str:
        """Create and lock the folder, then `decide`; the lock is held until `release`."""
        ensure_dir(self.path)
        self.lock.acquire()
        return self.decide(cfg, resume=resume, overwrite=overwrite)

    def release(self) -> None:
        """Drop the folder's lock (idempotent)."""
        self.lock.release()

    def decide(self, cfg, *, resume: bool, overwrite: bool) -> str:
        """Check the folder against resume/overwrite; 'fresh', 'overwrite', 'resume' or 'finished'. Nothing is
        deleted here: an overwrite deletes only once the whole run has been built (`start(clear=True)`)."""
        run_dir, state = self.path, folder_state(self.path)
        for name in state.present:
            if (run_dir / name).is_dir():
                raise RunFileError(f"{str(run_dir / name)!r} is a folder, not a file; remove it (a run folder's "
                                   f"{name} is a file), then run again.")
        if overwrite:
            return "overwrite" if state.present else "fresh"
        if state.kind in ("empty", "fresh"):  # at most a config.yaml of a run that never finished an epoch
            return "fresh"
        if state.kind == "failed":
            raise FileExistsError(f"run folder {str(run_dir)!r} holds {state.describe()}, see its failed.json; "
                                  f"it cannot be resumed: {OVERWRITE_HINT} (e.g. with a smaller optim.lr), or "
                                  "choose another run folder (--run-dir).")
        if not resume:
            raise FileExistsError(f"run folder {str(run_dir)!r} already holds {state.describe()}; pass resume=True "
                                  "(--resume) to continue it, overwrite=True (--overwrite) to start again, or "
                                  "choose another run folder (--run-dir).")
        self.check_config(cfg)
        if state.kind == "finished":
            self.read_summary()
            return "finished"
        if "last.pt" not in state.present:
            raise FileNotFoundError(f"cannot resume {str(run_dir)!r}: last.pt is missing, but the folder holds "
                                    f"{self._describe(state.present)}. Nothing was deleted. Restore last.pt "
                                    f"(e.g. from a backup), or {OVERWRITE_HINT} (which deletes those files).")
        return "resume"

    def _describe(self, names: list[str]) -> str:
        """'config.yaml, metrics.jsonl (3 epochs), best.pt'."""
        parts = []
        for name in names:
            if name == "metrics.jsonl":
                try:
                    parts.append(f"metrics.jsonl ({len(read_jsonl(self.path / name, fix=''))} epochs)")
                except RunFileError:
                    parts.append("metrics.jsonl (damaged)")
            else:
                parts.append(name)
        return ", ".join(parts)

    def check_config(self, cfg) -> None:
        """ValueError when the saved config.yaml differs from `cfg` (run-time keys aside); RunFileError if
        damaged; nothing when there is none."""
        from .recipes import Config
        from .recipes.config import experiment_diff

        path = self.path / "config.yaml"
        if not path.exists():
            return
        fix = f"restore it, or {OVERWRITE_HINT}"
        try:
            saved = Config.from_dict(read_yaml_dict(path, fix=fix)).to_dict()
        except (TypeError, ValueError) as err:
            if isinstance(err, RunFileError):
                raise
            raise RunFileError(f"{str(path)!r} is not a run config ({err}); {fix}.") from None
        diff = experiment_diff(saved, cfg.to_dict())
        if diff:
            raise ValueError(f"cannot resume {str(self.path)!r}: the config differs in {diff}; resume with the "
                             f"options its config.yaml was made with, {OVERWRITE_HINT} with the new ones, or "
                             "choose another run folder.")

    # -- reading back ----------------------------------------------------------------------------------------

    def read_summary(self) -> dict:
        """The run's summary.json (older names as today's); RunFileError (the fix: delete it and resume) when
        damaged."""
        return current_names(read_json(self.path / "summary.json", fix=_SUMMARY_FIX))

    def read_last(self, device) -> dict:
        """The run's last.pt (weights only, onto `device`; older names as today's); RunFileError naming what is
        wrong and the fix."""
        import torch

        from .models.checkpoints import _first_line, checkpoint_damage

        path = self.path / "last.pt"
        try:
            ckpt = torch.load(path, map_location=device, weights_only=True)
        except Exception as err:  # noqa: BLE001 - torch raises many kinds for damaged files
            damage = checkpoint_damage(path) or ("it is truncated (the data ends early)" if isinstance(err, EOFError)
                                                 else f"it cannot be loaded ({_first_line(err)})")
            raise RunFileError(f"cannot resume from {str(path)!r}: {damage}; {_LAST_FIX}.") from None
        missing = [k for k in LAST_KEYS if not (isinstance(ckpt, dict) and k in ckpt)]
        if missing:
            raise RunFileError(f"{str(path)!r} is not a run checkpoint (it lacks {missing}); {_LAST_FIX}.")
        return current_names(ckpt)

    # -- writing ---------------------------------------------------------------------------------------------

    def clear(self, say) -> None:
        """--overwrite: delete the run files (and stale .tmp files) and name them."""
        if not self.writes:
            return
        names = [n for n in RUN_FILES if (self.path / n).exists()]
        names += sorted(p.name for p in self.path.glob("*.tmp"))
        for name in names:
            try:
                (self.path / name).unlink(missing_ok=True)
            except OSError as err:
                raise write_error(self.path / name, err) from err
        if names:
            say(f"--overwrite: deleted {', '.join(names)} from {self.path}")

    def start(self, cfg, *, records: dict[str, dict | None] | None = None) -> None:
        """A fresh start: write config.yaml (the resolved config), drop an old metrics.jsonl, and write each
        `records` entry (name -> JSON object, e.g. the teacher's identity; None: only the old file goes)."""
        if not self.writes:
            return
        atomic_write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False), self.path / "config.yaml")
        (self.path / "metrics.jsonl").unlink(missing_ok=True)
        for name, record in (records or {}).items():
            (self.path / name).unlink(missing_ok=True)
            if record is not None:
                atomic_write_text(json.dumps(record, indent=1) + "\n", self.path / name)

    def save(self, name: str, obj) -> None:
        """`torch.save(obj)` into memory, then an atomic write of `name` (never half a file on a crash)."""
        if not self.writes:
            return
        import io

        import torch

        buffer = io.BytesIO()
        torch.save(obj, buffer)
        atomic_write_bytes(buffer.getbuffer(), self.path / name)

    def save_best(self, epoch: int, model, top1: float) -> None:
        """best.pt in the CRD checkpoint layout (`epoch`, `model`, `accuracy`, `best_acc`), so a run folder can
        serve as a teacher."""
        self.save("best.pt", {"epoch": epoch, "model": model.state_dict(), "accuracy": top1, "best_acc": top1})

    def save_last(self, epoch: int, model, optimizer, scaler, rngs: list[dict], info: dict) -> None:
        """last.pt: everything a resume needs: LAST_KEYS, every rank's RNG states (`rngs`, rank 0's also as `rng`)
        and `info` (best_top1, best_epoch, last_top1, elapsed, teacher_top1)."""
        self.save("last.pt", {"epoch": epoch, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                              "scaler": scaler.state_dict(), "rng": rngs[0], "rng_ranks": rngs, **info})

    def summary(self, cfg, info: dict, *, world_size: int) -> dict:
        """What summary.json holds: the run's names and seed, best / last top-1, teacher top-1, wall time."""
        return {
            "name": cfg.name, "dataset": cfg.dataset, "method": cfg.method, "teacher": cfg.model.teacher,
            "student": cfg.model.student, "seed": cfg.train.seed, "epochs": cfg.schedule.epochs,
            "best_top1": info["best_top1"], "best_epoch": info["best_epoch"], "last_top1": info["last_top1"],
            "teacher_top1": info["teacher_top1"],
            "wall_time_s": info["elapsed"], "world_size": world_size, "run_dir": str(self.path.name),
        }

    def finish(self, summary: dict) -> dict:
        """Write summary.json (the run is finished); returns `summary`."""
        if self.writes:
            atomic_write_text(json.dumps(summary, indent=2) + "\n", self.path / "summary.json")
        return summary

    def mark_failed(self, *, epoch: int, reason: str, lr: float, losses: dict, causes: str) -> str:
        """Write failed.json (the run diverged at `epoch`) and return the message to raise; last.pt keeps the
        last finite epoch."""
        kept = epoch - 1 if (self.path / "last.pt").exists() else None
        kept_text = (f"last.pt keeps epoch {kept}, the last finite one" if kept is not None else
                     "no checkpoint was kept: it diverged in its first epoch")
        message = (f"training diverged at epoch {epoch}: {reason}. Likely cause: {causes}. The run is marked "
                   f"failed in {self.path / 'failed.json'} ({kept_text}); start again with --overwrite "
                   "(overwrite=True) and, e.g., a 10x smaller optim.lr.")
        if self.writes:
            failed = {"status": "diverged", "epoch": epoch, "reason": reason, "lr": lr, "last_checkpoint_epoch": kept,
                      "train": losses, "message": message, "time": time.time()}
            atomic_write_text(json.dumps(failed, indent=2) + "\n", self.path / "failed.json")
        return message
