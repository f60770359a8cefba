"""The declared loss options (recipes/loss_options.py) match the loss classes, and the config layer reads them
without importing the losses (torch)."""
import inspect
import subprocess
import sys

import pytest

from ldrld_mini.losses import LOSSES
from ldrld_mini.recipes import METHODS, load_config
from ldrld_mini.recipes.loss_options import LOSS_OPTIONS


def constructor_options(cls) -> set[str]:
    params = list(inspect.signature(cls.__init__).parameters.values())[1:]
    return {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_the_table_lists_exactly_each_loss_class_options(name):
    """A loss that gains or loses an option fails here until recipes/loss_options.py says so."""
    assert set(LOSS_OPTIONS[name]) == constructor_options(LOSSES[name]), (
        f"recipes/loss_options.py: LOSS_OPTIONS[{name!r}] must list {sorted(constructor_options(LOSSES[name]))}")


def test_every_loss_and_method_has_an_entry():
    assert set(LOSS_OPTIONS) == set(LOSSES) and set(METHODS) <= set(LOSS_OPTIONS)


def test_overrides_are_checked_without_importing_torch():
    code = ("import sys; from ldrld_mini.recipes import load_config; "
            "cfg = load_config('cifar100', method='ldrld', overrides=['loss.impl=einops', 'loss.whole_group=false']); "
            "assert cfg.loss['impl'] == 'einops'; "
            "assert 'torch' not in sys.modules and 'ldrld_mini.losses' not in sys.modules, 'the config layer imported '"
            " + ', '.join(m for m in ('torch', 'ldrld_mini.losses') if m in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("method, key", [("kd", "kd_weight"), ("dkd", "warmup"), ("ldrld", "impl"),
                                         ("vanilla", "ce_weight")])
def test_a_declared_option_is_a_valid_override(method, key):
    value = {"impl": "einops"}.get(key, 1)
    teacher = None if method == "vanilla" else "resnet32x4"
    assert load_config("cifar100", teacher=teacher, method=method, overrides=[f"loss.{key}={value}"]).loss[key] == value


def test_an_undeclared_option_is_refused():
    with pytest.raises(ValueError, match="unknown override key 'loss.impl'"):
        load_config("cifar100", method="kd", overrides=["loss.impl=einops"])
