"""Load any known checkpoint layout into a model, with errors that name the keys that do not fit.

Known layouts: CRD/RepDistiller `{'model': state_dict, 'epoch', 'accuracy', 'optimizer'}`, `{'state_dict':
...}`, a raw state dict, `module.` prefixes (DataParallel/DDP), `_orig_mod.` (torch.compile) and mdistiller's
distiller checkpoints whose keys start with `module.student.` (the teacher's keys are dropped).
"""
from __future__ import annotations

import argparse
import contextlib
import pickle
import pickletools
import re
import warnings
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor, nn

from .features import unwrap

STATE_DICT_KEYS = ("model", "state_dict", "model_state_dict", "student")
WRAPPER_PREFIXES = ("module.", "_orig_mod.")
SHOW = 10  # keys listed per kind of mismatch


class CheckpointError(RuntimeError):
    """A checkpoint file cannot be read or does not fit the model."""


class UntrustedCheckpointError(CheckpointError):
    """The file pickles Python objects that `torch.load(weights_only=True)` refuses to run."""


class CorruptCheckpointError(CheckpointError):
    """The file is damaged or no checkpoint at all (empty, truncated, random bytes): no trust setting helps."""


class KeyMismatchError(CheckpointError):
    """The checkpoint's keys or shapes do not fit the model (strict loading); `diff` says which."""

    def __init__(self, message: str, diff: "LayoutDiff"):
        super().__init__(message)
        self.diff = diff


@dataclass
class LayoutDiff:
    """Keys of the model missing from the checkpoint, unexpected keys, and keys whose shapes differ."""

    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    wrong_shape: list[tuple[str, tuple, tuple]] = field(default_factory=list)  # (key, checkpoint, model)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.wrong_shape)

    def kinds(self) -> list[str]:
        """One phrase per kind of mismatch, e.g. 'missing from the checkpoint (3): a, b, c' (first SHOW keys)."""

        def listing(items: list[str]) -> str:
            more = f", ... ({len(items) - SHOW} more)" if len(items) > SHOW else ""
            return ", ".join(items[:SHOW]) + more

        phrases = []
        if self.missing:
            phrases.append(f"missing from the checkpoint ({len(self.missing)}): {listing(self.missing)}")
        if self.unexpected:
            phrases.append(f"unexpected in the checkpoint ({len(self.unexpected)}): {listing(self.unexpected)}")
        if self.wrong_shape:
            shapes = [f"{k} checkpoint {list(a)} vs model {list(b)}" for k, a, b in self.wrong_shape]
            phrases.append(f"wrong shape ({len(self.wrong_shape)}): {listing(shapes)}")
        return phrases


def summarise_error(err: CheckpointError) -> str:
    """A checkpoint error on one line: the key differences of a KeyMismatchError, else its first line."""
    return "; ".join(err.diff.kinds()) if isinstance(err, KeyMismatchError) else _first_line(err)


@contextlib.contextmanager
def allowed_globals():
    """The one allow-list of a weights-only read (`read_checkpoint`, used for teachers, `eval` and the download
    check alike): besides tensors, torch.load(weights_only=True) may build the training options CRD-style
    checkpoints keep (argparse.Namespace) and numpy numbers (by their numpy 1 and numpy 2 names). No function
    is allowed, so reading stays free of arbitrary code; anything else needs trust_pickle=True."""
    import numpy as np

    allow = getattr(torch.serialization, "safe_globals", None)
    if allow is None:  # an older torch: the file is read with the plain weights_only rules
        yield
        return
    scalar = np.float64(0).__reduce__()[0]  # numpy's scalar reconstructor
    dtypes = {type(np.dtype(t)) for t in ("float64", "float32", "int64", "int32")}
    with allow([argparse.Namespace, scalar, (scalar, "numpy.core.multiarray.scalar"), np.dtype, *dtypes]):
        yield


def checkpoint_damage(path: str | Path) -> str | None:
    """What makes `path` unreadable as a checkpoint ('it is empty', 'it is truncated ...'); None if it looks whole.

    Reads the file's structure only (zip index and CRCs, pickle opcodes); nothing is unpickled.
    """
    path = Path(path)
    if path.stat().st_size == 0:
        return "it is empty (0 bytes)"
    with open(path, "rb") as f:
        head = f.read(4)
    if head.startswith(b"PK"):
        return _zip_damage(path)
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        return _legacy_damage(path)
    return (f"it is not a PyTorch checkpoint (it starts with the bytes {head.hex(' ')}; a checkpoint starts "
            "with 'PK', a zip archive, or with a pickle header)")


def _zip_damage(path: Path) -> str | None:
    """Damage of a zip-format checkpoint: unreadable index, a failed CRC, no or a cut-off data.pkl."""
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
            if bad is not None:
                return f"it is damaged (its member {bad} fails the CRC check)"
            names = [n for n in archive.namelist() if n == "data.pkl" or n.endswith("/data.pkl")]
            if not names:
                return "it is a zip archive but not a PyTorch checkpoint (no data.pkl inside)"
            if not _pickle_complete(archive.read(names[0])):
                return "it is damaged (its pickled object, data.pkl, ends early)"
    except zipfile.BadZipFile:
        return "it is truncated or damaged (it starts as a zip archive, but the archive's index at its end is "\
               "missing or broken)"
    except (EOFError, OSError, ValueError) as err:
        return f"it is truncated or damaged (the zip archive cannot be read: {err})"
    return None


def _pickle_complete(data: bytes) -> bool:
    """True when `data` is one whole pickle (opcodes only; nothing is executed)."""
    try:
        for _ in pickletools.genops(data):
            pass
    except Exception:  # noqa: BLE001 - any parse failure means 'not whole'
        return False
    return True


def _legacy_damage(path: Path) -> str | None:
    """Damage of a legacy (pre-zip) checkpoint: one of its five leading pickles ends early."""
    with open(path, "rb") as f:
        for _ in range(5):  # magic number, protocol, sys info, the object, storage keys
            try:
                for _op in pickletools.genops(f):
                    pass
            except Exception as err:  # noqa: BLE001 - ValueError 'pickle exhausted', unknown opcodes ...
                return f"it is truncated or damaged (a pickle inside ends early: {err})"
    return None


def _first_line(err: BaseException, limit: int = 200) -> str:
    """The first non-empty line of an error's text, shortened."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    text = lines[0] if lines else type(err).__name__
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _load_error(path: Path, err: Exception, trust_pickle: bool) -> CheckpointError:
    """Tell a damaged file (CorruptCheckpointError) apart from a whole one with foreign objects (Untrusted)."""
    damage = checkpoint_damage(path)
    if damage is None and isinstance(err, EOFError):
        damage = "it is truncated (the data ends early)"
    if damage is not None:
        return CorruptCheckpointError(
            f"checkpoint {str(path)!r} cannot be read: {damage}. The file is damaged, not untrusted, so "
            "--trust-pickle cannot help: copy or download it again (or use another checkpoint).")
    text = str(err)
    if not trust_pickle and isinstance(err, pickle.UnpicklingError) and "Unsupported global" in text:
        found = re.search(r"GLOBAL ([\w.]+)", text)
        what = f" (it contains {found.group(1)})" if found else ""
        return UntrustedCheckpointError(
            f"{str(path)!r} is a whole checkpoint that pickles Python objects besides tensors{what}, so it was "
            "not loaded: unpickling such objects can run arbitrary code. If you trust the file (e.g. you "
            "downloaded an official CRD/mdistiller teacher yourself), pass --trust-pickle (in Python: "
            "load_checkpoint(model, path, trust_pickle=True)).")
    if trust_pickle:
        return CheckpointError(f"cannot unpickle {str(path)!r}: {type(err).__name__}: {_first_line(err)}")
    return CorruptCheckpointError(f"{str(path)!r} is not a readable PyTorch checkpoint ({_first_line(err)}); "
                                  "copy or download it again.")


def read_checkpoint(path: str | Path, *, trust_pickle: bool = False, map_location="cpu"):
    """torch.load with weights_only=True; weights_only=False only with trust_pickle=True.

    A damaged file raises CorruptCheckpointError, a whole one holding foreign Python objects
    UntrustedCheckpointError (only then is `trust_pickle` the answer).
    """
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"checkpoint {str(path)!r} is a folder, not a file; pass the .pt/.pth file inside it.")
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist (looked in {str(path.resolve())!r})")
    try:
        with allowed_globals():
            return torch.load(path, map_location=map_location, weights_only=not trust_pickle)
    except Exception as err:  # noqa: BLE001 - torch raises many kinds; _load_error sorts them out
        raise _load_error(path, err, trust_pickle) from err


def split_checkpoint(obj) -> tuple[dict[str, Tensor], dict]:
    """Loaded object -> (state dict, metadata of scalars such as epoch, accuracy, best_acc)."""
    if isinstance(obj, nn.Module):
        return obj.state_dict(), {}
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"checkpoint holds a {type(obj).__name__}; expected a dict or a state dict")
    if obj and all(isinstance(v, Tensor) for v in obj.values()):
        return dict(obj), {}
    for key in STATE_DICT_KEYS:
        value = obj.get(key)
        if isinstance(value, nn.Module):
            value = value.state_dict()
        if isinstance(value, Mapping) and value and all(isinstance(v, Tensor) for v in value.values()):
            return dict(value), scalar_metadata(obj)
    raise CheckpointError(f"no state dict found in the checkpoint; its top-level keys are "
                          f"{sorted(map(str, obj))}, expected one of {list(STATE_DICT_KEYS)} or a raw state dict")


def scalar_metadata(obj: Mapping) -> dict:
    """The plain numbers and strings of a checkpoint dict (0-dim tensors become Python numbers)."""
    meta = {}
    for key, value in obj.items():
        if isinstance(value, Tensor) and value.numel() == 1:
            meta[key] = value.item()
        elif isinstance(value, (int, float, str, bool)):
            meta[key] = value
    return meta


def strip_wrappers(state_dict: dict[str, Tensor], model_keys: set[str]) -> dict[str, Tensor]:
    """Remove `module.` / `_orig_mod.` prefixes; keep only `student.*` of an mdistiller distiller."""
    if set(state_dict) <= model_keys:
        return state_dict
    for _ in range(3):  # prefixes can nest, e.g. module.student.module.
        for prefix in WRAPPER_PREFIXES:
            state_dict = {k.removeprefix(prefix): v for k, v in state_dict.items()}
        student = {k.removeprefix("student."): v for k, v in state_dict.items() if k.startswith("student.")}
        if student and not any(k.startswith("student.") for k in model_keys):
            state_dict = student
    return state_dict


def diff_layouts(model_state: Mapping[str, Tensor], state_dict: Mapping[str, Tensor]) -> LayoutDiff:
    """Compare key sets and shapes; BatchNorm `num_batches_tracked` may be absent (older PyTorch)."""
    diff = LayoutDiff()
    diff.missing = [k for k in model_state if k not in state_dict and not k.endswith("num_batches_tracked")]
    diff.unexpected = [k for k in state_dict if k not in model_state]
    diff.wrong_shape = [(k, tuple(v.shape), tuple(model_state[k].shape)) for k, v in state_dict.items()
                        if k in model_state and v.shape != model_state[k].shape]
    return diff


def describe_diff(diff: LayoutDiff, path: str | Path, model: nn.Module) -> str:
    """Readable message: first SHOW keys of each kind, with counts."""
    lines = [f"checkpoint {str(path)!r} does not fit {type(model).__name__}:"]
    lines += [f"  {phrase}" for phrase in diff.kinds()]
    lines.append("Check the model name and num_classes (see list_models()); strict=False loads only the "
                 "tensors that fit.")
    return "\n".join(lines)


def load_checkpoint(model: nn.Module, path: str | Path, *, strict: bool = True, trust_pickle: bool = False,
                    map_location="cpu") -> dict:
    """Load the weights in `path` into `model` (any known layout); return the file's metadata.

    Metadata: the scalars stored next to the weights (e.g. {'epoch': 240, 'accuracy': 79.42}).
    strict=True raises CheckpointError naming missing, unexpected and wrongly shaped keys;
    strict=False loads the tensors that fit and warns about the rest.
    """
    raw = read_checkpoint(path, trust_pickle=trust_pickle, map_location=map_location)
    return load_read_checkpoint(model, raw, path, strict=strict)


def load_read_checkpoint(model: nn.Module, raw, path: str | Path, *, strict: bool = True) -> dict:
    """load_checkpoint on a checkpoint already read from `path` (named in messages): same layouts, same errors."""
    target = unwrap(model)
    state_dict, metadata = split_checkpoint(raw)
    model_state = target.state_dict()
    state_dict = strip_wrappers(state_dict, set(model_state))
    diff = diff_layouts(model_state, state_dict)
    if not diff.ok:
        if strict:
            raise KeyMismatchError(describe_diff(diff, path, target), diff)
        warnings.warn(describe_diff(diff, path, target), stacklevel=3)
        bad = {k for k, _, _ in diff.wrong_shape} | set(diff.unexpected)
        state_dict = {k: v for k, v in state_dict.items() if k not in bad}
    target.load_state_dict(state_dict, strict=strict)
    return metadata
