"""One writer per run folder (issue 12): a live holder in another process refuses a second start, a resume
and an overwrite (exit 2, naming its pid and host); a killed holder's lock is taken over."""
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ldrld_mini.cli import main
from ldrld_mini.runfolder import RunLock, RunLockedError, check_unlocked

ROOT = Path(__file__).parents[1]
TINY = ["data.options.num_classes=10", "data.options.train_per_class=4", "data.options.val_per_class=2",
        "data.batch_size=20", "schedule.milestones=[]", "train.device=cpu", "schedule.epochs=1"]
HOLDER = ("import sys; from ldrld_mini.runfolder import RunLock; RunLock(sys.argv[1]).acquire(); "
          "print('locked', flush=True); sys.stdin.read()")


@pytest.fixture
def holder(tmp_path):
    """start(run_dir) -> a live process (not this one) holding run_dir's lock until stdin closes."""
    procs = []

    def start(run_dir: Path) -> subprocess.Popen:
        run_dir.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(run_dir)], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, text=True, env=env)
        procs.append(proc)
        assert proc.stdout.readline().strip() == "locked"
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.stdin.close()
            proc.wait(timeout=30)


def cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def train(run_dir, *extra):
    return ["train", "--recipe", "synthetic", "--model", "resnet8", "--run-dir", run_dir, "--quiet", *TINY, *extra]


def test_a_second_writer_is_refused(capsys, tmp_path, holder):
    torch.set_num_threads(1)
    run_dir = tmp_path / "run"
    proc = holder(run_dir)
    for flags in ([], ["--resume"], ["--overwrite"]):
        code, _, err = cli(capsys, *train(run_dir, *flags))
        assert code == 2 and "Traceback" not in err, err
        assert "is in use by another run" in err and f"pid {proc.pid}" in err and socket.gethostname() in err
    assert sorted(p.name for p in run_dir.iterdir()) == [".lock"]  # nothing written by the refused runs


def test_resume_of_a_live_run_is_refused(capsys, tmp_path, holder):
    torch.set_num_threads(1)
    run_dir = tmp_path / "run"
    assert cli(capsys, *train(run_dir))[0] == 0
    (run_dir / "summary.json").unlink()  # unfinished, as while it runs
    before = {p.name: p.read_bytes() for p in run_dir.iterdir() if p.name != ".lock"}
    proc = holder(run_dir)
    code, _, err = cli(capsys, *train(run_dir, "--resume"))
    assert code == 2 and f"pid {proc.pid}" in err
    with pytest.raises(RunLockedError, match="in use"):  # the Python API refuses too
        from ldrld_mini.recipes import load_config
        from ldrld_mini.train import fit
        fit(load_config("synthetic", student="resnet8", method="vanilla", overrides=TINY), run_dir, resume=True,
            quiet=True)
    assert {p.name: p.read_bytes() for p in run_dir.iterdir() if p.name != ".lock"} == before


def test_a_killed_holders_lock_is_taken_over(capsys, tmp_path, holder):
    torch.set_num_threads(1)
    run_dir = tmp_path / "run"
    proc = holder(run_dir)
    with pytest.raises(RunLockedError):
        check_unlocked(run_dir)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert str(proc.pid) in (run_dir / ".lock").read_text()  # its note is still there, its lock is not
    check_unlocked(run_dir)
    code, _, err = cli(capsys, *train(run_dir))
    assert code == 0, err
    assert (run_dir / "summary.json").exists() and (run_dir / ".lock").read_text() == ""  # released


def test_the_lock_is_released_on_any_exit(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    with pytest.raises(ZeroDivisionError):
        with RunLock(run_dir):
            with pytest.raises(RunLockedError, match=f"pid {os.getpid()}"):
                RunLock(run_dir).acquire()  # a second open of the file: refused as well
            1 / 0
    RunLock(run_dir).acquire().release()
