"""Training-step speed of a CIFAR distillation (ResNet32x4 -> ResNet8x4, KD and LDRLD) on three paths.

    python benchmarks/bench_train_step.py [--device auto|cpu|cuda] [--steps N] [--batch-size B] [--out DIR]
        [--paths baseline standard fast] [--methods kd ldrld] [--compile none|loss|all] [--parallel 1 2 4]

A measurement, never a pass/fail test. All paths train on synthetic CIFAR-shaped uint8 data (the GPU
machine has no dataset and no network) with randomly initialised models (speed does not depend on weights):
  baseline  what the public CRD/LDRLD code does: a torchvision CIFAR100 dataset of PIL images,
            RandomCrop(32, 4) + flip + ToTensor + Normalize, a DataLoader (8 workers), fp32 eager, CRD's
            DistillKL or the masked LDRLD loss (one full-width masked softmax per group), and `loss.item()`
            plus top-1/top-5 every step (its AverageMeters);
  standard  ldrld-mini's `loop.train_one_epoch`: the same kind of DataLoader pipeline (the recipe's 4
            workers, pinned memory), fp32, the fast analytic loss;
  fast      `train.fast.FastDistiller` on a `DeviceLoader`: data and augmentation on the device, bf16
            autocast, channels_last, fused SGD, on-device metric sums, the step captured as a CUDA graph
            (CUDA only; on a CPU: fp32 and no graph). `--compile loss|all` adds torch.compile variants.
Reported per (path, method): milliseconds per step and images per second over `--steps` timed steps after
`--warmup` steps, the ratio to the baseline, LDRLD / KD, the validation time per epoch (10,000 images through
`loop.evaluate`) and the projected wall time of a 240-epoch run (782 steps of 64 + validation, per epoch).
`--parallel P ...` (CUDA) also measures the total images/s of P independent fast LDRLD runs on the GPU,
as P CUDA streams in one process and as P processes.
"""
from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ldrld_mini.data.device_loader import DeviceLoader
from ldrld_mini.data.memory import ArrayDataset
from ldrld_mini.data.registry import get_info
from ldrld_mini.data.transforms import test_transform, train_transform
from ldrld_mini.losses import build_loss, ce_loss
from ldrld_mini.losses.reference import ldrld_masked
from ldrld_mini.models import build_model
from ldrld_mini.models.evaluate import topk_correct
from ldrld_mini.profiling import environment
from ldrld_mini.train.fast import FastDistiller
from ldrld_mini.train.loop import evaluate, train_one_epoch
from ldrld_mini.train.teacher import freeze

CIFAR = get_info("cifar100")
CIFAR_TRAIN, CIFAR_VAL = 50_000, 10_000
PATHS = ("baseline", "standard", "fast")
METHODS = ("kd", "ldrld")


# ----------------------------------------------------------------------------------------------------------
# data and models

def synthetic_cifar(n: int, num_classes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Random uint8 images (n, 32, 32, 3) and labels (n,): CIFAR's shapes, nothing else of it."""
    gen = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 32, 32, 3), dtype=torch.uint8, generator=gen)
    labels = torch.randint(0, num_classes, (n,), generator=gen)
    return images.numpy(), labels.numpy()


def public_style_dataset(images, labels, train: bool):
    """A torchvision CIFAR100 object over in-memory arrays: its own __getitem__ (PIL) and transforms."""
    from torchvision import transforms as T
    from torchvision.datasets import CIFAR100

    ds = CIFAR100.__new__(CIFAR100)  # no files: fill the attributes __getitem__ reads
    normalize = [T.ToTensor(), T.Normalize(CIFAR.mean, CIFAR.std)]
    aug = [T.RandomCrop(32, padding=4), T.RandomHorizontalFlip()] if train else []
    ds.data, ds.targets = images, [int(t) for t in labels]
    ds.transform, ds.target_transform = T.Compose(aug + normalize), None
    return ds


def make_models(args, device, seed: int = 0):
    """(teacher frozen in eval mode, student), both on `device`, seeded."""
    torch.manual_seed(seed)
    teacher = freeze(build_model(args.teacher, num_classes=args.num_classes).to(device))
    return teacher, build_model(args.student, num_classes=args.num_classes).to(device)


def make_sgd(student, lr: float = 0.05):
    """The CRD recipe's optimizer."""
    return torch.optim.SGD(student.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4, nesterov=False)


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# ----------------------------------------------------------------------------------------------------------
# (a) the public code's loop

def distill_kl(logits_s, logits_t, temperature=4.0):
    """CRD's DistillKL: `kl_div(log_softmax(s/T), softmax(t/T), sum) * T^2 / B`."""
    p_s = F.log_softmax(logits_s / temperature, dim=1)
    p_t = F.softmax(logits_t / temperature, dim=1)
    return F.kl_div(p_s, p_t, reduction="sum") * temperature**2 / logits_s.shape[0]


def public_criterion(method: str):
    if method == "kd":
        return lambda ls, lt, y: 0.1 * F.cross_entropy(ls, y) + 0.9 * distill_kl(ls, lt)
    if method == "ldrld":
        def ldrld(ls, lt, y):
            local, rest = ldrld_masked(ls, lt, k=7)
            return ce_loss(ls, y) + 10.5 * local + 7.0 * rest
        return ldrld
    raise ValueError(f"method={method!r} has no public-code criterion here; use kd or ldrld.")


def public_steps(batches, teacher, student, criterion, optimizer, device, meters):
    """CRD's train_distill body: fp32, `.item()` and top-1/top-5 every step (its `accuracy` helper's topk)."""
    student.train()
    for images, labels in batches:
        images, labels = images.float().to(device), labels.to(device)
        with torch.no_grad():
            logits_t = teacher(images)
        logits_s = student(images)
        loss = criterion(logits_s, logits_t, labels)
        meters.append((loss.item(), *topk_correct(logits_s, labels)))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


# ----------------------------------------------------------------------------------------------------------
# one measurement

def measure_path(path: str, method: str, args, device, data, val, compile_mode: str = "none") -> dict:
    """Time `args.steps` training steps (after `args.warmup`) and one validation pass of a path."""
    teacher, student = make_models(args, device)
    optimizer = make_sgd(student)
    t_setup = time.perf_counter()
    if path == "fast":
        run, precision, graphs = _fast_runner(method, args, device, data, teacher, student, optimizer, compile_mode)
    else:
        run, precision, graphs = _loader_runner(path, method, args, device, data, teacher, student, optimizer), "fp32", "no"
    run(args.warmup)
    sync(device)
    setup = time.perf_counter() - t_setup
    start, cpu_start = time.perf_counter(), time.process_time()
    run(args.steps)
    sync(device)
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    eval_s = measure_eval(path, args, device, val, student)
    ms = 1e3 * elapsed / args.steps
    steps_per_epoch = math.ceil(CIFAR_TRAIN / args.batch_size)
    projected_min = args.epochs * (steps_per_epoch * ms / 1e3 + eval_s) / 60
    return {"path": path if compile_mode == "none" else f"fast+compile({compile_mode})", "method": method,
            "precision": precision, "graphs": graphs, "ms_per_step": ms,
            "host_cpu_ms_per_step": 1e3 * cpu / args.steps,
            "images_per_s": args.batch_size * args.steps / elapsed, "eval_s_per_epoch": eval_s,
            "projected_min": projected_min, "setup_s": setup}


def _loader_runner(path, method, args, device, data, teacher, student, optimizer):
    images, labels = data
    train_ds = public_style_dataset(images, labels, train=True) if path == "baseline" else \
        ArrayDataset(images, labels, [str(c) for c in range(args.num_classes)], train_transform("cifar100"))
    workers = args.workers if path == "baseline" else args.std_workers
    loader = torch.utils.data.DataLoader(train_ds, batch_size=args.batch_size, shuffle=True, num_workers=workers,
                                         pin_memory=(path == "standard" and device.type == "cuda"),
                                         persistent_workers=workers > 0, drop_last=True)
    batches = _forever(loader)
    if path == "baseline":
        criterion, meters = public_criterion(method), []
        return lambda n: public_steps(itertools.islice(batches, n), teacher, student, criterion, optimizer, device,
                                      meters)
    loss_fn = build_loss(method)
    return lambda n: train_one_epoch(student, itertools.islice(batches, n), loss_fn, optimizer, epoch=1,
                                     teacher=teacher, device=device)


def _forever(loader):
    while True:
        yield from loader


def _fast_runner(method, args, device, data, teacher, student, optimizer, compile_mode):
    images, labels = data
    loader = DeviceLoader(images, labels, batch_size=args.batch_size, mean=CIFAR.mean, std=CIFAR.std,
                          seed=0, device=device)
    fast = FastDistiller(student, teacher, build_loss(method), optimizer, device=device,
                         compile_models=compile_mode == "all", compile_loss=compile_mode in ("loss", "all"))
    epoch = itertools.count(1)
    return (lambda n: fast.train_epoch(loader, epoch=next(epoch), lr=0.05, max_steps=n),
            fast.amp if fast.amp != "none" else "fp32", "yes" if fast.graphs else "no")


def measure_eval(path, args, device, val, student) -> float:
    """Seconds to validate 10,000 images, extrapolated from `args.eval_images` (loop.evaluate)."""
    images, labels = val
    if path == "fast":
        loader = DeviceLoader(images, labels, batch_size=args.val_batch_size, mean=CIFAR.mean, std=CIFAR.std,
                              train=False, device=device)
        kw = dict(amp="bf16" if device.type == "cuda" else "none", channels_last=True)
    else:
        ds = public_style_dataset(images, labels, train=False) if path == "baseline" else \
            ArrayDataset(images, labels, [str(c) for c in range(args.num_classes)], test_transform("cifar100"))
        loader = torch.utils.data.DataLoader(ds, batch_size=args.val_batch_size, shuffle=False,
                                             num_workers=args.std_workers, pin_memory=device.type == "cuda")
        kw = dict(amp="none", channels_last=False)
    evaluate(student, loader, device=device, **kw)  # warm-up (workers, cudnn autotune)
    sync(device)
    start = time.perf_counter()
    evaluate(student, loader, device=device, **kw)
    sync(device)
    return (time.perf_counter() - start) * CIFAR_VAL / len(images)


# ----------------------------------------------------------------------------------------------------------
# several runs on one GPU

def warm_fast_ldrld(args, device, data, seed: int):
    """A fast LDRLD run on a DeviceLoader of `data` after `args.warmup` steps: (FastDistiller, endless batches)."""
    teacher, student = make_models(args, device, seed=seed)
    loader = DeviceLoader(*data, batch_size=args.batch_size, mean=CIFAR.mean, std=CIFAR.std, seed=seed, device=device)
    fast = FastDistiller(student, teacher, build_loss("ldrld"), make_sgd(student), device=device)
    fast.train_epoch(loader, epoch=1, lr=0.05, max_steps=args.warmup)
    return fast, _forever(loader)


def measure_streams(args, device, data, parallel: int) -> dict:
    """Total images/s of `parallel` fast LDRLD runs, one CUDA stream each, stepped round-robin."""
    runs = []
    for i in range(parallel):
        stream = torch.cuda.Stream(device)
        with torch.cuda.stream(stream):
            fast, batches = warm_fast_ldrld(args, device, data, seed=i)
        runs.append((fast, stream, batches))
    sync(device)
    start = time.perf_counter()
    for _ in range(args.steps):
        for fast, stream, batches in runs:
            with torch.cuda.stream(stream):
                fast.step(*next(batches))
    sync(device)
    elapsed = time.perf_counter() - start
    return {"mode": "streams", "parallel": parallel, "images_per_s": parallel * args.steps * args.batch_size / elapsed}


def measure_processes(args, parallel: int) -> dict:
    """Total images/s of `parallel` fast LDRLD runs as processes started together (file barrier)."""
    with tempfile.TemporaryDirectory() as folder:
        base = [sys.executable, str(Path(__file__).resolve()), "--device", args.device, "--steps", str(args.steps),
                "--warmup", str(args.warmup), "--batch-size", str(args.batch_size), "--teacher", args.teacher,
                "--student", args.student, "--train-size", str(args.train_size), "--barrier", folder]
        env = dict(os.environ, OMP_NUM_THREADS=str(max(1, (os.cpu_count() or 1) // parallel)))
        procs = [subprocess.Popen(base + ["--rank", str(i)], env=env) for i in range(parallel)]
        _wait_for(lambda: all((Path(folder) / f"ready{i}").exists() for i in range(parallel)), procs, 300)
        (Path(folder) / "go").touch()
        _wait_for(lambda: all((Path(folder) / f"done{i}.json").exists() for i in range(parallel)), procs, 300)
        for proc in procs:
            proc.wait()
        done = [json.loads((Path(folder) / f"done{i}.json").read_text()) for i in range(parallel)]
    wall = max(d["end"] for d in done) - min(d["start"] for d in done)
    return {"mode": "processes", "parallel": parallel, "images_per_s": sum(d["images"] for d in done) / wall}


def _wait_for(condition, procs, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if any(p.poll() not in (None, 0) for p in procs):
            raise RuntimeError("a benchmark worker process failed; see its output above")
        if time.monotonic() > deadline:
            raise TimeoutError(f"benchmark workers did not finish within {timeout_s} s")
        time.sleep(0.05)


def barrier_worker(args) -> None:
    """One process of `measure_processes`: warm up, say ready, wait for go, time the steps."""
    device = torch.device(args.device)
    torch.backends.cudnn.benchmark = True
    folder = Path(args.barrier)
    data = synthetic_cifar(args.train_size, args.num_classes, seed=args.rank)
    fast, batches = warm_fast_ldrld(args, device, data, seed=args.rank)
    sync(device)
    (folder / f"ready{args.rank}").touch()
    parent, deadline = os.getppid(), time.monotonic() + 600
    while not (folder / "go").exists():
        if os.getppid() != parent or time.monotonic() > deadline:
            sys.exit("the benchmark's main process is gone; stopping this worker")
        time.sleep(0.001)
    start = time.time()
    for _ in range(args.steps):
        fast.step(*next(batches))
    sync(device)
    end = time.time()
    record = {"start": start, "end": end, "images": args.steps * args.batch_size}
    (folder / f"done{args.rank}.json").write_text(json.dumps(record))


# ----------------------------------------------------------------------------------------------------------
# the report

def format_table(rows: list[dict], env: dict, args) -> str:
    """The Markdown report: environment, one row per (path, method), the targets."""
    base = {r["method"]: r["images_per_s"] for r in rows if r["path"] == "baseline"}
    kd = {r["path"]: r["ms_per_step"] for r in rows if r["method"] == "kd"}
    lines = [f"{args.teacher} -> {args.student}, batch {args.batch_size}, {args.steps} timed steps after "
             f"{args.warmup} warm-up, synthetic CIFAR-shaped data; {env['device']}; torch {env['torch']}; "
             f"commit {env['commit']}; {env['date']}", "",
             "| path | method | precision | CUDA graph | ms / step | images / s | x baseline | LDRLD / KD "
             "| host CPU ms / step | val s / epoch | projected 240 epochs | setup s |",
             "|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        x_base = f"{r['images_per_s'] / base[r['method']]:.2f}" if r["method"] in base else "-"
        ratio = f"{r['ms_per_step'] / kd[r['path']]:.3f}" if (r["method"] == "ldrld" and r["path"] in kd) else "-"
        lines.append(f"| {r['path']} | {r['method']} | {r['precision']} | {r['graphs']} | {r['ms_per_step']:.2f} "
                     f"| {r['images_per_s']:.0f} | {x_base} | {ratio} | {r['host_cpu_ms_per_step']:.2f} "
                     f"| {r['eval_s_per_epoch']:.2f} "
                     f"| {_minutes(r['projected_min'])} | {r['setup_s']:.1f} |")
    lines += ["", "ms / step and images / s: wall clock over the timed steps (data loading included). Host CPU: "
              "this process's CPU time per step (not DataLoader workers); on a shared CPU it is the steadier "
              "number. Projected: epochs x (ceil(50000 / batch) steps + validation of 10,000 images).",
              "Targets (H200): LDRLD / KD <= 1.05 on the fast path; fast >= 5x baseline images/s; projected "
              "240-epoch ResNet32x4 -> ResNet8x4 LDRLD run <= 10 min."]
    return "\n".join(lines)


def format_parallel(rows: list[dict], single: float | None) -> str:
    lines = ["| runs at once | as | total images / s | x one run |", "|---:|---|---:|---:|"]
    for r in rows:
        gain = f"{r['images_per_s'] / single:.2f}" if single else "-"
        lines.append(f"| {r['parallel']} | {r['mode']} | {r['images_per_s']:.0f} | {gain} |")
    return "\n".join(lines)


def _minutes(m: float) -> str:
    return f"{m:.1f} min" if m < 120 else f"{m / 60:.1f} h"


# ----------------------------------------------------------------------------------------------------------

def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--steps", type=int, default=None, help="timed steps (default 200 on CUDA, 2 on CPU)")
    parser.add_argument("--warmup", type=int, default=None, help="warm-up steps (default 20 on CUDA, 1 on CPU)")
    parser.add_argument("--batch-size", type=int, default=None, help="default 64 on CUDA (the recipe), 8 on CPU")
    parser.add_argument("--teacher", default="resnet32x4")
    parser.add_argument("--student", default="resnet8x4")
    parser.add_argument("--num-classes", type=int, default=100)
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--paths", nargs="+", default=list(PATHS), choices=PATHS)
    parser.add_argument("--compile", default="none", choices=["none", "loss", "all"],
                        help="also time the fast path with torch.compile of the loss (loss) or of loss and models")
    parser.add_argument("--parallel", type=int, nargs="*", default=[],
                        help="CUDA: also time P runs at once, e.g. 1 2 4")
    parser.add_argument("--workers", type=int, default=None,
                        help="baseline DataLoader workers (default 8 on CUDA, 0 on CPU)")
    parser.add_argument("--std-workers", type=int, default=None,
                        help="standard path DataLoader workers (default 4 on CUDA, 0 on CPU)")
    parser.add_argument("--train-size", type=int, default=None, help="synthetic train images (default 50000 on CUDA)")
    parser.add_argument("--eval-images", type=int, default=None,
                        help="validation images timed (default 10000 on CUDA, 64 on CPU)")
    parser.add_argument("--val-batch-size", type=int, default=256)
    parser.add_argument("--epochs", type=int, default=240, help="epochs of the projected run")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for torch")
    parser.add_argument("--out", default=None, help="folder to write bench_train_step<tag>.md / .json into")
    parser.add_argument("--tag", default="", help="suffix of the output file names")
    parser.add_argument("--barrier", default=None, help=argparse.SUPPRESS)  # internal: a --parallel worker
    parser.add_argument("--rank", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda asked for but torch.cuda.is_available() is False")
    gpu = args.device == "cuda"
    defaults = dict(steps=200 if gpu else 2, warmup=20 if gpu else 1, batch_size=64 if gpu else 8,
                    workers=8 if gpu else 0, std_workers=4 if gpu else 0, eval_images=CIFAR_VAL if gpu else 64)
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.train_size is None:
        args.train_size = CIFAR_TRAIN if gpu else (args.warmup + args.steps + 1) * args.batch_size
    if args.train_size < (args.warmup + args.steps + 1) * args.batch_size:
        parser.error(f"--train-size {args.train_size} is below (warmup + steps + 1) x batch size")
    if args.parallel and not gpu:
        parser.error("--parallel needs --device cuda (runs sharing one GPU)")
    return args


def main(argv=None) -> str:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if args.barrier:
        barrier_worker(args)
        return ""
    torch.backends.cudnn.benchmark = True  # as the CRD code and the trainer (non-deterministic mode)
    data = synthetic_cifar(args.train_size, args.num_classes, seed=0)
    val = synthetic_cifar(args.eval_images, args.num_classes, seed=1)
    rows = []
    for path in args.paths:
        for method in args.methods:
            rows.append(measure_path(path, method, args, device, data, val))
            print(json.dumps(rows[-1]), flush=True)
    if args.compile != "none":
        for method in args.methods:
            rows.append(measure_path("fast", method, args, device, data, val, compile_mode=args.compile))
            print(json.dumps(rows[-1]), flush=True)
    env = environment(device)
    report = format_table(rows, env, args)
    parallel = []
    for p in args.parallel:
        parallel.append(measure_streams(args, device, data, p))
        print(json.dumps(parallel[-1]), flush=True)
        parallel.append(measure_processes(args, p))
        print(json.dumps(parallel[-1]), flush=True)
    if parallel:
        single = next((r["images_per_s"] for r in rows if r["path"] == "fast" and r["method"] == "ldrld"), None)
        report += "\n\nSeveral fast LDRLD runs on one GPU (x one run: vs the fast LDRLD row above):\n\n" + \
            format_parallel(parallel, single)
    print(report)
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / f"bench_train_step{args.tag}.md").write_text(report + "\n")
        (out / f"bench_train_step{args.tag}.json").write_text(json.dumps(
            {"env": env, "args": vars(args), "rows": rows, "parallel": parallel}, indent=2) + "\n")
    return report


if __name__ == "__main__":
    main()
