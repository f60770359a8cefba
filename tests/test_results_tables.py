"""Every column of the unfinished and failed tables against a hand computation on runs whose best epoch is not
their last, and override values that contain the separators '=', ',' and ':' (issue 18 point 1). The main
results table's numeric cells are in test_mutation_kinds.py and test_results.py."""
import json

import pytest

from ldrld_mini.recipes import load_config, parse_override
from ldrld_mini.results import failed_table, format_results, group_runs, load_runs, unfinished_table

from test_results import write_run


def _cells(line):
    return [c.strip() for c in line.strip().strip("|").split("|")]


def test_unfinished_table_every_column_with_best_not_last(tmp_path):
    """Two unfinished runs (4 and 5 epochs planned): best so far 61.25 and 47.5, last 58.5 and 12.75."""
    a = write_run(tmp_path / "a", seed=3, curve=(40.0, 61.25, 58.5), finished=False)
    b = write_run(tmp_path / "b", method="kd", seed=7, curve=(47.5, 12.75), finished=False)
    write_run(tmp_path / "c", seed=1, curve=(10.0, 90.0))  # finished: not listed
    rows = unfinished_table(load_runs(tmp_path)).splitlines()
    assert _cells(rows[0]) == ["unfinished run", "method", "seed", "epochs", "best so far", "last"]
    body = sorted(_cells(r) for r in rows[2:])
    assert body == [[str(a), "ldrld", "3", "3/5", "61.25", "58.50"], [str(b), "kd", "7", "2/4", "47.50", "12.75"]]


def test_failed_table_every_column(tmp_path):
    run = write_run(tmp_path / "f", method="dkd", seed=4, curve=(30.0, 35.0), finished=False)
    (run / "failed.json").write_text(json.dumps({"status": "diverged", "epoch": 3,
                                                 "reason": "the train loss is not finite (a|b)"}))
    rows = failed_table(load_runs(tmp_path)).splitlines()
    assert _cells(rows[0]) == ["failed run", "method", "seed", "status", "epoch", "reason"]
    assert _cells(rows[2]) == [str(run), "dkd", "4", "diverged", "3", "the train loss is not finite (a/b)"]


@pytest.mark.parametrize("value", ["/data/a=b", "/data/x,y", "/data/c:d", "/d/k=v,w:z"])
def test_override_values_containing_separators_are_kept_whole(value):
    assert parse_override(f"data.root={value}") == ("data.root", value)
    cfg = load_config("cifar100", teacher="resnet32x4", student="resnet8x4", method="ldrld",
                      overrides=[f"data.root={value}", "name=a=b", "milestones=5,9"])
    assert cfg.data.root == value and cfg.name == "a=b" and list(cfg.schedule.milestones) == [5, 9]


def test_runs_whose_root_contains_separators_average_together(tmp_path):
    """data.root is where, not what: two seeds with roots holding '=', ',' and ':' are one group."""
    pair = tmp_path / "cifar100" / "resnet32x4-resnet8x4" / "ldrld"
    write_run(pair / "seed0", seed=0, curve=(70.0, 75.0, 74.0), overrides=["data.root=/d/k=v,w:z"])
    write_run(pair / "seed1", seed=1, curve=(70.0, 77.0, 76.0), overrides=["data.root=/e/k=v"])
    groups = group_runs(load_runs(tmp_path))
    assert len(groups) == 1 and groups[0].seeds == [0, 1] and groups[0].variant == ""
    row = next(line for line in format_results(tmp_path).splitlines() if "| ldrld |" in line)
    assert _cells(row)[3:6] == ["2", "76.00 ± 1.41", "75.00 ± 1.41"]


def test_integer_override_written_as_a_float_becomes_an_integer():
    cfg = load_config("cifar100", teacher="resnet32x4", student="resnet8x4", method="ldrld",
                      overrides=["epochs=2.0", "batch_size=32.0"])
    assert cfg.schedule.epochs == 2 and type(cfg.schedule.epochs) is int
    assert cfg.data.batch_size == 32 and type(cfg.data.batch_size) is int
    with pytest.raises(ValueError, match="epochs=2.5"):
        load_config("cifar100", teacher="resnet32x4", student="resnet8x4", method="ldrld", overrides=["epochs=2.5"])
