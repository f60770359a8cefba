"""The study on the built-in experiment: LDRLD's parts switched off one at a time, and its sensitivities.

On the demo's data, teacher and student budget (`ldrld_mini.demo.DEMO`), over several seeds, it trains:
vanilla, KD, DKD (the references), LDRLD at the paper's settings, then LDRLD with one change per row: the pair
weighting (IRW only, ERD only, uniform), no whole-top-k group, no remaining term (β = 0), no local term
(α = 0), k ∈ {3, 5, 9}, the teacher's ranking, α and β scaled down, and the lr warm-up length. Every row is
paired with the vanilla student of the same seed (and the LDRLD row of the same seed), and printed with its
mean ± std and the 95 % t interval of the paired gains, then saved as markdown and JSON.

    python benchmarks/bench_demo_study.py                      # 5 seeds, 2 threads (about 30 min on 2 cores)
    python benchmarks/bench_demo_study.py --seeds 0 1 2 3 4 --threads 1 --out runs/study-1t
    python benchmarks/bench_demo_study.py --rows full uniform   # some rows only (vanilla always runs)

Finished runs of the same config are reused (an interrupted study continues). Nothing here is a test: the
numbers depend on the CPU's rounding and on the seeds; benchmarks/RESULTS.md records a measured table.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

# --setting previous: the experiment before the current one, where LDRLD at the paper's weights was the least
# reliable method; the rows test the early-training explanation (ranking, weight scale, warm-up length, k)
PREVIOUS_ROWS = ("vanilla", "kd", "dkd", "full", "teacher-rank", "scale0.1", "k3", "warmup8")
EXTRA_ROWS = {"warmup8": ("ldrld", ("schedule.warmup_epochs=8",), "lr warm-up over 8 epochs (of 30)")}


def run_row(name: str, method: str, extra: list[str], seeds, out: Path, teacher: Path, settings) -> list[dict]:
    """Train (or reuse) one row on every seed; its per-seed results."""
    from ldrld_mini.demo import _run_one, demo_configs

    results = []
    for seed in seeds:
        config = demo_configs(settings, seed, teacher, cache_dir=out / "data", overrides={method: extra})[method]
        row = _run_one(name, config, out / name / f"seed{seed}", seed=seed, model=settings.student, cached_ok=True,
                       quiet=True)
        results.append(row)
    return results


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default="runs/study")
    p.add_argument("--rows", nargs="+", default=None, help="rows to run (default all; ldrld_mini.demo.STUDY_ROWS)")
    p.add_argument("--setting", choices=["demo", "previous"], default="demo",
                   help="demo: the built-in experiment (default); previous: the one before it (20 classes)")
    args = p.parse_args(argv)
    from ldrld_mini.demo import STUDY_ROWS

    rows = list(STUDY_ROWS) + [(name, *spec) for name, spec in EXTRA_ROWS.items()]
    known = [r[0] for r in rows]
    default = known[:len(STUDY_ROWS)] if args.setting == "demo" else list(PREVIOUS_ROWS)
    wanted = default if args.rows is None else ["vanilla"] + [r for r in args.rows if r != "vanilla"]
    unknown = [r for r in wanted if r not in known]
    if unknown:
        p.error(f"--rows {unknown}: not a row of the study; the rows are {known}")

    import torch

    from ldrld_mini.demo import DEMO, PREVIOUS, prepare_teacher, study_table
    from ldrld_mini.rounding import rounding_path, set_threads

    set_threads(args.threads)
    out = Path(args.out)
    start = time.perf_counter()
    settings = DEMO if args.setting == "demo" else PREVIOUS
    teacher, teacher_row = prepare_teacher(settings, out, cache_dir=out / "data", quiet=True)
    print(f"study: seeds {args.seeds}, {rounding_path()}, torch {torch.__version__}, teacher {teacher} "
          f"(val top-1 {teacher_row['best_top1']:.1f})", flush=True)
    best: dict[str, dict[int, float]] = {}
    for name in wanted:
        _, method, extra, _ = rows[known.index(name)]
        best[name] = {r["seed"]: r["best_top1"] for r in run_row(name, method, list(extra), args.seeds, out, teacher,
                                                                 settings)}
    elapsed = time.perf_counter() - start
    text = study_table(best, {name: spec[2] for name, spec in EXTRA_ROWS.items()})
    header = (f"Built-in experiment study ({args.setting} setting): {settings.teacher} → {settings.student}, "
              f"{settings.num_classes} classes, seeds "
              f"{args.seeds}, {rounding_path()}, torch {torch.__version__}, {elapsed / 60:.1f} min")
    print("\n" + header + "\n\n" + text, flush=True)
    (out / "study.md").write_text(header + "\n\n" + text + "\n")
    (out / "study.json").write_text(json.dumps({"setting": args.setting, "seeds": args.seeds, "rounding": rounding_path(),
                                                "teacher_top1": teacher_row["best_top1"], "best": best,
                                                "seconds": elapsed}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
