"""The `ldrld-mini` command line: help, user errors (exit 2, no traceback), results, reproduce, teachers,
prepare-data, eval, and the demo end to end (quick sizes)."""
import os
import re
import shlex
import statistics
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ldrld_mini.cli import default_run_dir, main, reproduce_plan
from ldrld_mini.recipes import list_pairs

sys.path.insert(0, str(Path(__file__).parent))
from test_results import write_run  # noqa: E402  (hand-made run folders)

SUBCOMMANDS = ["train", "distill", "eval", "prepare-data", "teachers", "results", "reproduce", "demo"]
TINY_SYNTHETIC = ["data.options.num_classes=10", "data.options.train_per_class=4", "data.options.val_per_class=2",
                  "data.batch_size=20", "schedule.epochs=1", "schedule.milestones=[]", "train.device=cpu"]


def run_main(capsys, *argv):
    """(exit status, stdout, stderr) of `ldrld-mini argv...` run in this process."""
    try:
        code = main(list(argv))
    except SystemExit as exc:  # argparse: --help (0) and malformed command lines (2)
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("command", SUBCOMMANDS)
def test_help_of_every_subcommand(capsys, command):
    code, out, _ = run_main(capsys, command, "--help")
    assert code == 0
    assert f"usage: ldrld-mini {command}" in out and "--debug" in out
    assert "example" in out


def test_module_entry_point_runs():
    out = subprocess.run([sys.executable, "-m", "ldrld_mini", "--help"], capture_output=True, text=True,
                         check=True).stdout
    for command in SUBCOMMANDS:
        assert command in out


def test_no_command_prints_help_and_exits_2(capsys):
    code, _, err = run_main(capsys)
    assert code == 2 and "COMMAND" in err


@pytest.mark.parametrize("argv, message", [
    (["distill", "--recipe", "cifar100", "--teacher", "resnet_nope", "--student", "resnet8x4", "--method", "kd"],
     "'resnet_nope'"),
    (["train", "--recipe", "mnist", "--model", "resnet8"], "--recipe 'mnist' has no recipe"),
    (["train", "--recipe", "synthetic", "--model", "resnet8", "schedule.epochs=abc"], "schedule.epochs"),
    (["train", "--recipe", "synthetic", "--model", "resnet8", "loss.nope=1"], "unknown override key 'loss.nope'"),
    (["train", "--recipe", "synthetic", "--model", "resnet8", "alpha"], "key=value"),
    (["eval", "--model", "resnet8", "--checkpoint", "no/such/file.pth", "--dataset", "synthetic"], "no/such/file.pth"),
    (["reproduce", "mnist"], "TABLE 'mnist'"),
    (["prepare-data", "mnist"], "DATASET 'mnist'"),
])
def test_user_mistakes_exit_2_with_one_message(capsys, argv, message):
    code, _, err = run_main(capsys, *argv)
    assert code == 2
    assert message in err and "Traceback" not in err
    assert err.startswith("ldrld-mini")


def test_missing_teacher_checkpoint_is_reported_before_training(capsys, tmp_path):
    argv = ["distill", "--recipe", "cifar100", "--teacher", "resnet32x4", "--student", "resnet8x4",
            "--method", "ldrld", "--run-dir", str(tmp_path / "run"), f"model.teacher_checkpoint={tmp_path}/t.pth"]
    code, _, err = run_main(capsys, *argv)
    assert code == 2 and "teacher checkpoint" in err and "t.pth" in err and "teachers --fetch" in err
    assert not (tmp_path / "run").exists()  # failed early: no run folder, no data loaded


def test_missing_data_exits_2_and_debug_shows_traceback(capsys, tmp_path):
    argv = ["train", "--recipe", "cifar100", "--model", "resnet8", "--run-dir", str(tmp_path / "run"),
            "--data-root", str(tmp_path / "empty"), "--device", "cpu", "epochs=1"]
    code, _, err = run_main(capsys, *argv)
    assert code == 2 and "cifar100" in err and "empty" in err and "Traceback" not in err
    with pytest.raises(FileNotFoundError):
        main(["--debug", *argv])


def test_train_then_distill_on_tiny_synthetic(capsys, tmp_path):
    teacher = tmp_path / "teacher"
    code, out, err = run_main(capsys, "train", "--recipe", "synthetic", "--model", "resnet8", "--run-dir",
                              str(teacher), "--quiet", *TINY_SYNTHETIC)
    assert code == 0, err
    assert f"-> {teacher}" in out and (teacher / "summary.json").exists()
    student = tmp_path / "student"
    distill = ["distill", "--recipe", "synthetic", "--teacher", "resnet8", "--student", "resnet8", "--method",
               "ldrld", "--run-dir", str(student), "--quiet", f"model.teacher_checkpoint={teacher}", "loss.k=3",
               *TINY_SYNTHETIC]
    code, out, err = run_main(capsys, *distill)
    assert code == 0, err
    assert yaml.safe_load((student / "config.yaml").read_text())["loss"]["k"] == 3
    code, _, err = run_main(capsys, *distill)  # the folder is taken: say so, do not overwrite
    assert code == 2 and "already holds a finished run" in err and "--resume" in err


def test_results_command_on_hand_made_runs(capsys, tmp_path):
    root = tmp_path / "runs"
    best = {0: 76.0, 1: 77.0, 2: 77.6}
    for seed, b in best.items():
        write_run(default_run_dir("cifar100", "ldrld", "resnet8x4", "resnet32x4", seed, root), seed=seed,
                  curve=(60.0, b, b - 0.5))
    write_run(default_run_dir("cifar100", "dkd", "resnet8x4", "resnet32x4", 0, root), method="dkd",
              curve=(60.0,), finished=False)
    code, out, _ = run_main(capsys, "results", str(root), "--output", str(tmp_path / "r.md"),
                            "--plot", str(tmp_path / "c.png"))
    assert code == 0
    mean, sd = statistics.fmean(best.values()), statistics.stdev(best.values())
    row = next(line for line in out.splitlines() if "| ldrld |" in line)
    assert f"| 3 | {mean:.2f} ± {sd:.2f} |" in row and "77.20" in row and f"{mean - 77.20:+.2f}" in row
    assert "Unfinished runs" in out and "| dkd |" not in out.split("Unfinished")[0]
    assert (tmp_path / "r.md").read_text().startswith("## cifar100")
    assert (tmp_path / "c.png").stat().st_size > 1000


def test_results_on_missing_folder_exits_2(capsys, tmp_path):
    code, _, err = run_main(capsys, "results", str(tmp_path / "nowhere"))
    assert code == 2 and "nowhere" in err


def test_reproduce_cifar100_prints_every_command(capsys):
    code, out, _ = run_main(capsys, "reproduce", "cifar100", "--seeds", "0", "1", "2", "optim.lr=0.1")
    assert code == 0
    commands = [line for line in out.splitlines() if line and not line.startswith("#")]
    pairs = list_pairs("cifar100")
    students = {s for _, s in pairs}
    assert len(commands) == 3 * (3 * len(pairs) + len(students))  # seeds × (KD/DKD/LDRLD per pair + vanilla per student)
    assert ("ldrld-mini distill --recipe cifar100 --teacher resnet32x4 --student resnet8x4 --method ldrld "
            "--seed 2 --resume optim.lr=0.1") in commands
    assert "ldrld-mini train --recipe cifar100 --model resnet8x4 --seed 0 --resume optim.lr=0.1" in commands
    assert all(c.endswith("optim.lr=0.1") for c in commands)  # overrides after --seeds are not seeds


def test_reproduce_loss_override_of_one_method(capsys):
    code, out, _ = run_main(capsys, "reproduce", "cifar100", "--methods", "ldrld", "--seeds", "0", "loss.alpha=9")
    assert code == 0 and out.count("loss.alpha=9") == len(list_pairs("cifar100"))
    code, _, err = run_main(capsys, "reproduce", "cifar100", "loss.alpha=9")  # vanilla and KD have no alpha
    assert code == 2 and "loss.alpha" in err and "(for --methods vanilla" in err


def test_reproduce_imagenet_torchrun_and_plan(capsys):
    plan = reproduce_plan("imagenet", seeds=[0], methods=["ldrld"])
    assert [(p.teacher, p.student) for p in plan] == list_pairs("imagenet")
    assert Path(plan[0].run_dir) == Path("runs/imagenet/resnet34-resnet18/ldrld/seed0")
    code, out, _ = run_main(capsys, "reproduce", "imagenet", "--methods", "ldrld", "--seeds", "0", "--nproc", "8")
    assert code == 0
    assert ("torchrun --nproc_per_node=8 -m ldrld_mini distill --recipe imagenet --teacher resnet34 "
            "--student resnet18 --method ldrld --seed 0") in out


ABLATION_FOLDERS = {  # override -> the run folder name that says the variant
    "loss.pair_weighting=irw": "pair_weighting-irw", "loss.pair_weighting=erd": "pair_weighting-erd",
    "loss.pair_weighting=uniform": "pair_weighting-uniform", "loss.whole_group=false": "no_whole_group",
    "loss.beta=0": "no_rntk", "loss.alpha=0": "no_local", "loss.k=3": "k3", "loss.k=5": "k5", "loss.k=9": "k9",
    "loss.rank_by=teacher": "rank_by-teacher"}


def ablation_commands(capsys, *extra):
    code, out, err = run_main(capsys, "reproduce", "cifar100", "--ablation", "--seeds", "0", "1", *extra)
    assert code == 0, err
    return [line for line in out.splitlines() if line and not line.startswith("#")], out


def test_reproduce_ablation_prints_one_run_folder_per_variant(capsys):
    commands, out = ablation_commands(capsys, "optim.lr=0.1")
    assert len(commands) == 2 * 11 and "# then: ldrld-mini results runs/cifar100_ablation" in out
    prefix = "ldrld-mini distill --recipe cifar100 --teacher resnet32x4 --student resnet8x4 --method ldrld --seed "
    assert all(c.startswith(prefix) and c.endswith("optim.lr=0.1") for c in commands)
    for override in ABLATION_FOLDERS:  # each variant once per seed
        assert sum(f" {override} " in c for c in commands) == 2, override
    run_dirs = [re.search(r"--run-dir (\S+)", c).group(1) for c in commands]
    assert len(set(run_dirs)) == len(commands)
    for command, run_dir in zip(commands, run_dirs):
        overrides = [o for o in ABLATION_FOLDERS if f" {o} " in command]
        assert len(overrides) <= 1, command  # one part switched off at a time
        variant = ABLATION_FOLDERS[overrides[0]] if overrides else "full"
        seed = re.search(r"--seed (\d+)", command).group(1)
        assert Path(run_dir) == Path("runs/cifar100_ablation/resnet32x4-resnet8x4") / variant / f"seed{seed}"


def test_reproduce_ablation_run_runs_exactly_the_printed_commands(capsys, monkeypatch):
    """--run hands `run_many` the same runs, in the same folders with the same configs, as the printed commands."""
    import shlex

    import ldrld_mini.cli as cli
    import ldrld_mini.train.multirun as multirun

    commands, _ = ablation_commands(capsys, "--fast", "optim.lr=0.1")
    started = []
    monkeypatch.setattr(cli, "_missing_teacher_files", lambda specs: {})  # no CRD teacher files in the tests
    monkeypatch.setattr(multirun, "run_many", lambda specs, **_: started.extend(specs) or [])
    code, _, err = run_main(capsys, "reproduce", "cifar100", "--ablation", "--seeds", "0", "1", "--fast", "--run",
                            "optim.lr=0.1")
    assert code == 0, err
    assert len(started) == len(commands)
    for spec, command in zip(started, commands):
        args = cli.build_parser().parse_args(shlex.split(command)[1:])
        cfg = cli._config_from_args(args, method=args.method, teacher=args.teacher, student=args.student)
        assert Path(args.run_dir) == Path(spec.run_dir) and cfg == spec.config(), command
    assert {spec.config().loss.get("pair_weighting") for spec in started} == {None, "irw", "erd", "uniform"}


@pytest.mark.parametrize("argv, message", [
    (["reproduce", "imagenet", "--ablation"], "--ablation is defined for cifar100 only"),
    (["reproduce", "cifar100", "--ablation", "--methods", "kd"], "--ablation runs LDRLD only"),
    (["reproduce", "cifar100", "--ablation", "loss.k=4"], "sets a key the ablation varies"),
    (["distill", "--recipe", "cifar100", "--teacher", "resnet32x4", "--student", "resnet8x4", "--method", "ldrld",
      "loss.pair_weighting=idw"], "loss.pair_weighting='idw' must be one of ['adw', 'irw', 'erd', 'uniform']"),
    (["distill", "--recipe", "cifar100", "--teacher", "resnet32x4", "--student", "resnet8x4", "--method", "ldrld",
      "loss.whole_group=2"], "loss.whole_group=2 must be true or false"),
])
def test_ablation_mistakes_exit_2_naming_the_key(capsys, argv, message):
    code, _, err = run_main(capsys, *argv)
    assert code == 2 and message in err and "Traceback" not in err


def test_reproduce_run_skips_finished_and_resumes(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # run folders are relative to the working directory
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).parents[1]))  # the worker processes import the package
    argv = ["reproduce", "synthetic", "--methods", "vanilla", "--seeds", "0", "--run", *TINY_SYNTHETIC]
    code, out, err = run_main(capsys, *argv)
    assert code == 0, out + err
    plan = reproduce_plan("synthetic", seeds=[0], methods=["vanilla"])
    assert len(plan) == 2 and all((tmp_path / p.run_dir / "summary.json").exists() for p in plan)
    unfinished = tmp_path / plan[-1].run_dir
    (unfinished / "summary.json").unlink()  # as if killed after its last checkpoint
    trained_at = (unfinished / "last.pt").stat().st_mtime_ns
    code, out, _ = run_main(capsys, *argv)
    assert code == 0
    assert re.search(r"\| vanilla_resnet8_seed0 \| skipped", out) and out.count("| done |") == 1
    assert (unfinished / "summary.json").exists()
    assert (unfinished / "last.pt").stat().st_mtime_ns == trained_at  # resumed after its last epoch, not retrained


def test_teachers_lists_six(capsys, tmp_path):
    code, out, _ = run_main(capsys, "teachers", "--root", str(tmp_path))
    assert code == 0
    for name in ("resnet56", "resnet110", "resnet32x4", "wrn_40_2", "vgg13", "ResNet50"):
        assert re.search(rf"^{name}\s", out, flags=re.M)
    assert out.count(str(tmp_path)) == 6


def test_prepare_data_reports_what_is_missing(capsys, tmp_path):
    code, out, _ = run_main(capsys, "prepare-data", "cifar100", "--root", str(tmp_path / "cifar"))
    assert code == 1
    assert "NOT READY" in out and str(tmp_path / "cifar") in out
    assert "--download" in run_main(capsys, "prepare-data", "--help")[1]
    code, out, _ = run_main(capsys, "prepare-data", "synthetic")
    assert code == 0 and "OK" in out


def test_eval_of_a_saved_checkpoint(capsys, tmp_path):
    import torch

    from ldrld_mini.data import build_loaders
    from ldrld_mini.models import build_model, evaluate

    torch.manual_seed(0)
    model = build_model("resnet8", num_classes=10)
    torch.save({"model": model.state_dict(), "epoch": 1, "accuracy": 12.5}, tmp_path / "ckpt.pth")
    options = {"num_classes": 10, "train_per_class": 1, "val_per_class": 3}
    code, out, err = run_main(capsys, "eval", "--model", "resnet8", "--checkpoint", str(tmp_path / "ckpt.pth"),
                              "--dataset", "synthetic", "--device", "cpu",
                              *[f"--data-option={k}={v}" for k, v in options.items()])
    assert code == 0, err
    _, val = build_loaders("synthetic", batch_size=256, **options)
    expected = evaluate(model, val, "cpu")
    assert f"(30 images): top-1 {expected['top1']:.2f}  top-5 {expected['top5']:.2f}" in out
    assert "stored accuracy 12.50" in out


def test_eval_wrong_model_for_checkpoint_exits_2(capsys, tmp_path):
    import torch

    from ldrld_mini.models import build_model

    torch.save({"model": build_model("resnet8", num_classes=10).state_dict()}, tmp_path / "ckpt.pth")
    code, _, err = run_main(capsys, "eval", "--model", "resnet14", "--checkpoint", str(tmp_path / "ckpt.pth"),
                            "--dataset", "synthetic", "--device", "cpu", "--data-option", "num_classes=10")
    assert code == 2 and "Traceback" not in err and "ckpt.pth" in err


# the demo's tests: tests/test_demo.py


# ---- one file = one experiment (issue 21): --config FILE, --print-config, overrides as one option

def print_config(capsys, *argv):
    """(run folder, config dict) that `--print-config` printed."""
    code, out, err = run_main(capsys, *argv, "--print-config")
    assert code == 0, err
    first, _, body = out.partition("\n")
    assert first.startswith("# run folder: ")
    return Path(first[len("# run folder: "):]), yaml.safe_load(body)


def test_a_run_folders_config_yaml_is_a_config_file(capsys, tmp_path):
    first, again = tmp_path / "first", tmp_path / "again"
    code, _, err = run_main(capsys, "train", "--recipe", "synthetic", "--model", "resnet8", "--run-dir", str(first),
                            "--quiet", *TINY_SYNTHETIC)
    assert code == 0, err
    stored = yaml.safe_load((first / "config.yaml").read_text())
    run_dir, printed = print_config(capsys, "train", "--config", str(first / "config.yaml"))
    assert printed == stored and run_dir == default_run_dir("synthetic", "vanilla", "resnet8", None, 0)
    code, _, err = run_main(capsys, "train", "--config", str(first / "config.yaml"), "--run-dir", str(again),
                            "--quiet")
    assert code == 0, err
    assert yaml.safe_load((again / "config.yaml").read_text()) == stored  # the same experiment, run again
    code, _, err = run_main(capsys, "train", "--config", str(first / "config.yaml"), "--run-dir", str(first))
    assert code == 2 and "already holds a finished run" in err  # the run folder rules still apply


def test_overrides_apply_on_top_of_a_config_file(capsys, tmp_path):
    _, base = print_config(capsys, "distill", "--recipe", "synthetic", "--teacher", "resnet8", "--student", "resnet8",
                           "--method", "ldrld", *TINY_SYNTHETIC)
    path = tmp_path / "experiment.yaml"
    path.write_text(yaml.safe_dump(base, sort_keys=False))
    run_dir, cfg = print_config(capsys, "distill", "--config", str(path), "loss.k=3", "--seed", "4",
                                "--set", "optim.lr=0.2", "--student", "resnet8")
    assert (cfg["loss"]["k"], cfg["train"]["seed"], cfg["optim"]["lr"]) == (3, 4, 0.2)
    assert {k: v for k, v in cfg.items() if k not in ("loss", "train", "optim")} == \
        {k: v for k, v in base.items() if k not in ("loss", "train", "optim")}
    assert run_dir == default_run_dir("synthetic", "ldrld", "resnet8", "resnet8", 4)
    code, _, err = run_main(capsys, "distill", "--config", str(path), "--student", "resnet20", "--print-config")
    assert code == 2 and "--student 'resnet20' disagrees with --config" in err and "model.student: 'resnet8'" in err
    code, _, err = run_main(capsys, "distill", "--config", str(path), "loss.nope=1", "--print-config")
    assert code == 2 and "unknown override key 'loss.nope'" in err and str(path) in err


@pytest.mark.parametrize("text, problem", [
    (None, "does not exist"),
    ("dataset: synthetic\nmethod: [vanilla\n", "is not valid YAML at line 3"),
    ("- 1\n- 2\n", "is a YAML list, not a mapping"),
    ("", "is empty"),
    ("name: x\ndataset: synthetic\nmethod: vanilla\nbogus: 1\n", "unknown key(s) ['bogus'] in config"),
    ("name: x\ndataset: synthetic\nmethod: vanilla\noptim: {lr: -1}\n", "optim.lr"),
    ("name: x\ndataset: synthetic\nmethod: kd\nmodel: {teacher: resnet8, student: resnet8}\n",
     "holds a kd run; run it with `ldrld-mini distill --config"),
])
def test_a_bad_config_file_exits_2_naming_the_file_and_the_problem(capsys, tmp_path, text, problem):
    path = tmp_path / "exp.yaml"
    if text is not None:
        path.write_text(text)
    code, out, err = run_main(capsys, "train", "--config", str(path), "--print-config")
    assert code == 2 and "Traceback" not in err and out == "", err
    assert str(path) in err and problem in err, err


def test_print_config_trains_nothing(capsys, tmp_path):
    run_dir, cfg = print_config(capsys, "train", "--recipe", "synthetic", "--model", "resnet8", "--run-dir",
                                str(tmp_path / "run"), *TINY_SYNTHETIC)
    assert run_dir == tmp_path / "run" and cfg["model"]["student"] == "resnet8"
    assert list(tmp_path.iterdir()) == []  # no folder, no lock, no data
    code, _, err = run_main(capsys, "train", "--model", "resnet8", "--print-config")
    assert code == 2 and "--recipe is required (or give --config FILE" in err


def test_an_override_is_one_option_wherever_it_stands():
    from ldrld_mini.cli import build_parser

    parse = build_parser().parse_args
    args = parse(["distill", "loss.alpha=8", "--recipe", "cifar100", "--teacher", "resnet32x4", "--student",
                  "resnet8x4", "--method", "ldrld", "epochs=2", "--quiet", "--set", "optim.lr=0.1", "loss.k=5"])
    assert args.overrides == ["loss.alpha=8", "epochs=2", "optim.lr=0.1", "loss.k=5"] and args.quiet
    args = parse(["reproduce", "cifar100", "--seeds", "0", "1", "loss.alpha=8", "--methods", "ldrld", "epochs=2"])
    assert (args.seeds, args.methods, args.overrides) == (["0", "1"], ["ldrld"], ["loss.alpha=8", "epochs=2"])
    args = parse(["eval", "--model", "resnet8", "--checkpoint", "x.pt", "--data-option", "num_classes=10"])
    assert args.data_option == ["num_classes=10"]  # an option's value stays its value
    with pytest.raises(SystemExit):
        parse(["results", "runs", "loss.alpha=8"])  # a command without overrides refuses one


# ---- a cluster (issue 21): reproduce --slurm writes a job array, one task per run

def bash_array(text: str, name: str) -> list[str]:
    """The words of the bash array `name=( ... )` in a script (one shell word per line)."""
    body = text[text.index(f"\n{name}=(\n") + len(name) + 4:]
    return [shlex.split(line)[0] for line in body[:body.index("\n)\n")].splitlines()]


def test_reproduce_slurm_writes_one_array_task_per_run_and_a_task_runs_here(capsys, tmp_path):
    runs, script = tmp_path / "runs", tmp_path / "job.sh"
    argv = ["reproduce", "synthetic", "--methods", "vanilla", "--seeds", "0", "--runs-dir", str(runs), *TINY_SYNTHETIC]
    code, out, _ = run_main(capsys, *argv)
    printed = [line for line in out.splitlines() if line and not line.startswith("#")]
    code, out, err = run_main(capsys, *argv, "--slurm", str(script), "--partition", "gpu", "--gpus-per-task", "1",
                              "--time", "01:00:00")
    assert code == 0 and f"wrote {script}: 2 array tasks" in out, err
    text = script.read_text()
    assert dict(re.findall(r"^#SBATCH --([\w-]+)=(.*)$", text, re.M)) == {
        "job-name": "ldrld-synthetic", "array": "0-1", "output": f"{runs}/slurm/synthetic_%A_%a.log", "ntasks": "1",
        "partition": "gpu", "gpus-per-task": "1", "time": "01:00:00"}
    assert "#SBATCH --requeue" in text and (runs / "slurm").is_dir()  # sbatch needs the log folder to exist
    assert bash_array(text, "commands") == printed  # the same plan as `reproduce` prints
    plan = reproduce_plan("synthetic", seeds=[0], methods=["vanilla"], runs_dir=runs, overrides=TINY_SYNTHETIC)
    run_dirs = bash_array(text, "run_dirs")
    assert run_dirs == [p.run_dir for p in plan] and len(plan) == 2

    env = {**os.environ, "SLURM_ARRAY_TASK_ID": "1", "PYTHONPATH": str(Path(__file__).parents[1]),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}", "OMP_NUM_THREADS": "1"}
    task = lambda: subprocess.run(["bash", str(script)], env=env, cwd=tmp_path, capture_output=True, text=True,
                                  timeout=300)  # noqa: E731
    done = task()
    assert done.returncode == 0, done.stdout + done.stderr
    assert (Path(run_dirs[1]) / "summary.json").exists() and not Path(run_dirs[0]).exists()  # task 1 only
    (Path(run_dirs[1]) / "summary.json").unlink()  # as if the task was preempted after its last checkpoint
    trained_at = (Path(run_dirs[1]) / "last.pt").stat().st_mtime_ns
    again = task()
    assert again.returncode == 0 and f"{printed[1]} --resume" in again.stdout, again.stdout + again.stderr
    assert (Path(run_dirs[1]) / "summary.json").exists()
    assert (Path(run_dirs[1]) / "last.pt").stat().st_mtime_ns == trained_at  # continued, not trained again
    assert "is finished already" in task().stdout


def test_reproduce_slurm_with_torchrun_teachers_first_and_mistakes(capsys):
    code, out, _ = run_main(capsys, "reproduce", "imagenet", "--seeds", "0", "--methods", "ldrld", "--nproc", "8",
                            "--slurm")
    assert code == 0 and "#SBATCH --gpus-per-task=8" in out
    assert all(c.startswith("torchrun --nproc_per_node=8 -m ldrld_mini ") for c in bash_array(out, "commands"))
    code, out, _ = run_main(capsys, "reproduce", "synthetic", "--seeds", "0", "--methods", "ldrld", "--slurm")
    teachers = sum(1 for spec in reproduce_plan("synthetic", seeds=[0], methods=["ldrld"]) if spec.stage == 0)
    assert f"#SBATCH --array=0-{teachers - 1}\n" in out and f"--dependency=afterok:$jid --array={teachers}-" in out
    code, _, err = run_main(capsys, "reproduce", "cifar100", "--partition", "gpu")
    assert code == 2 and "--partition goes with --slurm" in err
    code, _, err = run_main(capsys, "reproduce", "cifar100", "--slurm", "--run")
    assert code == 2 and "choose one" in err
