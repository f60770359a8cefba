"""Fixtures shared by several test files."""
import json

import pytest
import torch
import yaml

from ldrld_mini.models import build_model
from ldrld_mini.recipes import load_config
from ldrld_mini.rounding import set_threads


@pytest.fixture
def trained_resnet8():
    """resnet8 (10 classes) with random BatchNorm statistics, in eval mode."""
    torch.manual_seed(0)
    model = build_model("resnet8", num_classes=10)
    with torch.no_grad():
        for name, buffer in model.named_buffers():
            if "running" in name:
                buffer.uniform_(0.5, 1.5)
    return model.eval()


@pytest.fixture(scope="module")
def one_thread():
    """Batch-16 steps of tiny nets gain nothing from intra-op threads; one thread also keeps the timings
    steady when the CPU is shared (OpenMP spin-waits under contention cost many times the work)."""
    before = torch.get_num_threads()
    set_threads(1)  # LDRLD_THREADS overrides (ldrld_mini.rounding)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def old_run_folder(tmp_path):
    """`write(rows)`: a cifar100 ldrld run folder (2 epochs) holding config.yaml and these metrics.jsonl rows,
    as an older version wrote them."""
    def write(rows, name="old"):
        cfg = load_config("cifar100", teacher="resnet32x4", student="resnet8x4", method="ldrld",
                          overrides=["schedule.epochs=2"])
        run_dir = tmp_path / name
        run_dir.mkdir()
        (run_dir / "config.yaml").write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
        (run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        return run_dir
    return write
