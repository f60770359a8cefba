"""The zoo in train mode (issue 18 point 1): the golden test (test_zoo_golden.py) compares keys, shapes and
eval-mode logits, which a BatchNorm momentum or eps, or a dropout rate, does not change. Here every model runs
one train-mode forward on the golden input, and every BatchNorm layer's output and updated running statistics
are checked against a hand computation with the constants of the public definitions (RepDistiller's zoo builds
every BatchNorm with PyTorch's defaults, momentum 0.1 and eps 1e-5, and its WRNs with dropRate 0).
"""
from __future__ import annotations

import pytest
import torch
from torch import nn

from ldrld_mini.models import build_model
from ldrld_mini.models.cifar.wrn import WideResNet

from test_zoo_golden import ZOO, _one_thread, golden_input  # noqa: F401 (the fixture is autouse)

MOMENTUM, EPS = 0.1, 1e-5  # the public definitions' BatchNorm constants (PyTorch's defaults)
# ResNet34/101/152 repeat ResNet18's and ResNet50's blocks (only the counts differ) and take most of the time
TRAIN_ZOO = [name for name in ZOO if name not in ("ResNet34", "ResNet101", "ResNet152")]


def _check_batchnorm(model: nn.Module):
    """Hooks on every BatchNorm: its train-mode output and its running-statistic update, by hand."""
    problems, seen = [], []

    def hook(module, inputs, output):
        x = inputs[0]
        dims = [0] + list(range(2, x.dim()))
        mean, var = x.mean(dims), x.var(dims, unbiased=False)
        n = x.numel() // x.shape[1]
        shape = [1, -1] + [1] * (x.dim() - 2)
        expected = (x - mean.view(shape)) / torch.sqrt(var.view(shape) + EPS) * module.weight.view(shape) \
            + module.bias.view(shape)
        name = names[module]
        if not torch.allclose(output, expected, rtol=1e-9, atol=1e-9):
            problems.append(f"{name}: train-mode output")
        if not torch.allclose(module.running_mean, MOMENTUM * mean, rtol=1e-9, atol=1e-12):
            problems.append(f"{name}: running_mean")
        if not torch.allclose(module.running_var, (1 - MOMENTUM) + MOMENTUM * var * n / (n - 1), rtol=1e-9,
                              atol=1e-12):
            problems.append(f"{name}: running_var")
        if int(module.num_batches_tracked) != 1:
            problems.append(f"{name}: num_batches_tracked")
        seen.append(name)

    names = {m: n for n, m in model.named_modules()}
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.register_forward_hook(hook)
    return problems, seen


@pytest.mark.parametrize("name", TRAIN_ZOO)
def test_train_mode_forward_updates_batchnorm_as_the_public_definition(name):
    torch.manual_seed(123)
    model = build_model(name, num_classes=100).double().train()
    problems, seen = _check_batchnorm(model)
    x = golden_input()
    out = model(x)
    assert out.shape == (2, 100) and out.dtype == torch.float64
    assert seen, "no BatchNorm ran"
    assert not problems, problems
    # no dropout (rate 0 in the public zoo): a second train-mode forward of the same batch gives the same logits
    assert torch.equal(model(x), out)
    with torch.no_grad():
        assert not torch.allclose(model.eval()(x), out)  # eval mode uses the running statistics


def test_wrn_dropout_only_in_train_mode():
    torch.manual_seed(0)
    model = WideResNet(16, 1, num_classes=10, drop_rate=0.3).double()
    x = golden_input()
    model.train()
    a, b = model(x), model(x)
    assert not torch.equal(a, b)  # dropout draws masks in training
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(x), model(x))
    rates = {m.drop_rate for m in model.modules() if hasattr(m, "drop_rate") and m is not model}
    assert rates == {0.3}  # the rate reaches every block
