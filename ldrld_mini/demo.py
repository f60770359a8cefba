"""The few-minute CPU demo (`ldrld-mini demo`, `make demo`): one teacher, four students, one table, one plot.

On the built-in offline data (`synthetic` recipe) it trains a teacher (or reuses it from
`<out>/teacher/`), then the same student with vanilla cross-entropy, KD, DKD and LDRLD on the same budget
and seed, through the real engine (`train.fit`). It writes `<out>/results.md` and `<out>/curves.png`.
One seed and a few epochs: it shows the pipeline working and the size of the effects at this budget,
not the paper's numbers.
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["DemoSettings", "DEMO", "QUICK", "run_demo", "demo_configs", "format_demo_table"]

METHODS = ("vanilla", "kd", "dkd", "ldrld")


@dataclass(frozen=True)
class DemoSettings:
    """Sizes of the demo: data, models, epoch budgets (tuned for 2 CPU cores, see the README)."""

    num_classes: int
    train_per_class: int
    val_per_class: int
    teacher: str
    student: str
    teacher_epochs: int
    student_epochs: int
    batch_size: int
    lr: float
    warmup_epochs: int = 4  # students only: linear lr warm-up, and DKD's loss warm-up (the teacher needs none)
    seed: int = 0

    def milestones(self, epochs: int) -> list[int]:
        """The CRD shape squeezed into `epochs`: ×0.1 once, in the last quarter (none for < 4 epochs)."""
        return [epochs - max(epochs // 4, 1)] if epochs >= 4 else []


DEMO = DemoSettings(num_classes=20, train_per_class=100, val_per_class=40, teacher="resnet8",
                    student="resnet8", teacher_epochs=14, student_epochs=10, batch_size=32, lr=0.025,
                    warmup_epochs=5)
QUICK = DemoSettings(num_classes=10, train_per_class=6, val_per_class=4, teacher="resnet8",
                     student="resnet8", teacher_epochs=2, student_epochs=1, batch_size=32, lr=0.05)


def _overrides(s: DemoSettings, epochs: int, warmup: int, cache_dir: str | Path | None) -> list[str]:
    """Recipe overrides shared by the teacher and the students (in-memory batches augmented as tensors)."""
    cache = [f"data.options.cache_dir={cache_dir}"] if cache_dir else []
    return [
        f"data.options.num_classes={s.num_classes}", f"data.options.train_per_class={s.train_per_class}",
        f"data.options.val_per_class={s.val_per_class}", *cache,
        f"data.batch_size={s.batch_size}", "data.gpu_resident=true",
        f"optim.lr={s.lr}", f"schedule.epochs={epochs}", f"schedule.milestones={s.milestones(epochs)}",
        f"schedule.warmup_epochs={warmup}",
        f"train.seed={s.seed}", "train.device=cpu", "train.channels_last=true",  # about 1.3x faster on CPU
    ]


def demo_configs(settings: DemoSettings, teacher_dir: str | Path, *, cache_dir: str | Path | None = None) -> dict:
    """{'teacher': Config, 'vanilla': Config, 'kd': ..., 'dkd': ..., 'ldrld': ...} from the synthetic recipe.

    The students read the teacher from the run folder `teacher_dir`; `cache_dir` keeps the generated
    images as .npz files so that the five runs generate them once.
    """
    from ldrld_mini.recipes import load_config

    s = settings
    configs = {"teacher": load_config("synthetic", student=s.teacher, method="vanilla",
                                      overrides=_overrides(s, s.teacher_epochs, 0, cache_dir))}
    for method in METHODS:
        extra = [] if method == "vanilla" else [f"model.teacher_checkpoint={teacher_dir}"]
        if method == "dkd":  # DKD's loss warm-up follows the lr warm-up (the recipe's half budget)
            extra.append(f"loss.warmup={max(s.warmup_epochs, 1)}")
        configs[method] = load_config("synthetic", teacher=None if method == "vanilla" else s.teacher,
                                      student=s.student, method=method,
                                      overrides=_overrides(s, s.student_epochs, s.warmup_epochs, cache_dir) + extra)
    return configs


def _cached(config, run_dir: Path) -> bool:
    """True when `run_dir` holds a finished run of the same config (runtime-only keys aside)."""
    from ldrld_mini.recipes import Config
    from ldrld_mini.train.trainer import RUNTIME_KEYS, config_diff

    if not (run_dir / "summary.json").exists() or not (run_dir / "config.yaml").exists():
        return False
    saved = Config.load_yaml(run_dir / "config.yaml").to_dict()
    return not [k for k in config_diff(saved, config.to_dict()) if k not in RUNTIME_KEYS]


def format_demo_table(rows: list[dict]) -> str:
    """Markdown table: method, model, best / last val top-1 (%), best minus the vanilla student's, time (s)."""
    vanilla = next((r["best_top1"] for r in rows if r["method"] == "vanilla"), None)
    lines = ["| method | model | best top-1 | last top-1 | best − vanilla | time (s) |", "|---|---|---|---|---|---|"]
    for r in rows:
        gap = "–" if vanilla is None or r["method"] == "vanilla" else f"{r['best_top1'] - vanilla:+.2f}"
        lines.append(f"| {r['method']} | {r['model']} | {r['best_top1']:.2f} | {r['last_top1']:.2f} | {gap} "
                     f"| {r['time']} |")
    return "\n".join(lines)


def _fit_timed(config, run_dir: Path, *, overwrite: bool, quiet: bool) -> tuple[dict, float]:
    """`fit` plus its wall time in seconds."""
    from ldrld_mini.train import fit

    start = time.perf_counter()
    summary = fit(config, run_dir, resume=not overwrite, overwrite=overwrite, quiet=quiet)
    return summary, time.perf_counter() - start


def _save_plot(out_dir: Path, title: str) -> Path:
    """`curves.png`: val top-1 per epoch, teacher dashed, one line per student method, and the level of a
    model that knows the superclass but guesses among its members."""
    import matplotlib.pyplot as plt

    from ldrld_mini.data.synthetic import MEMBERS
    from ldrld_mini.results import epoch_curves, load_runs
    from ldrld_mini.viz import plot_training_curves

    runs = load_runs(out_dir)
    curves = epoch_curves(runs, by=lambda r: "teacher" if r.path.name == "teacher" else r.method)
    order = ["teacher", *METHODS]
    fig = plot_training_curves({k: curves[k] for k in order if k in curves}, title=title,
                               levels={"superclass right, member guessed": 100.0 / MEMBERS})
    path = out_dir / "curves.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _teacher(configs: dict, teacher_dir: Path, s: DemoSettings, *, retrain: bool, quiet: bool) -> dict:
    """Train the teacher, or reuse the finished run in `teacher_dir` when its config is the same; its table row."""
    if not retrain and _cached(configs["teacher"], teacher_dir):
        summary, _ = _fit_timed(configs["teacher"], teacher_dir, overwrite=False, quiet=True)
        print(f"teacher {s.teacher}: cached in {teacher_dir} (--retrain-teacher to train it again)", flush=True)
        took = "cached"
    else:
        print(f"teacher {s.teacher}: training ...", flush=True)
        summary, seconds = _fit_timed(configs["teacher"], teacher_dir, overwrite=True, quiet=quiet)
        took = f"{seconds:.0f}"
    print(f"  best {summary['best_top1']:.2f}  last {summary['last_top1']:.2f}", flush=True)
    return {"method": "teacher", "model": s.teacher, "best_top1": summary["best_top1"],
            "last_top1": summary["last_top1"], "time": took}


def _student(configs: dict, method: str, out_dir: Path, s: DemoSettings, *, quiet: bool) -> dict:
    """Train the student with `method` into `out_dir/method` (always afresh); its table row."""
    print(f"student {s.student} with {method}: training ...", flush=True)
    summary, seconds = _fit_timed(configs[method], out_dir / method, overwrite=True, quiet=quiet)
    print(f"  best {summary['best_top1']:.2f}  last {summary['last_top1']:.2f}  ({seconds:.0f} s)", flush=True)
    return {"method": method, "model": s.student, "best_top1": summary["best_top1"],
            "last_top1": summary["last_top1"], "time": f"{seconds:.0f}"}


def _report(s: DemoSettings, configs: dict, table: str, total: float, threads: int) -> str:
    """The text of `results.md`: what ran, the table, the loss options of each method."""
    losses = "; ".join(f"{m} {configs[m].loss}" for m in METHODS if configs[m].loss)
    return (f"# ldrld-mini demo\n\n{s.num_classes} classes of the built-in synthetic data, "
            f"{s.train_per_class} train / {s.val_per_class} val images per class; one seed ({s.seed}); "
            f"{threads} CPU threads; total {total:.0f} s.\n\n{table}\n\n"
            f"Settings: {dataclasses.asdict(s)}\n\nLoss options (synthetic recipe): {losses}\n")


def run_demo(out_dir: str | Path = "runs/demo", *, quick: bool = False, threads: int | None = 2,
             retrain_teacher: bool = False, settings: DemoSettings | None = None, quiet: bool | None = True,
             seed: int | None = None) -> dict:
    """Run the demo; returns {'rows': [...], 'table': markdown, 'total_time': s, 'files': [...]}.

    `settings` defaults to DEMO (QUICK with `quick=True`); `seed` replaces its seed.
    """
    import torch

    start = time.perf_counter()
    if threads:
        torch.set_num_threads(threads)
    s = settings or (QUICK if quick else DEMO)
    if seed is not None:
        if not isinstance(seed, int) or seed < 0:
            raise ValueError(f"seed={seed!r} must be an integer >= 0, e.g. 0 or 1")
        s = dataclasses.replace(s, seed=seed)
    out_dir = Path(out_dir)
    configs = demo_configs(s, out_dir / "teacher", cache_dir=out_dir / "data")
    print(f"demo: {s.num_classes} classes x {s.train_per_class} train images (built-in synthetic data), "
          f"teacher {s.teacher} {s.teacher_epochs} epochs, student {s.student} {s.student_epochs} epochs, "
          f"{torch.get_num_threads()} CPU threads", flush=True)
    rows = [_teacher(configs, out_dir / "teacher", s, retrain=retrain_teacher, quiet=quiet)]
    rows += [_student(configs, method, out_dir, s, quiet=quiet) for method in METHODS]
    table, total = format_demo_table(rows), time.perf_counter() - start
    (out_dir / "results.md").write_text(_report(s, configs, table, total, torch.get_num_threads()))
    plot = _save_plot(out_dir, f"{s.teacher} → {s.student}, synthetic data ({s.num_classes} classes)")
    print("\n" + table + "\n")
    print(f"total {total:.0f} s; wrote {out_dir / 'results.md'} and {plot}", flush=True)
    return {"rows": rows, "table": table, "total_time": total, "files": [out_dir / "results.md", plot]}
