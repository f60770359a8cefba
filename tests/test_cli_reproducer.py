"""Issue 20: the reproducer's path through `ldrld-mini` (teachers from $LDRLD_TEACHERS, the teacher's identity
across a resume, printed scripts equal to `--run`, placeholders, signals, eval mistakes)."""
import re
import sys
from pathlib import Path

import pytest

from ldrld_mini.cli import main

sys.path.insert(0, str(Path(__file__).parent))
from test_cli import TINY_SYNTHETIC, run_main  # noqa: E402


def _fake_teachers(root: Path) -> None:
    """Stand-in files where `teachers` expects every published CIFAR-100 teacher (presence checks only)."""
    from ldrld_mini.models import TEACHERS, teacher_path

    for name in TEACHERS:
        path = teacher_path(name, root)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"not a checkpoint")


def test_ldrld_teachers_is_honoured_by_every_cli_check(capsys, tmp_path, monkeypatch):
    """Point 1: `teachers`, `distill`'s pre-check, `reproduce`'s presence marks and `--run` all look in
    $LDRLD_TEACHERS."""
    monkeypatch.chdir(tmp_path)  # no data/teachers/cifar100 here
    _fake_teachers(tmp_path / "T")
    monkeypatch.setenv("LDRLD_TEACHERS", str(tmp_path / "T"))
    code, out, _ = run_main(capsys, "teachers")
    assert code == 0 and "missing" not in out.lower()
    code, out, err = run_main(capsys, "reproduce", "cifar100", "--seeds", "0", "--methods", "kd")
    assert code == 0 and "MISSING" not in out, out
    code, _, err = run_main(capsys, "distill", "--recipe", "cifar100", "--teacher", "resnet56", "--student",
                            "resnet20", "--method", "kd", "--run-dir", str(tmp_path / "run"))
    assert code == 2 and "teacher checkpoint" not in err, err  # past the teacher check (the data is missing)
    code, _, err = run_main(capsys, "reproduce", "cifar100", "--seeds", "0", "--methods", "kd", "--run",
                            "--pairs", "resnet56:resnet20", "data.root=" + str(tmp_path / "nodata"))
    assert "teacher checkpoints missing" not in err, err


def test_resume_refuses_another_teacher_and_accepts_a_moved_copy(capsys, tmp_path):
    """Point 2: the teacher's content is recorded when a distillation starts; a resume with another teacher
    file exits 2 naming both paths; the same bytes at another path resume; an old folder without the record
    resumes with a note."""
    teachers = []
    for seed in (0, 1):
        folder = tmp_path / f"teacher{seed}"
        code, _, err = run_main(capsys, "train", "--recipe", "synthetic", "--model", "resnet8", "--seed", str(seed),
                                "--run-dir", str(folder), "--quiet", *TINY_SYNTHETIC)
        assert code == 0, err
        teachers.append(folder / "best.pt")
    student = tmp_path / "student"

    def distill(teacher, *extra):
        return run_main(capsys, "distill", "--recipe", "synthetic", "--teacher", "resnet8", "--student", "resnet8",
                        "--method", "kd", "--run-dir", str(student), f"model.teacher_checkpoint={teacher}",
                        *TINY_SYNTHETIC, *extra)

    code, _, err = distill(teachers[0], "--quiet")
    assert code == 0, err
    assert (student / "teacher.json").exists()
    (student / "summary.json").unlink()  # as if interrupted after its last checkpoint
    code, _, err = distill(teachers[1], "--resume")
    assert code == 2 and "teacher differs" in err and str(teachers[0]) in err and str(teachers[1]) in err, err
    moved = tmp_path / "moved.pt"
    moved.write_bytes(teachers[0].read_bytes())
    code, _, err = distill(moved, "--resume")
    assert code == 0, err
    (student / "summary.json").unlink()
    (student / "teacher.json").unlink()  # a run folder from before the record
    code, out, err = distill(teachers[1], "--resume")
    assert code == 0 and "no teacher.json" in out + err, out + err


def _printed_and_run(capsys, monkeypatch, argv):
    """(the commands `reproduce argv` prints, the argv lists `reproduce argv --run` would start)."""
    import ldrld_mini.train.multirun as multirun

    code, out, err = run_main(capsys, "reproduce", *argv)
    assert code == 0, err
    printed = [line for line in out.splitlines() if line and not line.startswith("#")]
    teacher_dirs = re.findall(r"^# teacher \S+: trained first into (\S+)$", out, re.M)
    started = []

    def fake_run_many(specs, *, command, **_):
        started.extend(command(spec) for spec in specs)
        return [multirun.RunOutcome(spec, "done") for spec in specs]

    monkeypatch.setattr(multirun, "run_many", fake_run_many)
    if "--nproc" not in argv:
        code, _, err = run_main(capsys, "reproduce", *argv, "--run")
        assert code == 0, err
    return printed, started, teacher_dirs


@pytest.mark.parametrize("argv", [
    ["synthetic", "--seeds", "0", "--methods", "ldrld", "loss.alpha=8"],
    ["synthetic", "--seeds", "3", "1", "--methods", "kd", "vanilla", "--runs-dir", "elsewhere",
     "data.root=somewhere", "optim.lr=0.01"],
    ["synthetic", "--seeds", "0", "--methods", "dkd", "--fast", "loss.beta=2", "schedule.epochs=2"],
    ["synthetic", "--seeds", "0", "--methods", "ldrld", "--nproc", "2", "loss.k=3"],
    ["cifar100", "--ablation", "--seeds", "0", "1", "data.root=d", "--fast"],
])
def test_printed_script_is_what_run_runs_and_carries_every_option(capsys, monkeypatch, tmp_path, argv):
    """Point 3 and issue 18: every option of `reproduce` reaches every printed command; `--run` starts exactly
    those commands; each printed command parses as the CLI would run it (a teacher's `train` line carries no
    loss option) and carries --resume, so a pasted script can be run again."""
    import shlex

    from ldrld_mini.models import TEACHERS, teacher_path

    monkeypatch.chdir(tmp_path)
    for name in TEACHERS:  # presence only: --run's pre-check for the cifar100 ablation
        teacher_path(name).parent.mkdir(parents=True, exist_ok=True)
        teacher_path(name).write_bytes(b"x")
    printed, started, teacher_dirs = _printed_and_run(capsys, monkeypatch, argv)
    assert printed
    if "--nproc" not in argv:
        assert [["ldrld-mini", *a[3:]] for a in started] == [shlex.split(line) for line in printed]
        assert all(a[1:3] == ["-m", "ldrld_mini"] for a in started)
    seeds = argv[argv.index("--seeds") + 1:]
    seeds = seeds[:next((i for i, w in enumerate(seeds) if not w.isdigit()), len(seeds))]
    overrides = [w for w in argv if "=" in w]
    for line in printed:
        words = shlex.split(line)
        if "--nproc" in argv:
            assert words[:3] == ["torchrun", "--nproc_per_node=2", "-m"]
            words = ["ldrld-mini", *words[4:]]
        teacher_line = "--run-dir" in words and words[words.index("--run-dir") + 1] in teacher_dirs
        assert "--resume" in words and (teacher_line or words[words.index("--seed") + 1] in seeds)
        assert ("--fast" in words) == ("--fast" in argv)
        for o in overrides:
            assert o in words or (teacher_line and o.startswith("loss.")), (o, line)
        if "--runs-dir" in argv and not teacher_line:  # teachers go where the recipe's students look for them
            assert "--run-dir" in words and words[words.index("--run-dir") + 1].startswith("elsewhere/")
        code, _, err = run_main(capsys, *words[1:], "--print-config")  # what pasting it would run
        assert code == 0, (line, err)


def test_placeholders_are_filled_per_run_and_an_unknown_one_is_named(capsys, monkeypatch, tmp_path):
    """Point 4: `{teacher}`, `{student}`, `{method}`, `{seed}` in an override are filled in for each run."""
    monkeypatch.chdir(tmp_path)
    code, out, err = run_main(capsys, "reproduce", "cifar100", "--seeds", "0", "1", "--methods", "kd", "ldrld",
                              "model.teacher_checkpoint=ck/{teacher}.pth", "name={method}-{student}-s{seed}")
    assert code == 0, err
    commands = [line for line in out.splitlines() if line and not line.startswith("#")]
    assert "{" not in "\n".join(commands)
    line = next(c for c in commands if "--teacher resnet32x4" in c and "--method ldrld" in c and "--seed 1" in c)
    assert "model.teacher_checkpoint=ck/resnet32x4.pth" in line and "name=ldrld-resnet8x4-s1" in line
    assert "# teacher resnet56: ck/resnet56.pth (MISSING)" in out
    code, _, err = run_main(capsys, "reproduce", "cifar100", "--methods", "kd", "data.root=x/{pair}")
    assert code == 2 and "unknown placeholder {pair}" in err and "{teacher}" in err and "loss option" not in err


def test_sigterm_stops_reproduce_run_and_its_worker_and_the_run_resumes(tmp_path):
    """Point 5: SIGTERM to `reproduce --run` (what `timeout` and SLURM send) stops its worker too: the worker's
    process is gone, the run folder's lock is free, and running the command again resumes the run."""
    import json
    import os
    import signal
    import subprocess
    import time

    from ldrld_mini.runfolder import HOLDER_NAME, check_unlocked

    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1]), "OMP_NUM_THREADS": "1"}
    slow = [o for o in TINY_SYNTHETIC if not o.startswith("schedule.epochs")] + ["schedule.epochs=200"]
    argv = [sys.executable, "-m", "ldrld_mini", "reproduce", "synthetic", "--methods", "vanilla", "--seeds", "0",
            "--run", *slow]
    parent = subprocess.Popen(argv, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    run_dir = tmp_path / "runs/synthetic/resnet8/vanilla/seed0"
    deadline = time.monotonic() + 240
    while not ((run_dir / "last.pt").exists() and (run_dir / HOLDER_NAME).exists()):
        assert parent.poll() is None and time.monotonic() < deadline, parent.communicate()
        time.sleep(0.2)
    worker = json.loads((run_dir / HOLDER_NAME).read_text())["pid"]
    parent.send_signal(signal.SIGTERM)
    _, err = parent.communicate(timeout=120)
    assert parent.returncode == 143 and "terminated" in err and "run the same command again" in err, err
    with pytest.raises(ProcessLookupError):  # the worker is gone too
        os.kill(worker, 0)
    check_unlocked(run_dir)  # the lock is free
    assert not (run_dir / "summary.json").exists()
    # epoch 1 (in last.pt, which existed before the signal) keeps its line: a retrained epoch has another epoch_time
    before = (run_dir / "metrics.jsonl").read_text().splitlines()[:1]
    resumed = subprocess.Popen(argv, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    deadline = time.monotonic() + 240
    while len((run_dir / "metrics.jsonl").read_text().splitlines()) <= len(before):
        assert resumed.poll() is None and time.monotonic() < deadline, resumed.communicate()
        time.sleep(0.2)
    resumed.send_signal(signal.SIGTERM)
    resumed.communicate(timeout=120)
    assert before and (run_dir / "metrics.jsonl").read_text().splitlines()[:len(before)] == before  # continued


def test_eval_with_fewer_classes_than_the_data_is_one_message(capsys, tmp_path):
    """Point 6: `eval --num-classes 10` on a dataset with more classes: one message, exit 2 (was an IndexError)."""
    import torch

    from ldrld_mini.models import build_model

    checkpoint = tmp_path / "ten.pth"
    torch.save(build_model("resnet8", num_classes=10, dataset="synthetic").state_dict(), checkpoint)
    code, _, err = run_main(capsys, "eval", "--model", "resnet8", "--checkpoint", str(checkpoint), "--dataset",
                            "synthetic", "--num-classes", "10", "--data-option", "num_classes=20",
                            "--data-option", "train_per_class=2", "--data-option", "val_per_class=2",
                            "--device", "cpu")
    assert code == 2 and "--num-classes 10" in err and "20 classes" in err and "Traceback" not in err, err


def test_help_and_messages_send_users_to_the_right_place(capsys, tmp_path):
    """Point 7: help examples and defaults name the places training uses; messages name the right option."""
    from ldrld_mini.models import teacher_path

    _, out, _ = run_main(capsys, "teachers", "--help")
    assert "LDRLD_TEACHERS" in out and "--root data/teachers --fetch" not in out
    _, out, _ = run_main(capsys, "eval", "--help")
    expected = str(teacher_path("resnet32x4", "data/teachers/cifar100"))
    assert expected in out.replace("\n", "")
    _, out, _ = run_main(capsys, "train", "--help")
    assert "<teacher>-<student>" not in out and "runs/<dataset>/<model>/vanilla/seed<seed>" in out
    (tmp_path / "a_file").write_text("")
    code, _, err = run_main(capsys, "results", str(tmp_path), "--output", str(tmp_path / "a_file" / "r.md"))
    assert code == 2 and "--output" in err and "--run-dir" not in err, err
    code, out, _ = run_main(capsys, "reproduce", "cifar100", "--seeds", "0", "--methods", "kd", "data.root=/d/c100")
    assert code == 0 and "prepare-data cifar100 --root /d/c100 --download" in out


def test_a_failure_after_the_run_folder_is_announced_leaves_no_lock_only_folder(capsys, tmp_path):
    """Point 8: a distillation whose teacher file is not a checkpoint fails after `run folder:` is printed;
    like the failures caught before, it leaves no folder behind (not one holding only `.lock`)."""
    bad = tmp_path / "teacher.pt"
    bad.write_bytes(b"not a checkpoint")
    run_dir = tmp_path / "runs" / "student"
    code, out, err = run_main(capsys, "distill", "--recipe", "synthetic", "--teacher", "resnet8", "--student",
                              "resnet8", "--method", "kd", "--run-dir", str(run_dir),
                              f"model.teacher_checkpoint={bad}", *TINY_SYNTHETIC)
    assert code == 2 and "run folder:" in out, err
    assert not run_dir.exists(), sorted(p.name for p in run_dir.iterdir())


def test_results_plot_one_axis_per_dataset_markers_distinct_styles_integer_ticks(capsys, tmp_path):
    """Point 9: single-epoch runs are visible (markers), 12 curves get 12 distinct styles, epoch ticks are
    integers, each dataset has its own axis, and the legend lies outside the data."""
    import matplotlib
    matplotlib.use("Agg")

    from ldrld_mini.results import group_curves, scan_runs
    from ldrld_mini.viz import plot_group_curves
    from test_results import write_run

    runs = tmp_path / "runs"
    for i in range(12):
        write_run(runs / f"c{i}", seed=0, curve=(40.0 + i,), overrides=[f"optim.lr={0.01 * (i + 1)}"])
    write_run(runs / "s", dataset="synthetic", teacher="resnet20", student="resnet8", curve=(10.0, 20.0, 30.0))
    fig = plot_group_curves(group_curves(scan_runs(runs).runs), title="t")
    assert len(fig.axes) == 2
    cifar = next(ax for ax in fig.axes if "cifar100" in ax.get_title())
    lines = cifar.get_lines()
    assert len(lines) == 12 and all(line.get_marker() not in (None, "None", "") for line in lines)
    assert len({(line.get_color(), line.get_linestyle()) for line in lines}) == 12
    fig.canvas.draw()
    assert all(float(t).is_integer() for t in cifar.get_xticks())
    renderer = fig.canvas.get_renderer()
    assert cifar.get_legend().get_window_extent(renderer).x0 >= cifar.get_window_extent(renderer).x1
    code, out, err = run_main(capsys, "results", str(runs), "--plot", str(tmp_path / "c.png"))
    assert code == 0 and (tmp_path / "c.png").stat().st_size > 0, err
    assert f"plot written to {tmp_path / 'c.png'}" in out


def test_frictions_pairs_filter_and_short_schedule_warning(capsys, tmp_path):
    """Frictions: `reproduce --pairs` keeps only the named pairs (an unknown one exits 2 listing the table's);
    a run shortened by `epochs` alone warns that the warm-up / milestones lie beyond it."""
    code, out, err = run_main(capsys, "reproduce", "cifar100", "--seeds", "0", "--methods", "kd", "ldrld",
                              "--pairs", "resnet32x4:resnet8x4")
    commands = [line for line in out.splitlines() if line and not line.startswith("#")]
    assert code == 0 and len(commands) == 2 and all("--teacher resnet32x4 --student resnet8x4" in c
                                                   for c in commands), out + err
    code, _, err = run_main(capsys, "reproduce", "cifar100", "--pairs", "resnet8:resnet8")
    assert code == 2 and "'resnet8:resnet8'" in err and "resnet32x4:resnet8x4" in err
    code, out, err = run_main(capsys, "train", "--recipe", "synthetic", "--model", "resnet8", "--run-dir",
                              str(tmp_path / "r"), "--quiet", *TINY_SYNTHETIC[:-2], "schedule.milestones=[3]",
                              "schedule.warmup_epochs=2", "train.device=cpu")
    assert code == 0, err
    assert "warm-up lasts 2 epochs but the run has 1" in err and "milestones [3] lie beyond epoch 1" in err


@pytest.mark.parametrize("wrong, meant", [("optim.lrr=0.1", "optim.lr"), ("train.epochs=3", "schedule.epochs")])
def test_unknown_key_says_did_you_mean(capsys, wrong, meant):
    """Friction: an unknown override key names the closest valid key first."""
    code, _, err = run_main(capsys, "train", "--recipe", "synthetic", "--model", "resnet8", wrong)
    assert code == 2 and f"(did you mean {meant!r}?)" in err, err
