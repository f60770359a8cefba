"""The losses never read a value back to the host in forward + backward, and the fast LDRLD stays lean.

A host read (`aten::item` / `aten::_local_scalar_dense`: `.item()`, `bool(tensor)`, `int(tensor)`, a
data-dependent shape) stalls a GPU step until the device catches up. On the CPU the profiler records the
same aten calls the GPU path would make, so counting them here checks the standard path (what multi-GPU
runs and every notebook use) without a GPU. Op counts are deterministic; timings are never tested.
"""
import pytest
import torch

from ldrld_mini.losses import build_loss, dkd_loss, kd_loss, ldrld_loss
from ldrld_mini.losses.common import check_logits
from ldrld_mini.profiling import HOST_READS, profile_events, top_level_ops

MAX_FAST_LDRLD_OPS = 50  # top-level aten ops of one forward + backward, CE and total included

LOSSES = {
    "ldrld (fused)": lambda s, t, y: ldrld_loss(s, t, y).total,
    "ldrld (einops)": lambda s, t, y: ldrld_loss(s, t, y, impl="einops").total,
    "ldrld (teacher-ranked, sum, k = C full_kd)": lambda s, t, y: ldrld_loss(
        s, t, y, k=s.shape[1], rank_by="teacher", reduction="sum", remaining_at_full_k="full_kd").total,
    "ldrld (fast, uniform pairs, no whole group)": lambda s, t, y: ldrld_loss(
        s, t, y, pair_weighting="uniform", whole_group=False).total,
    "ldrld (einops, irw, no whole group)": lambda s, t, y: ldrld_loss(
        s, t, y, pair_weighting="irw", whole_group=False, impl="einops").total,
    "kd": lambda s, t, y: kd_loss(s, t, y).total,
    "dkd": lambda s, t, y: dkd_loss(s, t, y, epoch=3).total,
    "ce module": lambda s, t, y: build_loss("ce")(s, t, y).total,
    "ldrld module": lambda s, t, y: build_loss("ldrld")(s, t, y).total,
}


def batch(size, classes, device="cpu", seed=0):
    gen = torch.Generator().manual_seed(seed)
    student = (torch.randn(size, classes, generator=gen) * 3).to(device).requires_grad_()
    teacher = (torch.randn(size, classes, generator=gen) * 3).to(device)
    return student, teacher, torch.randint(0, classes, (size,), generator=gen).to(device)


def profile_step(fn, student, teacher, target):
    fn(student, teacher, target).backward()  # warm caches first: count the steady state
    student.grad = None
    return profile_events(lambda: fn(student, teacher, target).backward())


@pytest.mark.parametrize("name", list(LOSSES))
def test_no_host_read_in_forward_and_backward(name):
    events = profile_step(LOSSES[name], *batch(16, 12))
    reads = [e.name for e in events if e.name in HOST_READS]
    assert not reads, f"{name} reads {len(reads)} value(s) back to the host: {reads}"


@pytest.mark.parametrize("size,classes", [(64, 100), (256, 1000)])
def test_fast_ldrld_op_count(size, classes):
    ops = top_level_ops(profile_step(LOSSES["ldrld (fused)"], *batch(size, classes)))
    assert len(ops) <= MAX_FAST_LDRLD_OPS, f"{len(ops)} top-level aten ops: {ops}"


def test_bad_labels_still_fail_on_cpu_with_the_message_and_no_host_read():
    student, teacher, _ = batch(4, 10)
    with pytest.raises(ValueError, match=r"target holds labels in \[-1, 10\] .* labels must lie in \[0, 9\]"):
        ldrld_loss(student, teacher, torch.tensor([0, -1, 10, 3]))
    target = torch.tensor([0, 1, 2, 3])
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        check_logits(student, teacher, target)
    assert not [e.name for e in prof.events() if e.name.startswith("aten::")]  # the CPU check runs no tensor op


def test_devices_are_checked_as_metadata():
    student, _, target = batch(4, 10)
    with pytest.raises(ValueError, match="logits_teacher is on meta but logits_student is on cpu"):
        ldrld_loss(student, torch.empty(4, 10, device="meta"), target)
    with pytest.raises(ValueError, match="target is on meta but the logits are on cpu"):
        kd_loss(student, student.detach(), torch.empty(4, dtype=torch.long, device="meta"))


def test_int32_labels_work():
    student, teacher, target = batch(4, 10)
    a = ldrld_loss(student, teacher, target).total
    b = ldrld_loss(student, teacher, target.int()).total
    assert torch.equal(a, b)
    assert torch.equal(kd_loss(student, teacher, target).total, kd_loss(student, teacher, target.int()).total)


cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@cuda
@pytest.mark.parametrize("name", list(LOSSES))
def test_cuda_step_never_synchronises(name):
    student, teacher, target = batch(64, 100, device="cuda")
    LOSSES[name](student, teacher, target).backward()  # warm-up: caches, lazy CUDA init
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        LOSSES[name](student, teacher, target).backward()
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert torch.isfinite(student.grad).all()


@cuda
def test_cuda_sync_check_gives_the_message():
    student, teacher, _ = batch(4, 10, device="cuda")
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 9\]"):
        check_logits(student, teacher, torch.tensor([0, 1, 2, 10], device="cuda"), sync=True)


@cuda
def test_cuda_fast_equals_cpu():
    cpu = batch(32, 100)
    gpu = [x.detach().cuda() for x in cpu]
    gpu[0].requires_grad_()
    for impl in ("fused", "einops"):
        a, b = ldrld_loss(*cpu, impl=impl), ldrld_loss(*gpu, impl=impl)
        a.total.backward()
        b.total.backward()
        for x, y in zip(a, b):
            torch.testing.assert_close(x.detach(), y.detach().cpu(), rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(cpu[0].grad, gpu[0].grad.cpu(), rtol=1e-5, atol=1e-6)
        cpu[0].grad, gpu[0].grad = None, None
