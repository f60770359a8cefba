"""The rounding switches CI uses for its extra passes (LDRLD_ONEDNN, LDRLD_THREADS, LDRLD_PERTURB;
ldrld_mini/rounding.py)."""
import subprocess
import sys

import pytest
import torch

from ldrld_mini.rounding import apply_environment, perturb_random, rounding_path, set_threads


@pytest.fixture(autouse=True)
def restore_torch():
    threads, mkldnn = torch.get_num_threads(), torch.backends.mkldnn.enabled
    yield
    torch.set_num_threads(threads)
    torch.backends.mkldnn.enabled = mkldnn


def test_set_threads_without_override(monkeypatch):
    monkeypatch.delenv("LDRLD_THREADS", raising=False)
    assert set_threads(1) == 1 and torch.get_num_threads() == 1
    assert set_threads(2) == 2


@pytest.mark.parametrize("value, asked, expected", [("3", 1, 3), ("1", 2, 1), ("other", 1, 2), ("other", 2, 1),
                                                    ("other", 4, 1)])
def test_set_threads_override(monkeypatch, value, asked, expected):
    monkeypatch.setenv("LDRLD_THREADS", value)
    assert set_threads(asked) == expected


@pytest.mark.parametrize("name, value", [("LDRLD_THREADS", "0"), ("LDRLD_THREADS", "two"), ("LDRLD_ONEDNN", "off"),
                                         ("LDRLD_PERTURB", "0"), ("LDRLD_PERTURB", "-1"), ("LDRLD_PERTURB", "1.5"),
                                         ("LDRLD_PERTURB", "yes")])
def test_bad_values_name_the_variable(monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match=f"{name}={value!r}"):
        apply_environment()


def test_onednn_switch_and_description(monkeypatch, perturb):
    monkeypatch.delenv("LDRLD_PERTURB", raising=False)  # with the perturb fixture: off, whatever the caller set
    monkeypatch.setenv("LDRLD_ONEDNN", "0")
    monkeypatch.setenv("LDRLD_THREADS", "1")
    apply_environment()
    assert not torch.backends.mkldnn.enabled and rounding_path() == "oneDNN off, 1 thread"


def test_the_package_applies_the_environment_at_import():
    code = "import torch, ldrld_mini; print(torch.backends.mkldnn.enabled, torch.get_num_threads())"
    env = {"LDRLD_ONEDNN": "0", "LDRLD_THREADS": "1", "PATH": ""}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "1"]
    plain = subprocess.run([sys.executable, "-c", "import sys, ldrld_mini; print('torch' in sys.modules)"],
                           env={"PATH": ""}, capture_output=True, text=True, check=True).stdout
    assert plain.strip() == "False"  # without the variables, importing the package does not import torch


# --- LDRLD_PERTURB: a one-ulp perturbation of every float drawn from torch's global random stream ---

@pytest.fixture
def perturb():
    """perturb_random, starting from off and restoring the state the environment gave this process."""
    from ldrld_mini.rounding import _perturb_state

    before = _perturb_state["seed"]
    perturb_random(None)
    yield perturb_random
    perturb_random(before)


def _draws(seed: int = 0):
    """A fixed set of draws from the global stream: every wrapped function and method, then an integer draw."""
    torch.manual_seed(seed)
    floats = [torch.randn(4000), torch.rand(4000), torch.randn_like(torch.empty(3000)),
              torch.rand_like(torch.empty(3000)), torch.normal(2.0, 3.0, (3000,)), torch.normal(torch.ones(3000), 2.0),
              torch.empty(3000).normal_(1.0, 2.0), torch.empty(3000).uniform_(8.0, 24.0),
              torch.randn(2000, dtype=torch.float64)]
    return floats, torch.randint(0, 1000, (100,))


def _float32_ulps(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """|a - b| in float32 ulps of b (for float64 tensors: the float32 ulp of the same value)."""
    b32 = b.float().abs()
    ulp = torch.nextafter(b32, torch.tensor(float("inf"))) - b32
    return (a.double() - b.double()).abs() / ulp.double()


def test_perturbation_is_about_one_ulp_and_leaves_the_stream_alone(perturb):
    plain, plain_ints = _draws()
    perturb(1)
    perturbed, perturbed_ints = _draws()
    for a, b in zip(perturbed, plain):
        assert a.dtype == b.dtype and a.shape == b.shape
        assert _float32_ulps(a, b).max() <= 2.0  # (1 + c 2^-23), |c| <= 1: at most 2 float32 ulps once rounded
        assert (a != b).double().mean() > 0.3  # most elements move (a small c rounds back to the same float)
    assert torch.equal(perturbed_ints, plain_ints)  # the global stream is untouched: later draws are the same


def test_different_seeds_perturb_differently_and_repeat_exactly(perturb):
    perturb(1)
    one, _ = _draws()
    perturb(2)
    two, _ = _draws()
    perturb(1)  # switching a seed on again restarts its generator: the same factors again
    again, _ = _draws()
    assert not any(torch.equal(a, b) for a, b in zip(one, two))
    assert all(torch.equal(a, b) for a, b in zip(one, again))


def test_off_is_identical_and_restores_torch(perturb):
    functions = torch.randn, torch.rand, torch.randn_like, torch.rand_like, torch.normal
    methods = torch.Tensor.normal_, torch.Tensor.uniform_
    plain, _ = _draws()
    perturb(3)
    assert torch.randn is not functions[0] and torch.Tensor.uniform_ is not methods[1]
    perturb(None)
    assert (torch.randn, torch.rand, torch.randn_like, torch.rand_like, torch.normal) == functions
    assert (torch.Tensor.normal_, torch.Tensor.uniform_) == methods
    again, _ = _draws()
    assert all(torch.equal(a, b) for a, b in zip(plain, again))


def test_explicit_generators_leaves_and_layers(perturb):
    data = torch.rand(1000, generator=torch.Generator().manual_seed(5))
    perturb(1)
    # a draw from an explicit generator is one of the package's data streams (synthetic images, flips): untouched
    assert torch.equal(torch.rand(1000, generator=torch.Generator().manual_seed(5)), data)
    x = torch.randn(10, requires_grad=True)  # still a leaf that trains
    assert x.requires_grad and x.is_leaf
    torch.manual_seed(0)
    layer = torch.nn.Linear(50, 40)  # nn.init draws through Tensor.uniform_
    perturb(None)
    torch.manual_seed(0)
    assert 0 < _float32_ulps(layer.weight.detach(), torch.nn.Linear(50, 40).weight.detach()).max() <= 2


def test_the_package_applies_the_perturbation_at_import(perturb):
    code = ("import torch, ldrld_mini; from ldrld_mini.rounding import rounding_path; torch.manual_seed(0); "
            "x = torch.randn(1000); print(rounding_path()); print(*x[:50].tolist())")
    out = subprocess.run([sys.executable, "-c", code], env={"LDRLD_PERTURB": "2", "PATH": ""}, capture_output=True,
                         text=True, check=True).stdout.splitlines()
    assert out[0].endswith(", random draws perturbed (seed 2)")
    perturb(2)  # the same seed in this process: the same factors as in a fresh one
    torch.manual_seed(0)
    assert [float(v) for v in out[1].split()] == torch.randn(1000)[:50].tolist()
