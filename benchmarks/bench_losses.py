"""Forward+backward time of the distillation losses (a measurement, never a pass/fail test).

    python benchmarks/bench_losses.py [--rounds 31] [--device cpu|cuda|all] [--threads 1] [--sizes 64x100,256x1000]

Prints, per device and size, one Markdown table: for each loss the top-level aten ops and the host reads
(`aten::item` / `aten::_local_scalar_dense`) of one forward+backward counted by `torch.profiler` on the
CPU (deterministic), the median milliseconds per forward+backward, and its time relative to the floor:
plain KD + CE written with `torch.nn.functional` (what a KD training loop would write by hand). Then the
ratios the loss issue targets: masked public / fused LDRLD (target >= 8x) and fused LDRLD / plain KD + CE
(target <= 2.5x).

Timing is interleaved so that a ratio holds on a shared machine: each round times every loss once, in
turn (A B C ... A B C ...), each over a block of calls sized to take about `--block-ms`; a ratio is the
median over rounds of the per-round ratio, so a burst of load from another process hits both sides. On a
CPU the clock is, by default, this thread's CPU time (`--clock cpu`: time the OS gives to other processes
is not counted; with one torch thread the whole forward+backward runs on this thread); `--clock wall`
measures wall time, as on CUDA (synchronised).
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

import torch
import torch.nn.functional as F

from ldrld_mini.losses import ce_loss, dkd_loss, kd_loss, ldrld_loss
from ldrld_mini.losses.reference import ldrld_masked
from ldrld_mini.profiling import host_reads, profile_events, top_level_ops

SIZES = [(64, 100, 7), (256, 1000, 7)]
FLOOR = "plain KD + CE (F)"
FAST = "ldrld (fused)"
MASKED = "masked (public)"


def plain_kd_ce(student, teacher, target, k, temperature=4.0):
    """The floor: KD + CE as a training loop writes it with torch.nn.functional (mdistiller's weights)."""
    ce = F.cross_entropy(student, target)
    kd = F.kl_div(F.log_softmax(student / temperature, dim=1), F.log_softmax(teacher / temperature, dim=1),
                  reduction="batchmean", log_target=True)
    return 0.1 * ce + 0.9 * temperature**2 * kd


def masked_public(student, teacher, target, k):
    """The baseline: CE + 10.5 * local + 7 * rntk with the public masked formulation."""
    local, rest = ldrld_masked(student, teacher, k=k)
    return ce_loss(student, target) + 10.5 * local + 7.0 * rest


LOSSES = {
    FLOOR: plain_kd_ce,
    "kd": lambda s, t, y, k: kd_loss(s, t, y).total,
    "dkd": lambda s, t, y, k: dkd_loss(s, t, y).total,
    "ldrld (einops)": lambda s, t, y, k: ldrld_loss(s, t, y, k=k, impl="einops").total,
    FAST: lambda s, t, y, k: ldrld_loss(s, t, y, k=k, impl="fused").total,
    MASKED: masked_public,
}


def make_inputs(batch, classes, device):
    gen = torch.Generator().manual_seed(0)
    student = (torch.randn(batch, classes, generator=gen) * 3).to(device).requires_grad_()
    teacher = (torch.randn(batch, classes, generator=gen) * 3).to(device)
    target = torch.randint(0, classes, (batch,), generator=gen).to(device)
    return student, teacher, target


def count_ops(fn, batch, classes, k):
    """(top-level aten ops, host reads) of one forward+backward on the CPU, from torch.profiler."""
    student, teacher, target = make_inputs(batch, classes, torch.device("cpu"))
    fn(student, teacher, target, k).backward()  # warm caches first: count the steady state
    student.grad = None
    events = profile_events(lambda: fn(student, teacher, target, k).backward())
    ops, reads = len(top_level_ops(events)), len(host_reads(events))
    return ops, reads


def time_interleaved(batch, classes, k, device, rounds, block_ms, clock="cpu"):
    """{loss: [ms per forward+backward, one entry per round]}, losses timed in turn within each round."""
    student, teacher, target = make_inputs(batch, classes, device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    now = time.thread_time if (clock == "cpu" and device.type == "cpu") else time.perf_counter

    def block(fn, calls):
        sync()
        start = now()
        for _ in range(calls):
            fn(student, teacher, target, k).backward()
        sync()
        student.grad = None
        return (now() - start) * 1e3 / calls

    calls = {}
    for name, fn in LOSSES.items():  # warm-up, then size each block to about block_ms
        block(fn, 3)
        calls[name] = max(1, round(block_ms / max(block(fn, 3), 1e-3)))
    times = {name: [] for name in LOSSES}
    for _ in range(rounds):
        for name, fn in LOSSES.items():
            times[name].append(block(fn, calls[name]))
    return times


def median_ratio(a, b):
    """Median over rounds of a[i] / b[i]."""
    return statistics.median(x / y for x, y in zip(a, b))


def run(devices, rounds, block_ms, sizes=SIZES, clock="cpu"):
    """One result dict per (device, size): ops, reads, ms, ratios."""
    results = []
    for device in devices:
        for batch, classes, k in sizes:
            counts = {name: count_ops(fn, batch, classes, k) for name, fn in LOSSES.items()}
            times = time_interleaved(batch, classes, k, device, rounds, block_ms, clock)
            results.append(dict(
                device=device.type, size=f"B={batch}, C={classes}, k={k}", counts=counts,
                clock="thread CPU time" if (clock == "cpu" and device.type == "cpu") else "wall time",
                ms={name: statistics.median(v) for name, v in times.items()},
                x_floor={name: median_ratio(v, times[FLOOR]) for name, v in times.items()},
                masked_over_fast=median_ratio(times[MASKED], times[FAST]),
                fast_over_floor=median_ratio(times[FAST], times[FLOOR]),
            ))
    return results


def format_table(results) -> str:
    lines = []
    for r in results:
        lines += [f"**{r['device']}, {r['size']}** ({r['clock']}, median of interleaved rounds)", "",
                  "| loss | top-level aten ops | host reads | ms (fwd+bwd, median) | x plain KD + CE |",
                  "|---|---:|---:|---:|---:|"]
        for name in LOSSES:
            ops, reads = r["counts"][name]
            lines.append(f"| {name} | {ops} | {reads} | {r['ms'][name]:.3f} | {r['x_floor'][name]:.2f} |")
        ok = lambda good: "met" if good else "NOT met"  # noqa: E731
        lines += ["", f"masked / fused = **{r['masked_over_fast']:.1f}x** (target >= 8: "
                      f"{ok(r['masked_over_fast'] >= 8)}); fused / plain KD + CE = **{r['fast_over_floor']:.2f}x** "
                      f"(target <= 2.5: {ok(r['fast_over_floor'] <= 2.5)}); fused ops = {r['counts'][FAST][0]} "
                      f"(target <= 50: {ok(r['counts'][FAST][0] <= 50)}); host reads "
                      f"{sum(c[1] for c in r['counts'].values())} in all (target 0).", ""]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=31, help="interleaved rounds (median of per-round ratios)")
    parser.add_argument("--block-ms", type=float, default=20.0, help="target milliseconds of one timed block")
    parser.add_argument("--device", default="all", choices=["cpu", "cuda", "all"])
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (the issue's table uses 1)")
    parser.add_argument("--clock", default="cpu", choices=["cpu", "wall"],
                        help="on a CPU: this thread's CPU time (default, steady on a shared machine) or wall time")
    parser.add_argument("--sizes", default=",".join(f"{b}x{c}" for b, c, _ in SIZES),
                        help="comma-separated BxC sizes, k = 7")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    sizes = [(int(b), int(c), 7) for b, c in (item.split("x") for item in args.sizes.split(","))]
    devices = [torch.device("cpu")] if args.device in ("cpu", "all") else []
    if args.device in ("cuda", "all") and torch.cuda.is_available():
        devices.append(torch.device("cuda"))
    elif args.device == "cuda":
        parser.error("--device cuda asked for but torch.cuda.is_available() is False")
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"torch {torch.__version__}, CPU threads {torch.get_num_threads()}, load average {load}, "
          f"GPU {torch.cuda.get_device_name() if torch.cuda.is_available() else 'none'}")
    print(format_table(run(devices, args.rounds, args.block_ms, sizes, args.clock)))
    print(f"load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
