"""A 2-process DDP distillation run (gloo on CPU) interrupted after epoch 1 and resumed equals the
uninterrupted run bit for bit, and every rank restores its own RNG state (issue 18 point 1, "DDP resume").

The student has dropout, so each rank's training draws from its own torch stream (seeded seed + rank): a resume
that gave every rank rank 0's state would draw other masks on rank 1 after the resume, and both the weights and
rank 1's final RNG state would differ from the uninterrupted run's.
"""
import json
import os

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from ldrld_mini.recipes import load_config
from ldrld_mini.rounding import set_threads
from ldrld_mini.train import fit

from test_distributed import OVERRIDES, TORCHRUN_VARS, _free_port, make_teacher


class DropoutNet(nn.Module):
    """A BatchNorm-free conv net with dropout before its head: (B, 3, 32, 32) -> (B, classes)."""

    def __init__(self, num_classes=10):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.drop = nn.Dropout(0.5)
        self.head = nn.Linear(8, num_classes)

    def forward(self, x):
        return self.head(self.drop(torch.relu(self.conv(x)).mean(dim=(2, 3))))


class _Stop(Exception):
    pass


def _stop_after_first(record):
    if record["epoch"] == 1:
        raise _Stop("killed after epoch 1")


def _student():
    torch.manual_seed(0)
    return DropoutNet()


def _worker(rank, world, port, out_dir):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    set_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    cfg = load_config("synthetic", teacher="resnet8", student="resnet8", method="ldrld", overrides=OVERRIDES)
    out = {}
    student = _student()
    out["straight"] = fit(cfg, os.path.join(out_dir, "straight"), quiet=True, student=student,
                          teacher=make_teacher())
    out["straight_model"], out["straight_rng"] = student.state_dict(), torch.get_rng_state()
    try:
        fit(cfg, os.path.join(out_dir, "resumed"), quiet=True, student=_student(), teacher=make_teacher(),
            on_epoch_end=_stop_after_first)
        raise AssertionError("the interrupted run was not interrupted")
    except _Stop:
        pass
    torch.manual_seed(12345 + rank)  # the resume must not depend on what the process drew in between
    student = _student()
    out["resumed"] = fit(cfg, os.path.join(out_dir, "resumed"), resume=True, quiet=True, student=student,
                         teacher=make_teacher())
    out["resumed_model"], out["resumed_rng"] = student.state_dict(), torch.get_rng_state()
    torch.save(out, os.path.join(out_dir, f"rank{rank}.pt"))
    dist.destroy_process_group()


def test_ddp_resume_equals_uninterrupted_and_each_rank_restores_its_own_rng(tmp_path, monkeypatch):
    for key in TORCHRUN_VARS:
        monkeypatch.delenv(key, raising=False)
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2)]
    ckpt = torch.load(tmp_path / "resumed" / "last.pt", weights_only=True)
    assert len(ckpt["rng_ranks"]) == 2  # both ranks' states were saved, and they differ
    assert not torch.equal(ckpt["rng_ranks"][0]["torch"], ckpt["rng_ranks"][1]["torch"])
    for rank, out in enumerate(ranks):
        a, b = out["straight_model"], out["resumed_model"]
        assert a.keys() == b.keys()
        for key in a:
            assert torch.equal(a[key], b[key]), (rank, key)
        # each rank's torch stream ends where its uninterrupted stream ends (rank 1 included)
        assert torch.equal(out["straight_rng"], out["resumed_rng"]), f"rank {rank} RNG state after the resume"
        for key in ("best_top1", "best_epoch", "last_top1"):
            assert out["straight"][key] == out["resumed"][key], (rank, key)
    assert not torch.equal(ranks[0]["straight_rng"], ranks[1]["straight_rng"])
    straight = (tmp_path / "straight" / "metrics.jsonl").read_text().splitlines()
    resumed = (tmp_path / "resumed" / "metrics.jsonl").read_text().splitlines()
    drop = ("epoch_time", "images_per_s", "train_time")
    strip = lambda rows: [{k: v for k, v in json.loads(r).items() if k not in drop} for r in rows]  # noqa: E731
    assert strip(straight) == strip(resumed)
