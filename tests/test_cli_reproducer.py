"""Issue 20: the reproducer's path through `ldrld-mini` (teachers from $LDRLD_TEACHERS, the teacher's identity
across a resume, printed scripts equal to `--run`, placeholders, signals, eval mistakes)."""
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
                            "data.root=" + str(tmp_path / "nodata"))
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
