"""Run folders that never lie and never lose (issue 12): divergence, --overwrite and --resume guards, damaged
run files, corrupt vs untrusted checkpoints, full / read-only disks, clear errors where a traceback was.

Faults are made in temporary folders on tiny runs of the built-in synthetic data (a second or two each).
"""
import fractions
import errno
import json
import os
import shutil
import sys
from pathlib import Path

import pytest
import torch

from ldrld_mini import runfolder
from ldrld_mini.cli import main
from ldrld_mini.recipes import load_config
from ldrld_mini.train import fit

TINY = ["data.options.num_classes=10", "data.options.train_per_class=4", "data.options.val_per_class=2",
        "data.batch_size=20", "schedule.milestones=[]", "train.device=cpu"]


def cli(capsys, *argv):
    """(exit status, stdout, stderr) of `ldrld-mini argv...` in this process."""
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def train_argv(run_dir, *extra, epochs=2):
    return ["train", "--recipe", "synthetic", "--model", "resnet8", "--run-dir", run_dir, "--quiet", *TINY,
            f"schedule.epochs={epochs}", *extra]


def distill_argv(run_dir, teacher, *extra, teacher_name="resnet8"):
    return ["distill", "--recipe", "synthetic", "--teacher", teacher_name, "--student", "resnet8", "--method",
            "ldrld", "--run-dir", run_dir, "--quiet", f"model.teacher_checkpoint={teacher}", "loss.k=3", *TINY,
            "schedule.epochs=1", *extra]


def assert_clean_error(code, err, *needles):
    assert code == 2, err
    assert "Traceback" not in err and err.startswith("ldrld-mini"), err
    for needle in needles:
        assert needle in err, (needle, err)


def snapshot(folder: Path) -> dict:
    """{name: bytes} of every file in a folder (to prove nothing changed)."""
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file() and p.name != ".lock"}


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished 2-epoch vanilla resnet8 run folder (copy it before damaging it)."""
    run_dir = tmp_path_factory.mktemp("runs") / "finished"
    cfg = load_config("synthetic", student="resnet8", method="vanilla", overrides=[*TINY, "schedule.epochs=2"])
    fit(cfg, run_dir, quiet=True)
    return run_dir


@pytest.fixture
def copy_of(finished, tmp_path):
    """copy_of(unfinished=False) -> a fresh copy of the finished run (unfinished: without summary.json)."""
    def make(unfinished=False):
        target = tmp_path / "run"
        shutil.copytree(finished, target)
        if unfinished:
            (target / "summary.json").unlink()
        return target
    return make


# ---------------------------------------------------------------------------------------------------------
# 1. divergence

@pytest.mark.parametrize("fast", [False, True], ids=["standard", "fast"])
def test_diverged_run_stops_with_exit_2_and_is_marked_failed(capsys, tmp_path, fast):
    run_dir = tmp_path / "diverged"
    extra = ["optim.lr=1e6", "data.gpu_resident=true", f"train.fast={str(fast).lower()}"]
    code, _, err = cli(capsys, *train_argv(run_dir, *extra, epochs=4))
    assert_clean_error(code, err, "training diverged at epoch", "optim.lr=1e+06 too large", "failed.json",
                       "--overwrite")
    failed = json.loads((run_dir / "failed.json").read_text())
    assert failed["status"] == "diverged" and f"epoch {failed['epoch']}" in err
    assert not (run_dir / "summary.json").exists()
    if failed["epoch"] > 1:  # last.pt keeps the last finite epoch, best.pt too
        last = torch.load(run_dir / "last.pt", weights_only=True)
        assert last["epoch"] == failed["epoch"] - 1 == failed["last_checkpoint_epoch"]
        for name in ("last.pt", "best.pt"):
            state = torch.load(run_dir / name, weights_only=True)["model"]
            assert all(torch.isfinite(t).all() for t in state.values() if t.is_floating_point()), name
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == failed["epoch"] - 1  # the diverged epoch is not logged as a result
    code, _, err = cli(capsys, *train_argv(run_dir, *extra, "--resume", epochs=4))
    assert_clean_error(code, err, "holds a failed run (diverged at epoch", "--overwrite")


def test_non_finite_weights_count_as_divergence():
    from ldrld_mini.models import build_model
    from ldrld_mini.train.trainer import _divergence

    model = build_model("resnet8", num_classes=10)
    assert _divergence({"train_total": 1.0, "train_top1": 10.0}, model) is None
    assert "train_total=inf" in _divergence({"train_total": float("inf"), "train_ce": 1.0}, model)
    with torch.no_grad():
        model.fc.weight[0, 0] = float("nan")
    assert "weights" in _divergence({"train_total": 1.0}, model)


def test_infinite_temperature_is_refused_before_training(capsys, tmp_path, finished):
    code, _, err = cli(capsys, *distill_argv(tmp_path / "run", finished, "loss.temperature=inf"))
    assert_clean_error(code, err, "loss.temperature=inf must be a finite number")
    assert not (tmp_path / "run").exists()


# ---------------------------------------------------------------------------------------------------------
# 3. --overwrite validates before it deletes, and names what it deletes

@pytest.mark.parametrize("fault, needle", [
    ("k", "loss.k=50 is larger than the 10 classes"),
    ("data", "per_class=0"),
    ("teacher-file", "damaged, not untrusted"),
    ("teacher-family", "is an ImageNet model"),
])
def test_overwrite_checks_everything_before_deleting(capsys, copy_of, finished, tmp_path, fault, needle):
    run_dir = copy_of()
    before = snapshot(run_dir)
    broken = tmp_path / "broken.pth"
    broken.write_bytes(b"\x00not a checkpoint")
    extra = {"k": ["loss.k=50"], "data": ["data.options.train_per_class=0"], "teacher-file": [],
             "teacher-family": []}[fault]
    teacher = broken if fault == "teacher-file" else finished
    name = "resnet18" if fault == "teacher-family" else "resnet8"
    code, _, err = cli(capsys, *distill_argv(run_dir, teacher, "--overwrite", *extra, teacher_name=name))
    assert_clean_error(code, err, needle)
    assert snapshot(run_dir) == before  # nothing deleted


def test_overwrite_names_what_it_deletes(capsys, copy_of):
    run_dir = copy_of()
    code, out, err = cli(capsys, *[a for a in train_argv(run_dir, "--overwrite", epochs=1) if a != "--quiet"])
    assert code == 0, err
    assert "--overwrite: deleted config.yaml, metrics.jsonl, metrics.csv, last.pt, best.pt, summary.json" in out


# ---------------------------------------------------------------------------------------------------------
# 4. --resume without last.pt

def test_resume_without_last_pt_refuses_and_keeps_history(capsys, copy_of):
    run_dir = copy_of(unfinished=True)
    (run_dir / "last.pt").unlink()
    before = snapshot(run_dir)
    code, _, err = cli(capsys, *train_argv(run_dir, "--resume"))
    assert_clean_error(code, err, "last.pt is missing", "metrics.jsonl (2 epochs)", "best.pt", "Restore last.pt",
                       "--overwrite")
    code, _, err = cli(capsys, *train_argv(run_dir))  # a fresh start may not delete that history either
    assert_clean_error(code, err, "already holds an unfinished run")
    assert snapshot(run_dir) == before


# ---------------------------------------------------------------------------------------------------------
# 5. damaged run files

def _truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _folder(path):
    path.unlink()
    path.mkdir()


LAST_FAULTS = {
    "truncated": (_truncate, "truncated"),
    "empty": (lambda p: p.write_bytes(b""), "empty (0 bytes)"),
    "random": (lambda p: p.write_bytes(b"\x00" + os.urandom(4096)), "not a PyTorch checkpoint"),
    "folder": (_folder, "is a folder, not a file"),
    "not-a-run": (lambda p: torch.save({"w": torch.ones(2)}, p), "not a run checkpoint"),
}


@pytest.mark.parametrize("fault", list(LAST_FAULTS))
def test_damaged_last_pt_on_resume(capsys, copy_of, fault):
    run_dir = copy_of(unfinished=True)
    damage, needle = LAST_FAULTS[fault]
    damage(run_dir / "last.pt")
    code, _, err = cli(capsys, *train_argv(run_dir, "--resume"))
    assert_clean_error(code, err, str(run_dir / "last.pt"), needle)
    assert "weights_only" not in err and "trust" not in err
    if fault != "folder":
        assert "--overwrite" in err


def test_torn_last_metrics_line_is_skipped_by_resume(capsys, copy_of):
    run_dir = copy_of(unfinished=True)
    with (run_dir / "metrics.jsonl").open("a") as f:
        f.write('{"epoch": 3, "val_to')  # killed mid-write
    code, _, err = cli(capsys, *train_argv(run_dir, "--resume"))
    assert code == 0, err
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2] and (run_dir / "summary.json").exists()


def test_damaged_middle_metrics_line_names_the_file(capsys, copy_of):
    run_dir = copy_of(unfinished=True)
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    (run_dir / "metrics.jsonl").write_text('{"epoch": 1, "lr" 0.1}\n' + lines[1] + "\n")
    code, _, err = cli(capsys, *train_argv(run_dir, "--resume"))
    assert_clean_error(code, err, str(run_dir / "metrics.jsonl"), "line 1 is not valid JSON")


@pytest.mark.parametrize("fault, needle", [
    ("truncated", "is not valid JSON (truncated or damaged"),
    ("folder", "is a folder, not a file"),
])
def test_damaged_summary_on_resume(capsys, copy_of, fault, needle):
    run_dir = copy_of()
    (_truncate if fault == "truncated" else _folder)(run_dir / "summary.json")
    code, _, err = cli(capsys, *train_argv(run_dir, "--resume"))
    assert_clean_error(code, err, str(run_dir / "summary.json"), needle)


def test_truncated_summary_fix_works(capsys, copy_of):
    run_dir = copy_of()
    _truncate(run_dir / "summary.json")
    code, _, err = cli(capsys, *train_argv(run_dir, "--resume"))
    assert "delete it and resume" in err
    (run_dir / "summary.json").unlink()
    code, _, err = cli(capsys, *train_argv(run_dir, "--resume"))
    assert code == 0 and json.loads((run_dir / "summary.json").read_text())["epochs"] == 2


def test_damaged_config_on_resume(capsys, copy_of):
    run_dir = copy_of(unfinished=True)
    (run_dir / "config.yaml").write_text("dataset: synthetic\nmodel: {student: [unclosed\n")
    code, _, err = cli(capsys, *train_argv(run_dir, "--resume"))
    assert_clean_error(code, err, str(run_dir / "config.yaml"), "is not valid YAML")


def test_changed_config_hint_gives_flags(capsys, copy_of):
    run_dir = copy_of(unfinished=True)
    code, _, err = cli(capsys, *train_argv(run_dir, "--resume", "optim.lr=0.2"))
    assert_clean_error(code, err, "the config differs in ['optim.lr']", "--overwrite")
    assert "Config.load_yaml" not in err


# ---------------------------------------------------------------------------------------------------------
# 6. corrupt is not untrusted

def _saved_resnet8(path, extra=None):
    from ldrld_mini.models import build_model
    torch.manual_seed(0)
    torch.save({"model": build_model("resnet8", num_classes=10).state_dict(), "epoch": 1, **(extra or {})}, path)
    return path


EVAL = ["eval", "--model", "resnet8", "--dataset", "synthetic", "--device", "cpu", "--data-option", "num_classes=10",
        "--data-option", "train_per_class=1", "--data-option", "val_per_class=2"]


def test_corrupt_checkpoint_is_not_called_untrusted(capsys, tmp_path):
    path = tmp_path / "random.pth"
    path.write_bytes(b"\x13" + os.urandom(2048))
    code, _, err = cli(capsys, *EVAL, "--checkpoint", path)
    assert_clean_error(code, err, str(path), "not a PyTorch checkpoint", "damaged, not untrusted")
    assert "trust_pickle=True" not in err and "If you trust" not in err
    whole = _saved_resnet8(tmp_path / "whole.pth")
    _truncate(whole)
    code, _, err = cli(capsys, *EVAL, "--checkpoint", whole, "--trust-pickle")
    assert_clean_error(code, err, "truncated", "--trust-pickle cannot help")


def test_untrusted_checkpoint_gets_the_flag(capsys, tmp_path):
    path = _saved_resnet8(tmp_path / "object.pth", {"lr": fractions.Fraction(1, 20)})  # not on the allow-list
    code, _, err = cli(capsys, *EVAL, "--checkpoint", path)
    assert_clean_error(code, err, "fractions.Fraction", "pass --trust-pickle")
    code, out, err = cli(capsys, *EVAL, "--checkpoint", path, "--trust-pickle")
    assert code == 0, err


def test_distill_has_trust_pickle_for_teachers(capsys, tmp_path):
    teacher = _saved_resnet8(tmp_path / "teacher.pth", {"lr": fractions.Fraction(1, 20)})
    code, _, err = cli(capsys, *distill_argv(tmp_path / "run", teacher))
    assert_clean_error(code, err, "pass --trust-pickle")
    code, _, err = cli(capsys, *distill_argv(tmp_path / "run", teacher, "--trust-pickle", "--overwrite"))
    assert code == 0, err
    broken = tmp_path / "broken.pth"
    broken.write_bytes(b"\x00" * 100)
    code, _, err = cli(capsys, *distill_argv(tmp_path / "run2", broken, "--trust-pickle"))
    assert_clean_error(code, err, str(broken), "damaged, not untrusted")


# ---------------------------------------------------------------------------------------------------------
# 7. full and read-only disks

def _failing_write(monkeypatch, suffix, code, after=0):
    """Make the `after`+1-th write of a file ending in `suffix` write half its bytes, then fail with `code`."""
    real, calls = runfolder._write_file, []

    def write(f, data):
        if f.name.endswith(suffix):
            calls.append(f.name)
            if len(calls) > after:
                f.write(bytes(data)[: len(data) // 2])
                raise OSError(code, os.strerror(code))
        return real(f, data)

    monkeypatch.setattr(runfolder, "_write_file", write)


def test_full_disk_keeps_last_pt_and_removes_the_tmp(capsys, tmp_path, monkeypatch):
    run_dir = tmp_path / "run"
    _failing_write(monkeypatch, "last.pt.tmp", errno.ENOSPC, after=1)  # epoch 2's last.pt
    code, _, err = cli(capsys, *train_argv(run_dir, epochs=3))
    assert_clean_error(code, err, "no space left on device", str(run_dir / "last.pt"), "--resume")
    assert not list(run_dir.glob("*.tmp"))
    assert torch.load(run_dir / "last.pt", weights_only=True)["epoch"] == 1
    monkeypatch.undo()
    code, _, err = cli(capsys, *train_argv(run_dir, "--resume", epochs=3))  # no hand cleaning needed
    assert code == 0, err


def test_full_disk_while_logging_leaves_no_torn_line(tmp_path, monkeypatch):
    path = tmp_path / "metrics.jsonl"
    runfolder.append_line(path, '{"epoch": 1}')
    _failing_write(monkeypatch, "metrics.jsonl", errno.ENOSPC)
    with pytest.raises(runfolder.RunWriteError, match="no space left on device"):
        runfolder.append_line(path, '{"epoch": 2, "val_top1": 50.0}')
    assert path.read_text() == '{"epoch": 1}\n'


def test_read_only_folder(capsys, tmp_path, monkeypatch):
    _failing_write(monkeypatch, ".tmp", errno.EROFS)
    code, _, err = cli(capsys, *train_argv(tmp_path / "run"))
    assert_clean_error(code, err, "read-only file system", str(tmp_path / "run"))
    real_mkdir = Path.mkdir

    def read_only_mkdir(self, *a, **kw):
        if self.name == "ro":
            raise OSError(errno.EROFS, "Read-only file system", str(self))
        return real_mkdir(self, *a, **kw)

    monkeypatch.setattr(Path, "mkdir", read_only_mkdir)
    code, _, err = cli(capsys, *train_argv(tmp_path / "ro"))
    assert_clean_error(code, err, "read-only file system", str(tmp_path / "ro"))


# ---------------------------------------------------------------------------------------------------------
# 9. tracebacks where exit 2 is promised

def test_unknown_device(capsys, tmp_path):
    code, _, err = cli(capsys, *train_argv(tmp_path / "run", "--device", "tpu"))
    assert_clean_error(code, err, "--device 'tpu' is not a device")
    code, _, err = cli(capsys, *EVAL, "--checkpoint", "x.pth", "--device", "tpu")
    assert_clean_error(code, err, "--device 'tpu' is not a device")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
def test_cuda_without_gpu(capsys, tmp_path):
    code, _, err = cli(capsys, *train_argv(tmp_path / "run", "--device", "cuda"))
    assert_clean_error(code, err, "--device 'cuda': no CUDA GPU is visible", "--device cpu")
    assert not (tmp_path / "run").exists()


def test_tiny_imagenet_annotation_without_tabs(capsys, tmp_path):
    from ldrld_mini.data.standins import write_tiny_imagenet_standin

    write_tiny_imagenet_standin(tmp_path / "data", num_classes=2, train_per_class=1, val_per_class=1)
    annotations = tmp_path / "data" / "tiny-imagenet-200" / "val" / "val_annotations.txt"
    annotations.write_text(annotations.read_text().replace("\t", "    ", 5))
    code, out, _ = cli(capsys, "prepare-data", "tiny_imagenet", "--root", tmp_path / "data")
    assert code == 1 and "val_annotations.txt line 1" in out and "tab-separated" in out
    code, _, err = cli(capsys, "train", "--recipe", "tiny_imagenet", "--model", "resnet8", "--run-dir",
                       tmp_path / "run", "--data-root", tmp_path / "data", "--device", "cpu",
                       "data.options.strict=false")
    assert_clean_error(code, err, "val_annotations.txt line 1")


def test_corrupt_jpeg_mid_epoch(capsys, tmp_path):
    from ldrld_mini.data.standins import write_tiny_imagenet_standin

    write_tiny_imagenet_standin(tmp_path / "data", num_classes=2, train_per_class=2, val_per_class=1)
    jpeg = sorted((tmp_path / "data" / "tiny-imagenet-200" / "train").rglob("*.JPEG"))[-1]
    jpeg.write_bytes(jpeg.read_bytes()[:40])
    code, _, err = cli(capsys, "train", "--recipe", "tiny_imagenet", "--model", "resnet8", "--run-dir",
                       tmp_path / "run", "--data-root", tmp_path / "data", "--device", "cpu", "--quiet",
                       "data.options.strict=false", "data.num_workers=1", "data.batch_size=4", "schedule.epochs=1")
    assert_clean_error(code, err, str(jpeg), "cannot be read", "replace it")
    assert "Original Traceback" not in err


def test_imagenet_loader_names_a_corrupt_jpeg(tmp_path):
    from ldrld_mini.data.imagenet import load_imagenet
    from ldrld_mini.data.standins import write_imagenet_standin
    from ldrld_mini.data.tiny_imagenet import CorruptImageError

    write_imagenet_standin(tmp_path, num_classes=2, train_per_class=1, val_per_class=1)
    ds = load_imagenet(tmp_path, train=False)
    Path(ds.samples[0][0]).write_bytes(b"\xff\xd8\xff garbage")
    with pytest.raises(CorruptImageError, match=ds.samples[0][0]):
        ds[0]


def test_corrupt_cifar_pickle_without_md5(capsys, tmp_path):
    from ldrld_mini.data.standins import write_cifar100_standin

    write_cifar100_standin(tmp_path / "data", train_per_class=1, test_per_class=1)
    train = tmp_path / "data" / "cifar-100-python" / "train"
    _truncate(train)
    code, _, err = cli(capsys, "train", "--recipe", "cifar100", "--model", "resnet8", "--run-dir", tmp_path / "run",
                       "--data-root", tmp_path / "data", "--device", "cpu", "data.options.verify_md5=false")
    assert_clean_error(code, err, str(train), "cannot be read as a CIFAR-100 pickle", "prepare-data cifar100")


# ---------------------------------------------------------------------------------------------------------
# 10. the restricted CIFAR unpickler

class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("verify_md5", [False, True])
def test_crafted_cifar_pickle_runs_nothing(tmp_path, verify_md5):
    import pickle

    from ldrld_mini.data.cifar import CIFARFileError, SafeCIFAR100, UnverifiedCIFAR100, read_cifar_pickle
    from ldrld_mini.data.standins import write_cifar100_standin

    write_cifar100_standin(tmp_path, train_per_class=1, test_per_class=1)
    marker = tmp_path / "ran"
    train = tmp_path / "cifar-100-python" / "train"
    train.write_bytes(pickle.dumps({"data": _Payload(marker), "fine_labels": [0]}, protocol=2))
    with pytest.raises(CIFARFileError, match="posix.system is not allowed|nt.system is not allowed"):
        read_cifar_pickle(train)
    cls = UnverifiedCIFAR100 if not verify_md5 else type("Patched", (SafeCIFAR100,), {"_check_integrity":
                                                                                     lambda self: True})
    with pytest.raises(CIFARFileError, match="could run code"):
        cls(str(tmp_path), train=True)
    assert not marker.exists()


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_restricted_unpickler_reads_plain_numpy_pickles(tmp_path, protocol):
    import pickle

    import numpy as np

    from ldrld_mini.data.cifar import read_cifar_pickle

    rows = np.arange(2 * 3072, dtype=np.uint8).reshape(2, 3072)
    path = tmp_path / "train"
    path.write_bytes(pickle.dumps({b"data": rows, b"fine_labels": [1, 2], b"batch_label": "x"}, protocol=protocol))
    entry = read_cifar_pickle(path)
    assert entry["fine_labels"] == [1, 2] and np.array_equal(entry["data"], rows)


# ---------------------------------------------------------------------------------------------------------
# 11. smaller items

@pytest.mark.parametrize("extra, needle", [
    (["optim.momentum=-1"], "optim.momentum=-1.0 must be a finite number >= 0"),
    (["--seed", str(2**70)], f"--seed {2**70} must be an integer in [0, 4294967295]"),
    (["train.seed=-3"], "train.seed=-3 must be an integer"),
])
def test_option_errors_name_the_option(capsys, tmp_path, extra, needle):
    code, _, err = cli(capsys, *train_argv(tmp_path / "run", *extra))
    assert_clean_error(code, err, needle)


def test_negative_loss_weight_and_large_k(capsys, tmp_path, finished):
    code, _, err = cli(capsys, *distill_argv(tmp_path / "run", finished, "loss.alpha=-5"))
    assert_clean_error(code, err, "loss.alpha=-5.0 must be a number >= 0")
    code, _, err = cli(capsys, *distill_argv(tmp_path / "run", finished, "loss.k=50"))
    assert_clean_error(code, err, "loss.k=50 is larger than the 10 classes")
    assert not (tmp_path / "run").exists()  # caught before data, teacher and config.yaml


def test_teachers_on_the_cifar_recipe(capsys, tmp_path):
    argv = ["distill", "--recipe", "cifar100", "--teacher", "resnet34", "--student", "resnet8x4", "--method", "kd",
            "--run-dir", tmp_path / "run"]
    code, _, err = cli(capsys, *argv)
    assert_clean_error(code, err, "--teacher 'resnet34' is an ImageNet model", "resnet32x4")
    assert "teachers --fetch" not in err
    argv[4] = "resnet8"  # a CIFAR model without a published checkpoint
    code, _, err = cli(capsys, *argv, f"model.teacher_checkpoint={tmp_path}/t.pth")
    assert_clean_error(code, err, "'resnet8' has no published CIFAR-100 checkpoint", "ldrld-mini train --recipe")
    assert "--fetch" not in err


def test_eval_of_a_folder_without_best_pt(capsys, copy_of):
    run_dir = copy_of()
    (run_dir / "best.pt").unlink()
    code, out, err = cli(capsys, *EVAL[:-4], "--data-option", "train_per_class=4", "--data-option",
                         "val_per_class=2", "--checkpoint", run_dir)
    assert code == 0, err
    assert "has no best.pt; evaluating its last.pt" in out and "last.pt of epoch 2" in out
    assert "stored accuracy" not in out


def test_cifar_hint_gives_the_cli_flag(capsys, tmp_path):
    code, _, err = cli(capsys, "train", "--recipe", "cifar100", "--model", "resnet8", "--run-dir", tmp_path / "r",
                       "--data-root", tmp_path / "empty", "--device", "cpu")
    assert_clean_error(code, err, "ldrld-mini prepare-data cifar100 --root <root> --download")


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
