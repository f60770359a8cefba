"""Published comparison numbers (issue 19 §4): the recipes hold the public KD / DKD numbers the LDRLD paper does not
give, each with its source, and `ldrld-mini results` prints them marked, the citation under the table."""
from __future__ import annotations

from ldrld_mini.cli import main
from ldrld_mini.recipes import RECIPES, list_pairs, load_recipe, published, published_refs
from ldrld_mini.results import load_runs, paper_number, results_table
from test_results import write_run

# mdistiller's README at commit a08d46f: "On CIFAR-100" (DKD section) and the DOT section's Tiny-ImageNet KD row
FROM_MDISTILLER = {
    ("cifar100", "resnet110", "resnet32"): {"kd": 73.08, "dkd": 74.11},
    ("cifar100", "wrn_40_2", "wrn_40_1"): {"kd": 73.54, "dkd": 74.81},
    ("cifar100", "wrn_40_2", "ShuffleV1"): {"dkd": 76.70},
    ("cifar100", "vgg13", "MobileNetV2"): {"dkd": 69.71},
    ("cifar100", "ResNet50", "MobileNetV2"): {"dkd": 70.35},
    ("cifar100", "resnet32x4", "ShuffleV2"): {"dkd": 77.07},  # the README's column labelled MobileNet-V2
    ("tiny_imagenet", "ResNet18", "MobileNetV2"): {"kd": 58.35},
    ("tiny_imagenet", "ResNet18", "ShuffleV2"): {"kd": 62.26},
}


def test_recipes_hold_mdistillers_numbers_where_the_paper_gives_none():
    for (dataset, teacher, student), numbers in FROM_MDISTILLER.items():
        entry = published(dataset, teacher, student)
        assert {m: entry[m] for m in numbers} == numbers, (teacher, student)
        assert entry["from"] == {m: "mdistiller" for m in numbers}, (teacher, student)
        assert "mdistiller" in entry["source"]
    # the paper's numbers stay, KD 74.45 of resnet32x4 -> ShuffleV2 is the CRD benchmark's (not marked)
    assert published("cifar100", "resnet32x4", "ShuffleV2")["kd"] == 74.45
    assert published("cifar100", "resnet32x4", "resnet8x4")["from"] == {}
    # where the second source differs, the paper's number is kept and the other one recorded
    wrn = published("cifar100", "wrn_40_2", "wrn_16_2")
    assert wrn["dkd"] == 76.24 and wrn["from"] == {} and wrn["other"] == {"dkd": {"mdistiller": 76.23}}
    for dataset in ("cifar100", "tiny_imagenet"):
        assert "a08d46f" in published_refs(dataset)["mdistiller"]


def test_every_named_source_is_cited_and_every_marked_number_exists():
    for dataset in RECIPES:
        refs = published_refs(dataset)
        for pair in load_recipe(dataset)["pairs"]:
            numbers = pair.get("published") or {}
            for method, ref in (pair.get("published_from") or {}).items():
                assert numbers.get(method) is not None and ref in refs, (dataset, pair["student"], method)
            for method, others in (pair.get("published_other") or {}).items():
                assert numbers.get(method) is not None and set(others) <= set(refs), (dataset, pair["student"])
                assert all(value != numbers[method] for value in others.values())


def test_paper_number_says_where_a_number_comes_from():
    marked = paper_number("tiny_imagenet", "ResNet18", "ShuffleV2", "kd")
    assert marked == 62.26 and marked.source[0] == "mdistiller" and "Tiny-ImageNet" in marked.source[1]
    paper = paper_number("cifar100", "wrn_40_2", "wrn_16_2", "dkd")
    assert paper == 76.24 and paper.source is None and [o[:2] for o in paper.others] == [("mdistiller", 76.23)]
    assert paper_number("cifar100", "resnet32x4", "resnet8x4", "kd").source is None
    assert paper_number("tiny_imagenet", "ResNet18", "ShuffleV2", "dkd") is None


def test_results_prints_marked_numbers_with_their_citation(tmp_path, capsys):
    runs = tmp_path / "runs"
    write_run(runs / "a", teacher="resnet110", student="resnet32", method="dkd", curve=(74.0, 75.11))
    write_run(runs / "b", teacher="wrn_40_2", student="wrn_16_2", method="dkd", curve=(76.0,))
    write_run(runs / "c", teacher="resnet32x4", student="resnet8x4", method="kd", curve=(73.0, 73.5))
    write_run(runs / "e", teacher="wrn_40_2", student="wrn_40_1", method="kd", curve=(73.0,))
    write_run(runs / "d", dataset="tiny_imagenet", teacher="ResNet18", student="ShuffleV2", method="kd",
              curve=(60.0, 63.26))
    assert main(["results", str(runs)]) == 0
    out = capsys.readouterr().out
    cifar, tiny = out.split("## tiny_imagenet")
    row = next(line for line in cifar.splitlines() if "resnet110 → resnet32" in line)
    assert "| 74.11¹ | +1.00 | +1.00 |" in row  # mdistiller's DKD, marked, and the differences against it
    assert "| 73.33 |" in next(line for line in cifar.splitlines() if "resnet8x4" in line)  # the paper's: no mark
    assert "\n- ¹ mdistiller README (github.com/megvii-research/mdistiller, commit a08d46f)" in cifar
    assert "\n- wrn_40_2 → wrn_16_2 dkd: 76.24 from the paper; mdistiller gives 76.23." in cifar
    assert "| 73.54¹ |" in next(line for line in cifar.splitlines() if "wrn_40_1" in line)
    assert cifar.count("¹ mdistiller") == 1  # one citation per source, however many rows use it
    assert "| 62.26¹ | +1.00 | +1.00 |" in tiny and "¹ mdistiller README" in tiny and "Tiny-ImageNet" in tiny


def test_a_table_of_paper_numbers_only_has_no_notes(tmp_path):
    write_run(tmp_path / "r", method="kd")
    plain = results_table(load_runs(tmp_path))
    assert "¹" not in plain and "from the paper" not in plain and len(plain.splitlines()) == 3


def test_every_pair_of_the_tables_has_a_source_text():
    for dataset in ("cifar100", "tiny_imagenet"):
        for teacher, student in list_pairs(dataset):
            assert published(dataset, teacher, student)["source"]
