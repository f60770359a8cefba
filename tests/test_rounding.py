"""The rounding switches CI uses for its second pass (LDRLD_ONEDNN, LDRLD_THREADS; ldrld_mini/rounding.py)."""
import subprocess
import sys

import pytest
import torch

from ldrld_mini.rounding import apply_environment, rounding_path, set_threads


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


@pytest.mark.parametrize("name, value", [("LDRLD_THREADS", "0"), ("LDRLD_THREADS", "two"), ("LDRLD_ONEDNN", "off")])
def test_bad_values_name_the_variable(monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match=f"{name}={value!r}"):
        apply_environment()


def test_onednn_switch_and_description(monkeypatch):
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
