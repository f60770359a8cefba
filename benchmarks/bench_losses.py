"""Forward+backward time of the distillation losses (a measurement, never a pass/fail test).

    python benchmarks/bench_losses.py [--repeats 200] [--device cpu|cuda|all] [--threads 1]

Prints one Markdown table: median milliseconds per forward+backward for KD, DKD, LDRLD (einops),
LDRLD (fast) and the public code's masked formulation (one full-width masked softmax per group), and the
ratios the loss issue targets: masked / fast (target >= 8x) and fast / KD (target <= 2.5x).
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from ldrld_mini.losses import ce_loss, dkd_loss, kd_loss, ldrld_loss
from ldrld_mini.losses.reference import ldrld_masked

SIZES = [(64, 100, 7), (256, 1000, 7)]


def masked_public(student, teacher, target, k):
    """The baseline: CE + 10.5 * local + 7 * rntk with the public masked formulation."""
    local, rest = ldrld_masked(student, teacher, k=k)
    return ce_loss(student, target) + 10.5 * local + 7.0 * rest


LOSSES = {
    "kd": lambda s, t, y, k: kd_loss(s, t, y).total,
    "dkd": lambda s, t, y, k: dkd_loss(s, t, y).total,
    "ldrld (einops)": lambda s, t, y, k: ldrld_loss(s, t, y, k=k, impl="einops").total,
    "ldrld (fast)": lambda s, t, y, k: ldrld_loss(s, t, y, k=k, impl="fast").total,
    "masked (public)": masked_public,
}


def time_loss(fn, batch, classes, k, device, repeats):
    """Median ms of one forward+backward of `fn` on random logits."""
    gen = torch.Generator().manual_seed(0)
    student = (torch.randn(batch, classes, generator=gen) * 3).to(device).requires_grad_()
    teacher = (torch.randn(batch, classes, generator=gen) * 3).to(device)
    target = torch.randint(0, classes, (batch,), generator=gen).to(device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for _ in range(max(5, repeats // 10)):  # warm-up
        fn(student, teacher, target, k).backward()
    times = []
    for _ in range(repeats):
        sync()
        start = time.perf_counter()
        fn(student, teacher, target, k).backward()
        sync()
        times.append((time.perf_counter() - start) * 1e3)
        student.grad = None
    return statistics.median(times)


def run(devices, repeats):
    """Rows of (device, size, loss, ms, x KD)."""
    rows = []
    for device in devices:
        for batch, classes, k in SIZES:
            results = {name: time_loss(fn, batch, classes, k, device, repeats) for name, fn in LOSSES.items()}
            for name, ms in results.items():
                rows.append((device.type, f"B={batch}, C={classes}, k={k}", name, ms, ms / results["kd"]))
            fast, masked = results["ldrld (fast)"], results["masked (public)"]
            rows.append((device.type, f"B={batch}, C={classes}, k={k}", "=> masked / fast", masked / fast,
                         fast / results["kd"]))
    return rows


def format_table(rows) -> str:
    lines = ["| device | size | loss | ms (fwd+bwd, median) | x KD |", "|---|---|---|---:|---:|"]
    for device, size, name, ms, ratio in rows:
        if name.startswith("=>"):
            lines.append(f"| {device} | {size} | **speed-up masked/fast = {ms:.1f}x** (target >= 8) | | "
                         f"**fast/KD = {ratio:.2f}x** (target <= 2.5) |")
        else:
            lines.append(f"| {device} | {size} | {name} | {ms:.3f} | {ratio:.2f} |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=200, help="timed repetitions per cell (median taken)")
    parser.add_argument("--device", default="all", choices=["cpu", "cuda", "all"])
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (the issue's table uses 1)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    devices = [torch.device("cpu")] if args.device in ("cpu", "all") else []
    if args.device in ("cuda", "all") and torch.cuda.is_available():
        devices.append(torch.device("cuda"))
    elif args.device == "cuda":
        parser.error("--device cuda asked for but torch.cuda.is_available() is False")
    print(f"torch {torch.__version__}, CPU threads {torch.get_num_threads()}, "
          f"GPU {torch.cuda.get_device_name() if torch.cuda.is_available() else 'none'}")
    print(format_table(run(devices, args.repeats)))


if __name__ == "__main__":
    main()
