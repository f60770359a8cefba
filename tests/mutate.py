"""A kept mutation test of the engine, results, recipes, checkpoints, CLI and demo (issue 18 point 1).

    .venv/bin/python tests/mutate.py [--module engine] [--list] [--no-baseline] [--timeout 600]
    make mutate

Each mutation below is a realistic hand-written bug: the file, the exact source snippet, its replacement,
and the tests that should catch it (relevant-test selection, so the whole run takes minutes). The harness
never edits the working tree: it copies the tracked and untracked-not-ignored files (`git ls-files -co
--exclude-standard`) to a temporary folder, applies one mutation at a time there, and runs the selected tests
there with PYTHONPATH pointing at the copy; every pytest process first checks that `ldrld_mini` is imported
from the copy (not from the editable install). A snippet that no longer occurs exactly once in its file is
reported as "stale" and not counted, so a refactor does not break the harness, it only shows what to update.

First, unless --no-baseline, each distinct test selection runs once on the unmutated copy: a selection that
fails there would "kill" every mutation, so its mutations are reported as "baseline-red" and not counted.
Outcomes: killed (the tests failed), survived (they passed), timeout (counted as killed), stale, error
(pytest could not run the selection), baseline-red. Exit status 0 when no mutation survived, 1 otherwise.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Mutation:
    module: str  # the table's row: engine, results, recipes, checkpoints, checks, cli, demo
    file: str  # path relative to the repository root
    old: str  # must occur exactly once in the file
    new: str
    tests: tuple[str, ...]  # pytest arguments (files, node ids, -k expressions)
    what: str


M = Mutation
ENGINE_T = "ldrld_mini/train/trainer.py"
LOOP = "ldrld_mini/train/loop.py"
SCHEDULE = "ldrld_mini/train/schedule.py"
RESULTS = "ldrld_mini/results.py"
RECIPES = "ldrld_mini/recipes/__init__.py"
CKPT = "ldrld_mini/models/checkpoints.py"
CHECKS = "ldrld_mini/train/checks.py"
TEACHER = "ldrld_mini/train/teacher.py"
CLI = "ldrld_mini/cli.py"
DEMO = "ldrld_mini/demo.py"
CLI_TESTS = ("tests/test_cli.py", "tests/test_mutation_survivors.py", "-k",
             "mistakes or reproduce or ablation or override or print_config or seed or shell_quoted")
DEMO_TESTS = ("tests/test_demo.py", "tests/test_mutation_survivors.py")
RESULTS_TESTS = ("tests/test_results.py", "tests/test_mutation_kinds.py", "tests/test_results_tables.py")

MUTATIONS = [
    # ---- engine: ldrld_mini/train/*.py
    M("engine", ENGINE_T, "set_rng_state(ranks[ctx.rank] if", "set_rng_state(ranks[0] if",
      ("tests/test_ddp_resume.py",), "every rank restores rank 0's RNG state"),
    M("engine", ENGINE_T, "torch.manual_seed(cfg.train.seed + ctx.rank)", "torch.manual_seed(cfg.train.seed)",
      ("tests/test_ddp_resume.py",), "every rank draws the same augmentation/dropout stream"),
    M("engine", ENGINE_T, 'if val["top1"] > info["best_top1"]:', 'if val["top1"] >= info["best_top1"]:',
      ("tests/test_mutation_kinds.py", "-k", "tied"), "a tie moves the best epoch to the later one"),
    M("engine", ENGINE_T, 'return info, ckpt["epoch"] + 1', 'return info, ckpt["epoch"]',
      ("tests/test_trainer.py", "-k", "resume"), "a resume repeats the checkpointed epoch (off by one)"),
    M("engine", ENGINE_T, '    run.optimizer.load_state_dict(ckpt["optimizer"])\n', "",
      ("tests/test_trainer.py", "-k", "resume"), "a resume drops the optimizer's momentum (dropped call)"),
    M("engine", LOOP, "        scaler.update()\n", "",
      ("tests/test_mixed_precision.py",), "the GradScaler never updates its scale (dropped call)"),
    M("engine", LOOP, "        scaler.step(optimizer)\n", "        optimizer.step()\n",
      ("tests/test_mixed_precision.py",), "the optimizer steps past the scaler (no overflow skip, no unscale)"),
    M("engine", LOOP, "        with autocast(device, amp):\n            logits_t = None",
      "        with autocast(device, 'none'):\n            logits_t = None",
      ("tests/test_mixed_precision.py",), "training ignores train.amp (no autocast on the standard path)"),
    M("engine", LOOP, 'return torch.amp.GradScaler(device.type, enabled=(amp == "fp16"))',
      'return torch.amp.GradScaler(device.type, enabled=(amp == "bf16"))',
      ("tests/test_mixed_precision.py",), "the scaler is enabled for the wrong dtype"),
    M("engine", SCHEDULE, "return sum(epoch > m for m in milestones)", "return sum(epoch >= m for m in milestones)",
      ("tests/test_schedule.py",), "the lr decays one epoch early (> -> >=)"),
    M("engine", SCHEDULE, "return base * epoch / warmup", "return base * (epoch - 1) / warmup",
      ("tests/test_schedule.py",), "linear warm-up off by one"),
    # ---- results.py
    M("results", RESULTS, "return mean_std([r.last_top1 for r in self.runs if r.last_top1 is not None])",
      "return mean_std([r.best_top1 for r in self.runs if r.best_top1 is not None])",
      RESULTS_TESTS, "'last top-1' averaged from the best series"),
    M("results", RESULTS, "| {_fmt_diff(last_m, published)} |", "| {_fmt_diff(best_m, published)} |",
      RESULTS_TESTS, "'Δ last' computed from the best mean"),
    M("results", RESULTS, "std = statistics.stdev(values) if len(values) > 1 else 0.0",
      "std = statistics.pstdev(values) if len(values) > 1 else 0.0", RESULTS_TESTS,
      "population instead of sample std"),
    M("results", RESULTS, 'return f"{ours - paper:+.2f}"', 'return f"{paper - ours:+.2f}"', RESULTS_TESTS,
      "the difference's sign flipped"),
    M("results", RESULTS, 'GROUPING_IGNORED = RUNTIME_KEYS + ("train.seed", ', "GROUPING_IGNORED = RUNTIME_KEYS + (",
      RESULTS_TESTS, "the seed splits the groups (nothing averaged)"),
    M("results", RESULTS, 'done = f"{r.epochs_done}/{planned}"', 'done = f"{planned}/{r.epochs_done}"',
      RESULTS_TESTS, "unfinished table: epochs done/planned swapped"),
    M("results", RESULTS, "return mean, t_quantile(level, len(values) - 1) * std / math.sqrt(len(values))",
      "return mean, t_quantile(level, len(values)) * std / math.sqrt(len(values))",
      RESULTS_TESTS + ("tests/test_demo.py",), "the t interval with n instead of n - 1 degrees of freedom"),
    M("results", RESULTS, 'last = "–" if r.last_top1 is None else f"{r.last_top1:.2f}"',
      'last = "–" if r.last_top1 is None else f"{r.best_top1:.2f}"', RESULTS_TESTS,
      "unfinished table: 'last' shows the best so far"),
    M("results", RESULTS, "    return lines + [f\"- {note}\" for note in differ]", "    return lines",
      RESULTS_TESTS + ("tests/test_published_numbers.py",), "the note where a second source disagrees is dropped"),
    M("results", RESULTS, 'f"{published:.2f}" + _mark(getattr(published, "source", None), cited)',
      'f"{published:.2f}"', RESULTS_TESTS + ("tests/test_published_numbers.py",),
      "a number from another source than the paper is shown unmarked"),
    M("results", RESULTS, "common = sorted(set.intersection(*(set(c) for c in per_run))) if per_run else []",
      "common = sorted(set.union(*(set(c) for c in per_run))) if per_run else []",
      RESULTS_TESTS, "mean curve over the union of epochs (runs of different lengths)"),
    # ---- recipes/
    M("recipes", RECIPES, 'key, value = text.split("=", 1)', 'key, value = text.split("=")[:2]',
      ("tests/test_recipes.py", "tests/test_results_tables.py"), "a value containing '=' is cut at it"),
    M("recipes", RECIPES, 'new = [yaml.safe_load(x) for x in new.split(",") if x.strip()]',
      'new = [yaml.safe_load(x) for x in new.split(";") if x.strip()]',
      ("tests/test_recipes.py", "tests/test_results_tables.py"), "a comma list is not split"),
    M("recipes", RECIPES, "        key = ALIASES.get(key, key)\n", "",
      ("tests/test_recipes.py",), "short aliases (epochs=, lr=) ignored"),
    M("recipes", RECIPES, 'if key not in valid and not key.startswith("data.options."):',
      'if False and key not in valid:', ("tests/test_recipes.py",), "an unknown override key is accepted"),
    M("recipes", RECIPES, "        return int(new)\n", "        return new\n",
      ("tests/test_recipes.py", "tests/test_results_tables.py"), "an integer key set to 2.0 stays a float"),
    M("recipes", RECIPES, "return key.strip(), yaml.safe_load(value) if value.strip() else None",
      "return key.strip(), value if value.strip() else None",
      ("tests/test_recipes.py", "tests/test_results_tables.py"), "override values not parsed (all strings)"),
    # ---- models/checkpoints.py
    M("checkpoints", CKPT, "for _ in range(3):  # prefixes can nest", "for _ in range(1):  # prefixes can nest",
      ("tests/test_mutation_kinds.py", "tests/test_models.py"), "only one layer of wrappers stripped"),
    M("checkpoints", CKPT, 'if k not in state_dict and not k.endswith("num_batches_tracked")]',
      "if k not in state_dict]", ("tests/test_models.py",), "old checkpoints without num_batches_tracked refused"),
    M("checkpoints", CKPT, "return torch.load(path, map_location=map_location, weights_only=not trust_pickle)",
      "return torch.load(path, map_location=map_location, weights_only=False)",
      ("tests/test_models.py", "tests/test_downloads.py"), "pickles loaded without trust_pickle"),
    M("checkpoints", CKPT, "elif isinstance(value, (int, float, str, bool)):", "elif isinstance(value, (int, str, bool)):",
      ("tests/test_models.py",), "float metadata (accuracy) dropped"),
    M("checkpoints", CKPT, "bad = {k for k, _, _ in diff.wrong_shape} | set(diff.unexpected)",
      "bad = set(diff.unexpected)", ("tests/test_models.py",), "strict=False loads wrongly shaped tensors"),
    M("checkpoints", CKPT, "    if path.is_dir():\n", "    if False:\n",
      ("tests/test_models.py", "tests/test_mutation_survivors.py"), "a folder passed as checkpoint gives torch's error"),
    M("checkpoints", CKPT, "        with allowed_globals():\n", "        with contextlib.nullcontext():\n",
      ("tests/test_models.py", "-k", "crd or pickled"), "the allow-list unused: a CRD file needs --trust-pickle"),
    M("checkpoints", CKPT, 'return "; ".join(err.diff.kinds()) if isinstance(err, KeyMismatchError) else',
      'return "" if isinstance(err, KeyMismatchError) else',
      ("tests/test_downloads.py", "-k", "strictly"), "the teacher check does not name the keys that do not fit"),
    # ---- train/checks.py, train/teacher.py: the pre-run checks the engine and the CLI share
    M("checks", CHECKS, 'raise ValueError(f"{option} {name!r}: {err}") from None', "raise",
      ("tests/test_checks.py",), "an unknown model name's error does not name the option"),
    M("checks", TEACHER, "    if not path.is_file():\n        raise _missing_teacher(",
      "    if False:\n        raise _missing_teacher(",
      ("tests/test_checks.py", "-k", "missing_teacher"), "a missing teacher file gets the loader's error, no fix"),
    M("checks", TEACHER, "        raise _missing_teacher(cfg, where) from None\n", "        raise\n",
      ("tests/test_checks.py", "-k", "empty_teacher"), "an empty teacher run folder: no word on training it"),
    # ---- cli.py
    M("cli", CLI, "if not 0 <= args.seed < SEED_LIMIT:", "if not 0 <= args.seed <= SEED_LIMIT:",
      CLI_TESTS, "--seed upper bound off by one"),
    M("cli", CLI, '        overrides.append(f"train.seed={args.seed}")\n', "        pass\n",
      CLI_TESTS, "--seed never reaches the config (dropped call)"),
    M("cli", CLI, "launcher = [PROG] if nproc <= 1 else", "launcher = [PROG] if nproc < 1 else",
      CLI_TESTS, "--nproc 1 prints a torchrun command"),
    M("cli", CLI, 'words += ["--seed", str(spec.seed)]', 'words += ["--seed", "0"]',
      CLI_TESTS, "printed commands all use seed 0"),
    M("cli", CLI, "    if len(set(seeds)) != len(seeds):\n", "    if False:\n",
      CLI_TESTS, "repeated ablation seeds accepted"),
    M("cli", CLI, "return shlex.join(launcher + words", 'return " ".join(launcher + words',
      CLI_TESTS, "printed commands not shell-quoted"),
    M("cli", CLI, "options = {**(cfg.data.options if cfg and dataset == cfg.dataset else {}),",
      "options = {**({}),", ("tests/test_eval_run_folder.py",), "eval RUN_FOLDER ignores the run's data options"),
    # ---- demo.py
    M("demo", DEMO, "    if lo > 0:\n", "    if lo >= 0:\n", DEMO_TESTS,
      "an interval touching 0 called resolved"),
    M("demo", DEMO, "    if hi < 0:\n", "    if hi <= 0:\n", DEMO_TESTS,
      "an interval touching 0 from below called resolved"),
    M("demo", DEMO, 'gains = [runs[k][f"{which}_top1"] - vanilla[k][f"{which}_top1"] for k in paired]',
      'gains = [runs[k][f"{which}_top1"] - vanilla[k]["best_top1"] for k in paired]', ("tests/test_demo.py",),
      "the last gain paired with vanilla's best (wrong series)"),
    M("demo", DEMO, '"lo": mean - half, "hi": mean + half}', '"lo": mean - half, "hi": mean + half / 2}',
      ("tests/test_demo.py",), "asymmetric interval"),
    M("demo", DEMO, "return [epochs - max(epochs // 4, 1)] if epochs >= 4 else []",
      "return [epochs - max(epochs // 4, 1)] if epochs > 4 else []", DEMO_TESTS,
      "no decay at exactly 4 epochs"),
    M("demo", DEMO, '"seconds": sum(runs[k]["seconds"] for k in seeds)}',
      '"seconds": max(runs[k]["seconds"] for k in seeds)}', ("tests/test_demo.py",), "time of one seed, not all"),
]

CHECK = ("import sys, ldrld_mini, pytest; from pathlib import Path; "
         "copy = Path(sys.argv[1]).resolve(); got = Path(ldrld_mini.__file__).resolve(); "
         "assert copy in got.parents, f'ldrld_mini imported from {got}, not from the copy {copy}'; "
         "sys.exit(pytest.main(sys.argv[2:]))")


def copy_repo(dest: Path) -> None:
    """The tracked and untracked-but-not-ignored files of the repository, copied to `dest`."""
    names = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, check=True,
                           capture_output=True).stdout.decode().split("\0")
    for name in filter(None, names):
        src = ROOT / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)


def run_tests(copy: Path, tests: tuple[str, ...], timeout: float) -> tuple[str, float]:
    env = dict(os.environ, PYTHONPATH=str(copy), OMP_NUM_THREADS="1", OMP_WAIT_POLICY="PASSIVE",
               PYTHONDONTWRITEBYTECODE="1")
    cmd = [sys.executable, "-c", CHECK, str(copy), "-x", "-q", "-p", "no:cacheprovider", *tests]
    start = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=copy, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return "timeout", time.perf_counter() - start
    took = time.perf_counter() - start
    if "not from the copy" in proc.stderr + proc.stdout:
        raise SystemExit(f"mutate.py: the tests imported ldrld_mini from outside the copy:\n{proc.stderr[-2000:]}")
    return {0: "passed", 1: "failed"}.get(proc.returncode, f"error (pytest exit {proc.returncode})"), took


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--module", action="append", help="only these modules (repeatable): "
                        + ", ".join(sorted({m.module for m in MUTATIONS})))
    parser.add_argument("--list", action="store_true", help="list the mutations and exit")
    parser.add_argument("--no-baseline", action="store_true", help="skip the unmutated run of each selection")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per test run (default 600)")
    args = parser.parse_args(argv)
    known = {m.module for m in MUTATIONS}
    for name in args.module or ():
        if name not in known:
            parser.error(f"--module {name!r} is not one of {sorted(known)}")
    chosen = [m for m in MUTATIONS if not args.module or m.module in args.module]
    if args.list:
        for i, m in enumerate(chosen, 1):
            print(f"{i:2d} {m.module:11s} {m.file}: {m.what}")
        return 0
    results = []
    with tempfile.TemporaryDirectory(prefix="ldrld-mutate-") as tmp:
        copy = Path(tmp) / "repo"
        copy_repo(copy)
        print(f"copied the working tree to {copy}", flush=True)
        red = set()
        if not args.no_baseline:
            for tests in dict.fromkeys(m.tests for m in chosen):
                status, took = run_tests(copy, tests, args.timeout)
                print(f"baseline {' '.join(tests)}: {status} ({took:.0f} s)", flush=True)
                if status != "passed":
                    red.add(tests)
        for i, m in enumerate(chosen, 1):
            path = copy / m.file
            source = path.read_text()
            if source.count(m.old) != 1:
                outcome, took = "stale", 0.0
            elif m.tests in red:
                outcome, took = "baseline-red", 0.0
            else:
                path.write_text(source.replace(m.old, m.new))
                try:
                    status, took = run_tests(copy, m.tests, args.timeout)
                finally:
                    path.write_text(source)
                outcome = {"failed": "killed", "passed": "survived", "timeout": "timeout"}.get(status, status)
            results.append((m, outcome))
            print(f"[{i}/{len(chosen)}] {outcome:9s} {took:5.0f} s  {m.module}: {m.what} ({m.file})", flush=True)
    print("\n| module | mutations | killed | survived | stale | other | kill rate |\n|---|---|---|---|---|---|---|")
    for module in dict.fromkeys(m.module for m, _ in results):
        outcomes = [o for m, o in results if m.module == module]
        killed = sum(o in ("killed", "timeout") for o in outcomes)
        survived = outcomes.count("survived")
        stale = outcomes.count("stale")
        other = len(outcomes) - killed - survived - stale
        counted = killed + survived
        rate = f"{killed}/{counted} ({100 * killed / counted:.0f} %)" if counted else "–"
        print(f"| {module} | {len(outcomes)} | {killed} | {survived} | {stale} | {other} | {rate} |")
    survivors = [m for m, o in results if o == "survived"]
    for m in survivors:
        print(f"SURVIVED {m.module}: {m.what} ({m.file}: {m.old.strip()!r} -> {m.new.strip()!r})")
    return 1 if survivors else 0


if __name__ == "__main__":
    sys.exit(main())
