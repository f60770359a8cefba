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

# (row name, method, extra overrides, what it changes): every LDRLD row changes one thing of the "full" row
ROWS = [
    ("vanilla", "vanilla", [], "cross-entropy only"),
    ("kd", "kd", [], "KD (T 4, CE 0.1 + KD 0.9)"),
    ("dkd", "dkd", [], "DKD (α 1, β 8, T 4)"),
    ("full", "ldrld", [], "LDRLD at the paper's settings: k 7, α 10.5, β 7, ADW, whole group, student's ranking"),
    ("no-local", "ldrld", ["loss.alpha=0"], "no local term (α = 0)"),
    ("no-rntk", "ldrld", ["loss.beta=0"], "no remaining term (β = 0)"),
    ("teacher-rank", "ldrld", ["loss.rank_by=teacher"], "top-k ranked by the teacher"),
    ("k3", "ldrld", ["loss.k=3"], "k = 3"),
    ("k5", "ldrld", ["loss.k=5"], "k = 5"),
    ("k9", "ldrld", ["loss.k=9"], "k = 9"),
    ("scale0.3", "ldrld", ["loss.alpha=3.15", "loss.beta=2.1"], "α, β × 0.3"),
    ("scale0.1", "ldrld", ["loss.alpha=1.05", "loss.beta=0.7"], "α, β × 0.1"),
    ("warmup0", "ldrld", ["schedule.warmup_epochs=0"], "no lr warm-up"),
    ("warmup2", "ldrld", ["schedule.warmup_epochs=2"], "lr warm-up over 2 epochs (of 4)"),
    ("irw", "ldrld", ["loss.pair_weighting=irw"], "pair weights IRW alone"),
    ("erd", "ldrld", ["loss.pair_weighting=erd"], "pair weights ERD alone"),
    ("uniform", "ldrld", ["loss.pair_weighting=uniform"], "every pair weight 1"),
    ("no-group", "ldrld", ["loss.whole_group=false"], "no whole-top-k group"),
]


def run_row(name: str, method: str, extra: list[str], seeds, out: Path, teacher: Path) -> list[dict]:
    """Train (or reuse) one row on every seed; its per-seed results."""
    from ldrld_mini.demo import DEMO, _run_one, demo_configs

    results = []
    for seed in seeds:
        config = demo_configs(DEMO, seed, teacher, cache_dir=out / "data", overrides={method: extra})[method]
        row = _run_one(name, config, out / name / f"seed{seed}", seed=seed, model=DEMO.student, cached_ok=True,
                       quiet=True)
        results.append(row)
    return results


def paired(values: dict[int, float], base: dict[int, float]) -> dict:
    """Mean ± std of `values` and of its per-seed difference to `base`, with the 95 % t interval."""
    from ldrld_mini.demo import verdict
    from ldrld_mini.results import mean_interval, mean_std

    seeds = sorted(set(values) & set(base))
    diffs = [values[k] - base[k] for k in seeds]
    mean, half = mean_interval(diffs)
    return {"mean": mean_std(list(values.values()))[0], "std": mean_std(list(values.values()))[1],
            "gain": mean, "lo": mean - half, "hi": mean + half, "verdict": verdict(mean - half, mean + half),
            "diffs": diffs}


def table(rows: dict[str, dict[int, float]], what: dict[str, str]) -> str:
    """Markdown: each row's best top-1 (mean ± std), its gain over vanilla and over full LDRLD, both with CIs."""
    lines = ["| row | what changes | best top-1 | − vanilla [95 % CI] | resolves | − full LDRLD [95 % CI] | resolves |",
             "|---|---|---|---|---|---|---|"]
    for name, values in rows.items():
        v = paired(values, rows["vanilla"])
        cells = [f"{v['mean']:.1f} ± {v['std']:.1f}"]
        cells += (["–", "–"] if name == "vanilla" else [f"{v['gain']:+.1f} [{v['lo']:+.1f}, {v['hi']:+.1f}]", v["verdict"]])
        if "full" in rows and name not in ("vanilla", "full"):
            f = paired(values, rows["full"])
            cells += [f"{f['gain']:+.1f} [{f['lo']:+.1f}, {f['hi']:+.1f}]", f["verdict"]]
        else:
            cells += ["–", "–"]
        lines.append(f"| {name} | {what[name]} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default="runs/study")
    p.add_argument("--rows", nargs="+", default=None, help=f"rows to run (default all): {[r[0] for r in ROWS]}")
    args = p.parse_args(argv)
    known = [r[0] for r in ROWS]
    wanted = known if args.rows is None else ["vanilla"] + [r for r in args.rows if r != "vanilla"]
    unknown = [r for r in wanted if r not in known]
    if unknown:
        p.error(f"--rows {unknown}: not a row of the study; the rows are {known}")

    import torch

    from ldrld_mini.demo import DEMO, prepare_teacher
    from ldrld_mini.rounding import rounding_path, set_threads

    set_threads(args.threads)
    out = Path(args.out)
    start = time.perf_counter()
    teacher, teacher_row = prepare_teacher(DEMO, out, cache_dir=out / "data")
    print(f"study: seeds {args.seeds}, {rounding_path()}, torch {torch.__version__}, teacher {teacher} "
          f"(val top-1 {teacher_row['best_top1']:.1f})", flush=True)
    best: dict[str, dict[int, float]] = {}
    what = {r[0]: r[3] for r in ROWS}
    for name, method, extra, _ in ROWS:
        if name in wanted:
            best[name] = {r["seed"]: r["best_top1"] for r in run_row(name, method, extra, args.seeds, out, teacher)}
    elapsed = time.perf_counter() - start
    text = table(best, what)
    header = (f"Built-in experiment study: {DEMO.teacher} → {DEMO.student}, {DEMO.num_classes} classes, seeds "
              f"{args.seeds}, {rounding_path()}, torch {torch.__version__}, {elapsed / 60:.1f} min")
    print("\n" + header + "\n\n" + text, flush=True)
    (out / "study.md").write_text(header + "\n\n" + text + "\n")
    (out / "study.json").write_text(json.dumps({"seeds": args.seeds, "rounding": rounding_path(),
                                                "teacher_top1": teacher_row["best_top1"], "best": best,
                                                "seconds": elapsed}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
