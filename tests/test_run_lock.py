"""One writer per run folder (issue 12): a live holder in another process refuses a second start, a resume
and an overwrite (exit 2, naming its pid and host); a killed holder's lock is taken over. The lock is the
`filelock` library's (issue 21): no POSIX-only call in the package, and the lock's Windows behaviour, as far as
it can be honestly reproduced on Linux, is exercised too."""
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import filelock
import pytest
import torch

from ldrld_mini.cli import main
from ldrld_mini.runfolder import HOLDER_NAME, LOCK_NAME, RunLock, RunLockedError, check_unlocked

ROOT = Path(__file__).parents[1]
TINY = ["data.options.num_classes=10", "data.options.train_per_class=4", "data.options.val_per_class=2",
        "data.batch_size=20", "schedule.milestones=[]", "train.device=cpu", "schedule.epochs=1"]
HOLDER = ("import sys; from ldrld_mini.runfolder import RunLock; lock = RunLock(sys.argv[1]).acquire(); "
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
    assert sorted(p.name for p in run_dir.iterdir()) == [LOCK_NAME, HOLDER_NAME]  # nothing by the refused runs


def test_resume_of_a_live_run_is_refused(capsys, tmp_path, holder):
    torch.set_num_threads(1)
    run_dir = tmp_path / "run"
    assert cli(capsys, *train(run_dir))[0] == 0
    (run_dir / "summary.json").unlink()  # unfinished, as while it runs
    before = {p.name: p.read_bytes() for p in run_dir.iterdir() if p.name != LOCK_NAME}
    proc = holder(run_dir)
    code, _, err = cli(capsys, *train(run_dir, "--resume"))
    assert code == 2 and f"pid {proc.pid}" in err
    with pytest.raises(RunLockedError, match="in use"):  # the Python API refuses too
        from ldrld_mini.recipes import load_config
        from ldrld_mini.train import fit
        fit(load_config("synthetic", student="resnet8", method="vanilla", overrides=TINY), run_dir, resume=True,
            quiet=True)
    after = {p.name: p.read_bytes() for p in run_dir.iterdir() if p.name not in (LOCK_NAME, HOLDER_NAME)}
    assert after == before


def test_a_killed_holders_lock_is_taken_over(capsys, tmp_path, holder):
    torch.set_num_threads(1)
    run_dir = tmp_path / "run"
    proc = holder(run_dir)
    with pytest.raises(RunLockedError):
        check_unlocked(run_dir)
    proc.kill()  # SIGKILL on POSIX, TerminateProcess on Windows: no clean-up runs
    proc.wait(timeout=30)
    assert str(proc.pid) in (run_dir / HOLDER_NAME).read_text()  # its note is still there, its lock is not
    check_unlocked(run_dir)
    code, _, err = cli(capsys, *train(run_dir))
    assert code == 0, err
    assert (run_dir / "summary.json").exists() and not (run_dir / HOLDER_NAME).exists()  # released


def test_the_lock_is_released_on_any_exit(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    with pytest.raises(ZeroDivisionError):
        with RunLock(run_dir):
            with pytest.raises(RunLockedError, match=f"pid {os.getpid()}"):
                RunLock(run_dir).acquire()  # a second open of the file: refused as well
            1 / 0
    RunLock(run_dir).acquire().release()


POSIX_ONLY = re.compile(r"\bimport (fcntl|pwd|grp|termios|resource|pty|tty)\b|\bfrom (fcntl|pwd|grp|termios|resource) "
                        r"import|\bos\.(pread|pwrite|getuid|geteuid|getgid|fork|killpg|setsid|getpgid|statvfs)\b"
                        r"|\bsignal\.(SIGKILL|SIGHUP|SIGUSR1|SIGUSR2|SIGALRM|SIGCHLD|alarm|setitimer)\b")


def test_the_package_makes_no_posix_only_call():
    found = [f"{path.relative_to(ROOT)}:{n}: {line.strip()}" for path in sorted((ROOT / "ldrld_mini").rglob("*.py"))
             for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if POSIX_ONLY.search(line)]
    assert found == []


def test_a_run_without_fcntl(tmp_path):
    """Where `fcntl` cannot be imported (as on Windows), a training run still locks its folder (filelock then
    falls back to its portable soft lock) and a second writer is refused; nothing in the package needs it."""
    script = ("import sys, warnings; sys.modules['fcntl'] = None; warnings.simplefilter('ignore')\n"
              "from ldrld_mini.cli import main\n"
              "from ldrld_mini.runfolder import RunLock, RunLockedError\n"
              "run = sys.argv[1]\n"
              "assert main(sys.argv[2:]) == 0\n"
              "with RunLock(run) as lock:\n"
              "    print('backend:', type(lock._lock).__name__)\n"
              "    try:\n"
              "        RunLock(run).acquire()\n"
              "    except RunLockedError as err:\n"
              "        print('refused:', err)\n"
              "print('fcntl' in sys.modules and sys.modules['fcntl'] is None)\n")
    run_dir = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", script, str(run_dir), *train(run_dir)], env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert f"refused: run folder {str(run_dir)!r} is in use by another run: pid " in proc.stdout
    assert "backend: SoftFileLock" in proc.stdout and proc.stdout.strip().endswith("True")
    assert (run_dir / "summary.json").exists()


class WindowsLikeLock(filelock.UnixFileLock):
    """filelock's Windows class calls kernel32 and cannot run here. This stand-in has its observable
    differences from the Linux class: the lock belongs to one open handle (LockFileEx; flock is per open file
    too), and the lock file is deleted on release."""

    def _release(self) -> None:
        super()._release()
        Path(self.lock_file).unlink(missing_ok=True)


def test_the_lock_as_windows_takes_it(monkeypatch, tmp_path):
    monkeypatch.setattr(filelock, "FileLock", WindowsLikeLock)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    with RunLock(run_dir):
        assert (run_dir / LOCK_NAME).exists() and f'"pid": {os.getpid()}' in (run_dir / HOLDER_NAME).read_text()
        with pytest.raises(RunLockedError, match=f"in use by another run: pid {os.getpid()} on host"):
            RunLock(run_dir).acquire()
        with pytest.raises(RunLockedError):
            check_unlocked(run_dir)
    assert sorted(p.name for p in run_dir.iterdir()) == []  # lock file and note both gone
    check_unlocked(run_dir)  # no lock file: nothing to check, nothing created
    assert sorted(p.name for p in run_dir.iterdir()) == []
    RunLock(run_dir).acquire().release()
