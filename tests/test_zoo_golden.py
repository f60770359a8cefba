"""The CRD CIFAR zoo against an independent oracle: RepDistiller's own models, run (fixtures/crd_zoo.json).

For each of the 26 architectures of RepDistiller's `model_dict` (+ its resnetv2 ResNet18/34/101/152) at 100
classes, the fixture holds what the public code produced (its `meta` names the commit):
- every state-dict key in order with its shape (what a CRD teacher checkpoint holds, so a renamed key or
  a reordered block is caught even where `load_checkpoint` would only see it on a real teacher file);
- the parameter count;
- float64 eval-mode logits of the model built right after `torch.manual_seed(123)` (default init, float32,
  then `.double()`) on a fixed float64 input: a module that creates its parameters in the zoo's order gets
  the zoo's initial weights, so a changed forward (a missing ReLU, a swapped shortcut) moves the logits
  far beyond float64 round-off (~1e-14 relative here) while a change of CPU, threads or oneDNN cannot.
"""
from __future__ import annotations

import functools
import json
from pathlib import Path

import pytest
import torch

from ldrld_mini.models import build_model
from ldrld_mini.rounding import set_threads

GOLDEN = json.loads((Path(__file__).parent / "fixtures" / "crd_zoo.json").read_text())["models"]
ZOO = list(GOLDEN)


def golden_input() -> torch.Tensor:
    """The fixture's input: (2, 3, 32, 32) float64 from its own generator."""
    return torch.randn(2, 3, 32, 32, dtype=torch.float64, generator=torch.Generator().manual_seed(7))


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """Batch-2 forwards gain little from threads on a shared CPU; LDRLD_THREADS overrides the count."""
    before = torch.get_num_threads()
    set_threads(1)
    yield
    torch.set_num_threads(before)


@functools.cache
def meta_model(name: str):
    with torch.device("meta"):
        return build_model(name, num_classes=100)


def test_the_fixture_covers_the_whole_zoo():
    assert len(ZOO) == 26
    assert {"resnet8", "resnet110", "resnet8x4", "resnet32x4", "wrn_16_1", "wrn_40_2", "vgg8", "vgg19",
            "MobileNetV2", "ShuffleV1", "ShuffleV2", "ResNet18", "ResNet50", "ResNet152"} <= set(ZOO)


@pytest.mark.parametrize("name", ZOO)
def test_state_dict_keys_order_and_shapes_equal_the_zoo(name):
    ours = [[key, list(t.shape)] for key, t in meta_model(name).state_dict().items()]
    golden = GOLDEN[name]["keys"]
    assert len(ours) == len(golden)
    for i, (a, b) in enumerate(zip(ours, golden)):
        assert a == b, f"{name}: state-dict entry {i} is {a}, the zoo has {b}"


@pytest.mark.parametrize("name", ZOO)
def test_parameter_count_equals_the_zoo(name):
    assert sum(p.numel() for p in meta_model(name).parameters()) == GOLDEN[name]["params"]


@pytest.mark.parametrize("name", ZOO)
def test_seeded_float64_logits_equal_the_zoo(name):
    torch.manual_seed(123)
    model = build_model(name, num_classes=100).double().eval()
    with torch.no_grad():
        logits = model(golden_input())  # (2, 100)
    expected = torch.tensor(GOLDEN[name]["logits"], dtype=torch.float64)
    assert logits.shape == expected.shape == (2, 100)
    # rtol: float64 round-off of a few thousand-term sums is ~1e-14; atol guards logits that are almost 0
    torch.testing.assert_close(logits, expected, rtol=1e-9, atol=1e-12 * float(expected.abs().max()))
