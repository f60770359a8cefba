"""Recipes: every value the paper's protocol fixes, the pair lists, overrides and the Config round trip."""
import dataclasses

import pytest
import yaml

from ldrld_mini.recipes import (RECIPES, Config, describe_config, list_pairs, load_config, load_recipe,
                                published, recipe_path)

CIFAR_PAIRS = [
    ("resnet56", "resnet20"), ("resnet110", "resnet20"), ("resnet110", "resnet32"),
    ("resnet32x4", "resnet8x4"), ("wrn_40_2", "wrn_16_2"), ("wrn_40_2", "wrn_40_1"), ("vgg13", "vgg8"),
    ("resnet32x4", "ShuffleV1"), ("resnet32x4", "ShuffleV2"), ("wrn_40_2", "ShuffleV1"),
    ("vgg13", "MobileNetV2"), ("ResNet50", "MobileNetV2"), ("ResNet50", "vgg8"),
]


def test_cifar_pairs_are_the_13_crd_pairs():
    assert list_pairs("cifar100") == CIFAR_PAIRS
    assert list_pairs("tiny_imagenet") == [("ResNet18", "MobileNetV2"), ("ResNet18", "ShuffleV2")]
    assert list_pairs("imagenet") == [("resnet34", "resnet18"), ("resnet50", "mobilenet_v1")]


def test_cifar_crd_protocol():
    cfg = load_config("cifar100", teacher="resnet32x4", student="resnet8x4", method="ldrld")
    assert (cfg.schedule.epochs, list(cfg.schedule.milestones), cfg.schedule.gamma) == (240, [150, 180, 210], 0.1)
    assert (cfg.data.batch_size, cfg.optim.lr, cfg.optim.momentum) == (64, 0.05, 0.9)
    assert cfg.optim.weight_decay == 5e-4
    assert cfg.optim.nesterov is False
    assert cfg.loss == {"k": 7, "temperature": 4.0, "alpha": 10.5, "beta": 7.0, "ce_weight": 1.0}
    assert cfg.schedule.warmup_epochs == 20 and cfg.schedule.legacy_warmup is False
    assert "legacy_double_weight" not in cfg.loss  # the quirk is off by default


@pytest.mark.parametrize("student", ["MobileNetV2", "ShuffleV1", "ShuffleV2"])
def test_small_students_get_lr_001(student):
    for teacher, s in CIFAR_PAIRS:
        if s == student:
            assert load_config("cifar100", teacher=teacher, student=s, method="kd").optim.lr == 0.01


def test_other_students_keep_lr_005():
    for teacher, student in CIFAR_PAIRS:
        if student not in ("MobileNetV2", "ShuffleV1", "ShuffleV2"):
            assert load_config("cifar100", teacher=teacher, student=student).optim.lr == 0.05


def test_kd_and_dkd_follow_mdistiller():
    kd = load_config("cifar100", method="kd")
    assert kd.loss == {"temperature": 4.0, "ce_weight": 0.1, "kd_weight": 0.9}
    assert kd.schedule.warmup_epochs == 0
    betas = {pair: load_config("cifar100", teacher=pair[0], student=pair[1], method="dkd").loss["beta"]
             for pair in CIFAR_PAIRS}
    assert betas[("resnet56", "resnet20")] == 2.0 and betas[("resnet110", "resnet32")] == 2.0
    assert betas[("wrn_40_2", "wrn_16_2")] == 6.0 and betas[("vgg13", "MobileNetV2")] == 6.0
    assert betas[("resnet32x4", "resnet8x4")] == 8.0 and betas[("resnet32x4", "ShuffleV1")] == 8.0
    dkd = load_config("cifar100", method="dkd")
    assert (dkd.loss["alpha"], dkd.loss["temperature"], dkd.loss["warmup"], dkd.loss["ce_weight"]) == (1.0, 4.0, 20, 1.0)


def test_imagenet_and_tiny_recipes():
    kd = load_config("imagenet", method="kd")
    assert kd.loss == {"temperature": 1.0, "ce_weight": 0.5, "kd_weight": 0.5}
    dkd = load_config("imagenet", method="dkd")
    assert (dkd.loss["alpha"], dkd.loss["beta"], dkd.loss["temperature"], dkd.loss["warmup"]) == (0.5, 0.5, 1.0, 1)
    assert load_config("imagenet", teacher="resnet50", student="mobilenet_v1", method="dkd").loss["beta"] == 2.0
    assert (dkd.schedule.epochs, list(dkd.schedule.milestones), dkd.optim.lr, dkd.optim.weight_decay,
            dkd.data.batch_size) == (100, [30, 60, 90], 0.2, 1e-4, 512)
    tiny = load_config("tiny_imagenet", method="kd")
    assert (tiny.schedule.epochs, list(tiny.schedule.milestones), tiny.optim.lr, tiny.optim.weight_decay,
            tiny.data.batch_size) == (200, [60, 120, 160], 0.2, 5e-4, 256)


def test_synthetic_is_a_small_cpu_budget():
    from ldrld_mini.demo import DEMO

    cfg = load_config("synthetic")
    assert cfg.schedule.epochs <= 30 and cfg.data.options["num_classes"] % 5 == 0
    assert (cfg.schedule.epochs, cfg.schedule.warmup_epochs, cfg.data.batch_size, cfg.optim.lr) == (
        DEMO.student_epochs, DEMO.warmup_epochs, DEMO.batch_size, DEMO.lr)  # the recipe says what the demo runs
    assert {k: cfg.data.options[k] for k in ("num_classes", "train_per_class", "val_per_class", "image_size")} == {
        "num_classes": DEMO.num_classes, "train_per_class": DEMO.train_per_class,
        "val_per_class": DEMO.val_per_class, "image_size": DEMO.image_size}
    assert list(cfg.schedule.milestones) == DEMO.milestones(DEMO.student_epochs)
    assert cfg.schedule.warmup_epochs < cfg.schedule.epochs
    assert load_config("synthetic", method="vanilla", student="resnet20").model.teacher is None


def test_published_numbers():
    assert published("cifar100", "resnet32x4", "resnet8x4") | {"source": None} == {
        "teacher": 79.42, "student": 72.50, "kd": 73.33, "dkd": 76.32, "ldrld": 77.20, "source": None,
        "from": {}, "other": {}}  # every number the paper's (tests/test_published_numbers.py: the others)
    assert published("imagenet", "resnet50", "mobilenet_v1")["ldrld"] == 73.12
    assert published("cifar100", "vgg13", "MobileNetV2")["kd"] == 67.37
    assert published("cifar100", "vgg13", "MobileNetV2")["ldrld"] is None
    assert published("cifar100", "resnet8", "resnet8")["ldrld"] is None  # not a recipe pair
    for ds in RECIPES:
        for teacher, student in list_pairs(ds):
            assert published(ds, teacher, student)["source"]


def test_every_value_has_a_source():
    for ds in RECIPES:
        recipe = load_recipe(ds)
        assert recipe["source"]
        for section in recipe["defaults"].values():
            assert section.get("source"), (ds, section)
        for method in recipe["methods"].values():
            assert method.get("source"), (ds, method)
        for rule in recipe["lr_rules"]:
            assert rule.get("source")
        for pair in recipe["pairs"]:
            assert pair.get("published_source")
            for key in ("dkd", "kd", "ldrld"):
                if key in pair:
                    assert pair.get(f"{key}_source"), (ds, pair)


def _unwrapped(text: str) -> str:
    """`text` with textwrap's line breaks and the `source:` labels undone, white space folded."""
    return " ".join(" ".join(line.strip().removeprefix("source:").split()) for line in text.splitlines())


def test_describe_config_shows_each_resolved_section_with_its_source():
    cfg = load_config("cifar100", teacher="resnet32x4", student="resnet8x4", method="ldrld", overrides=["lr=0.1"])
    text, recipe = describe_config(cfg, width=60), load_recipe("cifar100")
    heads = [line for line in text.splitlines() if not line.startswith(" ")]
    assert [line.split()[0] for line in heads] == ["data", "model", "optim", "schedule", "loss"]
    assert "'lr': 0.1," in heads[2] and "'k': 7," in heads[4]
    assert "'teacher':" not in heads[1] and "'student':" not in heads[1] and "'options':" not in heads[0]
    for source in [recipe["defaults"][s]["source"] for s in ("data", "model", "optim", "schedule")]:
        assert " ".join(source.split()) in _unwrapped(text)
    assert max(len(line) for line in text.splitlines() if line.startswith(" ")) <= 60
    vanilla = describe_config(load_config("imagenet", student="resnet18", method="vanilla"))
    assert " ".join(load_recipe("imagenet")["methods"]["vanilla"]["source"].split()) in _unwrapped(vanilla)


def test_ldrld_notes_alpha_beta_are_reused():
    text = recipe_path("cifar100").read_text()
    assert "published ONLY for resnet32x4 -> resnet8x4" in text


def test_overrides_dotted_aliases_and_kwargs():
    cfg = load_config("cifar100", overrides=["loss.alpha=8", "epochs=2", "data.root=/x", "lr=1e-3",
                                             "train.amp=bf16", "milestones=[1]"], loss__beta=3, seed=5)
    assert cfg.loss["alpha"] == 8.0 and isinstance(cfg.loss["alpha"], float)
    assert cfg.schedule.epochs == 2 and cfg.data.root == "/x" and cfg.optim.lr == 1e-3
    assert cfg.train.amp == "bf16" and cfg.schedule.milestones == (1,) and cfg.loss["beta"] == 3.0
    assert cfg.train.seed == 5
    # loss options the loss function accepts are valid even when the recipe does not list them
    assert load_config("cifar100", overrides=["loss.rank_by=teacher"]).loss["rank_by"] == "teacher"
    assert load_config("cifar100", overrides=["loss.legacy_double_weight=true"]).loss["legacy_double_weight"]
    assert load_config("synthetic", overrides=["data.options.train_per_class=7"]).data.options["train_per_class"] == 7


def test_unknown_key_names_it_and_lists_valid_ones():
    with pytest.raises(ValueError, match=r"'loss\.alpah'.*loss\.alpha"):
        load_config("cifar100", overrides=["loss.alpah=3"])
    with pytest.raises(ValueError, match="key=value"):
        load_config("cifar100", overrides=["epochs"])
    with pytest.raises(ValueError, match="schedule.epochs"):
        load_config("cifar100", overrides=["epochs=2.5"])
    with pytest.raises(ValueError, match="train.amp"):
        load_config("cifar100", overrides=["amp=fp8"])
    with pytest.raises(ValueError, match="dataset"):
        load_config("mnist")
    with pytest.raises(ValueError, match="legacy_double_weight"):
        load_config("cifar100", method="kd", overrides=["loss.legacy_double_weight=true"])
    with pytest.raises(ValueError, match="method"):
        load_config("cifar100", method="crd")


def test_pair_resolution():
    assert load_config("cifar100", student="resnet32").model.teacher == "resnet110"
    assert load_config("cifar100", teacher="vgg13").model.student == "vgg8"
    cfg = load_config("cifar100", teacher="resnet32x4", student="resnet8x4")
    assert cfg.model.teacher_checkpoint.endswith("resnet32x4_vanilla/ckpt_epoch_240.pth")
    assert cfg.name == "cifar100_ldrld_resnet32x4_resnet8x4"
    with pytest.raises(ValueError, match="student"):
        load_config("cifar100", student="nonexistent")


def test_config_round_trip(tmp_path):
    cfg = load_config("cifar100", method="dkd", overrides=["epochs=3"])
    assert dataclasses.is_dataclass(cfg)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.method = "kd"
    assert Config.from_dict(cfg.to_dict()) == cfg
    path = cfg.save_yaml(tmp_path / "config.yaml")
    assert yaml.safe_load(path.read_text())["schedule"]["milestones"] == [150, 180, 210]
    assert Config.load_yaml(path) == cfg
    with pytest.raises(ValueError, match="unknown key"):
        Config.from_dict({**cfg.to_dict(), "optimiser": {}})
