"""`ldrld_mini.profiling.environment`: what a benchmark table is recorded with (commit, device, torch, date)."""
from __future__ import annotations

import re
import subprocess

import torch

from ldrld_mini.profiling import environment, git_commit


def test_environment_names_commit_device_torch_and_date(monkeypatch):
    monkeypatch.setenv("LDRLD_COMMIT", "abc1234")
    env = environment(torch.device("cpu"))
    assert env["commit"] == "abc1234" and env["torch"] == torch.__version__
    assert re.fullmatch(r"CPU \(\d+ cores, \d+ torch threads, load average \d+\.\d at the end\)", env["device"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC", env["date"])


def test_git_commit_of_a_checkout_and_of_a_plain_folder(monkeypatch, tmp_path):
    monkeypatch.delenv("LDRLD_COMMIT", raising=False)
    assert git_commit(tmp_path).startswith("unknown (not a git checkout")
    run = lambda *cmd: subprocess.run(cmd, cwd=tmp_path, check=True, capture_output=True)  # noqa: E731
    run("git", "init", "-q")
    (tmp_path / "f.txt").write_text("1")
    run("git", "add", "f.txt")
    run("git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "one")
    head = run("git", "rev-parse", "--short", "HEAD").stdout.decode().strip()
    assert git_commit(tmp_path) == head
    (tmp_path / "f.txt").write_text("2")
    assert git_commit(tmp_path) == head + " (with uncommitted changes)"
