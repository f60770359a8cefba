"""torchrun / DDP helpers: initialise from the environment, reduce metrics over ranks, rank-0-only writes.

`torchrun --nproc_per_node=N -m ldrld_mini distill ...` sets RANK, LOCAL_RANK and WORLD_SIZE; `init_from_env`
then starts a process group (NCCL on GPUs, gloo on CPUs). Without those variables everything is a
single process and every helper here is a no-op.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

__all__ = ["DistContext", "init_from_env", "cleanup", "is_main", "barrier", "all_reduce_sum",
           "reduce_sums", "broadcast_buffers", "broadcast_obj", "gather_obj", "main_decides", "wrap_ddp",
           "resolve_device"]


@dataclass(frozen=True)
class DistContext:
    """Where this process stands: rank, local rank, world size, device, and whether it made the group."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")
    distributed: bool = False  # a process group is in use (even with world_size 1)
    owns_group: bool = False  # this module started the group, so `cleanup` ends it

    @property
    def is_main(self) -> bool:
        """True on rank 0, the only rank that writes files."""
        return self.rank == 0


def resolve_device(device: str = "auto", local_rank: int = 0) -> torch.device:
    """`auto` -> `cuda:<local_rank>` when a GPU is visible, else `cpu`; other strings as given."""
    if device == "auto":
        return torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")
    if device == "cuda":
        return torch.device(f"cuda:{local_rank}")
    return torch.device(device)


def init_from_env(device: str = "auto") -> DistContext:
    """Join (or start, from torchrun's RANK / WORLD_SIZE / MASTER_ADDR variables) the process group."""
    if dist.is_available() and dist.is_initialized():
        rank, world = dist.get_rank(), dist.get_world_size()
        local_rank = int(os.environ.get("LOCAL_RANK", rank))
        return DistContext(rank, local_rank, world, _pin(resolve_device(device, local_rank)), True, False)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistContext(device=_pin(resolve_device(device, 0)))
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    dev = _pin(resolve_device(device, local_rank))
    dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo", rank=rank, world_size=world)
    return DistContext(rank, local_rank, world, dev, True, True)


def _pin(device: torch.device) -> torch.device:
    """Make `device` the current CUDA device (NCCL needs one GPU per process)."""
    if device.type == "cuda":
        torch.cuda.set_device(device)
    return device


def cleanup(ctx: DistContext) -> None:
    """End the process group if `init_from_env` started it."""
    if ctx.owns_group and dist.is_initialized():
        dist.destroy_process_group()


def is_main() -> bool:
    """True unless this is a non-zero rank of an initialised process group."""
    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


def barrier(ctx: DistContext) -> None:
    """Wait for every rank (no-op in a single process)."""
    if ctx.distributed:
        dist.barrier()


def all_reduce_sum(tensor: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    """Sum `tensor` over ranks, in place (no-op in a single process); returns it."""
    if ctx.distributed and ctx.world_size > 1:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def reduce_sums(sums: dict[str, float], ctx: DistContext, device: torch.device) -> dict[str, float]:
    """Sum a dict of per-rank float totals over ranks (keys must be the same on every rank)."""
    if not (ctx.distributed and ctx.world_size > 1):
        return dict(sums)
    keys = sorted(sums)
    values = torch.tensor([float(sums[k]) for k in keys], dtype=torch.float64, device=device)  # (K,)
    all_reduce_sum(values, ctx)
    return dict(zip(keys, values.tolist()))


def broadcast_buffers(model: nn.Module, ctx: DistContext) -> None:
    """Copy rank 0's buffers (BatchNorm running statistics) to every rank, so evaluation agrees."""
    if ctx.distributed and ctx.world_size > 1:
        for buffer in model.buffers():
            dist.broadcast(buffer, src=0)


def wrap_ddp(model: nn.Module, ctx: DistContext) -> nn.Module:
    """`DistributedDataParallel(model)` when running distributed with more than one rank, else `model`."""
    if not (ctx.distributed and ctx.world_size > 1):
        return model
    device_ids = [ctx.device.index] if ctx.device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=device_ids)


def broadcast_obj(value, ctx: DistContext):
    """Rank 0's `value` on every rank (identity in a single process)."""
    if not (ctx.distributed and ctx.world_size > 1):
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather_obj(value, ctx: DistContext) -> list:
    """`[value of rank 0, value of rank 1, ...]` on every rank (`[value]` in a single process)."""
    if not (ctx.distributed and ctx.world_size > 1):
        return [value]
    out = [None] * ctx.world_size
    dist.all_gather_object(out, value)
    return out


def main_decides(decide, ctx: DistContext, errors: tuple[type[Exception], ...]):
    """Rank 0 runs `decide()` and every rank gets its (string) result; when it raises one of `errors`, every
    rank raises that error type with rank 0's message (rank 0 its very exception), so all ranks stop alike."""
    result, error = None, None
    if ctx.is_main:
        try:
            result = decide()
        except errors as e:
            result, error = f"error:{type(e).__name__}:{e}", e
    result = broadcast_obj(result, ctx)
    if isinstance(result, str) and result.startswith("error:"):
        _, kind, message = result.split(":", 2)
        by_name = {cls.__name__: cls for cls in errors}
        raise error if error is not None else by_name.get(kind, ValueError)(message)
    return result
