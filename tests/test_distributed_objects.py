"""The DDP object helpers of `ldrld_mini.train.distributed` on 2 gloo processes (CPU): `broadcast_obj` gives rank
0's value to every rank, `gather_obj` every rank's value to every rank, and `main_decides` gives rank 0's
decision to every rank, or makes every rank raise rank 0's error (same type, same message), so no rank goes
on alone into a collective the others never reach."""
import os

import torch.distributed as dist
import torch.multiprocessing as mp

from ldrld_mini.train.distributed import DistContext, broadcast_obj, gather_obj, main_decides

from test_distributed import _free_port

ERRORS = (FileExistsError, ValueError)


def _worker(rank, world, port, out_dir):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    ctx = DistContext(rank=rank, local_rank=rank, world_size=world, distributed=True)
    seen = {"broadcast": broadcast_obj({"rank": rank}, ctx), "gather": gather_obj(rank * 10, ctx),
            "decided": main_decides(lambda: f"decided on rank {rank}", ctx, ERRORS)}

    def refuse():
        raise FileExistsError(f"run folder taken (seen by rank {rank})")

    try:
        main_decides(refuse, ctx, ERRORS)
        seen["error"] = None
    except ERRORS as err:
        seen["error"] = (type(err).__name__, str(err))
    dist.destroy_process_group()
    with open(os.path.join(out_dir, f"rank{rank}.txt"), "w") as f:
        f.write(repr(seen))


def test_objects_and_errors_reach_every_rank(tmp_path):
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    ranks = [eval((tmp_path / f"rank{r}.txt").read_text()) for r in range(2)]  # noqa: S307 - our own repr
    for seen in ranks:
        assert seen["broadcast"] == {"rank": 0} and seen["gather"] == [0, 10]
        assert seen["decided"] == "decided on rank 0"
        assert seen["error"] == ("FileExistsError", "run folder taken (seen by rank 0)")


def test_single_process_is_the_identity():
    ctx = DistContext()
    assert broadcast_obj(3, ctx) == 3 and gather_obj(3, ctx) == [3]
    assert main_decides(lambda: "fresh", ctx, ERRORS) == "fresh"
