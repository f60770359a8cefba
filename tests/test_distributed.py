"""DDP on CPU (gloo, 2 processes): it trains, only rank 0 writes, and it matches one process of the same
total batch.

BatchNorm normalises with per-rank batch statistics, so a DDP run of a BatchNorm network is *not* the
single-process run of the same total batch. The exact comparison therefore uses a BatchNorm-free student
(passed to `fit` as a module); the zoo's resnet8 run checks that ranks stay in sync. Both use the
GPU-resident loader on CPU, whose shuffle and augmentation depend only on (seed, epoch), so the two ranks'
shards of a step together are exactly the single process's batch.
"""
import json
import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from ldrld_mini.models import build_model
from ldrld_mini.recipes import load_config
from ldrld_mini.rounding import set_threads
from ldrld_mini.train import fit
from ldrld_mini.train.distributed import DistContext
from ldrld_mini.train.loop import evaluate
from ldrld_mini.train.trainer import _build_loaders

OVERRIDES = ["data.options.num_classes=10", "data.options.train_per_class=8", "data.options.val_per_class=4",
             "batch_size=16", "data.val_batch_size=40", "train.device=cpu", "data.gpu_resident=true",
             "epochs=2", "milestones=[]"]
KINDS = ("plain", "resnet8")
TORCHRUN_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


class NoBatchNormNet(nn.Module):
    """A small conv net without BatchNorm: (B, 3, 32, 32) -> (B, classes)."""

    def __init__(self, num_classes=10):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.head = nn.Linear(8, num_classes)

    def forward(self, x):
        features = torch.relu(self.conv(x)).mean(dim=(2, 3))  # (B, 8)
        return self.head(features)


def make_student(kind):
    torch.manual_seed(0)
    return NoBatchNormNet() if kind == "plain" else build_model("resnet8", num_classes=10)


def make_teacher():
    torch.manual_seed(1)
    return NoBatchNormNet()


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank, world, port, out_dir):
    """One rank: join the group (fit reuses it), run the BatchNorm-free and the resnet8 student, save both."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    set_threads(1)  # LDRLD_THREADS overrides (ldrld_mini.rounding)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    cfg = load_config("synthetic", teacher="resnet8", student="resnet8", method="ldrld", overrides=OVERRIDES)
    for kind in KINDS:
        student = make_student(kind)
        summary = fit(cfg, os.path.join(out_dir, kind), quiet=True, student=student, teacher=make_teacher())
        torch.save({"model": student.state_dict(), "summary": summary},
                   os.path.join(out_dir, f"{kind}_rank{rank}.pt"))
    dist.destroy_process_group()


@pytest.fixture(scope="module")
def ddp_out(tmp_path_factory):
    """Both students trained by 2 gloo processes (one spawn for the whole module)."""
    out = tmp_path_factory.mktemp("ddp")
    env = {k: os.environ.pop(k) for k in TORCHRUN_VARS if k in os.environ}
    try:
        mp.spawn(_worker, args=(2, _free_port(), str(out)), nprocs=2, join=True)
    finally:
        os.environ.update(env)
    return out


def _ranks(out, kind):
    return [torch.load(out / f"{kind}_rank{r}.pt", weights_only=True) for r in range(2)]


def _single(tmp_path, kind):
    student = make_student(kind)
    cfg = load_config("synthetic", teacher="resnet8", student="resnet8", method="ldrld", overrides=OVERRIDES)
    summary = fit(cfg, tmp_path / f"single_{kind}", quiet=True, student=student, teacher=make_teacher())
    return student.state_dict(), summary


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(autouse=True)
def _no_torchrun_env(monkeypatch):
    for key in TORCHRUN_VARS:
        monkeypatch.delenv(key, raising=False)


def test_ddp_matches_single_process_of_the_same_total_batch(ddp_out, tmp_path):
    ranks = _ranks(ddp_out, "plain")
    single_state, single_summary = _single(tmp_path, "plain")
    for key, value in single_state.items():
        torch.testing.assert_close(ranks[0]["model"][key], value, rtol=1e-4, atol=1e-5)
        assert torch.equal(ranks[0]["model"][key], ranks[1]["model"][key])
    ddp_rows = [json.loads(x) for x in (ddp_out / "plain" / "metrics.jsonl").read_text().splitlines()]
    single_rows = [json.loads(x) for x in (tmp_path / "single_plain" / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in ddp_rows] == [1, 2]  # rank 0 alone wrote the file
    for a, b in zip(ddp_rows, single_rows):  # metrics averaged over ranks = the single process's
        for key in ("train_total", "train_ce", "train_local", "train_remaining", "val_top1", "val_loss"):
            assert a[key] == pytest.approx(b[key], rel=1e-4, abs=1e-4), key
    assert ranks[0]["summary"]["world_size"] == 2 and single_summary["world_size"] == 1


def test_ddp_with_batchnorm_keeps_ranks_in_sync(ddp_out):
    ranks = _ranks(ddp_out, "resnet8")
    names = sorted(p.name for p in (ddp_out / "resnet8").iterdir() if not p.name.startswith("."))  # not .lock
    assert names == ["best.pt", "config.yaml", "last.pt", "metrics.csv", "metrics.jsonl", "summary.json"]
    model = build_model("resnet8", num_classes=10)
    params = dict(model.named_parameters())
    for key in params:  # DDP keeps parameters identical across ranks
        assert torch.equal(ranks[0]["model"][key], ranks[1]["model"][key]), key
    # BatchNorm running statistics: each rank's last training step updated them from its own shard, so they
    # agree only because fit broadcasts rank 0's before evaluating (nothing changes them afterwards)
    buffers = dict(model.named_buffers())
    assert any("running_mean" in key for key in buffers)
    for key in buffers:
        assert torch.equal(ranks[0]["model"][key], ranks[1]["model"][key]), key
    # the logged validation (a sum over both ranks' passes) is one pass of rank 0's model
    model.load_state_dict(ranks[0]["model"])
    cfg = load_config("synthetic", teacher="resnet8", student="resnet8", method="ldrld", overrides=OVERRIDES)
    _, val_loader = _build_loaders(cfg, DistContext())
    val = evaluate(model, val_loader)
    last = json.loads((ddp_out / "resnet8" / "metrics.jsonl").read_text().splitlines()[-1])
    assert last["val_loss"] == pytest.approx(val["loss"], rel=1e-5)
    assert ranks[0]["summary"]["last_top1"] == last["val_top1"]
