"""Several independent runs on one machine at once: plan a paper table, then run it N at a time.

A CIFAR-size run (batch 64) cannot fill a large GPU, so `run_many` keeps `parallel` runs going, each in its
own process (`python -m ldrld_mini.train.multirun --worker ...` -> `fit(config, run_dir, resume=True)`).
Processes are the simple, robust choice: a failed run never takes the others down, every run folder is an
ordinary resumable one, and a re-launch skips finished runs and resumes unfinished ones. On one GPU the
processes share it: with NVIDIA MPS running (`nvidia-cuda-mps-control -d`, set up by the machine's admin)
their kernels run side by side; without it the GPU time-slices between them, which still fills one run's
host-side gaps (evaluation, checkpoints, Python) with another's kernels. `benchmarks/bench_train_step.py
--parallel` measures both what processes and what CUDA streams in one process gain on a given GPU.

    specs = plan_table("cifar100", seeds=[0, 1, 2], methods=["kd", "dkd", "ldrld"], fast=True)
    outcomes = run_many(specs, parallel=4)
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

from ..recipes import list_pairs, load_config
from ..runfolder import default_run_dir
from .fast import FAST_OVERRIDES

__all__ = ["RunSpec", "RunOutcome", "plan_table", "run_many", "format_plan",
           "format_outcomes", "add_arguments", "run_from_args", "main"]

DEFAULT_METHODS = ("vanilla", "kd", "dkd", "ldrld")


@dataclass(frozen=True)
class RunSpec:
    """One run of a table: what to train (recipe, pair, method, seed, overrides) and its run folder."""

    dataset: str
    method: str
    teacher: str | None
    student: str
    seed: int
    run_dir: str
    overrides: tuple[str, ...] = ()
    stage: int = 1  # 0: a teacher other runs of the table distil from (runs first)

    @property
    def name(self) -> str:
        """`<method>_<teacher>_<student>_seed<k>` (vanilla: no teacher)."""
        pair = self.student if self.teacher is None else f"{self.teacher}_{self.student}"
        return f"{self.method}_{pair}_seed{self.seed}"

    def config(self):
        """The resolved Config of this run (the recipe, then the overrides, then the seed)."""
        return load_config(self.dataset, teacher=self.teacher, student=self.student, method=self.method,
                           overrides=[*self.overrides, f"train.seed={self.seed}"])

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> "RunSpec":
        d = json.loads(text)
        d["overrides"] = tuple(d.get("overrides") or ())
        return cls(**d)

    def worker_command(self, python: str | None = None) -> list[str]:
        """The command line of the process that trains this run."""
        return [python or sys.executable, "-m", "ldrld_mini.train.multirun", "--worker", self.to_json()]

    @property
    def finished(self) -> bool:
        """True when the run folder already holds `summary.json`."""
        return (Path(self.run_dir) / "summary.json").is_file()


@dataclass
class RunOutcome:
    """How one run of `run_many` ended: `status` in {done, failed, skipped, planned}."""

    spec: RunSpec
    status: str
    returncode: int | None = None
    seconds: float = 0.0
    log: str | None = None


# ----------------------------------------------------------------------------------------------------------
# planning

def _parse_pair(pair) -> tuple[str | None, str]:
    """`("resnet32x4", "resnet8x4")` or `"resnet32x4:resnet8x4"` -> (teacher, student)."""
    if isinstance(pair, str):
        if ":" not in pair:
            raise ValueError(f"pair {pair!r} must be 'teacher:student', e.g. 'resnet32x4:resnet8x4'.")
        teacher, student = pair.split(":", 1)
        return teacher or None, student
    teacher, student = pair
    return teacher, student


def _check_fast_supported() -> None:
    from ..recipes import TrainConfig

    if "fast" not in TrainConfig.__dataclass_fields__:
        raise ValueError("fast=True needs the config key train.fast, which this version's TrainConfig lacks; "
                         "run without fast, or add `fast: bool = False` to TrainConfig (see train/fast.py).")


PLACEHOLDERS = ("teacher", "student", "method", "seed")
_PLACEHOLDER = re.compile(r"\{(\w+)\}")


def fill_placeholders(overrides: Sequence[str], *, teacher: str | None, student: str, method: str,
                      seed: int | str) -> tuple[str, ...]:
    """`overrides` with `{teacher}`, `{student}`, `{method}` and `{seed}` filled in for one run (a vanilla run's
    `{teacher}` is its student); ValueError naming an unknown placeholder."""
    names = {"teacher": teacher or student, "student": student, "method": method, "seed": str(seed)}

    def fill(match: re.Match) -> str:
        if match.group(1) not in names:
            raise ValueError(f"override {match.string!r}: unknown placeholder {match.group(0)}; use "
                             f"{', '.join('{' + n + '}' for n in PLACEHOLDERS)} (filled in per run).")
        return names[match.group(1)]

    return tuple(_PLACEHOLDER.sub(fill, o) for o in overrides)


def _teacher_runs(dataset: str, teachers: Iterable[str], overrides: Sequence[str]) -> list[RunSpec]:
    """Vanilla runs of the teachers whose checkpoint the recipe expects in a run folder (not a file)."""
    specs = []
    for teacher in dict.fromkeys(teachers):
        # a teacher's run gets the overrides without the loss options (they are per method): `reproduce`
        # prints, and --run starts, exactly these (cli._command_line)
        plain = tuple(o for o in overrides if not o.strip().startswith("loss."))
        filled = fill_placeholders(plain, teacher=teacher, student=teacher, method="kd", seed=0)
        path = load_config(dataset, teacher=teacher, method="kd", overrides=filled).model.teacher_checkpoint
        if path and Path(path).suffix not in (".pt", ".pth", ".tar"):
            seed = load_config(dataset, student=teacher, method="vanilla", overrides=filled).train.seed
            plain = fill_placeholders(plain, teacher=teacher, student=teacher, method="vanilla", seed=seed)
            specs.append(RunSpec(dataset, "vanilla", None, teacher, seed, str(path), plain, stage=0))
    return specs


def plan_table(dataset: str = "cifar100", seeds: Iterable[int] = (0,), *, methods: Sequence[str] = DEFAULT_METHODS,
               pairs: Iterable | None = None, runs_root: str | os.PathLike = "runs",
               overrides: Sequence[str] = (), fast: bool = False) -> list[RunSpec]:
    """Every run of a paper table: teachers to train first (stage 0), then pairs x methods x seeds.

    `pairs` defaults to the recipe's pairs (`list_pairs(dataset)`), as tuples or 'teacher:student' strings;
    `vanilla` trains each distinct student once per seed. Students are ordered seed-major (a whole table of
    the first seed comes first). Teachers appear only where the recipe expects them in a run folder (the
    built-in synthetic data); CIFAR-100 uses the CRD checkpoint files. Run folders follow
    `runfolder.default_run_dir`, as `ldrld-mini reproduce`. Each config is resolved here, so a bad override or
    name fails now.
    """
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise ValueError("seeds is empty; pass at least one seed, e.g. seeds=[0].")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds={seeds} repeats a seed; each seed gives one run folder.")
    pair_list = [_parse_pair(p) for p in (list_pairs(dataset) if pairs is None else pairs)]
    if not pair_list:
        raise ValueError(f"no pairs to run for dataset={dataset!r}; pass pairs=['teacher:student', ...].")
    if fast:
        _check_fast_supported()
    overrides = tuple(overrides) + (FAST_OVERRIDES if fast else ())
    distilling = any(m != "vanilla" for m in methods)
    specs = _teacher_runs(dataset, [t for t, _ in pair_list], overrides) if distilling else []
    seen = set()
    for seed in seeds:
        for teacher, student in pair_list:
            for method in methods:
                who = None if method == "vanilla" else teacher
                if (who, student, method, seed) in seen:
                    continue  # a vanilla student shared by several pairs
                seen.add((who, student, method, seed))
                run_dir = default_run_dir(dataset, method, student, who, seed, runs_root)
                specs.append(RunSpec(dataset, method, who, student, seed, str(run_dir),
                                     fill_placeholders(overrides, teacher=who, student=student, method=method,
                                                       seed=seed)))
    for spec in specs:
        spec.config()  # fail early on a bad method, pair or override
    return specs


def format_plan(specs: Sequence[RunSpec]) -> str:
    """A Markdown table of the planned runs (marking those already finished)."""
    lines = ["| # | run | folder | state |", "|---:|---|---|---|"]
    for i, spec in enumerate(specs, 1):
        role = " (teacher, first)" if spec.stage == 0 else ""
        lines.append(f"| {i} | {spec.name}{role} | {spec.run_dir} | {'finished' if spec.finished else 'to run'} |")
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------------------
# running

def _child_env(slot: int, devices: Sequence[str] | None, parallel: int, extra: dict | None) -> dict:
    """Environment of a worker: its GPU (round-robin over `devices`), a share of the CPU threads, quiet."""
    env = dict(os.environ)
    if devices:
        env["CUDA_VISIBLE_DEVICES"] = str(devices[slot % len(devices)])
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // max(parallel, 1))))
    env["LDRLD_QUIET"] = "1"
    env.update(extra or {})
    return env


def run_many(specs: Sequence[RunSpec], *, parallel: int = 1, devices: Sequence[str] | None = None,
             skip_finished: bool = True, python: str | None = None, env: dict | None = None,
             log_name: str = "run.log", poll_s: float = 2.0, dry_run: bool = False,
             command: Callable[[RunSpec], list[str]] | None = None,
             say: Callable[[str], None] = print) -> list[RunOutcome]:
    """Run `specs`, at most `parallel` at once, each in its own process; returns one outcome per spec.

    A run's output goes to `<run_dir>/<log_name>`. Finished runs (summary.json) are skipped; unfinished
    ones resume. A failed run is reported and the others go on. A run starts only when every run of a
    lower `stage` has ended (teachers before the students that distil from them). `devices` (e.g. ["0", "1"])
    spreads the slots over several GPUs; `command(spec)` replaces the worker command line (tests use it).
    """
    if not isinstance(parallel, int) or parallel < 1:
        raise ValueError(f"parallel={parallel!r} must be an integer >= 1 (runs at once on this machine).")
    command = command or (lambda spec: spec.worker_command(python))
    outcomes = {spec: RunOutcome(spec, "planned") for spec in specs}
    pending = sorted((s for s in specs if not (skip_finished and s.finished)), key=lambda s: s.stage)
    for spec in specs:
        if spec not in pending:
            outcomes[spec].status = "skipped"
    if dry_run:
        return [outcomes[s] for s in specs]
    running: dict[RunSpec, tuple[subprocess.Popen, float, int, object]] = {}
    free_slots = list(range(parallel))
    try:
        while pending or running:
            while pending and free_slots and all(r.stage >= pending[0].stage for r in running):
                spec, slot = pending.pop(0), free_slots.pop(0)
                running[spec] = _launch(spec, slot, command, devices, parallel, env, log_name)
                say(f"[start] {spec.name} (slot {slot}) -> {spec.run_dir}")
            time.sleep(poll_s if running else 0)
            for spec, (proc, start, slot, log) in list(running.items()):
                if proc.poll() is None:
                    continue
                log.close()
                del running[spec]
                free_slots.append(slot)
                outcome = outcomes[spec]
                outcome.returncode, outcome.seconds = proc.returncode, time.monotonic() - start
                outcome.status = "done" if proc.returncode == 0 else "failed"
                outcome.log = str(Path(spec.run_dir) / log_name)
                say(f"[{outcome.status}] {spec.name} in {outcome.seconds / 60:.1f} min"
                    + ("" if proc.returncode == 0 else f" (exit {proc.returncode}, see {outcome.log})"))
    finally:
        for proc, _, _, log in running.values():  # interrupted: stop only the workers started here
            proc.terminate()  # a worker handles SIGTERM like Ctrl-C: it releases its run folder's lock
        for proc, _, _, log in running.values():
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            log.close()
    return [outcomes[s] for s in specs]


def _launch(spec: RunSpec, slot: int, command, devices, parallel: int, env, log_name: str):
    Path(spec.run_dir).mkdir(parents=True, exist_ok=True)
    log = open(Path(spec.run_dir) / log_name, "a")  # noqa: SIM115 - closed when the run ends
    proc = subprocess.Popen(command(spec), stdout=log, stderr=subprocess.STDOUT,
                            env=_child_env(slot, devices, parallel, env))
    return proc, time.monotonic(), slot, log


def format_outcomes(outcomes: Sequence[RunOutcome]) -> str:
    """A Markdown table: run, status, minutes, exit code."""
    lines = ["| run | status | minutes | exit |", "|---|---|---:|---:|"]
    for o in outcomes:
        code = "" if o.returncode is None else str(o.returncode)
        lines.append(f"| {o.spec.name} | {o.status} | {o.seconds / 60:.1f} | {code} |")
    return "\n".join(lines)


def _worker(spec_json: str) -> int:
    """Train one run (the body of a worker process)."""
    from .trainer import fit

    spec = RunSpec.from_json(spec_json)
    summary = fit(spec.config(), spec.run_dir, resume=True, quiet=True)
    print(json.dumps({"run": spec.name, "best_top1": summary.get("best_top1"),
                      "last_top1": summary.get("last_top1")}))
    return 0


# ----------------------------------------------------------------------------------------------------------
# command line (the lead's `ldrld-mini reproduce` can reuse add_arguments / run_from_args)

def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The options of `reproduce`: which table, how many runs at once, where."""
    parser.add_argument("dataset", nargs="?", default="cifar100", help="recipe name (default cifar100)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="seeds (default 0)")
    parser.add_argument("--methods", nargs="+", default=list(DEFAULT_METHODS),
                        help="methods per pair (default kd dkd ldrld; add vanilla for the students)")
    parser.add_argument("--pairs", nargs="+", default=None, metavar="TEACHER:STUDENT",
                        help="pairs to run (default: every pair of the recipe)")
    parser.add_argument("--runs-dir", default="runs", help="root of the run folders (default runs)")
    parser.add_argument("--parallel", type=int, default=1, help="runs at once (default 1)")
    parser.add_argument("--devices", nargs="+", default=None, help="GPU ids to spread the runs over, e.g. 0 1")
    parser.add_argument("--fast", action="store_true", help="the one-GPU fast path (" + " ".join(FAST_OVERRIDES) + ")")
    parser.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE", dest="overrides",
                        help="config overrides for every run, e.g. data.root=/data epochs=240")
    parser.add_argument("--run", action="store_true", help="start the runs (without it: print the plan only)")
    return parser


def run_from_args(args: argparse.Namespace, say: Callable[[str], None] = print) -> int:
    """Plan (and with --run, run) the table described by `args`; exit status 1 if a run failed."""
    specs = plan_table(args.dataset, args.seeds, methods=args.methods, pairs=args.pairs, runs_root=args.runs_dir,
                       overrides=args.overrides, fast=args.fast)
    say(format_plan(specs))
    if not args.run:
        say(f"{len(specs)} runs planned; add --run to start them, {args.parallel} at a time.")
        return 0
    outcomes = run_many(specs, parallel=args.parallel, devices=args.devices, say=say)
    say(format_outcomes(outcomes))
    return int(any(o.status == "failed" for o in outcomes))


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--worker"]:
        return _worker(argv[1])
    parser = add_arguments(argparse.ArgumentParser(prog="python -m ldrld_mini.train.multirun",
                                                   description=__doc__.split("\n\n")[0]))
    return run_from_args(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
