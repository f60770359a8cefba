"""`ldrld-mini` (also `python -m ldrld_mini`): train, distill, evaluate, check data, aggregate, reproduce, demo.

Every subcommand has `--help`. A user mistake (unknown model, missing data or teacher checkpoint, bad
override) prints one message to stderr and exits with status 2; `--debug` shows the traceback instead.
Heavy imports (torch) happen inside the subcommands, so `--help` stays fast.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import re
import shlex
import sys
import time
from pathlib import Path
from typing import Callable, Sequence

from ldrld_mini.runfolder import current_names, default_run_dir  # default_run_dir: re-exported here

__all__ = ["main", "build_parser", "default_run_dir", "reproduce_plan", "ablation_plan", "slurm_script", "ABLATIONS",
           "UsageError"]

PROG = "ldrld-mini"
DISTILL_METHODS = ("ldrld", "kd", "dkd")
TABLE_METHODS = ("vanilla", "kd", "dkd", "ldrld")
TABLES = ("cifar100", "tiny_imagenet", "imagenet", "synthetic")
ABLATION_PAIR = ("cifar100", "resnet32x4", "resnet8x4")  # `reproduce cifar100 --ablation`: LDRLD on this pair
ABLATIONS = (  # (run folder name, overrides): LDRLD's parts switched off one at a time
    ("full", ()),
    ("pair_weighting-irw", ("loss.pair_weighting=irw",)),
    ("pair_weighting-erd", ("loss.pair_weighting=erd",)),
    ("pair_weighting-uniform", ("loss.pair_weighting=uniform",)),
    ("no_whole_group", ("loss.whole_group=false",)),
    ("no_rntk", ("loss.beta=0",)),
    ("no_local", ("loss.alpha=0",)),
    ("k3", ("loss.k=3",)),
    ("k5", ("loss.k=5",)),
    ("k9", ("loss.k=9",)),
    ("rank_by-teacher", ("loss.rank_by=teacher",)),
)


class UsageError(Exception):
    """A mistake in how the command was called; reported in one line, exit status 2."""


def _user_errors() -> tuple[type[BaseException], ...]:
    """Exceptions that mean 'the input is wrong', not 'the code is wrong' (no traceback without --debug)."""
    errors: tuple[type[BaseException], ...] = (UsageError, ValueError, FileNotFoundError, FileExistsError,
                                               NotADirectoryError, PermissionError)
    from ldrld_mini.runfolder import RunLockedError, RunWriteError
    from ldrld_mini.versions import TorchTooOldError
    errors += (RunLockedError, RunWriteError, TorchTooOldError)  # a folder in use, a full disk, an old torch
    try:  # unreadable / mismatching checkpoints, failed downloads and diverged runs are input problems too
        from ldrld_mini.models import CheckpointError, TeacherDownloadError
        from ldrld_mini.train.trainer import TrainingDivergedError
    except ImportError:
        return errors
    return errors + (CheckpointError, TeacherDownloadError, TrainingDivergedError)


def _error_text(err: BaseException) -> str:
    """The error's message; for one re-raised from a DataLoader worker, only its last line (no traceback)."""
    text = str(err)
    if "Original Traceback" in text:
        last = [line for line in text.splitlines() if line.strip()][-1].strip()
        match = re.match(r"^[\w.]+: (.*)$", last)
        text = match.group(1) if match else last
    return _did_you_mean(text)


def _did_you_mean(text: str) -> str:
    """An unknown-override-key message with the closest valid keys put first ('did you mean ...?')."""
    import ast
    import difflib

    match = re.search(r"unknown override key '([^']+)'; valid keys are (\[[^\]]*\])", text)
    if not match:
        return text
    try:
        keys = ast.literal_eval(match.group(2))
    except (ValueError, SyntaxError):
        return text
    wrong = match.group(1)

    def score(key: str) -> float:  # the whole key, or its last part alone (train.epochs -> schedule.epochs)
        return max(difflib.SequenceMatcher(None, wrong, key).ratio(),
                   difflib.SequenceMatcher(None, wrong.split(".")[-1], key.split(".")[-1]).ratio())

    ranked = sorted(keys, key=score, reverse=True)
    close = [k for k in ranked[:2] if score(k) >= 0.75]
    if not close:
        return text
    hint = f"unknown override key {match.group(1)!r} (did you mean {' or '.join(map(repr, close))}?)"
    return text.replace(f"unknown override key {match.group(1)!r}", hint, 1)


# ----------------------------------------------------------------------------------------------------------
# run folders and configs

def _config_from_args(args: argparse.Namespace, *, method: str, teacher: str | None, student: str):
    """Resolve the recipe with the command line's overrides (`--seed`, `--data-root`, `--device` last)."""
    from ldrld_mini.recipes import check_recipe, load_config
    from ldrld_mini.train.checks import check_model_name

    check_recipe(args.recipe, "--recipe")
    for name, option in ((teacher, "--teacher"), (student, "--model" if method == "vanilla" else "--student")):
        if name is not None:
            check_model_name(name, args.recipe, option)
    return load_config(args.recipe, teacher=teacher, student=student, method=method,
                       overrides=_option_overrides(args))


def _option_overrides(args: argparse.Namespace) -> list[str]:
    """The overrides, then `--seed`, `--data-root`, `--device`, `--epochs`, `--fast` as overrides (they win)."""
    if args.seed is not None:
        from ldrld_mini.recipes.config import SEED_LIMIT
        if not 0 <= args.seed < SEED_LIMIT:
            raise UsageError(f"--seed {args.seed} must be an integer in [0, {SEED_LIMIT - 1}], e.g. --seed 0.")
    if args.device is not None:
        from ldrld_mini.train.checks import check_device
        check_device(args.device, "--device")
    overrides = list(args.overrides)
    if args.seed is not None:
        overrides.append(f"train.seed={args.seed}")
    if args.data_root is not None:
        overrides.append(f"data.root={args.data_root}")
    if args.device is not None:
        overrides.append(f"train.device={args.device}")
    if args.epochs is not None:
        overrides.append(f"schedule.epochs={args.epochs}")
    if args.fast:
        from ldrld_mini.train.fast import FAST_OVERRIDES
        overrides += FAST_OVERRIDES
    return overrides


def _schedule_warnings(cfg) -> list[str]:
    """Warnings for a schedule shortened by `epochs` alone: a warm-up or milestones beyond the last epoch."""
    s, out = cfg.schedule, []
    if s.warmup_epochs and s.warmup_epochs >= s.epochs:
        out.append(f"the lr warm-up lasts {s.warmup_epochs} epochs but the run has {s.epochs}, so the lr never "
                   f"reaches optim.lr; pass schedule.warmup_epochs=N with N < {s.epochs} (or 0)")
    late = [m for m in s.milestones if m > s.epochs]
    if late:
        out.append(f"lr milestones {late} lie beyond epoch {s.epochs} and never apply; pass e.g. "
                   f"schedule.milestones=[{max(1, s.epochs * 5 // 8)},{max(1, s.epochs * 3 // 4)},"
                   f"{max(1, s.epochs * 7 // 8)}] (the recipe's proportions) or schedule.milestones=[]")
    return out


def _warn_schedule(cfg) -> None:
    for text in _schedule_warnings(cfg):
        print(f"{PROG}: warning: {text}.", file=sys.stderr, flush=True)


def _remove_if_only_lock(run_dir: Path, *, created: bool) -> None:
    """After a failure before anything was written (data not ready, a bad teacher file): delete the lock
    files the run left, and the folder too when this command created it, as the failures caught before the
    folder is touched leave nothing behind. A folder holding anything else is kept."""
    from ldrld_mini.runfolder import HOLDER_NAME, LOCK_NAME

    try:
        names = {p.name for p in run_dir.iterdir()}
    except OSError:
        return
    if not names <= {LOCK_NAME, HOLDER_NAME}:
        return
    for name in names:
        (run_dir / name).unlink(missing_ok=True)
    if created:
        try:
            run_dir.rmdir()
        except OSError:
            pass


def _run_one(cfg, run_dir: Path, *, resume: bool, overwrite: bool = False, quiet: bool | None = None,
             trust_pickle: bool = False) -> dict:
    """Fit one config into `run_dir` and print where it went and its best / last top-1."""
    from ldrld_mini.runfolder import RunFolder, check_unlocked
    from ldrld_mini.train import fit
    from ldrld_mini.train.checks import check_config
    from ldrld_mini.train.teacher import check_teacher_checkpoint

    check_config(cfg)  # the library's own checks, before anything is loaded or written (fit runs them again)
    if cfg.method != "vanilla":
        check_teacher_checkpoint(cfg)
    check_unlocked(run_dir)
    RunFolder(run_dir).decide(cfg, resume=resume, overwrite=overwrite)  # fit decides again under the lock
    _warn_schedule(cfg)
    print(f"run folder: {run_dir}", flush=True)
    existed = run_dir.exists()
    try:
        summary = fit(cfg, run_dir, resume=resume, overwrite=overwrite, quiet=quiet, trust_pickle=trust_pickle)
    except BaseException:
        _remove_if_only_lock(run_dir, created=not existed)
        raise
    print(f"done: best top-1 {summary['best_top1']:.2f} (epoch {summary['best_epoch']}), "
          f"last top-1 {summary['last_top1']:.2f} -> {run_dir}", flush=True)
    return summary


# ----------------------------------------------------------------------------------------------------------
# subcommands

def cmd_train(args: argparse.Namespace) -> int:
    """Train one model with plain cross-entropy (a teacher, or the vanilla student baseline)."""
    return _train_or_distill(args, {"--recipe": "recipe", "--model": "model"})


def cmd_distill(args: argparse.Namespace) -> int:
    """Distil the teacher into the student with KD, DKD or LDRLD."""
    return _train_or_distill(args, {"--recipe": "recipe", "--teacher": "teacher", "--student": "student",
                                    "--method": "method"})


def _train_or_distill(args: argparse.Namespace, names: dict[str, str]) -> int:
    """Resolve the config (--config FILE or the recipe and names, then the overrides); print it or run it."""
    vanilla = args.command == "train"
    if args.config:
        cfg = _config_from_file(args, names, vanilla=vanilla)
    else:
        missing = [option for option, dest in names.items() if getattr(args, dest) is None]
        if missing:
            raise UsageError(f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} required (or give "
                             "--config FILE, e.g. a run folder's config.yaml).")
        cfg = _config_from_args(args, method="vanilla" if vanilla else args.method,
                                teacher=None if vanilla else args.teacher,
                                student=args.model if vanilla else args.student)
    run_dir = Path(args.run_dir) if args.run_dir else default_run_dir(
        cfg.dataset, cfg.method, cfg.model.student, cfg.model.teacher, cfg.train.seed)
    if args.print_config:
        import yaml

        print(f"# run folder: {run_dir}\n" + yaml.safe_dump(cfg.to_dict(), sort_keys=False), end="")
        return 0
    _run_one(cfg, run_dir, resume=args.resume, overwrite=args.overwrite, quiet=args.quiet,
             trust_pickle=args.trust_pickle)
    return 0


CONFIG_FIX = "pass a run folder's config.yaml or a file written by --print-config"


def _config_from_file(args: argparse.Namespace, names: dict[str, str], *, vanilla: bool):
    """The Config in `--config FILE` with the command line's overrides on top; UsageError naming the file."""
    from ldrld_mini.recipes import apply_overrides, parse_override
    from ldrld_mini.recipes.config import Config
    from ldrld_mini.runfolder import RunFileError, read_yaml_dict

    path = Path(args.config)
    if not path.exists():
        raise UsageError(f"--config {str(path)!r} does not exist; {CONFIG_FIX}.")
    try:
        cfg = Config.from_dict(read_yaml_dict(path, fix=CONFIG_FIX))
    except RunFileError as err:
        raise UsageError(f"--config: {err}") from None
    except (ValueError, TypeError) as err:  # unknown or missing keys, a bad value
        raise UsageError(f"--config {str(path)!r} is not a valid config: {err}; {CONFIG_FIX}.") from None
    if (cfg.method == "vanilla") != vanilla:
        other = "train" if cfg.method == "vanilla" else "distill"
        raise UsageError(f"--config {str(path)!r} holds a {cfg.method} run; run it with `{PROG} {other} --config "
                         f"{path}`.")
    _check_names_agree(args, names, cfg, path)
    from ldrld_mini.train.checks import check_model_name

    for name, option in ((cfg.model.teacher, "--teacher"), (cfg.model.student, "--student")):
        if name is not None:
            check_model_name(name, cfg.dataset, f"{option} (from --config)")
    try:
        d = apply_overrides(cfg.to_dict(), [parse_override(o) for o in _option_overrides(args)])
        return Config.from_dict(d)
    except ValueError as err:
        raise UsageError(f"{err} (on top of --config {str(path)!r})") from None


def _check_names_agree(args: argparse.Namespace, names: dict[str, str], cfg, path: Path) -> None:
    """UsageError when --recipe / --model / --teacher / --student / --method, given too, differ from the file."""
    in_file = {"recipe": ("dataset", cfg.dataset), "model": ("model.student", cfg.model.student),
               "teacher": ("model.teacher", cfg.model.teacher), "student": ("model.student", cfg.model.student),
               "method": ("method", cfg.method)}
    for option, dest in names.items():
        given = getattr(args, dest)
        key, value = in_file[dest]
        if given is not None and given != value:
            raise UsageError(f"{option} {given!r} disagrees with --config {str(path)!r} ({key}: {value!r}); drop "
                             f"{option} or change the file.")


def _parse_options(items: Sequence[str], option: str) -> dict:
    """`["num_classes=10", ...]` -> `{"num_classes": 10, ...}` (values parsed as YAML)."""
    import yaml

    options = {}
    for item in items:
        if "=" not in item:
            raise UsageError(f"{option} {item!r} is not of the form key=value, e.g. {option} num_classes=10.")
        key, value = item.split("=", 1)
        options[key.strip()] = yaml.safe_load(value)
    return options


def cmd_eval(args: argparse.Namespace) -> int:
    """Top-1 / top-5 of a checkpoint on a dataset's validation split; a run folder's config.yaml supplies the
    model, dataset, data options and root that are not given."""
    import torch

    from ldrld_mini.data import DATASETS, build_loaders
    from ldrld_mini.models import build_model, evaluate, load_checkpoint
    from ldrld_mini.train import resolve_checkpoint
    from ldrld_mini.train.checks import check_device, check_model_name

    if args.run_folder and args.checkpoint:
        raise UsageError(f"RUN_FOLDER {args.run_folder!r} and --checkpoint {args.checkpoint!r} both name what to "
                         "evaluate; give one of them.")
    source = args.run_folder or args.checkpoint
    if source is None:
        raise UsageError(f"say what to evaluate: a run folder (`{PROG} eval runs/.../seed0`) or --checkpoint FILE "
                         "with --model NAME.")
    cfg = _run_config(Path(source))
    model_name = args.model or (cfg.model.student if cfg else None)
    if model_name is None:
        raise UsageError(f"--model is required: {source!r} is not a run folder with a config.yaml, so nothing "
                         "says which model it holds; pass e.g. --model resnet8x4.")
    dataset = args.dataset or (cfg.dataset if cfg else "cifar100")
    if dataset not in DATASETS:
        raise UsageError(f"--dataset {dataset!r} is not a known dataset; use one of {sorted(DATASETS)}.")
    check_model_name(model_name, None, "--model")
    device = check_device(args.device, "--device")
    options = {**(cfg.data.options if cfg and dataset == cfg.dataset else {}),
               **_parse_options(args.data_option, "--data-option")}
    checkpoint = resolve_checkpoint(source)
    if not checkpoint.exists():
        raise UsageError(f"--checkpoint {source!r} does not exist; pass a .pth/.pt file or a run folder.")
    if Path(source).is_dir() and checkpoint.name == "last.pt":
        print(f"note: {source} has no best.pt; evaluating its last.pt instead", flush=True)
    data_classes = options.get("num_classes") or DATASETS[dataset].num_classes
    num_classes = args.num_classes or data_classes
    if num_classes < data_classes:
        raise UsageError(f"--num-classes {num_classes}: {dataset} has {data_classes} classes, and a model with "
                         f"fewer outputs cannot score its labels; pass --num-classes {data_classes} (or leave it out) "
                         "with a checkpoint trained on this dataset.")
    model = build_model(model_name, num_classes=num_classes, dataset=dataset)
    meta = load_checkpoint(model, checkpoint, strict=True, trust_pickle=args.trust_pickle)
    root = args.data_root or (cfg.data.root if cfg and dataset == cfg.dataset else None) or _default_data_root(dataset)
    _, val_loader = build_loaders(dataset, root, batch_size=args.batch_size, device=device, **options)
    with torch.inference_mode():
        result = evaluate(model.to(device), val_loader, device, progress=None)
    print(f"{model_name} on {dataset} val ({result['n']} images): top-1 {result['top1']:.2f}  "
          f"top-5 {result['top5']:.2f}{_stored_accuracy(meta, checkpoint)}")
    return 0


def _run_config(folder: Path):
    """The resolved Config in a run folder's config.yaml; None when `folder` is not a folder holding one."""
    from ldrld_mini.recipes.config import Config
    from ldrld_mini.runfolder import RunFileError, read_yaml_dict

    path = folder / "config.yaml"
    if not (folder.is_dir() and path.is_file()):
        return None
    fix = "restore it, or pass --checkpoint FILE with --model and --dataset"
    try:
        return Config.from_dict(read_yaml_dict(path, fix=fix))
    except (TypeError, ValueError) as err:
        if isinstance(err, RunFileError):
            raise
        raise UsageError(f"{str(path)!r} is not a run config ({err}); {fix}.") from None


def _stored_accuracy(meta: dict, checkpoint: Path) -> str:
    """' (stored accuracy 79.42)' for a file that stores its own accuracy; a run's last.pt stores the run's
    best so far instead, which is said as such."""
    if checkpoint.name == "last.pt" and "epoch" in meta:
        so_far = current_names(meta).get("best_top1")  # older run folders' last.pt: best_acc
        best = (f"; the run's best top-1 so far, {float(so_far):.2f} at epoch {meta.get('best_epoch')}, "
                "is what best.pt would hold") if isinstance(so_far, (int, float)) else ""
        return f" (last.pt of epoch {meta['epoch']}{best})"
    key = next((k for k in ("accuracy", "best_acc") if k in meta), None)
    return f" (stored accuracy {float(meta[key]):.2f})" if key else ""


def _default_data_root(dataset: str) -> str | None:
    """The recipe's `data.root` for `dataset` (None when it has no recipe or no root)."""
    from ldrld_mini.recipes import list_recipes, load_recipe

    if dataset not in list_recipes():
        return None
    return load_recipe(dataset)["defaults"]["data"].get("root")


def cmd_prepare_data(args: argparse.Namespace) -> int:
    """Check a dataset folder and say exactly what is missing; `--download` fetches CIFAR-100."""
    from ldrld_mini.data import DATASETS, build_datasets, check_dataset

    if args.dataset not in DATASETS:
        raise UsageError(f"DATASET {args.dataset!r} is not a known dataset; use one of {sorted(DATASETS)}.")
    root = args.root or _default_data_root(args.dataset)
    if args.download:
        if args.dataset != "cifar100":
            raise UsageError(f"--download works for cifar100 only; {args.dataset} must be put under "
                             f"{root} by hand (run without --download to see the expected layout).")
        print(f"downloading CIFAR-100 into {root} ...", flush=True)
        build_datasets("cifar100", root, download=True)
    report = check_dataset(args.dataset, root)
    print(report.format())
    return 0 if report.ok else 1


def cmd_teachers(args: argparse.Namespace) -> int:
    """List the teacher checkpoints the recipes need (and whether they are present); `--fetch` downloads."""
    from ldrld_mini.models.teachers import fetch_teachers, format_teacher_table

    if args.fetch:
        fetch_teachers(args.root)
    print(format_teacher_table(args.root))
    return 0


def cmd_results(args: argparse.Namespace) -> int:
    """Aggregate run folders into Markdown tables (mean ± std over seeds, next to the paper's numbers)."""
    from ldrld_mini.results import format_results

    text = format_results(args.runs_dir)
    print(text, end="")
    if args.output:
        from ldrld_mini.runfolder import atomic_write_text, ensure_dir
        from ldrld_mini.runfolder import RunFileError, RunWriteError
        try:
            ensure_dir(Path(args.output).parent)
            atomic_write_text(text, Path(args.output))
        except (RunFileError, RunWriteError, OSError) as err:  # read-only, full, or a file where a folder goes
            reason = getattr(err, "strerror", None) or str(err).split(";")[0]
            raise UsageError(f"--output {args.output!r} cannot be written ({reason}); choose another --output "
                             "(e.g. in your home folder).") from None
        print(f"\nwritten to {args.output}")
    if args.plot:
        import matplotlib
        matplotlib.use("Agg")
        from ldrld_mini.results import save_curves_plot
        print(f"plot written to {save_curves_plot(args.runs_dir, args.plot)}")
    return 0


# ----------------------------------------------------------------------------------------------------------
# reproduce

def reproduce_plan(table: str, *, seeds: Sequence[int], methods: Sequence[str] = TABLE_METHODS,
                   runs_dir: str | Path = "runs", overrides: Sequence[str] = (), fast: bool = False,
                   pairs: Sequence[str] | None = None) -> list:
    """Every run of one paper table as `train.multirun.RunSpec`s (teachers to train first, then students);
    `pairs` ('teacher:student') keeps only those of the table's pairs."""
    from ldrld_mini.recipes import list_pairs
    from ldrld_mini.train.multirun import plan_table

    if pairs is not None:
        known = [f"{t}:{s}" for t, s in list_pairs(table)]
        bad = [p for p in pairs if p not in known]
        if bad or not pairs:
            raise UsageError(f"--pairs {' '.join(bad)!r}: use some of the {table} pairs {' '.join(known)}.")
    _check_overrides(table, methods, overrides)
    return plan_table(table, seeds, methods=methods, runs_root=runs_dir, overrides=overrides, fast=fast,
                      pairs=pairs)


def _check_overrides(table: str, methods: Sequence[str], overrides: Sequence[str]) -> None:
    """UsageError naming the method when an override does not apply to one of `methods`."""
    from ldrld_mini.recipes import list_pairs, load_config
    from ldrld_mini.train.multirun import fill_placeholders

    teacher, student = list_pairs(table)[0]
    for method in methods:
        who = None if method == "vanilla" else teacher
        try:
            load_config(table, teacher=who, student=student, method=method,
                        overrides=fill_placeholders(overrides, teacher=who, student=student, method=method, seed=0))
        except ValueError as err:
            if "loss." not in str(err):
                raise UsageError(str(err)) from None
            raise UsageError(f"{err} (for --methods {method}: a loss option applies to all the --methods given, "
                             "so pass it with the method it belongs to, e.g. --methods ldrld loss.alpha=8)") from None


def ablation_plan(table: str, *, seeds: Sequence[int], runs_dir: str | Path = "runs", overrides: Sequence[str] = (),
                  fast: bool = False) -> list:
    """`(RunSpec, its variant's overrides)` of every ABLATIONS variant × seed, LDRLD on ResNet32×4 → ResNet8×4.

    Run folders: `<runs_dir>/<table>_ablation/<teacher>-<student>/<variant>/seed<k>`, apart from the table's.
    """
    from ldrld_mini.train.fast import FAST_OVERRIDES
    from ldrld_mini.train.multirun import RunSpec, fill_placeholders

    dataset, teacher, student = ABLATION_PAIR
    if table != dataset:
        raise UsageError(f"--ablation is defined for {dataset} only ({teacher} -> {student}), not {table!r}.")
    varied = {o.split("=", 1)[0] for _, own in ABLATIONS for o in own}
    clash = [o for o in overrides if o.split("=", 1)[0].strip() in varied]
    if clash:
        raise UsageError(f"override {' '.join(clash)!r} sets a key the ablation varies ({' '.join(sorted(varied))}); "
                         "drop it.")
    if len(set(seeds)) != len(seeds):
        raise UsageError(f"--seeds {' '.join(map(str, seeds))} repeats a seed; each seed gives one run folder.")
    _check_overrides(table, ["ldrld"], overrides)
    plan = []
    for seed in seeds:
        for name, own in ABLATIONS:
            run_dir = Path(runs_dir) / f"{dataset}_ablation" / f"{teacher}-{student}" / name / f"seed{seed}"
            filled = fill_placeholders(overrides, teacher=teacher, student=student, method="ldrld", seed=seed)
            spec = RunSpec(dataset, "ldrld", teacher, student, seed, str(run_dir),
                           (*own, *filled, *(FAST_OVERRIDES if fast else ())))
            spec.config()  # fail early on a bad override
            plan.append((spec, own))
    return plan


def _command_line(spec, *, nproc: int, runs_dir: str, fast: bool) -> str:
    """The shell command that runs one RunSpec (torchrun when `nproc` > 1): the one `reproduce` prints, writes
    into `--slurm` scripts and (split into words) starts with `--run`. Its overrides are the spec's own (a
    table's teachers get the user's overrides without the loss options, `multirun._teacher_runs`), and it
    carries `--resume`, which continues a run folder holding a run and starts an empty one afresh, so a
    pasted script can simply be run again after an interruption."""
    from ldrld_mini.train.fast import FAST_OVERRIDES

    launcher = [PROG] if nproc <= 1 else ["torchrun", f"--nproc_per_node={nproc}", "-m", "ldrld_mini"]
    if spec.method == "vanilla":
        words = ["train", "--recipe", spec.dataset, "--model", spec.student]
    else:
        words = ["distill", "--recipe", spec.dataset, "--teacher", spec.teacher, "--student", spec.student,
                 "--method", spec.method]
    words += ["--seed", str(spec.seed)]
    if spec.stage == 0 or str(runs_dir) != "runs" or Path(spec.run_dir) != default_run_dir(
            spec.dataset, spec.method, spec.student, spec.teacher, spec.seed):
        words += ["--run-dir", str(spec.run_dir)]
    overrides = list(spec.overrides)
    if fast and tuple(overrides[len(overrides) - len(FAST_OVERRIDES):]) == tuple(FAST_OVERRIDES):
        overrides = overrides[:len(overrides) - len(FAST_OVERRIDES)]  # `--fast` says them
    return shlex.join(launcher + words + ["--resume"] + (["--fast"] if fast else []) + overrides)


def _worker_argv(line: str) -> list[str]:
    """The printed command `line` (`ldrld-mini ...`) as this Python's `-m ldrld_mini` argv (what --run starts)."""
    words = shlex.split(line)
    assert words[0] == PROG, line
    return [sys.executable, "-m", "ldrld_mini", *words[1:]]


def _missing_teacher_files(specs) -> dict[str, str]:
    """{teacher: checkpoint path} of the teachers the students need as files that are not there."""
    from ldrld_mini.train.teacher import names_run_folder, teacher_checkpoint_path

    missing = {}
    for spec in specs:
        if spec.stage == 1 and spec.method != "vanilla":
            cfg = spec.config()
            path = cfg.model.teacher_checkpoint
            if not names_run_folder(path):
                found = teacher_checkpoint_path(cfg)
                if not found.is_file():
                    missing[spec.teacher] = str(found)
    return missing


def _prerequisites(table: str, specs) -> list[str]:
    """Comment lines: what must be in place before the table's commands can run (data, teacher files)."""
    root = specs[0].config().data.root if specs else None
    lines = [f"# data: {PROG} prepare-data {table}" + (f" --root {shlex.quote(str(root))}" if root else "")
             + (" --download" if table == "cifar100" else "") + "   (checks it is there)"]
    lines += [f"# teacher {t}: {path} (MISSING)" for t, path in _missing_teacher_files(specs).items()]
    if table == "cifar100" and len(lines) > 1:
        lines.append(f"# missing CIFAR-100 teachers: {PROG} teachers --fetch   (the CRD checkpoints)")
    lines += [f"# teacher {s.student}: trained first into {s.run_dir}" for s in specs if s.stage == 0]
    return lines


def cmd_reproduce(args: argparse.Namespace) -> int:
    """Print (default) or run (`--run`) every command of one paper table."""
    if args.table not in TABLES:
        raise UsageError(f"TABLE {args.table!r} is not a paper table; use one of {list(TABLES)}.")
    methods_given = args.methods is not None
    args.methods = list(TABLE_METHODS) if args.methods is None else args.methods
    _check_seeds_and_methods(args)
    if args.ablation:
        if args.pairs is not None:
            raise UsageError(f"--ablation runs {ABLATION_PAIR[1]}:{ABLATION_PAIR[2]} only; drop --pairs.")
        if methods_given and args.methods != ["ldrld"]:
            raise UsageError(f"--ablation runs LDRLD only; drop --methods {' '.join(args.methods)}.")
        return _reproduce_ablation(args)
    specs = reproduce_plan(args.table, seeds=args.seeds, methods=args.methods, runs_dir=args.runs_dir,
                           overrides=args.overrides, fast=args.fast, pairs=args.pairs)
    if args.slurm:
        return _write_slurm(args, [(spec, _command_line(spec, nproc=args.nproc, runs_dir=args.runs_dir, fast=args.fast))
                                   for spec in specs], name=args.table)
    if not args.run:
        seeds = " ".join(str(seed) for seed in args.seeds)
        print(f"# {args.table}: {len(specs)} runs (pairs × methods {' '.join(args.methods)} × seeds {seeds})")
        print("\n".join(_prerequisites(args.table, specs)))
        for spec in specs:
            print(_command_line(spec, nproc=args.nproc, runs_dir=args.runs_dir, fast=args.fast))
        print(f"# then: {PROG} results {Path(args.runs_dir) / args.table}")
        return 0
    return _run_specs(args, specs)


def _reproduce_ablation(args: argparse.Namespace) -> int:
    """Print (default) or run (`--run`) the ablation runs of `ablation_plan`: the same runs either way."""
    plan = ablation_plan(args.table, seeds=args.seeds, runs_dir=args.runs_dir, overrides=args.overrides,
                         fast=args.fast)
    specs = [spec for spec, _ in plan]
    if args.slurm:
        return _write_slurm(args, [(spec, _command_line(spec, nproc=args.nproc, runs_dir=args.runs_dir, fast=args.fast))
                                   for spec in specs], name=f"{args.table}_ablation")
    if args.run:
        return _run_specs(args, specs)
    _, teacher, student = ABLATION_PAIR
    seeds = " ".join(str(seed) for seed in args.seeds)
    print(f"# {args.table} ablation, ldrld {teacher} -> {student}: {len(specs)} runs "
          f"({len(ABLATIONS)} variants × seeds {seeds}): {', '.join(name for name, _ in ABLATIONS)}")
    print("\n".join(_prerequisites(args.table, specs)))
    for spec in specs:
        print(_command_line(spec, nproc=args.nproc, runs_dir=args.runs_dir, fast=args.fast))
    print(f"# then: {PROG} results {Path(args.runs_dir) / (args.table + '_ablation')}")
    return 0


def _check_seeds_and_methods(args: argparse.Namespace) -> None:
    """UsageError unless `--seeds` are integers and `--methods` table methods (the seeds become ints), and
    the SLURM options go with `--slurm` and not with `--run`."""
    given = [o for o, v in (("--partition", args.partition), ("--gpus-per-task", args.gpus_per_task),
                            ("--time", args.time)) if v is not None]
    if given and not args.slurm:
        raise UsageError(f"{' '.join(given)} go{'es' if len(given) == 1 else ''} with --slurm (the job-array "
                         f"script), e.g. --slurm job.sh {given[0]} ...")
    if args.slurm and args.run:
        raise UsageError("--slurm writes a job-array script for sbatch and --run runs here; choose one.")
    if args.gpus_per_task is not None and args.gpus_per_task < 1:
        raise UsageError(f"--gpus-per-task {args.gpus_per_task} must be >= 1, e.g. --gpus-per-task 1.")
    bad = [s for s in args.seeds if not s.lstrip("-").isdigit()]
    if bad or not args.seeds:
        raise UsageError(f"--seeds {' '.join(bad)!r} must be integers, e.g. --seeds 0 1 2.")
    args.seeds = [int(s) for s in args.seeds]
    bad = [m for m in args.methods if m not in TABLE_METHODS]
    if bad or not args.methods:
        raise UsageError(f"--methods {' '.join(bad)!r}: use some of {' '.join(TABLE_METHODS)}.")


def slurm_script(entries, *, name: str, log_dir: str | Path, partition: str | None = None,
                 gpus_per_task: int | None = None, time_limit: str | None = None, before: Sequence[str] = ()) -> str:
    """An sbatch job-array script: task i runs the command of `entries[i]` = (RunSpec, command line).

    A task whose run folder holds summary.json exits at once; one whose folder holds last.pt continues it
    with --resume, so a requeued (preempted) task goes on where it stopped. Teachers of the table (stage 0)
    come first; the default array is then theirs, and the header says how to submit the students after them.
    `before`: comment lines on what must be in place first (data, teacher files), as `reproduce` prints them.
    """
    n = len(entries)
    teachers = sum(1 for spec, _ in entries if spec.stage == 0)
    array = f"0-{teachers - 1}" if teachers else f"0-{n - 1}"
    lines = ["#!/bin/bash",
             f"# {name}: {n} runs as one SLURM job array, one task per run (written by `{PROG} reproduce --slurm`).",
             f"# A log per task: {log_dir}/{name}_<job>_<task>.log (create the folder before submitting).",
             "# Run one task here: SLURM_ARRAY_TASK_ID=3 bash THIS_FILE", *before]
    if teachers:
        lines += [f"# The students distil from teachers trained by tasks 0-{teachers - 1}: submit those, then the "
                  "students after them:",
                  f"#   jid=$(sbatch --parsable THIS_FILE)   # tasks {array}",
                  f"#   sbatch --dependency=afterok:$jid --array={teachers}-{n - 1} THIS_FILE"]
    lines += [f"#SBATCH --job-name=ldrld-{name}", f"#SBATCH --array={array}",
              f"#SBATCH --output={log_dir}/{name}_%A_%a.log", "#SBATCH --ntasks=1", "#SBATCH --requeue"]
    lines += [f"#SBATCH --partition={partition}"] if partition else []
    lines += [f"#SBATCH --gpus-per-task={gpus_per_task}"] if gpus_per_task else []
    lines += [f"#SBATCH --time={time_limit}"] if time_limit else []
    lines += ["set -euo pipefail", "", "run_dirs=("]
    lines += [f"  {shlex.quote(str(spec.run_dir))}" for spec, _ in entries]
    lines += [")", "commands=("]
    lines += [f"  {shlex.quote(command)}" for _, command in entries]
    lines += [")",
              'i="${SLURM_ARRAY_TASK_ID:?submit with sbatch, or set SLURM_ARRAY_TASK_ID to a task index}"',
              'dir="${run_dirs[$i]}"',
              'if [ -f "$dir/summary.json" ]; then echo "task $i: $dir is finished already"; exit 0; fi',
              'resume=""',
              'if [ -f "$dir/last.pt" ]; then resume="--resume"; fi  # a requeued task continues its run',
              'echo "task $i on $(hostname): ${commands[$i]} $resume"',
              'eval "${commands[$i]} $resume"']
    return "\n".join(lines) + "\n"


def _write_slurm(args: argparse.Namespace, entries, *, name: str) -> int:
    """Print the job-array script (`--slurm` alone) or write it to the file `--slurm FILE` names."""
    gpus = args.gpus_per_task if args.gpus_per_task is not None else (args.nproc if args.nproc > 1 else None)
    log_dir = Path(args.runs_dir) / "slurm"
    text = slurm_script(entries, name=name, log_dir=log_dir, partition=args.partition, gpus_per_task=gpus,
                        time_limit=args.time, before=_prerequisites(args.table, [spec for spec, _ in entries]))
    if args.slurm == "-":
        print(text, end="")
        return 0
    from ldrld_mini.runfolder import atomic_write_text, ensure_dir

    path = Path(args.slurm)
    ensure_dir(path.parent)
    ensure_dir(log_dir)  # sbatch does not create the folder of --output
    atomic_write_text(text, path)
    print(f"wrote {path}: {len(entries)} array tasks, one per run; logs in {log_dir}/; submit with: sbatch {path}"
          + (" (teachers first: see the script's header)" if any(s.stage == 0 for s, _ in entries) else ""))
    return 0


def _run_specs(args: argparse.Namespace, specs) -> int:
    """Run the plan (`--parallel` at a time, each in its own process): finished runs are skipped
    (summary.json), unfinished ones resumed (last.pt); exit status 1 when a run failed."""
    from ldrld_mini.train.multirun import format_outcomes, run_many

    if args.nproc > 1:
        raise UsageError("--run starts single-process runs; for --nproc > 1 run the printed torchrun commands.")
    missing = _missing_teacher_files(specs)
    if missing:
        raise UsageError(f"teacher checkpoints missing: {missing}"
                         + (f"; `{PROG} teachers --fetch` downloads them." if args.table == "cifar100" else "."))
    lines = {spec: _command_line(spec, nproc=1, runs_dir=args.runs_dir, fast=args.fast) for spec in specs}
    done = [spec for spec in specs if spec.finished]
    print(f"{len(specs)} runs: {len(done)} finished already (skipped), {len(specs) - len(done)} to run"
          + (f"; skipped: {', '.join(spec.name for spec in done)}" if done else ""), flush=True)
    outcomes = run_many(specs, parallel=args.parallel, command=lambda spec: _worker_argv(lines[spec]))
    print(format_outcomes(outcomes))
    print(f"table: {PROG} results {Path(args.runs_dir) / args.table}")
    return int(any(o.status == "failed" for o in outcomes))


def cmd_demo(args: argparse.Namespace) -> int:
    """The offline CPU demo: one shipped teacher, vanilla / KD / DKD / LDRLD students on the built-in data."""
    import matplotlib
    matplotlib.use("Agg")  # a script: write the PNG, never open a window

    from ldrld_mini.demo import QUICK, DEMO, make_teacher_file, run_demo
    from ldrld_mini.rounding import set_threads

    if args.seeds is not None and args.seeds < 1:
        raise UsageError(f"--seeds {args.seeds}: give a count >= 1, e.g. --seeds 5")
    first = 0 if args.seed is None else args.seed
    if first < 0 or first >= 2**31:
        raise UsageError(f"--seed {args.seed}: give an integer in [0, 2**31), e.g. --seed 0")
    if args.make_teacher:
        if args.threads:
            set_threads(args.threads)
        kwargs = {"path": args.teacher_file} if args.teacher_file else {}
        make_teacher_file(QUICK if args.quick else DEMO, work_dir=Path(args.out) / "make-teacher", quiet=args.quiet,
                          **kwargs)
        return 0
    if args.teacher_file:
        raise UsageError("--teacher-file goes with --make-teacher (where to write the teacher), e.g. "
                         "--make-teacher --teacher-file teacher.pt")
    settings = QUICK if args.quick else DEMO
    count = args.seeds if args.seeds is not None else len(settings.seeds)
    run_demo(out_dir=args.out, quick=args.quick, threads=args.threads, retrain_teacher=args.retrain_teacher,
             quiet=args.quiet, seeds=range(first, first + count))
    return 0


# ----------------------------------------------------------------------------------------------------------
# parser

OVERRIDE_WORD = re.compile(r"^[A-Za-z_][\w.-]*=")  # loss.alpha=8, data.options.num_classes=10, epochs=2


class _StrayWords(Exception):
    """Words on a command line with overrides that are neither options nor key=value (exit 2, one line)."""


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser where, in a subcommand with `--set`, a bare KEY=VALUE word means `--set KEY=VALUE`.

    So an override is one option wherever it stands: after a positional, after `--seeds 0 1 2` (whose
    list it ends), between other options. A word that is the value of an option stays that option's value
    (`--data-option num_classes=10`, `--set a=1`).
    """

    def parse_known_args(self, args=None, namespace=None):
        words = sys.argv[1:] if args is None else list(args)
        parsed, extra = super().parse_known_args(self._mark_overrides(words), namespace)
        stray = [word for word in extra if not word.startswith("-")]
        if stray and "--set" in self._option_string_actions:
            raise _StrayWords(f"{self.prog}: error: unrecognized arguments: {' '.join(stray)} (an override is "
                              "key=value, e.g. loss.alpha=8 or --set loss.alpha=8)")
        return parsed, extra

    def _mark_overrides(self, words: list[str]) -> list[str]:
        """`words` with each bare KEY=VALUE (not an option's value) preceded by `--set`."""
        if "--set" not in self._option_string_actions:
            return words
        marked = []
        for i, word in enumerate(words):
            before = self._option_string_actions.get(words[i - 1]) if i else None
            is_value = before is not None and before.nargs is None  # an option that takes one value
            marked += ["--set", word] if OVERRIDE_WORD.match(word) and not is_value else [word]
        return marked


def _add_set_option(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help=f"{what}, e.g. --set loss.alpha=8 (repeatable); a bare KEY=VALUE word anywhere on the "
                        "line means the same: loss.alpha=8 optim.lr=0.1 epochs=2")


def _add_run_options(p: argparse.ArgumentParser, *, vanilla: bool = False) -> None:
    """Options shared by `train` (`vanilla`) and `distill`."""
    p.add_argument("--seed", type=int, default=None, help="random seed (default: the recipe's, 0)")
    pattern = "runs/<dataset>/<model>/vanilla/seed<seed>" if vanilla else \
        "runs/<dataset>/<teacher>-<student>/<method>/seed<seed>"
    p.add_argument("--run-dir", default=None, help=f"run folder (default: {pattern})")
    p.add_argument("--resume", action="store_true", help="continue an unfinished run from its last.pt")
    p.add_argument("--overwrite", action="store_true",
                   help="start again: the run folder's files are deleted (and named) once the run is built")
    p.add_argument("--data-root", default=None, help="dataset folder (default: the recipe's data.root)")
    p.add_argument("--device", default=None, help="auto | cpu | cuda | cuda:N (default: the recipe's, auto)")
    p.add_argument("--epochs", type=int, default=None, help="shorthand for schedule.epochs=N")
    p.add_argument("--fast", action="store_true",
                   help="one-GPU fast path: device-resident data, bf16, channels_last, fused step (train/fast.py)")
    p.add_argument("--quiet", action="store_true", default=None, help="no progress bars or per-epoch lines")
    p.add_argument("--trust-pickle", action="store_true",
                   help="allow a teacher checkpoint that needs full unpickling (only for files you trust)")
    p.add_argument("--config", default=None, metavar="FILE",
                   help="a YAML config: a run folder's config.yaml or what --print-config printed (then "
                        "--recipe and the model names come from it); overrides apply on top")
    p.add_argument("--print-config", action="store_true",
                   help="print the resolved config (YAML) and the run folder, then exit without training")
    _add_set_option(p, "a recipe override")


def _subparser(subs, name: str, handler: Callable, help_text: str, epilog: str) -> argparse.ArgumentParser:
    """A subcommand parser with `--debug`, a description, examples and its handler."""
    p = subs.add_parser(name, help=help_text, description=help_text, epilog=epilog,
                        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                   help="show the full traceback on errors")
    p.set_defaults(handler=handler)
    return p


def build_parser() -> argparse.ArgumentParser:
    """The `ldrld-mini` argument parser with all subcommands."""
    parser = _Parser(prog=PROG, description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=f"Run `{PROG} COMMAND --help` for the options of a command.")
    parser.add_argument("--debug", action="store_true", help="show the full traceback on errors")
    subs = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = _subparser(subs, "train", cmd_train, "train a teacher or a vanilla student with cross-entropy",
                   f"example:\n  {PROG} train --recipe cifar100 --model resnet8x4 --seed 0")
    p.add_argument("--recipe", metavar="DATASET", help=f"one of {list(TABLES)} (required unless --config)")
    p.add_argument("--model", help="model zoo name, e.g. resnet32x4, wrn_40_2, resnet8 (required unless --config)")
    _add_run_options(p, vanilla=True)

    p = _subparser(subs, "distill", cmd_distill, "distil a teacher into a student (LDRLD, KD or DKD)",
                   f"example:\n  {PROG} distill --recipe cifar100 --teacher resnet32x4 --student resnet8x4 "
                   "--method ldrld --seed 0 loss.alpha=10.5")
    p.add_argument("--recipe", metavar="DATASET", help=f"one of {list(TABLES)} (required unless --config)")
    p.add_argument("--teacher", help="teacher model name, e.g. resnet32x4 (required unless --config)")
    p.add_argument("--student", help="student model name, e.g. resnet8x4 (required unless --config)")
    p.add_argument("--method", choices=DISTILL_METHODS, help="distillation loss (required unless --config)")
    _add_run_options(p)

    p = _subparser(subs, "eval", cmd_eval, "top-1 / top-5 of a checkpoint on a validation set",
                   f"examples:\n  {PROG} eval runs/cifar100/resnet32x4-resnet8x4/ldrld/seed0   (model, dataset: "
                   "its config.yaml)\n"
                   f"  {PROG} eval --model resnet32x4 --dataset cifar100 --data-root data/cifar100 \\\n"
                   "      --checkpoint data/teachers/cifar100/resnet32x4_vanilla/ckpt_epoch_240.pth")
    p.add_argument("run_folder", nargs="?", default=None, metavar="RUN_FOLDER",
                   help="a run folder: its best.pt (else last.pt), model and data from its config.yaml")
    p.add_argument("--model", default=None, help="model zoo name (default: the run folder's student)")
    p.add_argument("--checkpoint", default=None, help="a .pth/.pt file, or a run folder (its best.pt)")
    p.add_argument("--dataset", default=None, help="cifar100 | tiny_imagenet | imagenet | synthetic | digits "
                                                   "(default: the run folder's, else cifar100)")
    p.add_argument("--data-root", default=None, help="dataset folder (default: the run's data.root, else the "
                                                     "recipe's)")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--num-classes", type=int, default=None, help="default: the dataset's")
    p.add_argument("--data-option", action="append", default=[], metavar="KEY=VALUE",
                   help="dataset keyword, e.g. num_classes=20 (synthetic); repeatable")
    p.add_argument("--trust-pickle", action="store_true",
                   help="allow checkpoints that need full unpickling (only for files you trust)")

    p = _subparser(subs, "prepare-data", cmd_prepare_data,
                   "check a dataset folder and report exactly what is missing",
                   f"examples:\n  {PROG} prepare-data cifar100 --root data/cifar100 --download\n"
                   f"  {PROG} prepare-data tiny_imagenet --root data/tiny_imagenet\n"
                   "exit status: 0 ready, 1 not ready (the report says what is missing), 2 usage error")
    p.add_argument("dataset", metavar="DATASET", help="cifar100 | tiny_imagenet | imagenet | synthetic | digits")
    p.add_argument("--root", default=None, help="dataset folder (default: the recipe's data.root)")
    p.add_argument("--download", action="store_true", help="download CIFAR-100 (needs network)")

    p = _subparser(subs, "teachers", cmd_teachers, "list the teacher checkpoints (present or missing)",
                   f"examples:\n  {PROG} teachers\n  {PROG} teachers --fetch\n"
                   f"  LDRLD_TEACHERS=/big/disk/teachers {PROG} teachers --fetch   (training looks there too)")
    p.add_argument("--root", default=None,
                   help="where teacher checkpoints live (default: $LDRLD_TEACHERS, else data/teachers/cifar100); "
                        "training looks only in the default, so set LDRLD_TEACHERS rather than --root")
    p.add_argument("--fetch", action="store_true", help="download the missing CIFAR teachers (needs network)")

    p = _subparser(subs, "results", cmd_results,
                   "aggregate run folders: mean ± std over seeds of best and last top-1 vs the paper",
                   f"example:\n  {PROG} results runs/cifar100 --output results.md --plot curves.png")
    p.add_argument("runs_dir", metavar="RUNS_DIR", help="folder searched (recursively) for run folders")
    p.add_argument("--output", default=None, help="also write the Markdown to this file")
    p.add_argument("--plot", default=None, help="also write a PNG of the val top-1 curves")

    p = _subparser(subs, "reproduce", cmd_reproduce,
                   "print (or --run) every command of one paper table: pairs × methods × seeds",
                   f"examples:\n  {PROG} reproduce cifar100 --seeds 0 1 2 > cifar100.sh\n"
                   f"  {PROG} reproduce cifar100 --methods ldrld --seeds 0 --run\n"
                   f"  {PROG} reproduce cifar100 --seeds 0 1 2 --fast --run --parallel 4   (one big GPU)\n"
                   f"  {PROG} reproduce cifar100 --ablation --seeds 0 1 2   (LDRLD's parts switched off)\n"
                   f"  {PROG} reproduce imagenet --nproc 8    (torchrun commands)\n"
                   f"  {PROG} reproduce cifar100 --seeds 0 1 2 --slurm job.sh --partition gpu --time 12:00:00")
    p.add_argument("table", metavar="TABLE", help=f"one of {list(TABLES)}")
    p.add_argument("--seeds", nargs="+", default=["0", "1", "2"], metavar="SEED", help="seeds (default: 0 1 2)")
    p.add_argument("--methods", nargs="+", default=None, metavar="METHOD",
                   help="methods among vanilla kd dkd ldrld (default: all; vanilla = the student trained alone)")
    p.add_argument("--pairs", nargs="+", default=None, metavar="TEACHER:STUDENT",
                   help="only these pairs of the table, e.g. resnet32x4:resnet8x4 (default: all)")
    p.add_argument("--runs-dir", default="runs", help="root of the run folders (default: runs)")
    p.add_argument("--nproc", type=int, default=1, help="GPUs per run: print torchrun commands when > 1")
    p.add_argument("--fast", action="store_true", help="the one-GPU fast path (train/fast.py) for every run")
    p.add_argument("--run", action="store_true",
                   help="run the commands here: finished runs are skipped, unfinished ones resumed; "
                        "each run logs to <run folder>/run.log")
    p.add_argument("--parallel", type=int, default=1, help="with --run: runs at once (default 1: one after the other)")
    p.add_argument("--slurm", nargs="?", const="-", default=None, metavar="FILE",
                   help="write an sbatch job-array script instead, one task per run (to FILE, or stdout): a "
                        "task skips a finished run and resumes an unfinished one, so a requeued task continues")
    p.add_argument("--partition", default=None, help="with --slurm: the SLURM partition")
    p.add_argument("--gpus-per-task", type=int, default=None,
                   help="with --slurm: GPUs per task (default: --nproc when > 1, else none requested)")
    p.add_argument("--time", default=None, help="with --slurm: the time limit of a task, e.g. 24:00:00")
    p.add_argument("--ablation", action="store_true",
                   help="instead of the table: LDRLD on ResNet32x4 -> ResNet8x4 with each part switched off "
                        "(pair weights, whole top-k group, RNTK, local term, k, ranking), one run folder each")
    _add_set_option(p, "an override added to every run")

    p = _subparser(subs, "demo", cmd_demo,
                   "a few-minute CPU demo on the built-in data: one teacher; vanilla, KD, DKD, LDRLD students",
                   f"example:\n  {PROG} demo              (5 seeds; writes runs/demo/results.md and curves.png)\n"
                   f"  {PROG} demo --quick      (seconds; a smoke test, numbers mean nothing)\n"
                   f"  {PROG} demo --seed 40 --seeds 5   (seeds 40..44: the same experiment on other seeds)\n"
                   f"  {PROG} demo --make-teacher        (train the shipped teacher again: ldrld_mini/demo_teacher.pt)")
    p.add_argument("--out", default="runs/demo", help="output folder (default: runs/demo)")
    p.add_argument("--quick", action="store_true", help="tiny sizes: finishes in seconds (for tests)")
    p.add_argument("--threads", type=int, default=2, help="CPU threads for torch (default: 2)")
    p.add_argument("--retrain-teacher", action="store_true",
                   help="train the teacher into <out>/teacher instead of using the shipped one")
    p.add_argument("--make-teacher", action="store_true",
                   help="train the teacher from scratch and write the teacher file (the shipped one by default)")
    p.add_argument("--teacher-file", default=None, help="with --make-teacher: where to write it")
    p.add_argument("--seeds", type=int, default=None,
                   help="how many student seeds (default 5; 2 with --quick); the teacher is the same for all")
    p.add_argument("--seed", type=int, default=None,
                   help="the first seed (default 0): seeds are --seed, --seed+1, ...")
    p.add_argument("--quiet", action="store_true", default=None, help="no per-epoch lines or progress bars")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `ldrld-mini`; returns the exit status (0 ok, 1 check failed, 2 usage error)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except _StrayWords as err:
        print(err, file=sys.stderr)
        return 2
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    start = time.perf_counter()
    try:
        with _sigterm_as_interrupt():
            return int(args.handler(args) or 0)
    except _user_errors() as err:
        if args.debug:
            raise
        print(f"{PROG} {args.command}: error: {_error_text(err)}", file=sys.stderr)
        print("(run with --debug for the traceback)", file=sys.stderr)
        return 2
    except BrokenPipeError:  # e.g. `ldrld-mini reproduce cifar100 | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except KeyboardInterrupt as err:
        again = ("run the same command again: finished runs are skipped, unfinished ones resumed"
                 if args.command == "reproduce" else "an unfinished run continues with --resume")
        print(f"{PROG} {args.command}: {'terminated' if isinstance(err, _Terminated) else 'interrupted'} after "
              f"{time.perf_counter() - start:.0f} s ({again})", file=sys.stderr)
        return 143 if isinstance(err, _Terminated) else 130


class _Terminated(KeyboardInterrupt):
    """SIGTERM (`kill`, `timeout`, SLURM), raised where Ctrl-C's KeyboardInterrupt would be."""


@contextlib.contextmanager
def _sigterm_as_interrupt():
    """Handle SIGTERM like Ctrl-C while a command runs: the same cleanup (run folder locks released,
    `reproduce --run`'s workers stopped: they get SIGTERM and do the same), then exit status 143."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise _Terminated()

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
