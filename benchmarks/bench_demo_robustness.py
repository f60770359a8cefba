"""Is the built-in experiment's conclusion robust to the seed and to float rounding? (a measurement, not a test)

Runs the demo (`ldrld_mini.demo.run_demo`, the `make demo` settings: one shipped teacher) over N student
seeds starting at --first-seed (40 by default: seeds the settings were not chosen on) on two rounding paths,
each in its own process so that the setting applies from the start:

    path A  2 torch threads, oneDNN on   (what `make demo` uses)
    path B  1 torch thread,  oneDNN on   (convolution gradients summed in another order, as on another CPU)
    (--onednn-off adds path C: oneDNN off, 2 threads; about 10x slower)

and prints, per path, mean ± std of best / last top-1 and of each method's paired gain over vanilla, then
the criteria: every student method's best top-1 has a standard deviation of at most 3 points over the seeds;
no student run below twice chance; no method's mean gain changing sign between the paths.

    python benchmarks/bench_demo_robustness.py                 # seeds 40-44, paths A and B (~10 min on 2 cores)
    python benchmarks/bench_demo_robustness.py --seeds 3 --first-seed 0 --out runs/robustness
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

MAX_STD = 3.0  # the spread target of the built-in experiment (points of top-1, over the seeds)
PATHS = {"A": {"threads": 2, "onednn": "1"}, "B": {"threads": 1, "onednn": "1"}, "C": {"threads": 2, "onednn": "0"}}
CHILD = """
import json, sys
from ldrld_mini.demo import run_demo
out, first, seeds, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
res = run_demo(out, threads=threads, seeds=range(first, first + seeds), quiet=True)
print("RESULT " + json.dumps({"summary": res["summary"], "rounding": res["rounding"], "total": res["total_time"],
                             "runs": [{k: v for k, v in r.items() if k != "curve"} for r in res["rows"]]}))
"""


def run_path(name: str, out: Path, first: int, seeds: int, reuse: bool = False) -> dict:
    """One rounding path in a fresh process (or, with `reuse`, the results.json it wrote before); its result."""
    saved = out / f"path{name}" / "results.json"
    if reuse and saved.is_file():
        record = json.loads(saved.read_text())
        if list(record["settings"]["seeds"]) == list(range(first, first + seeds)):
            return {"summary": record["summary"], "rounding": record["rounding"], "total": record["total_seconds"],
                    "runs": record["runs"], "wall": record["total_seconds"]}
    spec = PATHS[name]
    env = {**os.environ, "LDRLD_ONEDNN": spec["onednn"]}
    env.pop("LDRLD_THREADS", None)
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", CHILD, str(out / f"path{name}"), str(first), str(seeds),
                           str(spec["threads"])],
                          env=env, capture_output=True, text=True)
    if proc.returncode:
        sys.exit(f"path {name} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    line = next(x for x in proc.stdout.splitlines() if x.startswith("RESULT "))
    result = json.loads(line[len("RESULT "):])
    result["wall"] = time.perf_counter() - start
    return result


def table(results: dict) -> str:
    """Markdown: path, method, best, last, gain (mean ± std over the seeds)."""
    rows = ["| path | rounding | method | best top-1 | last top-1 | best − vanilla | last − vanilla | min best |",
            "|---|---|---|---|---|---|---|---|"]
    for name, res in results.items():
        for method in ("teacher", "vanilla", "kd", "dkd", "ldrld"):
            e = res["summary"][method]
            gain = ("–", "–") if "gain_best" not in e else (f"{e['gain_best_mean']:+.2f} ± {e['gain_best_std']:.2f}",
                                                          f"{e['gain_last_mean']:+.2f} ± {e['gain_last_std']:.2f}")
            rows.append(f"| {name} | {res['rounding']} | {method} | {e['best_mean']:.2f} ± {e['best_std']:.2f} | "
                        f"{e['last_mean']:.2f} ± {e['last_std']:.2f} | {gain[0]} | {gain[1]} | {min(e['best']):.2f} |")
    return "\n".join(rows)


def criteria(results: dict, num_classes: int) -> list[tuple[str, bool, str]]:
    """(criterion, met, detail) for the three robustness criteria."""
    out = []
    for name, res in results.items():
        s = res["summary"]
        wide = [m for m in ("vanilla", "kd", "dkd", "ldrld") if s[m]["best_std"] > MAX_STD]
        out.append((f"path {name}: every student's best top-1 std <= {MAX_STD:g} points", not wide,
                    ", ".join(f"{m} {s[m]['best_std']:.2f}" for m in ("vanilla", "kd", "dkd", "ldrld"))))
        floor = 2 * 100.0 / num_classes
        low = [f"{r['method']} seed {r['seed']} {r['best_top1']:.2f}" for r in res["runs"]
               if r["method"] != "teacher" and r["best_top1"] < floor]
        out.append((f"path {name}: no student run below twice chance ({floor:.0f} %)", not low, ", ".join(low) or "none"))
    names = list(results)
    for m in ("kd", "dkd", "ldrld"):
        signs = {n: results[n]["summary"][m]["gain_best_mean"] for n in names}
        same = len({v > 0 for v in signs.values()}) == 1
        out.append((f"{m}: gain sign equal on every path", same,
                    ", ".join(f"{n} {v:+.2f}" for n, v in signs.items())))
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=5, help="how many seeds (default 5)")
    parser.add_argument("--first-seed", type=int, default=40, help="the first seed (default 40)")
    parser.add_argument("--out", type=Path, default=Path("runs/robustness"))
    parser.add_argument("--onednn-off", action="store_true", help="add path C (oneDNN off; slow)")
    parser.add_argument("--paths", default=None, help="e.g. AB (default AB, or ABC with --onednn-off)")
    parser.add_argument("--reuse", action="store_true",
                        help="take a path's numbers from its results.json of an earlier run with the same seeds")
    args = parser.parse_args(argv)
    names = args.paths or ("ABC" if args.onednn_off else "AB")
    import torch

    from ldrld_mini.demo import DEMO

    last = args.first_seed + args.seeds - 1
    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}; seeds {args.first_seed}..{last}; "
          f"demo settings {DEMO}", flush=True)
    results = {}
    for name in names:
        results[name] = run_path(name, args.out, args.first_seed, args.seeds, reuse=args.reuse)
        print(f"path {name} ({results[name]['rounding']}): {results[name]['wall']:.0f} s", flush=True)
    print("\n" + table(results) + "\n")
    if len(results) < 2:
        print("one path only: the sign criterion needs two (combine them later with --reuse)")
    checks = criteria(results, DEMO.num_classes)
    print("| criterion | met | detail |\n|---|---|---|")
    for text, met, detail in checks:
        print(f"| {text} | {'yes' if met else 'NO'} | {detail} |")
    (args.out / "robustness.json").write_text(json.dumps(results, indent=1))
    print(f"\nload at the end {os.getloadavg()[0]:.2f}; wrote {args.out / 'robustness.json'}")
    return 0 if all(met for _, met, _ in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
