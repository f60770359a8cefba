"""Small helpers the course notebooks share: the checkout they run in, printing without machine paths,
where data and runs go (locally or on Colab), and the run through a recipe that notebooks 10-12 make.

    REPO = repo_root()                        # the checkout, from notebooks/ or from the checkout itself
    show(check_dataset("cifar100").format())  # 'data/cifar-100-python', not '/home/you/ldrld-mini/data/...'
    folders = course_folders()                # data/ and runs/ of the checkout; /content/... on Colab
    walk = Walkthrough("cifar100", ("resnet56", "resnet20"), ("vanilla", "ldrld"), runs_root, overrides)
    walk.run(quiet=True)                      # one `fit` per method, into the folders the CLI would use
"""
from __future__ import annotations

import os
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping

__all__ = ["repo_root", "show", "on_colab", "CourseFolders", "course_folders", "Walkthrough", "table_runs",
           "cifar100_walkthrough", "prepare_cifar100", "COLAB_ROOT", "FULL_EPOCHS_VAR", "COLAB_EPOCHS"]

COLAB_ROOT = Path("/content")  # Colab's working directory; lost when the runtime is recycled
FULL_EPOCHS_VAR = "LDRLD_EPOCHS"  # epochs of notebook 10's full path (default: the recipe's; Colab: COLAB_EPOCHS)
COLAB_EPOCHS = 15  # a short real run that fits a Colab session


def repo_root(cwd: str | os.PathLike | None = None) -> Path:
    """The checkout a notebook runs in: the parent of `cwd` when it is `notebooks/`, else `cwd` (default: now)."""
    cwd = Path.cwd() if cwd is None else Path(cwd)
    return cwd.parent if cwd.name == "notebooks" else cwd


def show(text, root: str | os.PathLike | None = None) -> None:
    """Print `text` with the paths under `root` (default: `repo_root()`) written relative to it."""
    root = repo_root() if root is None else Path(root)
    print(str(text).replace(f"{root}/", ""))


def on_colab(modules: Mapping | None = None) -> bool:
    """True inside a Google Colab runtime (its `google.colab` module is loaded)."""
    return "google.colab" in (sys.modules if modules is None else modules)


@dataclass(frozen=True)
class CourseFolders:
    """Where a notebook reads datasets (`data`, teachers under `data/teachers`) and writes run folders (`runs`)."""

    data: Path
    runs: Path

    @property
    def teachers(self) -> Path:
        """The CIFAR-100 teachers' folder, `<data>/teachers/cifar100` (what `LDRLD_TEACHERS` would name)."""
        return self.data / "teachers" / "cifar100"


def course_folders(*, colab: bool | None = None, env: Mapping[str, str] | None = None,
                   cwd: str | os.PathLike | None = None) -> CourseFolders:
    """`data/` and `runs/` of the checkout, or `/content/data` and `/content/runs` on Colab; `$LDRLD_DATA` wins."""
    env = os.environ if env is None else env
    base = COLAB_ROOT if (on_colab() if colab is None else colab) else repo_root(cwd)
    data = Path(env["LDRLD_DATA"]) if env.get("LDRLD_DATA") else base / "data"
    return CourseFolders(data=data, runs=base / "runs")


@dataclass(frozen=True)
class Walkthrough:
    """One notebook's run through a recipe: a (teacher, student) pair trained with each method, seed `seed`.

    `overrides` are the `key=value` strings added to the recipe (the same for every method); the run folders
    are those of `ldrld-mini distill --run-dir` defaults, under `runs_root`.
    """

    dataset: str
    pair: tuple[str, str]
    methods: tuple[str, ...]
    runs_root: Path
    overrides: tuple[str, ...] = ()
    seed: int = 0
    downloads: tuple[str, ...] = field(default=(), compare=False)  # shell commands to run first (see commands())

    def teacher_of(self, method: str) -> str | None:
        """The teacher a method distils from (None for the vanilla student)."""
        return None if method == "vanilla" else self.pair[0]

    def run_dir(self, method: str) -> Path:
        """`<runs_root>/<dataset>/<teacher>-<student>/<method>/seed<seed>` (vanilla: `<student>/vanilla`)."""
        from ldrld_mini.runfolder import default_run_dir

        return default_run_dir(self.dataset, method, self.pair[1], self.teacher_of(method), self.seed, self.runs_root)

    def config(self, method: str):
        """The resolved recipe of one method, with the overrides."""
        from ldrld_mini.recipes import load_config

        return load_config(self.dataset, teacher=self.teacher_of(method), student=self.pair[1], method=method,
                           overrides=list(self.overrides) + [f"train.seed={self.seed}"])

    def commands(self) -> list[str]:
        """The same runs as `ldrld-mini` command lines (after any download commands), for a terminal."""
        lines = list(self.downloads)
        for method in self.methods:
            teacher = self.teacher_of(method)
            head = (f"ldrld-mini train --recipe {self.dataset} --model {self.pair[1]}" if teacher is None else
                    f"ldrld-mini distill --recipe {self.dataset} --teacher {teacher} --student {self.pair[1]} "
                    f"--method {method}")
            tail = [f"--seed {self.seed}", f"--run-dir {shlex.quote(str(self.run_dir(method)))}"]
            lines.append(" ".join([head, *tail, *(shlex.quote(o) for o in self.overrides)]))
        return lines

    def run(self, *, resume: bool = False, overwrite: bool = False, quiet: bool | None = None) -> list[Path]:
        """`fit` every method in turn (the engine the CLI uses); returns the run folders."""
        from ldrld_mini.train import fit

        folders = []
        for method in self.methods:
            fit(self.config(method), self.run_dir(method), resume=resume, overwrite=overwrite, quiet=quiet)
            folders.append(self.run_dir(method))
        return folders


def table_runs(dataset: str, fallback: str | os.PathLike, runs: str | os.PathLike | None = None):
    """The finished runs under `<runs>/<dataset>` (default `runs/` of the checkout) if any, else those under
    `fallback` (a notebook's stand-in runs); returns `(runs, folder they came from)`."""
    from ldrld_mini.results import load_runs

    mine = (repo_root() / "runs" if runs is None else Path(runs)) / dataset
    found = [run for run in load_runs(mine) if run.finished] if mine.is_dir() else []
    return (found, mine) if found else (load_runs(fallback), Path(fallback))


def cifar100_walkthrough(fast: bool, *, standin: str | os.PathLike | None = None,
                         teacher_file: str | os.PathLike | None = None, colab: bool | None = None,
                         cuda: bool = False, env: Mapping[str, str] | None = None,
                         folders: CourseFolders | None = None) -> Walkthrough:
    """Notebook 10's run: the stand-in in the fast setting, else the real data and teacher (LDRLD_FULL=1).

    fast: ResNet56 -> ResNet20 on the stand-in at `standin` (data under `standin/cifar100`, runs under
    `standin/runs`), vanilla and LDRLD, 2 epochs on the CPU, with the untrained `teacher_file`.
    full: ResNet32x4 -> ResNet8x4 on CIFAR-100 in `folders.data` with the CRD teacher, for `$LDRLD_EPOCHS`
    epochs (default: the recipe's 240; on Colab a short run of COLAB_EPOCHS, LDRLD only); a run shorter
    than the recipe goes under `runs/short<N>/` so it never mixes with full runs. `downloads` holds the
    commands that fetch the data and the teacher (`prepare_cifar100` does the same from Python).
    """
    env = os.environ if env is None else env
    colab = on_colab() if colab is None else colab
    if fast:
        if standin is None or teacher_file is None:
            raise ValueError("the fast setting needs standin= (the stand-in folder) and teacher_file=")
        standin = Path(standin)
        return Walkthrough("cifar100", ("resnet56", "resnet20"), ("vanilla", "ldrld"), standin / "runs", (
            f"data.root={standin / 'cifar100'}", "data.options.verify_md5=false",
            f"model.teacher_checkpoint={teacher_file}", "data.num_workers=0", "schedule.epochs=2",
            "train.device=cpu"))
    from ldrld_mini.models.teachers import teacher_path
    from ldrld_mini.recipes import load_config

    folders = folders or course_folders(colab=colab, env=env)
    recipe_epochs = load_config("cifar100", teacher="resnet32x4", student="resnet8x4").schedule.epochs
    raw = env.get(FULL_EPOCHS_VAR, "").strip()
    if raw and (not raw.isdigit() or int(raw) < 1):
        raise ValueError(f"{FULL_EPOCHS_VAR}={raw!r} must be a positive number of epochs, e.g. {FULL_EPOCHS_VAR}=15")
    epochs = int(raw) if raw else (COLAB_EPOCHS if colab else recipe_epochs)
    methods = ("ldrld",) if colab and not raw else ("vanilla", "kd", "dkd", "ldrld")
    runs_root = folders.runs if epochs == recipe_epochs else folders.runs / f"short{epochs}"
    teacher = teacher_path("resnet32x4", folders.teachers)
    overrides = [f"data.root={folders.data}", f"model.teacher_checkpoint={teacher}"]
    if epochs != recipe_epochs:
        overrides.append(f"schedule.epochs={epochs}")
    if cuda:
        overrides.append("data.gpu_resident=true")  # the whole set on the GPU: no CPU-bound loader on Colab
    downloads = (f"ldrld-mini prepare-data cifar100 --root {shlex.quote(str(folders.data))} --download",
                 f"ldrld-mini teachers --root {shlex.quote(str(folders.teachers))} --fetch")
    return Walkthrough("cifar100", ("resnet32x4", "resnet8x4"), methods, runs_root, tuple(overrides),
                       downloads=downloads)


def prepare_cifar100(walk: Walkthrough) -> None:
    """Download CIFAR-100 and the walkthrough's teacher when they are missing (needs network); else nothing."""
    from ldrld_mini.data import build_datasets, check_dataset
    from ldrld_mini.models.teachers import fetch_teachers

    options = dict(o.split("=", 1) for o in walk.overrides)
    data_root = Path(options["data.root"])
    if not check_dataset("cifar100", data_root).ok:
        print(f"downloading CIFAR-100 into {data_root} ...", flush=True)
        build_datasets("cifar100", data_root, download=True)
    teacher = Path(options["model.teacher_checkpoint"])
    if not teacher.is_file():
        print(f"downloading the CRD teacher {walk.pair[0]} ...", flush=True)
        fetch_teachers(teacher.parents[1], names=[walk.pair[0]])
