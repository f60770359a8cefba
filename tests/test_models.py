"""Tests of ldrld_mini.models: the CRD zoo's checkpoint layout and sizes, checkpoints, features, teachers."""
from __future__ import annotations

import argparse
import fractions
import functools
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ldrld_mini.models import (
    TEACHERS,
    CheckpointError,
    UntrustedCheckpointError,
    build_model,
    evaluate,
    extract_features,
    find_teacher,
    list_models,
    load_checkpoint,
    teacher_path,
)

# parameters (millions) of the CRD zoo at 100 classes and of the ImageNet models at 1000 (docs/method.md §6)
PUBLISHED_PARAMS_M = {
    "resnet20": 0.28, "resnet32": 0.47, "resnet56": 0.86, "resnet110": 1.74, "resnet8x4": 1.23,
    "resnet32x4": 7.43, "wrn_16_2": 0.70, "wrn_40_1": 0.57, "wrn_40_2": 2.26, "vgg8": 3.97, "vgg13": 9.46,
    "ResNet50": 23.71, "MobileNetV2": 0.81, "ShuffleV1": 0.95, "ShuffleV2": 1.36,
    "resnet18": 11.69, "resnet34": 21.80, "resnet50": 25.56, "mobilenet_v1": 4.23,
}

# state-dict layout of the zoo (RepDistiller models/*.py): key count, first keys, a telling middle key, last keys
ZOO_KEYS = {
    "resnet32x4": (206, ["conv1.weight", "bn1.weight", "bn1.bias", "bn1.running_mean", "bn1.running_var",
                         "bn1.num_batches_tracked", "layer1.0.conv1.weight", "layer1.0.bn1.weight"],
                   "layer1.0.downsample.0.weight", ["layer3.4.bn2.num_batches_tracked", "fc.weight", "fc.bias"]),
    "resnet56": (344, ["conv1.weight", "bn1.weight"], "layer2.0.downsample.1.running_var",
                 ["layer3.8.bn2.num_batches_tracked", "fc.weight", "fc.bias"]),
    "wrn_40_2": (227, ["conv1.weight", "block1.layer.0.bn1.weight", "block1.layer.0.bn1.bias"],
                 "block2.layer.0.convShortcut.weight", ["bn1.num_batches_tracked", "fc.weight", "fc.bias"]),
    "vgg13": (72, ["block0.0.weight", "block0.0.bias", "block0.1.weight"], "block0.3.weight",
              ["block4.4.num_batches_tracked", "classifier.weight", "classifier.bias"]),
    "ResNet50": (320, ["conv1.weight", "bn1.weight"], "layer1.0.shortcut.0.weight",
                 ["layer4.2.bn3.num_batches_tracked", "linear.weight", "linear.bias"]),
    "MobileNetV2": (320, ["conv1.0.weight", "conv1.1.weight"], "blocks.6.0.conv.7.running_var",
                    ["conv2.1.num_batches_tracked", "classifier.0.weight", "classifier.0.bias"]),
    "ShuffleV1": (296, ["conv1.weight", "bn1.weight"], "layer1.0.conv3.weight",
                  ["layer3.3.bn3.num_batches_tracked", "linear.weight", "linear.bias"]),
    "ShuffleV2": (338, ["conv1.weight", "bn1.weight"], "layer1.0.conv5.weight",
                  ["bn2.num_batches_tracked", "linear.weight", "linear.bias"]),
    "tiny_MobileNetV2": (373, ["pre.0.weight", "pre.0.bias"], "stage7.residual.6.bias",
                         ["conv1.1.num_batches_tracked", "conv2.weight", "conv2.bias"]),
    "mobilenet_v1": (164, ["model.0.0.weight", "model.0.1.weight"], "model.13.3.weight",
                     ["model.13.4.num_batches_tracked", "fc.weight", "fc.bias"]),
}

# (number of stages after the stem, width of "pooled") per model, for extract_features
FEATURE_STAGES = {"resnet8x4": (3, 256), "wrn_16_2": (3, 128), "vgg8": (4, 512), "ResNet18": (4, 512),
                  "MobileNetV2": (4, 1280), "ShuffleV1": (3, 960), "ShuffleV2": (3, 1024),
                  "tiny_MobileNetV2": (4, 1280), "mobilenet_v1": (4, 1024), "resnet18": (4, 512)}


@pytest.fixture(autouse=True)
def no_downloads(monkeypatch):
    """Fail any test that would download weights through torch.hub."""

    def refuse(url, *args, **kwargs):
        raise AssertionError(f"a test tried to download {url}")

    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)


@functools.cache
def meta_model(name: str) -> nn.Module:
    """The model at its dataset's default class count, on the meta device (no memory, cheap init)."""
    with torch.device("meta"):
        return build_model(name)


def params_m(name: str) -> float:
    """Parameter count in millions, rounded to 2 decimals."""
    return round(sum(p.numel() for p in meta_model(name).parameters()) / 1e6, 2)


def input_side(name: str, dataset: str) -> int:
    """Image side for a fast forward pass: the dataset's own, smaller for the largest ImageNet/CIFAR nets."""
    sides = {"mobilenet_v1": 224, "ResNet101": 16, "ResNet152": 16, "resnet101": 32, "resnet152": 32}
    return sides.get(name, {"cifar": 32, "tiny_imagenet": 64, "imagenet": 64}[dataset])


# --- sizes and layout -------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", PUBLISHED_PARAMS_M)
def test_parameter_counts_match_the_published_zoo(name):
    assert params_m(name) == PUBLISHED_PARAMS_M[name]


def test_list_models_reports_measured_parameter_counts():
    infos = list_models()
    assert {i.dataset for i in infos} == {"cifar", "tiny_imagenet", "imagenet"}
    for info in infos:
        assert params_m(info.name) == info.params_m, info.name
    tiny = ["tiny_ResNet18", "tiny_MobileNetV2", "tiny_ShuffleV2"]
    assert [i.name for i in list_models("tiny_imagenet")] == tiny
    assert {i.input_size for i in list_models("cifar100")} == {32}


@pytest.mark.parametrize("name", ZOO_KEYS)
def test_state_dict_keys_follow_the_zoo_order(name):
    count, first, middle, last = ZOO_KEYS[name]
    keys = list(meta_model(name).state_dict())
    assert len(keys) == count
    assert keys[:len(first)] == first
    assert keys[-len(last):] == last
    assert middle in keys


def test_teacher_head_shapes_match_the_zoo():
    shapes = {"resnet32x4": ("fc.weight", (100, 256)), "wrn_40_2": ("fc.weight", (100, 128)),
              "vgg13": ("classifier.weight", (100, 512)), "ResNet50": ("linear.weight", (100, 2048)),
              "resnet110": ("fc.weight", (100, 64))}
    for name, (key, shape) in shapes.items():
        assert tuple(meta_model(name).state_dict()[key].shape) == shape, name


@pytest.mark.parametrize("info", list_models(), ids=lambda info: info.name)
def test_forward_backward_on_its_input_size(info):
    torch.manual_seed(0)
    model = build_model(info.name, num_classes=7)
    side = input_side(info.name, info.dataset)
    logits = model(torch.randn(2, 3, side, side))
    assert logits.shape == (2, 7)
    F.cross_entropy(logits, torch.tensor([0, 6])).backward()
    assert [n for n, p in model.named_parameters() if p.grad is None] == []


# --- build_model / list_models ----------------------------------------------------------------------------


def test_tiny_imagenet_models_run_at_64_with_200_classes():
    x = torch.randn(2, 3, 64, 64)
    for name in ("tiny_ResNet18", "tiny_MobileNetV2", "tiny_ShuffleV2"):
        assert build_model(name)(x).shape == (2, 200)
    assert isinstance(build_model("ShuffleV2", dataset="tiny_imagenet").linear, nn.Linear)
    assert build_model("ResNet18", dataset="tiny_imagenet").linear.out_features == 200
    vgg = build_model("vgg8", num_classes=3).eval()  # the zoo pools after block3 only at 64x64
    sides = [f.shape[-1] for f in extract_features(vgg, x).values() if f.ndim == 4]
    assert sides == [64, 32, 16, 8, 4]
    sides = [f.shape[-1] for f in extract_features(vgg, x[..., :32, :32]).values() if f.ndim == 4]
    assert sides == [32, 16, 8, 4, 4]


def test_unknown_name_suggests_the_closest():
    with pytest.raises(ValueError, match="'resnet32x5' is unknown. Did you mean 'resnet32x4'"):
        build_model("resnet32x5")
    with pytest.raises(ValueError, match="Known names: .*wrn_40_2"):
        build_model("no_such_net")


def test_aliases_build_the_same_layout():
    with torch.device("meta"):
        for alias, name in (("vgg8_bn", "vgg8"), ("vgg13_bn", "vgg13"), ("mobile_half", "MobileNetV2")):
            assert list(build_model(alias).state_dict()) == list(build_model(name).state_dict())


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="num_classes=0"):
        build_model("resnet8", num_classes=0)
    with pytest.raises(ValueError, match="weights='IMAGENET1K_V1'.*load_checkpoint"):
        build_model("resnet8", weights="IMAGENET1K_V1")
    with pytest.raises(ValueError, match="num_classes=100 with weights"):
        build_model("resnet18", num_classes=100, weights="IMAGENET1K_V1")
    with pytest.raises(ValueError, match="imagenet model but dataset='cifar100'"):
        build_model("resnet18", dataset="cifar100")
    with pytest.raises(ValueError, match="dataset='mnist'"):
        list_models("mnist")


def test_imagenet_weights_pass_through_to_torchvision(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # no cached file: torchvision must try to download
    with pytest.raises(AssertionError, match="resnet34-b627a593.pth"):
        build_model("resnet34", weights="IMAGENET1K_V1")


# --- features ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", FEATURE_STAGES)
def test_extract_features_returns_the_documented_stages(name):
    num_stages, width = FEATURE_STAGES[name]
    model = build_model(name, num_classes=5).eval()
    side = 64 if name.startswith("tiny_") or name in ("mobilenet_v1", "resnet18") else 32
    x = torch.randn(2, 3, side, side)
    with torch.no_grad():
        features = extract_features(nn.DataParallel(model) if name == "resnet8x4" else model, x)
        logits = model(x)
    assert list(features) == ["stem"] + [f"stage{i}" for i in range(1, num_stages + 1)] + ["pooled", "logits"]
    assert all(features[k].ndim == 4 for k in list(features)[:-2])
    assert features["pooled"].shape == (2, width)
    torch.testing.assert_close(features["logits"], logits)


def test_extract_features_rejects_foreign_models():
    with pytest.raises(TypeError, match="forward_features"):
        extract_features(nn.Linear(3, 2), torch.randn(1, 3))


# --- checkpoints ------------------------------------------------------------------------------------------


LAYOUTS = {
    "crd": (lambda sd: {"epoch": 240, "model": sd, "accuracy": torch.tensor(72.5),
                        "optimizer": {"state": {}, "param_groups": [{"lr": 0.05}]}},
            {"epoch": 240, "accuracy": 72.5}),
    "state_dict": (lambda sd: {"state_dict": sd, "best_acc": 71.25}, {"best_acc": 71.25}),
    "raw": (lambda sd: sd, {}),
    "ddp": (lambda sd: {"model": {f"module.{k}": v for k, v in sd.items()}, "epoch": 3}, {"epoch": 3}),
    "mdistiller": (lambda sd: {"model": {**{f"module.student.{k}": v for k, v in sd.items()},
                                         **{f"module.teacher.{k}": v + 1 for k, v in sd.items()}},
                               "epoch": 240, "best_acc": 76.5}, {"epoch": 240, "best_acc": 76.5}),
    "old_pytorch": (lambda sd: {"model": {k: v for k, v in sd.items() if "num_batches" not in k}}, {}),
}


@pytest.mark.parametrize("layout", LAYOUTS)
def test_checkpoint_layouts_load_and_reproduce_outputs(layout, trained_resnet8, tmp_path):
    make, metadata = LAYOUTS[layout]
    torch.save(make(trained_resnet8.state_dict()), tmp_path / "ckpt.pth")
    x = torch.randn(2, 3, 32, 32)
    fresh = build_model("resnet8", num_classes=10)
    assert load_checkpoint(fresh, tmp_path / "ckpt.pth") == metadata
    with torch.no_grad():
        torch.testing.assert_close(fresh.eval()(x), trained_resnet8(x))


def test_layout_mismatch_names_the_keys(trained_resnet8, tmp_path):
    torch.save({"model": trained_resnet8.state_dict()}, tmp_path / "r8.pth")
    with pytest.raises(CheckpointError, match=r"missing from the checkpoint \(30\): layer1\.1\.conv1\.weight"):
        load_checkpoint(build_model("resnet14"), tmp_path / "r8.pth")
    with pytest.raises(CheckpointError, match=r"wrong shape \(2\): fc\.weight checkpoint \[10, 64\] vs model "
                                              r"\[100, 64\]"):
        load_checkpoint(build_model("resnet8", num_classes=100), tmp_path / "r8.pth")
    with pytest.raises(CheckpointError, match=r"unexpected in the checkpoint \(\d+\): .*\(\d+ more\)") as info:
        load_checkpoint(build_model("wrn_16_1"), tmp_path / "r8.pth")
    assert "missing from the checkpoint" in str(info.value)


def test_non_strict_loads_what_fits(trained_resnet8, tmp_path):
    torch.save(trained_resnet8.state_dict(), tmp_path / "r8.pth")
    model = build_model("resnet8", num_classes=100)
    with pytest.warns(UserWarning, match="fc.weight"):
        load_checkpoint(model, tmp_path / "r8.pth", strict=False)
    torch.testing.assert_close(model.conv1.weight, trained_resnet8.conv1.weight)


def test_pickled_objects_need_an_explicit_opt_in(trained_resnet8, tmp_path):
    path = tmp_path / "with_object.pth"
    torch.save({"model": trained_resnet8.state_dict(), "lr": fractions.Fraction(1, 20), "epoch": 1}, path)
    with pytest.raises(UntrustedCheckpointError, match=r"fractions\.Fraction.*trust_pickle=True"):
        load_checkpoint(build_model("resnet8", num_classes=10), path)
    assert load_checkpoint(build_model("resnet8", num_classes=10), path, trust_pickle=True) == {"epoch": 1}


def test_crd_training_options_and_numpy_numbers_load_without_trust(trained_resnet8, tmp_path):
    """The one allow-list (checkpoints.allowed_globals): what CRD-style files keep besides tensors is read
    weights-only everywhere, as the teacher download's check reads it."""
    path = tmp_path / "crd_style.pth"
    torch.save({"model": trained_resnet8.state_dict(), "opt": argparse.Namespace(lr=0.05),
                "accuracy": np.float64(71.5), "epoch": 1}, path)
    model = build_model("resnet8", num_classes=10)
    assert load_checkpoint(model, path) == {"accuracy": 71.5, "epoch": 1}
    torch.testing.assert_close(model.conv1.weight, trained_resnet8.conv1.weight)


def test_missing_or_broken_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        load_checkpoint(build_model("resnet8"), tmp_path / "nope.pth")
    (tmp_path / "broken.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError):
        load_checkpoint(build_model("resnet8"), tmp_path / "broken.pth")


# --- teachers ---------------------------------------------------------------------------------------------


def test_teacher_registry_and_paths(monkeypatch, tmp_path):
    assert {n: t.accuracy for n, t in TEACHERS.items()} == {
        "resnet56": 72.34, "resnet110": 74.31, "resnet32x4": 79.42, "wrn_40_2": 75.61, "vgg13": 74.64,
        "ResNet50": 79.34}
    monkeypatch.delenv("LDRLD_TEACHERS", raising=False)
    assert teacher_path("vgg13") == Path("data/teachers/cifar100/vgg13_vanilla/ckpt_epoch_240.pth")
    monkeypatch.setenv("LDRLD_TEACHERS", str(tmp_path))
    assert teacher_path("vgg13") == tmp_path / "vgg13_vanilla/ckpt_epoch_240.pth"
    assert teacher_path("vgg13", root="elsewhere") == Path("elsewhere/vgg13_vanilla/ckpt_epoch_240.pth")
    with pytest.raises(ValueError, match="resnet32x4"):
        teacher_path("resnet32x8")


def test_find_teacher_says_where_to_put_and_get_the_file(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        find_teacher("resnet32x4", root=tmp_path)
    message = str(info.value)
    assert str(tmp_path / "resnet32x4_vanilla/ckpt_epoch_240.pth") in message
    assert "cifar_teachers.tar" in message and "github.com/megvii-research/mdistiller/releases" in message


# --- evaluate ---------------------------------------------------------------------------------------------


def test_evaluate_counts_top1_top5_and_loss():
    logits = torch.tensor([[5.0, 1, 0, 0, 0, 0], [0, 5.0, 4, 3, 2, 1], [0, 1, 2, 3, 4, 5.0]])
    labels = torch.tensor([0, 2, 0])  # right, second guess, last guess
    loader = [(logits[:2], labels[:2]), (logits[2:], labels[2:])]
    model = nn.Identity().train()
    result = evaluate(model, loader, "cpu", progress=False)
    assert result["n"] == 3 and model.training
    assert result["top1"] == pytest.approx(100 / 3) and result["top5"] == pytest.approx(200 / 3)
    assert result["loss"] == pytest.approx(F.cross_entropy(logits, labels).item())
