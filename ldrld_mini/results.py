"""Run folders → tables: mean ± std over seeds of best and last top-1, beside the paper's numbers.

Reads only what DESIGN.md promises a run folder holds: `config.yaml` (the resolved config),
`metrics.jsonl` (one JSON object per epoch) and `summary.json` (written when the run finishes), plus the
engine's `failed.json` (a diverged run). A run without `summary.json` is *unfinished*, one with
`failed.json` *failed*: both are listed on their own, never averaged. A folder whose files cannot be read is
*unreadable*: reported by path and skipped, never fatal.
"""
from __future__ import annotations

import json
import math
import statistics
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from .recipes.config import RUNTIME_KEYS
from .runfolder import RUN_FILES, RunFileError, current_names, read_json, read_jsonl, read_yaml_dict

__all__ = [
    "Run", "Group", "Scan", "load_run", "load_runs", "scan_runs", "group_runs", "results_table",
    "unfinished_table", "failed_table", "format_results", "epoch_curves", "group_curves", "mean_std",
    "settings_of", "flatten", "paper_number", "VAL_TOP1_KEYS", "t_quantile", "mean_interval", "save_curves_plot",
    "Curve", "curve_of", "read_curve", "mean_curve", "Published",
]

GroupKey = tuple[str, str, str, str]  # (dataset, teacher, student, method)

# names the engine may give the per-epoch validation top-1 (first match wins)
VAL_TOP1_KEYS = ("val_top1", "val_acc1", "val_acc", "top1", "acc1")
BEST_KEYS = ("best_top1", "best_val_top1", "best_acc1", "best_acc")
LAST_KEYS = ("last_top1", "last_val_top1", "last_acc1", "final_top1", "last_acc")
VANILLA = "vanilla"


@dataclass
class Run:
    """One run folder: its identity (dataset, teacher, student, method, seed), metrics and summary."""

    path: Path
    dataset: str
    teacher: str | None  # None for a vanilla (teacher-free) run
    student: str
    method: str
    seed: int
    config: dict[str, Any]
    metrics: list[dict[str, Any]]  # one dict per epoch, in file order
    summary: dict[str, Any] | None  # None while the run is unfinished
    failure: dict[str, Any] | None = None  # the run's failed.json (a diverged run), else None

    @property
    def finished(self) -> bool:
        """True when the run wrote its `summary.json` (and did not fail)."""
        return self.summary is not None and self.failure is None

    @property
    def failed(self) -> bool:
        """True when the run wrote a `failed.json` (it diverged)."""
        return self.failure is not None

    @property
    def status(self) -> str:
        """'finished', 'unfinished' or 'failed'."""
        return "failed" if self.failed else "finished" if self.finished else "unfinished"

    @property
    def key(self) -> GroupKey:
        """What seeds are averaged over: (dataset, teacher or '-', student, method)."""
        return (self.dataset, self.teacher or "-", self.student, self.method)

    @property
    def epochs_done(self) -> int:
        """Number of epochs logged in `metrics.jsonl`."""
        return len(self.metrics)

    @property
    def epochs_planned(self) -> int | None:
        """Total epochs of the recipe (from the config), when known."""
        value = find_key(self.config, ("schedule.epochs", "epochs"))
        return int(value) if value is not None else None

    @property
    def curve(self) -> tuple[list[int], list[float]]:
        """(epochs, val top-1 per epoch) read from `metrics.jsonl`."""
        return curve_of(self.metrics)

    def _summary_or_curve(self, keys, pick):
        value = find_key(self.summary or {}, keys, nested=False)
        if value is not None:
            return float(value)
        values = self.curve[1]
        return pick(values) if values else None

    @property
    def best_top1(self) -> float | None:
        """Best val top-1: from the summary when finished, else the best logged so far."""
        return self._summary_or_curve(BEST_KEYS, max)

    @property
    def last_top1(self) -> float | None:
        """Val top-1 of the last epoch: from the summary when finished, else the last logged."""
        return self._summary_or_curve(LAST_KEYS, lambda values: values[-1])


def curve_of(metrics: Iterable[dict[str, Any]]) -> tuple[list[int], list[float]]:
    """(epochs, val top-1 per epoch) of metrics records; records without a val top-1 are skipped."""
    epochs, values = [], []
    for i, row in enumerate(metrics):
        value = find_key(row, VAL_TOP1_KEYS, nested=False)
        if value is not None:
            epochs.append(int(row.get("epoch", i + 1)))
            values.append(float(value))
    return epochs, values


def read_curve(run_dir: str | Path) -> tuple[list[int], list[float]]:
    """(epochs, val top-1 %) of a run folder's metrics.jsonl alone (a torn last line skipped; no config needed)."""
    return curve_of(_read_metrics(Path(run_dir) / "metrics.jsonl"))


def find_key(mapping: dict[str, Any], names: Iterable[str], *, nested: bool = True) -> Any:
    """The value of the first of `names` (plain or dotted, e.g. "model.student") found in `mapping`.

    With `nested`, a plain name is also looked for in the sub-dicts (e.g. "seed" finds "train.seed").
    """
    names = tuple(names)
    for name in names:
        node: Any = mapping
        for part in name.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        if node is not None and not isinstance(node, dict):
            return node
    if nested:
        for value in mapping.values():
            if isinstance(value, dict):
                found = find_key(value, [n for n in names if "." not in n], nested=True)
                if found is not None:
                    return found
    return None


_FIX_SKIPPED = "this run is skipped until then"


def _read_metrics(path: Path) -> list[dict[str, Any]]:
    """The JSON lines of `metrics.jsonl`; a torn last line (a run killed mid-write) is skipped, as on resume;
    older runs' keys under today's names (`runfolder.current_names`: `train_ldrld` -> `train_local`, ...)."""
    return [current_names(r) for r in read_jsonl(path, fix=f"delete that line (or the file); {_FIX_SKIPPED}")]


def _read_config(run_dir: Path) -> dict[str, Any]:
    """config.yaml as a dict; RunFileError when it is missing, damaged or not a run config."""
    path = run_dir / "config.yaml"
    fix = f"restore it from the run's launch options, or delete the folder; {_FIX_SKIPPED}"
    if not path.exists():
        raise FileNotFoundError(f"run_dir={str(run_dir)!r} has no config.yaml; is it a run folder?")
    config = read_yaml_dict(path, fix=fix)
    missing = [k for k in ("dataset", "model.student") if find_key(config, (k,), nested=False) is None]
    if missing:
        raise RunFileError(f"{str(path)!r} is not a run config (it has no {' or '.join(missing)}); {fix}.")
    return config


def load_run(run_dir: str | Path) -> Run:
    """Read one run folder (`config.yaml` required; `metrics.jsonl`, `summary.json`, `failed.json` optional).

    A damaged file raises RunFileError naming it (a torn last metrics line is skipped).
    """
    run_dir = Path(run_dir)
    config = _read_config(run_dir)
    fix = f"delete it and resume the run (--resume) to write it again; {_FIX_SKIPPED}"
    summary = read_json(run_dir / "summary.json", fix=fix) if (run_dir / "summary.json").exists() else None
    summary = current_names(summary) if summary is not None else None  # older runs' best_acc: best_top1
    failure = read_json(run_dir / "failed.json", fix=fix) if (run_dir / "failed.json").exists() else None
    method = str(find_key(config, ("method",)) or VANILLA)
    teacher = find_key(config, ("model.teacher", "teacher"), nested=False)
    try:
        seed = int(find_key(config, ("train.seed", "seed")) or 0)
    except (TypeError, ValueError):
        raise RunFileError(f"{str(run_dir / 'config.yaml')!r} has a seed that is not an integer; "
                           f"{_FIX_SKIPPED}.") from None
    return Run(
        path=run_dir,
        dataset=str(find_key(config, ("dataset",))),
        teacher=None if method in (VANILLA, "ce") or not teacher else str(teacher),
        student=str(find_key(config, ("model.student", "student"), nested=False)),
        method=VANILLA if method == "ce" else method,
        seed=seed,
        config=config,
        metrics=_read_metrics(run_dir / "metrics.jsonl"),
        summary=summary,
        failure=failure,
    )


@dataclass
class Scan:
    """Every run folder under a root: the readable runs and, per unreadable folder, what is wrong."""

    root: Path
    runs: list[Run] = field(default_factory=list)
    unreadable: list[tuple[Path, str]] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        """{'finished': n, 'unfinished': n, 'failed': n, 'unreadable': n}."""
        counts = {status: sum(r.status == status for r in self.runs) for status in ("finished", "unfinished",
                                                                                    "failed")}
        return {**counts, "unreadable": len(self.unreadable)}

    def summary_line(self) -> str:
        """'7 run folders under runs: 5 finished, 1 unfinished, 1 failed, 0 unreadable.'"""
        counts = self.counts()
        total = sum(counts.values())
        parts = ", ".join(f"{n} {status}" for status, n in counts.items())
        return f"{total} run folder{'s' if total != 1 else ''} under {self.root}: {parts}."


def _run_folders(runs_dir: Path) -> list[Path]:
    """Folders under `runs_dir` (itself included) holding any run file (config.yaml, last.pt, summary.json...)."""
    found = {p.parent for name in RUN_FILES for p in runs_dir.rglob(name)}
    return sorted(found)


def scan_runs(runs_dir: str | Path) -> Scan:
    """Read every run folder under `runs_dir`; damaged ones are collected in `unreadable`, never fatal."""
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        raise FileNotFoundError(f"runs_dir={str(runs_dir)!r} is not a folder; pass the folder that holds your runs")
    scan = Scan(runs_dir)
    for folder in _run_folders(runs_dir):
        try:
            scan.runs.append(load_run(folder))
        except FileNotFoundError:
            held = ", ".join(n for n in RUN_FILES if (folder / n).exists())
            scan.unreadable.append((folder, f"no config.yaml (it holds {held}); restore config.yaml or delete the "
                                            "folder"))
        except (RunFileError, OSError) as err:
            scan.unreadable.append((folder, str(err)))
    return scan


def load_runs(runs_dir: str | Path) -> list[Run]:
    """Every readable run folder under `runs_dir`, sorted by path (unreadable ones are skipped with a warning;
    `scan_runs` lists them)."""
    scan = scan_runs(runs_dir)
    for folder, problem in scan.unreadable:
        warnings.warn(f"skipped unreadable run folder {folder}: {problem}", stacklevel=2)
    return scan.runs


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof=1; 0.0 for a single value)."""
    if not values:
        return math.nan, math.nan
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return statistics.fmean(values), std


def _t_two_sided(t: float, df: int) -> float:
    """P(|T| < t) for Student's t with an integer `df` >= 1 (the closed form of Abramowitz & Stegun 26.7.3-4)."""
    theta = math.atan(t / math.sqrt(df))
    c2 = math.cos(theta) ** 2
    if df % 2:  # odd: (2/pi) (theta + sin cos (1 + 2/3 c^2 + 2*4/(3*5) c^4 + ... up to c^(df-3)))
        term, series = 1.0, (1.0 if df > 1 else 0.0)
        for j in range(1, (df - 1) // 2):
            term *= c2 * (2 * j) / (2 * j + 1)
            series += term
        return 2.0 / math.pi * (theta + math.sin(theta) * math.cos(theta) * series)
    term, series = 1.0, 1.0  # even: sin (1 + 1/2 c^2 + 1*3/(2*4) c^4 + ... up to c^(df-2))
    for j in range(1, df // 2):
        term *= c2 * (2 * j - 1) / (2 * j)
        series += term
    return math.sin(theta) * series


def t_quantile(level: float, df: int) -> float:
    """The two-sided critical value of Student's t: P(|T| < t) = level (t_quantile(0.95, 4) = 2.776...)."""
    if not 0 < level < 1 or int(df) != df or df < 1:
        raise ValueError(f"t_quantile(level={level!r}, df={df!r}): level must lie in (0, 1) and df be an integer >= 1")
    lo, hi = 0.0, 1.0
    while _t_two_sided(hi, int(df)) < level:
        hi *= 2.0
    for _ in range(200):  # bisection to float precision
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if _t_two_sided(mid, int(df)) < level else (lo, mid)
    return 0.5 * (lo + hi)


def mean_interval(values: list[float], level: float = 0.95) -> tuple[float, float]:
    """Mean and the half-width of its `level` confidence interval (t distribution, n - 1 df; nan for n < 2)."""
    mean, std = mean_std(values)
    if len(values) < 2:
        return mean, math.nan
    return mean, t_quantile(level, len(values) - 1) * std / math.sqrt(len(values))


# keys that never split a group: the run-time keys, the seed (averaged over) and how a run was watched
GROUPING_IGNORED = RUNTIME_KEYS + ("train.seed", "data.options.cache_dir", "data.val_batch_size",
                                   "train.tensorboard")


def flatten(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """`{"optim": {"lr": 0.05}}` -> `{"optim.lr": 0.05}` (lists become tuples)."""
    flat = {}
    for key, value in config.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = tuple(value) if isinstance(value, list) else value
    return flat


def settings_of(run: Run) -> tuple[tuple[str, str], ...]:
    """What a run computes apart from its seed: the flattened config without the runtime keys."""
    return tuple(sorted((k, json.dumps(v)) for k, v in flatten(run.config).items() if k not in GROUPING_IGNORED))


@dataclass
class Group:
    """The finished seeds of one (dataset, teacher, student, method) run with the same settings."""

    key: GroupKey
    settings: tuple[tuple[str, str], ...]
    runs: list[Run] = field(default_factory=list)
    variant: str = ""  # the settings that set this group apart from others of the same key ('' if none)

    @property
    def seeds(self) -> list[int]:
        """Seeds of the runs in the group, sorted."""
        return sorted(r.seed for r in self.runs)

    @property
    def best(self) -> tuple[float, float]:
        """(mean, std) over seeds of the best-epoch top-1."""
        return mean_std([r.best_top1 for r in self.runs if r.best_top1 is not None])

    @property
    def last(self) -> tuple[float, float]:
        """(mean, std) over seeds of the last-epoch top-1."""
        return mean_std([r.last_top1 for r in self.runs if r.last_top1 is not None])


def group_runs(runs: Iterable[Run]) -> list[Group]:
    """Finished runs grouped by (dataset, teacher, student, method) and settings; unfinished runs left out.

    Runs that differ in anything but the seed (and where they live) are never averaged together: groups
    sharing a key get a `variant` naming the settings that differ, e.g. "schedule.epochs=16".
    """
    groups: dict[tuple, Group] = {}
    for run in runs:
        if run.finished:
            settings = settings_of(run)
            groups.setdefault((run.key, settings), Group(run.key, settings)).runs.append(run)
    by_key: dict[GroupKey, list[Group]] = {}
    for group in groups.values():
        by_key.setdefault(group.key, []).append(group)
    for siblings in by_key.values():
        if len(siblings) > 1:
            _name_variants(siblings)
    return sorted(groups.values(), key=lambda g: (_row_order(g.key), g.variant))


def _name_variants(siblings: list[Group]) -> None:
    """Set each group's `variant` to its values of the settings that differ among `siblings`."""
    tables = [dict(g.settings) for g in siblings]
    keys = sorted({k for t in tables for k in t if len({t2.get(k) for t2 in tables}) > 1})
    for group, table in zip(siblings, tables):
        group.variant = ", ".join(f"{k}={json.loads(table[k]) if k in table else '–'}" for k in keys)


PaperLookup = Callable[[str, str | None, str, str], float | None]


class Published(float):
    """A published top-1 (a float) that knows where it comes from: `source` is None for the paper's (or the CRD
    benchmark's it relays), else (key, citation) of the other source; `others` lists (key, value, citation) of
    sources that give a different number."""

    source: tuple[str, str] | None = None
    others: tuple[tuple[str, float, str], ...] = ()

    def __new__(cls, value: float, source: tuple[str, str] | None = None,
                others: Iterable[tuple[str, float, str]] = ()):
        number = super().__new__(cls, value)
        number.source, number.others = source, tuple(others)
        return number


def paper_number(dataset: str, teacher: str | None, student: str, method: str) -> Published | None:
    """The published top-1 for this row (from `ldrld_mini.recipes.published`), or None if unknown; a `Published`
    whose `source` names the citation when the number is not the paper's (`published_from` in the recipe).

    A vanilla run gets the published accuracy of that model as a student (or else as a teacher).
    """
    from ldrld_mini import recipes

    if dataset not in recipes.list_recipes():
        return None
    if method != VANILLA:
        entry = recipes.published(dataset, teacher, student)
        if entry.get(method) is None:
            return None
        refs = recipes.published_refs(dataset)
        ref = entry["from"].get(method)
        others = [(key, float(value), refs.get(key, key)) for key, value in entry["other"].get(method, {}).items()]
        return Published(float(entry[method]), None if ref is None else (ref, refs.get(ref, ref)), others)
    pairs = recipes.list_pairs(dataset)
    as_student = [recipes.published(dataset, t, s)["student"] for t, s in pairs if s == student]
    as_teacher = [recipes.published(dataset, t, s)["teacher"] for t, s in pairs if t == student]
    known = [v for v in as_student + as_teacher if v is not None]
    return Published(float(known[0])) if known else None


MARKS = "¹²³⁴⁵⁶⁷⁸⁹"


def _paper_notes(cited: dict[str, tuple[str, str]], differ: list[str]) -> list[str]:
    """The lines under a table: what a mark means, and where a second source gives another number."""
    if not cited and not differ:
        return []
    lines = ["", "paper: the LDRLD paper's number (or the CRD benchmark's it relays); a marked number is not in the "
             "paper and comes from the source under the mark."]
    lines += [f"- {mark} {citation}" for mark, (_, citation) in cited.items()]
    return lines + [f"- {note}" for note in differ]


def _fmt(mean: float, std: float, n: int) -> str:
    """'72.31 ± 0.18' (or '72.31' for one seed)."""
    if math.isnan(mean):
        return "–"
    return f"{mean:.2f}" if n == 1 else f"{mean:.2f} ± {std:.2f}"


def _fmt_diff(ours: float, paper: float | None) -> str:
    """Signed difference ours − paper, or '–'."""
    if paper is None or math.isnan(ours):
        return "–"
    return f"{ours - paper:+.2f}"


def results_table(runs: Iterable[Run], *, paper: PaperLookup | None = paper_number) -> str:
    """Markdown table, one row per (dataset, teacher, student, method[, variant]): best/last top-1 over seeds
    (mean ± sample std) next to the published number and the difference. A published number from another
    source than the paper carries a mark (¹, ²...) cited under the table, with any second source that differs."""
    groups = group_runs(runs)
    variants = any(g.variant for g in groups)
    extra = (" setting |", "---|") if variants else ("", "")
    lines = [
        f"| dataset | teacher → student | method |{extra[0]} seeds | best top-1 | last top-1 | paper | Δ best | Δ last |",
        f"|---|---|---|{extra[1]}---|---|---|---|---|---|",
    ]
    cited: dict[str, tuple[str, str]] = {}  # mark -> (source key, citation)
    differ: list[str] = []
    for group in groups:
        dataset, teacher, student, method = group.key
        n = len(group.runs)
        (best_m, best_s), (last_m, last_s) = group.best, group.last
        published = paper(dataset, None if teacher == "-" else teacher, student, method) if paper else None
        pair = student if teacher == "-" else f"{teacher} → {student}"
        seeds = str(n) if len(set(group.seeds)) == n else f"{n} (repeated seed!)"
        setting = f" {group.variant or '–'} |" if variants else ""
        shown = "–" if published is None else f"{published:.2f}" + _mark(getattr(published, "source", None), cited)
        for key, value, _ in getattr(published, "others", ()):
            note = f"{pair} {method}: {published:.2f} from the paper; {key} gives {value:.2f}."
            if note not in differ:
                differ.append(note)
        lines.append(
            f"| {dataset} | {pair} | {method} |{setting} {seeds} | {_fmt(best_m, best_s, n)} "
            f"| {_fmt(last_m, last_s, n)} | {shown} "
            f"| {_fmt_diff(best_m, published)} | {_fmt_diff(last_m, published)} |"
        )
    return "\n".join(lines + _paper_notes(cited, differ))


def _mark(source: tuple[str, str] | None, cited: dict[str, tuple[str, str]]) -> str:
    """'' for the paper's number, else the mark of its source (a new one the first time a source is cited)."""
    if source is None:
        return ""
    for mark, known in cited.items():
        if known == source:
            return mark
    mark = MARKS[len(cited)] if len(cited) < len(MARKS) else f"[{len(cited) + 1}]"
    cited[mark] = source
    return mark


METHOD_ORDER = {VANILLA: 0, "kd": 1, "dkd": 2, "ldrld": 3}


def _row_order(key: GroupKey) -> tuple:
    """Sort rows by dataset, pair, then vanilla, KD, DKD, LDRLD, others."""
    dataset, teacher, student, method = key
    return (dataset, teacher, student, METHOD_ORDER.get(method, 9), method)


def unfinished_table(runs: Iterable[Run]) -> str:
    """Markdown list of runs without `summary.json`: path, epochs done/planned, best so far. '' if none."""
    rows = [r for r in runs if r.status == "unfinished"]
    if not rows:
        return ""
    lines = [
        "| unfinished run | method | seed | epochs | best so far | last |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        planned = r.epochs_planned
        done = f"{r.epochs_done}/{planned}" if planned else str(r.epochs_done)
        best = "–" if r.best_top1 is None else f"{r.best_top1:.2f}"
        last = "–" if r.last_top1 is None else f"{r.last_top1:.2f}"
        lines.append(f"| {r.path} | {r.method} | {r.seed} | {done} | {best} | {last} |")
    return "\n".join(lines)


def failed_table(runs: Iterable[Run]) -> str:
    """Markdown list of failed (diverged) runs: path, method, seed, epoch, reason. '' if none."""
    rows = [r for r in runs if r.failed]
    if not rows:
        return ""
    lines = ["| failed run | method | seed | status | epoch | reason |", "|---|---|---|---|---|---|"]
    for r in rows:
        info = r.failure or {}
        reason = str(info.get("reason", "–")).replace("|", "/")
        lines.append(f"| {r.path} | {r.method} | {r.seed} | {info.get('status', 'failed')} | "
                     f"{info.get('epoch', '–')} | {reason} |")
    return "\n".join(lines)


def unreadable_list(scan: Scan) -> str:
    """Markdown bullets: one unreadable run folder per line, with what is wrong. '' if none."""
    return "\n".join(f"- {path}: {problem}" for path, problem in scan.unreadable)


def format_results(runs_dir: str | Path, *, paper: PaperLookup | None = paper_number) -> str:
    """The whole report for `runs_dir`: one Markdown table per dataset, then the unfinished, failed and
    unreadable runs, then one line counting every run folder found."""
    scan = scan_runs(runs_dir)
    runs = scan.runs
    if not runs and not scan.unreadable:
        return f"No run folders under {runs_dir} (a run folder holds config.yaml, metrics.jsonl, last.pt ...).\n"
    parts = []
    for dataset in sorted({r.dataset for r in runs}):
        of_dataset = [r for r in runs if r.dataset == dataset]
        if any(r.finished for r in of_dataset):
            parts.append(f"## {dataset}\n\n" + results_table(of_dataset, paper=paper))
    for title, text in (("Unfinished runs (not averaged)", unfinished_table(runs)),
                        ("Failed runs (diverged; not averaged)", failed_table(runs)),
                        ("Unreadable run folders (skipped)", unreadable_list(scan))):
        if text:
            parts.append(f"## {title}\n\n{text}")
    parts.append(scan.summary_line())
    return "\n\n".join(parts) + "\n"


@dataclass
class Curve:
    """Mean and std over seeds of val top-1, per epoch (epochs where every seed has a value)."""

    epochs: list[int]
    mean: list[float]
    std: list[float]
    num_runs: int


def group_label(group: Group) -> str:
    """'cifar100 resnet32x4→resnet8x4 ldrld' (+ ' [loss.alpha=8.0]' for a variant): one table row, one curve."""
    dataset, teacher, student, method = group.key
    pair = student if teacher == "-" else f"{teacher}→{student}"
    return f"{dataset} {pair} {method}" + (f" [{group.variant}]" if group.variant else "")


def group_curves(runs: Iterable[Run]) -> dict[str, Curve]:
    """Per-epoch val top-1 curves of the finished runs, grouped exactly as `results_table` groups its rows."""
    curves = {}
    for group in group_runs(runs):
        curves.update(epoch_curves(group.runs, by=lambda r, label=group_label(group): label))
    return curves


def epoch_curves(runs: Iterable[Run], *, by: Callable[[Run], str] = lambda r: r.method,
                 include_unfinished: bool = False) -> dict[str, Curve]:
    """Per-epoch val top-1 curves for plots, averaged over the runs sharing `by(run)` (default: method)."""
    buckets: dict[str, list[Run]] = {}
    for run in runs:
        if run.finished or include_unfinished:
            buckets.setdefault(by(run), []).append(run)
    return {label: mean_curve([r.curve for r in members]) for label, members in buckets.items()}


def mean_curve(curves: list[tuple[list[int], list[float]]]) -> Curve:
    """Mean and std over runs of (epochs, values) curves, on the epochs every run has."""
    per_run = [dict(zip(epochs, values)) for epochs, values in curves]
    common = sorted(set.intersection(*(set(c) for c in per_run))) if per_run else []
    stats = [mean_std([c[e] for c in per_run]) for e in common]
    return Curve(common, [m for m, _ in stats], [s for _, s in stats], len(curves))


def save_curves_plot(runs_dir: str | Path, path: str | Path) -> Path:
    """`ldrld-mini results --plot`: one PNG of val top-1 curves (mean ± std over seeds), one line per table row."""
    import matplotlib.pyplot as plt

    from ldrld_mini.viz import plot_group_curves

    path = Path(path)
    fig = plot_group_curves(group_curves(scan_runs(runs_dir).runs), title=f"val top-1, {runs_dir}")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")  # the legends sit right of the axes
    plt.close(fig)
    return path
