"""One owner per precondition (issue 22): the library's checks (`train.checks`, `train.teacher`, the run folder's
decision) raise, and the CLI prints the same message with exit status 2, not a copy in its own words."""
import sys
from pathlib import Path

import pytest

from ldrld_mini.cli import main
from ldrld_mini.recipes import check_recipe, load_config
from ldrld_mini.runfolder import RunFolder
from ldrld_mini.train import fit
from ldrld_mini.train.checks import check_model_name
from ldrld_mini.train.teacher import check_teacher_checkpoint

sys.path.insert(0, str(Path(__file__).parent))
from test_results import write_run  # noqa: E402  (hand-made run folders)

TINY = ["data.options.num_classes=10", "data.options.train_per_class=2", "data.options.val_per_class=1",
        "data.batch_size=10", "schedule.epochs=1", "schedule.milestones=[]", "train.device=cpu"]


def cli_error(capsys, *argv) -> str:
    """The one-line message `ldrld-mini argv...` prints for a user error (after 'error: '); asserts exit 2."""
    code = main(list(argv))
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err, err
    return err.split("error: ", 1)[1].splitlines()[0]


@pytest.mark.parametrize("teacher_checkpoint", ["t.pth", "teacher_run"], ids=["file", "run_folder"])
def test_missing_teacher_has_one_wording(capsys, tmp_path, teacher_checkpoint):
    setting = tmp_path / teacher_checkpoint
    overrides = [f"model.teacher_checkpoint={setting}", *TINY]
    cfg = load_config("synthetic", teacher="resnet8", student="resnet8", method="kd", overrides=overrides)
    with pytest.raises(FileNotFoundError) as library:
        check_teacher_checkpoint(cfg)
    with pytest.raises(FileNotFoundError) as engine:
        fit(cfg, tmp_path / "engine", quiet=True)
    said = cli_error(capsys, "distill", "--recipe", "synthetic", "--teacher", "resnet8", "--student", "resnet8",
                     "--method", "kd", "--run-dir", str(tmp_path / "run"), *overrides)
    assert said == str(library.value) == str(engine.value)
    assert str(setting) in said and "model.teacher_checkpoint=" in said
    if teacher_checkpoint == "teacher_run":  # a run folder: train the teacher into it, the command says how
        assert f"--model resnet8 --run-dir {setting}`" in said
    assert not (tmp_path / "run").exists()  # refused before the run folder was made


def test_empty_teacher_run_folder_says_how_to_fill_it(tmp_path):
    (tmp_path / "teacher_run").mkdir()
    cfg = load_config("synthetic", teacher="resnet8", student="resnet8", method="kd",
                      overrides=[f"model.teacher_checkpoint={tmp_path / 'teacher_run'}", *TINY])
    with pytest.raises(FileNotFoundError, match=r"teacher checkpoint for 'resnet8' not found in .*teacher_run.* "
                                                r"neither best\.pt nor last\.pt.*ldrld-mini train --recipe synthetic"):
        check_teacher_checkpoint(cfg)


def test_taken_run_folder_has_one_wording(capsys, tmp_path):
    run_dir = write_run(tmp_path / "run", dataset="synthetic", student="resnet8", method="vanilla")
    cfg = load_config("synthetic", student="resnet8", method="vanilla", overrides=TINY)
    with pytest.raises(FileExistsError) as library:
        RunFolder(run_dir).decide(cfg, resume=False, overwrite=False)
    said = cli_error(capsys, "train", "--config", str(run_dir / "config.yaml"), "--run-dir", str(run_dir))
    assert said == str(library.value)
    for words in ("already holds a finished run", "resume=True (--resume)", "overwrite=True (--overwrite)",
                  "--run-dir"):
        assert words in said


def test_model_and_recipe_checks_name_the_option_and_the_value(capsys):
    with pytest.raises(ValueError, match=r"^model\.student 'resnt8': model name 'resnt8' is unknown\. Did you mean"):
        check_model_name("resnt8", "synthetic", "model.student")
    with pytest.raises(ValueError, match=r"^dataset 'mnist' has no recipe; use one of"):
        check_recipe("mnist")
    said = cli_error(capsys, "train", "--recipe", "synthetic", "--model", "resnt8")
    assert said.startswith("--model 'resnt8': model name 'resnt8' is unknown. Did you mean 'resnet8'")
    said = cli_error(capsys, "eval", "--model", "resnt8", "--checkpoint", "x.pth", "--dataset", "synthetic")
    assert said.startswith("--model 'resnt8': model name 'resnt8' is unknown.")
