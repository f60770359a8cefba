"""Imports flow one way (issue 22): the library never reaches up into the command line. Only `ldrld_mini.cli`
itself and `ldrld_mini/__main__.py` may import `ldrld_mini.cli`; everything a command and a library function
share (the run-folder naming rule `default_run_dir`, the checks, the teacher's resolution) lives below it."""
import ast
from pathlib import Path

ROOT = Path(__file__).parents[1]
PACKAGE = ROOT / "ldrld_mini"
MAY_IMPORT_CLI = {"ldrld_mini/cli.py", "ldrld_mini/__main__.py"}


def module_name(path: Path, root: Path = ROOT) -> str:
    """'ldrld_mini/train/trainer.py' -> 'ldrld_mini.train.trainer' (a package's __init__ -> the package)."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, root: Path = ROOT) -> set[str]:
    """Every module `path` imports, at module level or lazily inside a function, as an absolute dotted name
    (`from .. import cli` -> 'ldrld_mini.cli')."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    name = module_name(path, root)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)  # `from ldrld_mini import cli`
    return found


def cli_importers() -> list[str]:
    """The package's modules (other than the CLI's own) that import ldrld_mini.cli."""
    bad = []
    for path in sorted(PACKAGE.rglob("*.py")):
        where = path.relative_to(ROOT).as_posix()
        if where in MAY_IMPORT_CLI:
            continue
        if any(m == "ldrld_mini.cli" or m.startswith("ldrld_mini.cli.") for m in imported_modules(path)):
            bad.append(where)
    return bad


def test_the_import_reader_sees_every_spelling(tmp_path):
    """The reader resolves absolute, relative, lazy and `from package import module` imports alike."""
    pkg = tmp_path / "ldrld_mini" / "train"
    pkg.mkdir(parents=True)
    spellings = {"a.py": "import ldrld_mini.cli\n", "b.py": "from ldrld_mini.cli import main\n",
                 "c.py": "def f():\n    from ..cli import default_run_dir\n", "d.py": "from .. import cli\n",
                 "e.py": "from ldrld_mini import cli\n", "ok.py": "from ..runfolder import default_run_dir\n"}
    for name, text in spellings.items():
        (pkg / name).write_text(text)
    seen = {name: "ldrld_mini.cli" in imported_modules(pkg / name, tmp_path) for name in spellings}
    assert seen == {"a.py": True, "b.py": True, "c.py": True, "d.py": True, "e.py": True, "ok.py": False}


def test_no_library_module_imports_the_cli():
    assert cli_importers() == [], ("these library modules import ldrld_mini.cli; move what they need below the "
                                   "CLI (e.g. ldrld_mini.runfolder.default_run_dir) and import it from there")
