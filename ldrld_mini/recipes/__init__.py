"""The papers' hyper-parameters as data (one YAML file per dataset), resolved into a frozen `Config`.

    cfg = load_config("cifar100", teacher="resnet32x4", student="resnet8x4", method="ldrld",
                      overrides=["loss.alpha=8", "epochs=2", "data.root=/data/cifar"])

Resolution order: recipe defaults -> method section -> pair's per-method values (e.g. DKD's beta) ->
student lr rule (0.01 for MobileNetV2 / ShuffleV1 / ShuffleV2 on CIFAR-100) -> `overrides` -> `**kw`.
"""
from __future__ import annotations

import copy
import functools
import textwrap
from pathlib import Path
from typing import Any, Iterable

import yaml

from .config import AMP_MODES, METHODS, Config, DataConfig, ModelConfig, OptimConfig, ScheduleConfig, TrainConfig
from .loss_options import ENGINE_LOSS_KEYS, LOSS_OPTIONS, loss_option_names

__all__ = [
    "Config", "DataConfig", "ModelConfig", "OptimConfig", "ScheduleConfig", "TrainConfig",
    "METHODS", "AMP_MODES", "RECIPES", "load_config", "load_recipe", "list_pairs", "list_recipes",
    "published", "published_refs", "describe_config", "apply_overrides", "parse_override", "recipe_path", "check_recipe", "ENGINE_LOSS_KEYS",
    "LOSS_OPTIONS", "default_name",
]

RECIPES = ("cifar100", "tiny_imagenet", "imagenet", "synthetic")
ALIASES = {  # short override keys -> dotted keys
    "epochs": "schedule.epochs", "lr": "optim.lr", "batch_size": "data.batch_size",
    "seed": "train.seed", "root": "data.root", "amp": "train.amp", "device": "train.device",
    "warmup_epochs": "schedule.warmup_epochs", "milestones": "schedule.milestones",
}
PUBLISHED_KEYS = ("teacher", "student", "kd", "dkd", "ldrld")


def check_recipe(dataset: str, option: str = "dataset") -> None:
    """ValueError naming `option` (the CLI: --recipe) unless `dataset` has a recipe."""
    if dataset not in RECIPES:
        raise ValueError(f"{option} {dataset!r} has no recipe; use one of {list(RECIPES)}.")


def recipe_path(dataset: str) -> Path:
    """Path of the YAML recipe of `dataset`."""
    check_recipe(dataset)
    return Path(__file__).with_name(f"{dataset}.yaml")


@functools.lru_cache(maxsize=None)
def _read_recipe(dataset: str) -> dict:
    return yaml.safe_load(recipe_path(dataset).read_text())


def load_recipe(dataset: str) -> dict:
    """The raw recipe (a deep copy of the YAML data, `source` texts included)."""
    return copy.deepcopy(_read_recipe(dataset))


def list_recipes() -> list[str]:
    """Names of the datasets that have a recipe."""
    return list(RECIPES)


def list_pairs(dataset: str) -> list[tuple[str, str]]:
    """The (teacher, student) pairs of the recipe, in the order of the paper's tables."""
    return [(p["teacher"], p["student"]) for p in _read_recipe(dataset)["pairs"]]


def published(dataset: str, teacher: str, student: str) -> dict:
    """Published top-1 (%) of a pair: keys teacher, student, kd, dkd, ldrld (None: unknown) and source; `from`
    maps a number taken from another source than the paper (or the CRD benchmark it relays) to that source's key
    in `published_refs(dataset)`, `other` a number to {source: its differing value}."""
    pair = _find_pair(_read_recipe(dataset), teacher, student)
    if pair is None:
        return {**{k: None for k in PUBLISHED_KEYS}, "source": "not a pair of the recipe", "from": {}, "other": {}}
    numbers = pair.get("published") or {}
    return {**{k: numbers.get(k) for k in PUBLISHED_KEYS}, "source": pair.get("published_source", ""),
            "from": dict(pair.get("published_from") or {}), "other": copy.deepcopy(pair.get("published_other") or {})}


def published_refs(dataset: str) -> dict[str, str]:
    """The citation of each source a recipe's `published_from` / `published_other` names ({} if none)."""
    return dict(_read_recipe(dataset).get("published_refs") or {})


def describe_config(cfg: Config, width: int = 110) -> str:
    """Each section of `cfg` (data, model, optim, schedule, loss): its resolved values, then its recipe's source."""
    recipe, resolved = _read_recipe(cfg.dataset), cfg.to_dict()
    sources = {section: recipe["defaults"][section]["source"] for section in ("data", "model", "optim", "schedule")}
    sources["loss"] = recipe["methods"][cfg.method]["source"]
    lines = []
    for section, source in sources.items():
        values = {k: v for k, v in resolved[section].items() if k not in ("options", "teacher", "student")}
        lines.append(f"{section:9s} {values}")
        lines.append(textwrap.fill(source, width, initial_indent=" " * 10 + "source: ", subsequent_indent=" " * 18))
    return "\n".join(lines)


def load_config(dataset: str, *, teacher: str | None = None, student: str | None = None,
                method: str = "ldrld", overrides: Iterable[str] = (), **kw: Any) -> Config:
    """Resolve the recipe of `dataset` for one pair and method, then apply `key=value` overrides.

    `**kw` are overrides given as Python values, `__` standing for a dot: `loss__alpha=8`, `epochs=2`.
    """
    recipe = _read_recipe(dataset)
    if method not in recipe["methods"]:
        raise ValueError(f"method={method!r} has no recipe entry; use one of {list(recipe['methods'])}.")
    teacher, student = _resolve_pair(recipe, teacher, student, method)
    d = _base_dict(recipe, dataset, method, teacher, student)
    if isinstance(overrides, str):
        overrides = [overrides]
    pairs = [parse_override(o) for o in overrides]
    pairs += [(k.replace("__", "."), v) for k, v in kw.items()]
    name_given = any(ALIASES.get(k, k) == "name" for k, _ in pairs)
    d = apply_overrides(d, pairs)
    if not name_given:
        d["name"] = default_name(d)
    return Config.from_dict(d)


def default_name(d: dict) -> str:
    """`<dataset>_<method>_<teacher>_<student>` (vanilla: `<dataset>_vanilla_<student>`)."""
    parts = [d["dataset"], d["method"], d["model"].get("teacher"), d["model"]["student"]]
    if d["method"] == "vanilla":
        parts.pop(2)
    return "_".join(str(p) for p in parts if p)


# ----------------------------------------------------------------------------------------------------------
# resolution

def _find_pair(recipe: dict, teacher: str | None, student: str | None) -> dict | None:
    for pair in recipe["pairs"]:
        if pair["teacher"] == teacher and pair["student"] == student:
            return pair
    return None


def _resolve_pair(recipe: dict, teacher, student, method) -> tuple[str | None, str]:
    """Fill a missing teacher or student from the recipe's pairs (vanilla needs no teacher)."""
    pairs = recipe["pairs"]
    if student is None and teacher is None:
        teacher, student = recipe["default_pair"]
        return (None if method == "vanilla" else teacher), student
    if student is None:
        match = [p["student"] for p in pairs if p["teacher"] == teacher]
        if not match:
            raise ValueError(f"teacher={teacher!r} is in no pair of the {recipe['dataset']} recipe; pass "
                             f"student= as well, or use one of the pairs {list_pairs(recipe['dataset'])}.")
        return teacher, match[0]
    if teacher is None and method != "vanilla":
        match = [p["teacher"] for p in pairs if p["student"] == student]
        if not match:
            raise ValueError(f"student={student!r} is in no pair of the {recipe['dataset']} recipe; pass "
                             f"teacher= as well, or use one of the pairs {list_pairs(recipe['dataset'])}.")
        return match[0], student
    return teacher, student


def _strip_sources(section: dict) -> dict:
    return {k: copy.deepcopy(v) for k, v in (section or {}).items() if k != "source"}


def _base_dict(recipe: dict, dataset: str, method: str, teacher, student) -> dict:
    """Recipe defaults + method section + pair values + lr rule, as a nested dict."""
    d = {s: _strip_sources(recipe["defaults"].get(s)) for s in ("data", "model", "optim", "schedule", "train")}
    m = recipe["methods"][method]
    for section in ("data", "optim", "schedule", "train"):
        d[section].update(_strip_sources(m.get(section)))
    loss = _strip_sources(m.get("loss"))
    pair = _find_pair(recipe, teacher, student)
    if pair is not None:
        loss.update(pair.get(method) or {})
    for rule in recipe.get("lr_rules") or []:
        if student in rule["students"]:
            d["optim"]["lr"] = rule["lr"]
    template = d["model"].get("teacher_checkpoint")
    d["model"].update(teacher=teacher, student=student,
                      teacher_checkpoint=template.format(teacher=teacher) if (template and teacher) else None)
    return {"name": "", "dataset": dataset, "method": method, **d, "loss": loss}


# ----------------------------------------------------------------------------------------------------------
# overrides

def parse_override(text: str) -> tuple[str, Any]:
    """`"loss.alpha=8"` -> `("loss.alpha", 8)`; the value is parsed with yaml.safe_load."""
    if not isinstance(text, str) or "=" not in text:
        raise ValueError(f"override {text!r} is not of the form key=value, e.g. 'loss.alpha=8' or 'epochs=2'.")
    key, value = text.split("=", 1)
    return key.strip(), yaml.safe_load(value) if value.strip() else None


def apply_overrides(d: dict, pairs: Iterable[tuple[str, Any]]) -> dict:
    """A copy of the nested config dict `d` with each `(dotted key, value)` set (type-checked)."""
    d = copy.deepcopy(d)
    for key, value in pairs:
        key = ALIASES.get(key, key)
        valid = valid_keys(d)
        if key not in valid and not key.startswith("data.options."):
            raise ValueError(f"unknown override key {key!r}; valid keys are {sorted(valid)} "
                             f"(plus data.options.<name>, and the aliases {sorted(ALIASES)}).")
        *path, leaf = key.split(".")
        node = d
        for p in path:
            node = node.setdefault(p, {})
        node[leaf] = _coerce(key, node.get(leaf), value)
    return d


def valid_keys(d: dict) -> set[str]:
    """Every dotted key an override may set for the config dict `d`."""
    keys = {"name"}
    for section, klass in (("data", DataConfig), ("model", ModelConfig), ("optim", OptimConfig),
                           ("schedule", ScheduleConfig), ("train", TrainConfig)):
        keys |= {f"{section}.{f}" for f in klass.__dataclass_fields__}
    keys |= {f"data.options.{k}" for k in d["data"].get("options") or {}}
    loss_keys = set(d.get("loss") or {}) | loss_option_names(d["method"])  # declared: no loss class imported
    return keys | {f"loss.{k}" for k in loss_keys}


def _coerce(key: str, old: Any, new: Any) -> Any:
    """`new` converted to the type of the current value `old`, or a ValueError naming the key."""
    def bad(kind):
        return ValueError(f"override {key}={new!r} must be {kind} (current value {old!r}).")

    if old is None or new is None:
        return new
    if isinstance(old, bool):
        if not isinstance(new, bool):
            raise bad("true or false")
        return new
    if isinstance(old, int):
        if isinstance(new, bool) or not (isinstance(new, int) or (isinstance(new, float) and new.is_integer())):
            raise bad("an integer")
        return int(new)
    if isinstance(old, float):
        if isinstance(new, bool):
            raise bad("a number")
        try:
            return float(new)
        except (TypeError, ValueError):
            raise bad("a number") from None
    if isinstance(old, (list, tuple)):
        if isinstance(new, str):
            new = [yaml.safe_load(x) for x in new.split(",") if x.strip()]
        new = new if isinstance(new, (list, tuple)) else [new]
        if any(isinstance(x, bool) or not isinstance(x, int) for x in new):
            raise bad("a list of integers, e.g. [150,180,210]")
        return list(new)
    if isinstance(old, str) and isinstance(new, (int, float)) and not isinstance(new, bool):
        return str(new)
    if isinstance(old, dict) and not isinstance(new, dict):
        raise bad("a mapping, e.g. {a: 1}")
    return new
