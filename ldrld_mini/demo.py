"""The built-in experiment (`ldrld-mini demo`, `make demo`, notebook 09): does a teacher's logits help?

On the built-in offline data (`synthetic` recipe, generator v3: 4 shape superclasses x 5 hue members,
16x16 pixels) it trains, for each of several seeds, a teacher (resnet20) and the same small student
(resnet8) with vanilla cross-entropy, KD, DKD and LDRLD, on the same budget, through the real engine
(`train.fit`). It reports mean ± std over the seeds of best and last val top-1, and each method's gain
over the vanilla student of the same seed (paired), and writes `<out>/results.md`, `<out>/results.json`
and `<out>/curves.png` (mean and ± std band per method). What the numbers do and do not show: README,
"The built-in experiment".
"""
from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path

from ldrld_mini.results import Curve, mean_std

__all__ = ["DemoSettings", "DEMO", "QUICK", "METHODS", "run_demo", "demo_configs", "summarise",
           "format_demo_table", "read_curve", "load_trained", "val_logits", "relations", "confusion",
           "plot_seed_curves"]

METHODS = ("vanilla", "kd", "dkd", "ldrld")


@dataclass(frozen=True)
class DemoSettings:
    """Sizes of the experiment: data, models, epoch budgets, seeds (2 CPU cores: README, "The built-in experiment")."""

    num_classes: int
    train_per_class: int
    val_per_class: int
    image_size: int
    teacher: str
    student: str
    teacher_epochs: int
    student_epochs: int
    batch_size: int
    lr: float  # the students'
    teacher_lr: float = 0.05
    warmup_epochs: int = 2  # students only: linear lr warm-up, and DKD's loss warm-up (the teacher needs none)
    seeds: tuple[int, ...] = (0, 1, 2)
    shared_teacher: bool = False  # True: one teacher (the first seed's) for the students of every seed

    def milestones(self, epochs: int) -> list[int]:
        """The CRD shape squeezed into `epochs`: ×0.1 once, in the last quarter (none for < 4 epochs)."""
        return [epochs - max(epochs // 4, 1)] if epochs >= 4 else []


# Measured while choosing them (README, "The built-in experiment"): with 30 teacher epochs the teacher's best
# top-1 ranged 72-93 % in 6 runs, with 40 it was 83-94 % in 10; at the students' lr 0.05, LDRLD and DKD
# students fell to about 34 % in two of two seeds tried, at 0.02 they did not.
DEMO = DemoSettings(num_classes=20, train_per_class=30, val_per_class=30, image_size=16, teacher="resnet20",
                    student="resnet8", teacher_epochs=40, student_epochs=30, batch_size=64, lr=0.02,
                    teacher_lr=0.05)
QUICK = DemoSettings(num_classes=10, train_per_class=6, val_per_class=4, image_size=16, teacher="resnet14",
                     student="resnet8", teacher_epochs=2, student_epochs=1, batch_size=32, lr=0.05,
                     warmup_epochs=0, seeds=(0, 1))


def _overrides(s: DemoSettings, seed: int, epochs: int, warmup: int, cache_dir: str | Path | None,
               lr: float) -> list[str]:
    """Recipe overrides shared by the teacher and the students (in-memory batches augmented as tensors)."""
    cache = [f"data.options.cache_dir={cache_dir}"] if cache_dir else []
    return [
        f"data.options.num_classes={s.num_classes}", f"data.options.train_per_class={s.train_per_class}",
        f"data.options.val_per_class={s.val_per_class}", f"data.options.image_size={s.image_size}", *cache,
        f"data.batch_size={s.batch_size}", "data.gpu_resident=true",
        f"optim.lr={lr}", f"schedule.epochs={epochs}", f"schedule.milestones={s.milestones(epochs)}",
        f"schedule.warmup_epochs={warmup}",
        f"train.seed={seed}", "train.device=cpu", "train.channels_last=true",  # about 1.3x faster on CPU
    ]


def demo_configs(settings: DemoSettings, seed: int, teacher_dir: str | Path, *,
                 cache_dir: str | Path | None = None) -> dict:
    """{'teacher': Config, 'vanilla': Config, 'kd': ..., 'dkd': ..., 'ldrld': ...} of one seed.

    The students read the teacher from the run folder `teacher_dir`; `cache_dir` keeps the generated
    images as .npz files so that all runs generate them once (the images do not depend on the seed).
    """
    from ldrld_mini.recipes import load_config

    s = settings
    configs = {"teacher": load_config("synthetic", student=s.teacher, method="vanilla",
                                      overrides=_overrides(s, seed, s.teacher_epochs, 0, cache_dir, s.teacher_lr))}
    for method in METHODS:
        extra = [] if method == "vanilla" else [f"model.teacher_checkpoint={teacher_dir}"]
        if method == "dkd":  # DKD's loss warm-up follows the lr warm-up
            extra.append(f"loss.warmup={max(s.warmup_epochs, 1)}")
        configs[method] = load_config("synthetic", teacher=None if method == "vanilla" else s.teacher,
                                      student=s.student, method=method,
                                      overrides=_overrides(s, seed, s.student_epochs, s.warmup_epochs, cache_dir,
                                                           s.lr) + extra)
    return configs


def _cached(config, run_dir: Path) -> bool:
    """True when `run_dir` holds a finished run of the same config (runtime-only keys aside)."""
    from ldrld_mini.recipes import Config
    from ldrld_mini.train.trainer import RUNTIME_KEYS, config_diff

    if not (run_dir / "summary.json").is_file() or not (run_dir / "config.yaml").is_file():
        return False
    try:
        saved = Config.load_yaml(run_dir / "config.yaml").to_dict()
        status = json.loads((run_dir / "summary.json").read_text()).get("status", "finished")
    except (OSError, ValueError):
        return False  # unreadable: train it again
    return status == "finished" and not [k for k in config_diff(saved, config.to_dict()) if k not in RUNTIME_KEYS]


def read_curve(run_dir: str | Path) -> tuple[list[int], list[float]]:
    """(epochs, val top-1 %) of a run folder's metrics.jsonl (records without val_top1 and a torn last line skipped)."""
    from ldrld_mini.train.logging import read_metrics

    records = [r for r in read_metrics(run_dir) if "val_top1" in r]
    return [int(r["epoch"]) for r in records], [float(r["val_top1"]) for r in records]


def summarise(rows: list[dict]) -> dict:
    """Per method over seeds: best/last mean ± std, the paired gain over vanilla (best and last), runs, time.

    `rows` are per-run dicts with method, seed, best_top1, last_top1, seconds (as `run_demo` collects).
    """
    by_method: dict[str, dict[int, dict]] = {}
    for r in rows:
        by_method.setdefault(r["method"], {})[r["seed"]] = r
    vanilla = by_method.get("vanilla", {})
    out = {}
    for method, runs in by_method.items():
        seeds = sorted(runs)
        entry = {"seeds": seeds, "model": runs[seeds[0]]["model"],
                 "best": [runs[k]["best_top1"] for k in seeds], "last": [runs[k]["last_top1"] for k in seeds],
                 "seconds": sum(runs[k]["seconds"] for k in seeds)}
        entry["best_mean"], entry["best_std"] = mean_std(entry["best"])
        entry["last_mean"], entry["last_std"] = mean_std(entry["last"])
        paired = [k for k in seeds if k in vanilla]
        if method not in ("vanilla", "teacher") and paired:
            entry["gain_best"] = [runs[k]["best_top1"] - vanilla[k]["best_top1"] for k in paired]
            entry["gain_last"] = [runs[k]["last_top1"] - vanilla[k]["last_top1"] for k in paired]
            entry["gain_best_mean"], entry["gain_best_std"] = mean_std(entry["gain_best"])
            entry["gain_last_mean"], entry["gain_last_std"] = mean_std(entry["gain_last"])
        out[method] = entry
    return out


def format_demo_table(summary: dict) -> str:
    """Markdown: method, model, best and last top-1 (mean ± std), gain over vanilla (paired by seed), time."""
    lines = ["| method | model | seeds | best top-1 | last top-1 | best − vanilla | last − vanilla | time (s) |",
             "|---|---|---|---|---|---|---|---|"]
    for method in ("teacher", *METHODS):
        e = summary.get(method)
        if e is None:
            continue
        gains = ("–", "–") if "gain_best" not in e else (
            f"{e['gain_best_mean']:+.2f} ± {e['gain_best_std']:.2f}", f"{e['gain_last_mean']:+.2f} ± {e['gain_last_std']:.2f}")
        lines.append(f"| {method} | {e['model']} | {len(e['seeds'])} | {e['best_mean']:.2f} ± {e['best_std']:.2f} "
                     f"| {e['last_mean']:.2f} ± {e['last_std']:.2f} | {gains[0]} | {gains[1]} | {e['seconds']:.0f} |")
    return "\n".join(lines)


def _fit_timed(config, run_dir: Path, *, overwrite: bool, quiet: bool) -> tuple[dict, float]:
    """`fit` plus its wall time in seconds."""
    from ldrld_mini.train import fit

    start = time.perf_counter()
    summary = fit(config, run_dir, resume=not overwrite, overwrite=overwrite, quiet=quiet)
    return summary, time.perf_counter() - start


def _mean_band(curves: list[tuple[list[int], list[float]]]) -> Curve:
    """Mean and std over runs of (epochs, values) curves, on the epochs every run has."""
    common = sorted(set.intersection(*(set(e) for e, _ in curves)))
    per_run = [dict(zip(e, v)) for e, v in curves]
    stats = [mean_std([c[k] for c in per_run]) for k in common]
    return Curve(common, [m for m, _ in stats], [s for _, s in stats], len(curves))


def _save_plot(out_dir: Path, curves: dict, title: str, num_classes: int) -> Path:
    """`curves.png`: val top-1 per epoch, mean and ± std band over the seeds, teacher dashed."""
    import matplotlib.pyplot as plt

    from ldrld_mini.viz import plot_training_curves

    bands = {m: _mean_band(curves[m]) for m in ("teacher", *METHODS) if curves.get(m)}
    fig = plot_training_curves(bands, title=title, levels={"chance": 100.0 / num_classes})
    path = out_dir / "curves.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _run_one(name: str, config, run_dir: Path, *, seed: int, model: str, cached_ok: bool, quiet: bool) -> dict:
    """Train one run (or reuse a finished identical one when `cached_ok`); its row."""
    if cached_ok and _cached(config, run_dir):
        summary, seconds = _fit_timed(config, run_dir, overwrite=False, quiet=True)
        took = f"cached in {run_dir}"
    else:
        summary, seconds = _fit_timed(config, run_dir, overwrite=True, quiet=quiet)
        took = f"{seconds:.0f} s"
    print(f"  seed {seed} {name:8s} best {summary['best_top1']:6.2f}  last {summary['last_top1']:6.2f}  ({took})",
          flush=True)
    return {"method": name, "seed": seed, "model": model, "best_top1": summary["best_top1"],
            "last_top1": summary["last_top1"], "seconds": seconds, "curve": read_curve(run_dir)}


def _check_seeds(seeds) -> tuple[int, ...]:
    """A non-empty tuple of distinct integers >= 0, or a ValueError naming the argument."""
    seeds = tuple(seeds)
    if not seeds or len(set(seeds)) != len(seeds) or not all(isinstance(k, int) and 0 <= k < 2**31 for k in seeds):
        raise ValueError(f"seeds={seeds!r} must be distinct integers in [0, 2**31), e.g. (0, 1, 2)")
    return seeds


def run_demo(out_dir: str | Path = "runs/demo", *, quick: bool = False, threads: int | None = 2,
             retrain_teacher: bool = False, settings: DemoSettings | None = None, quiet: bool | None = True,
             seeds=None, methods=METHODS) -> dict:
    """Run the experiment; returns {'rows', 'summary', 'table', 'total_time', 'files', 'rounding'}.

    `settings` defaults to DEMO (QUICK with `quick=True`); `seeds` (e.g. range(5)) replaces its seeds.
    Teachers are reused from `<out>/seed<k>/teacher` when finished with the same config; students are
    always trained afresh. `threads` goes through `ldrld_mini.rounding.set_threads` (LDRLD_THREADS wins).
    """
    import torch

    from ldrld_mini.rounding import rounding_path, set_threads

    start = time.perf_counter()
    if threads:
        set_threads(threads)
    s = settings or (QUICK if quick else DEMO)
    s = dataclasses.replace(s, seeds=_check_seeds(s.seeds if seeds is None else seeds))
    unknown = [m for m in methods if m not in METHODS]
    if unknown or "vanilla" not in methods:
        raise ValueError(f"methods={tuple(methods)!r} must include 'vanilla' and only names of {METHODS}")
    out_dir = Path(out_dir)
    print(f"demo: {s.num_classes} classes x {s.train_per_class} train images of {s.image_size}x{s.image_size} "
          f"(built-in synthetic data), teacher {s.teacher} {s.teacher_epochs} epochs, student {s.student} "
          f"{s.student_epochs} epochs, seeds {list(s.seeds)}, {rounding_path()}", flush=True)
    rows = []
    for seed in s.seeds:
        teacher_seed = s.seeds[0] if s.shared_teacher else seed
        teacher_dir = out_dir / f"seed{teacher_seed}" / "teacher"
        configs = demo_configs(s, seed, teacher_dir, cache_dir=out_dir / "data")
        if teacher_seed == seed:
            rows.append(_run_one("teacher", configs["teacher"], teacher_dir, seed=seed, model=s.teacher,
                                 cached_ok=not retrain_teacher, quiet=quiet))
        rows += [_run_one(m, configs[m], out_dir / f"seed{seed}" / m, seed=seed, model=s.student, cached_ok=False,
                          quiet=quiet) for m in METHODS if m in methods]
    summary = summarise(rows)
    table, total = format_demo_table(summary), time.perf_counter() - start
    record = {"settings": dataclasses.asdict(s), "rounding": rounding_path(), "torch": torch.__version__,
              "total_seconds": total, "summary": summary,
              "runs": rows}
    (out_dir / "results.json").write_text(json.dumps(record, indent=1))
    (out_dir / "results.md").write_text(_report(s, configs, table, total, rounding_path()))
    curves = {}
    for r in rows:
        curves.setdefault(r["method"], []).append(r["curve"])
    plot = _save_plot(out_dir, curves, f"{s.teacher} → {s.student}, synthetic data, {len(s.seeds)} seeds",
                      s.num_classes)
    print("\n" + table + "\n")
    print(f"total {total:.0f} s; wrote {out_dir / 'results.md'}, {out_dir / 'results.json'} and {plot}", flush=True)
    return {"rows": rows, "summary": summary, "table": table, "total_time": total, "rounding": rounding_path(),
            "files": [out_dir / "results.md", out_dir / "results.json", plot]}


def _report(s: DemoSettings, configs: dict, table: str, total: float, rounding: str) -> str:
    """The text of `results.md`: what ran, the table, the loss options of each method."""
    losses = "; ".join(f"{m} {configs[m].loss}" for m in METHODS if configs[m].loss)
    teachers = "one teacher, the first seed's, for every seed" if s.shared_teacher else "each trains its own teacher"
    return (f"# ldrld-mini demo\n\n{s.num_classes} classes of the built-in synthetic data (generator v3, "
            f"{s.image_size}x{s.image_size}), {s.train_per_class} train / {s.val_per_class} val images per class; "
            f"seeds {list(s.seeds)} ({teachers}); {rounding}; total {total:.0f} s.\n\n"
            f"Mean ± std over the seeds; a gain is a student's top-1 minus the vanilla student's of the same "
            f"seed.\n\n{table}\n\nSettings: {dataclasses.asdict(s)}\n\nLoss options (synthetic recipe): {losses}\n")


# ---------------------------------------------------------------- what the students learned (notebook 09)
def load_trained(run_dir: str | Path):
    """The model of a finished run folder, built from its config.yaml, weights of best.pt, in eval mode."""
    from ldrld_mini.models import build_model, load_checkpoint
    from ldrld_mini.recipes import Config

    run_dir = Path(run_dir)
    cfg = Config.load_yaml(run_dir / "config.yaml")
    model = build_model(cfg.model.student, num_classes=cfg.data.options["num_classes"], dataset=cfg.dataset)
    load_checkpoint(model, run_dir / "best.pt")
    return model.eval()


def val_logits(model, settings: DemoSettings = DEMO):
    """(logits float32 (N, C), labels int64 (N,)) of `model` on the experiment's val images."""
    import torch

    from ldrld_mini.data import build_loaders

    s = settings
    _, val = build_loaders("synthetic", batch_size=s.batch_size, val_batch_size=512, gpu_resident=True,
                           num_classes=s.num_classes, train_per_class=s.train_per_class,
                           val_per_class=s.val_per_class, image_size=s.image_size)
    model.eval()
    with torch.no_grad():
        pairs = [(model(x), y) for x, y in val]
    return torch.cat([p for p, _ in pairs]), torch.cat([y for _, y in pairs])


def relations(logits, labels, teacher_logits, superclass_of, *, temperature: float = 4.0) -> dict:
    """How a model's predictions relate to the classes and to the teacher (all in %, KL in nats).

    top1; errors_in_superclass: share of its errors that stay inside the true superclass; agreement:
    top-1 equal to the teacher's; kl_to_teacher: mean KL(teacher ‖ model) of the softmaxes at `temperature`.
    """
    import torch
    import torch.nn.functional as F

    pred, pred_t = logits.argmax(1), teacher_logits.argmax(1)
    wrong = pred != labels
    inside = (superclass_of[pred] == superclass_of[labels]) & wrong
    kl = F.kl_div(F.log_softmax(logits / temperature, 1), F.log_softmax(teacher_logits / temperature, 1),
                  log_target=True, reduction="batchmean")
    return {"top1": 100.0 * float((~wrong).double().mean()),
            "errors_in_superclass": 100.0 * float(inside.sum()) / max(int(wrong.sum()), 1),
            "agreement": 100.0 * float((pred == pred_t).double().mean()), "kl_to_teacher": float(kl)}


def confusion(logits, labels, num_classes: int):
    """float (C, C) confusion matrix, rows = true class, normalised to sum 1 per row."""
    import torch

    counts = torch.zeros(num_classes, num_classes, dtype=torch.float64)
    counts.index_put_((labels, logits.argmax(1)), torch.ones(len(labels), dtype=torch.float64), accumulate=True)
    return counts / counts.sum(1, keepdim=True).clamp_min(1)


def plot_seed_curves(rows: list[dict], *, methods=("teacher", *METHODS), title: str = "val top-1 per seed"):
    """One panel per seed: val top-1 per epoch of each method (teacher dashed); returns the figure."""
    import matplotlib.pyplot as plt

    from ldrld_mini.viz.plots import METHOD_COLORS

    seeds = sorted({r["seed"] for r in rows})
    fig, axes = plt.subplots(1, len(seeds), figsize=(3.2 * len(seeds), 3.0), sharey=True, squeeze=False)
    for ax, seed in zip(axes[0], seeds):
        for r in rows:
            if r["seed"] == seed and r["method"] in methods:
                epochs, values = r["curve"]
                ax.plot(epochs, values, "--" if r["method"] == "teacher" else "-", label=r["method"],
                        color=METHOD_COLORS.get(r["method"]), linewidth=1.4)
        ax.set_title(f"seed {seed}", fontsize=10)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("val top-1 (%)")
    axes[0][-1].legend(loc="lower right", fontsize=8)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return fig
