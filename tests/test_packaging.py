"""What pyproject.toml declares (issue 21): every third-party import of the package is declared (a module-level
one as a dependency, a lazy one at least in an extra), the extras are tidy."""
import ast
import functools
import re
import sys
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
PACKAGE = ROOT / "ldrld_mini"
# what a lazy import needs that its module name does not say
PROVIDED_BY = {"torch.utils.tensorboard": "tensorboard", "IPython": "ipykernel"}


def pyproject() -> dict:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def name_of(requirement: str) -> str:
    """'torch>=2.3' -> 'torch'; names compared as pip does (case, - and _ alike)."""
    return re.split(r"[\s<>=!~;\[]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def third_party_imports() -> list[tuple[str, bool, str]]:
    """(module, at module level?, where) for every import of a module outside the standard library."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        top = {id(node) for node in tree.body}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                if name.split(".")[0] not in sys.stdlib_module_names | {"ldrld_mini"}:
                    found.append((name, id(node) in top, f"{path.relative_to(ROOT)}:{node.lineno}"))
    return found


@functools.lru_cache(maxsize=None)
def installed() -> dict:
    return packages_distributions()


@functools.lru_cache(maxsize=None)
def distribution_of(module: str) -> str:
    for prefix, dist in PROVIDED_BY.items():
        if module == prefix or module.startswith(prefix + "."):
            return dist
    dists = installed().get(module.split(".")[0])
    assert dists, f"{module} is imported but no installed distribution provides it"
    return name_of(dists[0])


def test_every_import_is_declared():
    project = pyproject()["project"]
    core = {name_of(r) for r in project["dependencies"]}
    extras = {name_of(r) for reqs in project["optional-dependencies"].values() for r in reqs}
    missing = [f"{where}: {module} ({distribution_of(module)})" for module, at_top, where in third_party_imports()
               if distribution_of(module) not in (core if at_top else core | extras)]
    assert missing == []
    assert {"pillow", "filelock"} <= core


def test_the_extras_are_tidy():
    declared = pyproject()["project"]["optional-dependencies"]
    extras = {name: {name_of(r) for r in reqs} for name, reqs in declared.items()}
    assert "nbval" in extras["test"] and "nbval" not in extras["notebooks"]  # a test tool
    assert extras["tensorboard"] == {"tensorboard"}
    dev = declared["dev"]
    assert "ldrld-mini[notebooks,test,tensorboard]" in dev and {name_of(r) for r in dev} == {"ldrld-mini", "ruff"}
    assert "-e '.[notebooks,test]'" in (ROOT / "Makefile").read_text()  # what `make test` installs


def test_the_torch_floor_is_stated_once_and_repeated_alike():
    from ldrld_mini.versions import TORCH_FLOOR, TORCHVISION_FLOOR

    deps = pyproject()["project"]["dependencies"]
    assert f"torch>={TORCH_FLOOR}" in deps and f"torchvision>={TORCHVISION_FLOOR}" in deps
    env = (ROOT / "environment.yml").read_text(encoding="utf-8")
    assert f"- torch>={TORCH_FLOOR}\n" in env and f"- torchvision>={TORCHVISION_FLOOR}\n" in env
    readme = (ROOT / "README.md").read_text(encoding="utf-8")  # its Platforms and versions section
    assert f"`torch>={TORCH_FLOOR}` and `torchvision>={TORCHVISION_FLOOR}`" in readme
    docs = "".join(p.read_text(encoding="utf-8") for p in sorted((ROOT / "docs").glob("*.md")))
    floors = re.findall(r"torch(?:vision)?\s*>=\s*[\d.]+", readme + docs + env + str(deps))
    assert set(floors) == {f"torch>={TORCH_FLOOR}", f"torchvision>={TORCHVISION_FLOOR}"}  # no other floor anywhere


def test_below_the_floor_a_run_stops_with_one_error(monkeypatch, capsys, tmp_path):
    import torch

    from ldrld_mini.cli import main
    from ldrld_mini.versions import TorchTooOldError, require_torch

    monkeypatch.setattr(torch, "__version__", "2.3.1+cpu")
    with pytest.raises(TorchTooOldError, match=r"the fast path needs torch >= 2\.4, but this is torch 2\.3\.1"):
        require_torch("2.4", "the fast path")
    code = main(["train", "--recipe", "synthetic", "--model", "resnet8", "--run-dir", str(tmp_path / "run"),
                 "--quiet", "train.device=cpu", "schedule.epochs=1"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert "ldrld-mini needs torch >= 2.4, but this is torch 2.3.1+cpu" in err and 'pip install --upgrade' in err
    assert not (tmp_path / "run").exists()  # stopped before anything was written
    monkeypatch.setattr(torch, "__version__", "2.14.1")
    require_torch("2.4", "the fast path")
