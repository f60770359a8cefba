"""Execute the course notebooks in place and strip volatile metadata (run before committing notebooks).

    python tests/notebook_tools.py notebooks/03_pairs.ipynb [more.ipynb ...]   # execute + clean
    python tests/notebook_tools.py --clean-only notebooks/*.ipynb              # only clean (no execution)

Execution uses the current Python environment's kernel with the notebook folder as working directory,
exactly as `pytest --nbval --nbval-current-env` runs them in `make test`.

Cleaning also writes what every notebook of the course shares, from one definition:
- the "Open in Colab" badge in the title cell and the Colab install guard as the first code cell, both
  built from the repository URL in pyproject.toml (`[project.urls] Repository`); the badges of the
  README's course table are rewritten from the same URL (a fork changes the URL there and cleans again);
- solution cells (tag `solution`) collapsed, input and output, as JupyterLab and Colab store it;
- the notebook metadata in the form JupyterLab writes when it opens a notebook with this kernel, so that
  opening one does not mark it modified.
"""
from __future__ import annotations

import argparse
import os
import re
import sys
import time
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
KEEP_NOTEBOOK_METADATA = ("kernelspec", "language_info")
# what ipykernel's kernelspec and kernel_info report; JupyterLab writes them into the notebook when the
# kernel starts, so a notebook that already holds them is not marked modified on open
KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
NBFORMAT_MINOR = 5  # what JupyterLab 4 writes
SOLUTION_TAG = "solution"
# the first line of every solution: a collapsed cell still shows its first line in JupyterLab
SOLUTION_HEADER = "# Solution (collapsed: try the exercise first)"
GUARD_TAG = "colab-install"
BRANCH = "main"
BADGE_IMAGE = "https://colab.research.google.com/assets/colab-badge.svg"
GIT_URL_RE = re.compile(r"(git\+|git clone )https://github\.com/[\w.-]+/[\w.-]+?\.git")
BADGE_RE = re.compile(r"\[!\[Open In Colab\]\([^)]*\)\]\([^)]*\)")


def repository_url(pyproject: Path = ROOT / "pyproject.toml") -> str:
    """The repository's address, `[project.urls] Repository` in pyproject.toml (no trailing slash)."""
    text = pyproject.read_text(encoding="utf-8")
    try:
        import tomllib
        url = tomllib.loads(text)["project"]["urls"]["Repository"]
    except ModuleNotFoundError:  # Python 3.10: a plain read of the one line
        url = re.search(r'^Repository\s*=\s*"([^"]+)"', text, re.M).group(1)
    return url.rstrip("/").removesuffix(".git")


def colab_url(notebook: str | Path, url: str | None = None) -> str:
    """The Colab address that opens `notebooks/<name>` of the repository's main branch."""
    url = url or repository_url()
    github = url.removeprefix("https://github.com/")
    return f"https://colab.research.google.com/github/{github}/blob/{BRANCH}/notebooks/{Path(notebook).name}"


def colab_badge(notebook: str | Path, url: str | None = None) -> str:
    """Markdown of the "Open in Colab" badge for `notebook`."""
    return f"[![Open In Colab]({BADGE_IMAGE})]({colab_url(notebook, url)})"


def guard_source(url: str | None = None) -> str:
    """The first code cell of every notebook: install the package on Colab, and only there."""
    url = url or repository_url()
    return f'''\
# On Colab only: install the course package when it is missing (a no-op anywhere else).
# Colab's own torch and torchvision are kept (--no-deps); only what Colab lacks is added.
import importlib.util
import subprocess
import sys

if "google.colab" in sys.modules and importlib.util.find_spec("ldrld_mini") is None:
    REPOSITORY = "{url}"
    missing = [pkg for pkg in ("einops", "ipywidgets") if importlib.util.find_spec(pkg) is None]
    pip = [sys.executable, "-m", "pip", "install", "--quiet"]
    subprocess.run(pip + ["--no-deps", f"git+{{REPOSITORY}}.git"], check=True)
    if missing:
        subprocess.run(pip + missing, check=True)
    importlib.invalidate_caches()'''


def add_colab(nb: nbformat.NotebookNode, name: str, url: str | None = None) -> nbformat.NotebookNode:
    """Write the badge into the title cell and the install guard as the first code cell (idempotent)."""
    url = url or repository_url()
    title = next(cell for cell in nb.cells if cell.cell_type == "markdown")
    badge = colab_badge(name, url)
    if BADGE_RE.search(title.source):
        title.source = BADGE_RE.sub(lambda _: badge, title.source)
    else:
        title.source = title.source.rstrip("\n") + "\n\n" + badge
    guards = [cell for cell in nb.cells if GUARD_TAG in cell.metadata.get("tags", [])]
    if guards:
        guard = guards[0]
        guard.source = guard_source(url)
    else:
        guard = nbformat.v4.new_code_cell(guard_source(url), metadata={"tags": [GUARD_TAG]})
        first_code = next(i for i, cell in enumerate(nb.cells) if cell.cell_type == "code")
        nb.cells.insert(first_code, guard)
    first_code = next(cell for cell in nb.cells if cell.cell_type == "code")
    if first_code is not guard:
        nb.cells.remove(guard)
        nb.cells.insert(nb.cells.index(first_code), guard)
    return nb


def hide_solutions(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Collapse every `solution` cell, input and output (`collapsed` is the older key JupyterLab also writes),
    under a first line that gives nothing away (the one line a collapsed cell still shows)."""
    for cell in nb.cells:
        if cell.cell_type == "code" and SOLUTION_TAG in cell.metadata.get("tags", []):
            if not cell.source.startswith(SOLUTION_HEADER):
                cell.source = SOLUTION_HEADER + "\n" + cell.source
            cell.metadata["collapsed"] = True
            cell.metadata.setdefault("jupyter", {}).update(source_hidden=True, outputs_hidden=True)
    return nb


def clean(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Renumber execution counts 1..n, drop timing/widget metadata and widget state; keep outputs."""
    nb.metadata = {key: nb.metadata[key] for key in KEEP_NOTEBOOK_METADATA if key in nb.metadata}
    nb.metadata["kernelspec"] = dict(KERNELSPEC)
    nb.nbformat, nb.nbformat_minor = 4, NBFORMAT_MINOR
    count = 0
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
        cell.metadata.pop("ExecuteTime", None)
        if cell.cell_type == "code":
            count += 1  # numbered 1..n: stable diffs, and nbval skips cells whose count is None
            cell.execution_count = count
            for output in cell.outputs:
                if "execution_count" in output:
                    output.execution_count = count
                output.get("data", {}).pop("application/vnd.jupyter.widget-view+json", None)
    return hide_solutions(nb)


def prepare(nb: nbformat.NotebookNode, path: Path, url: str | None = None) -> nbformat.NotebookNode:
    """Everything but execution: the Colab badge and guard, then `clean`."""
    return clean(add_colab(nb, path.name, url))


def update_readme(readme: Path = ROOT / "README.md", url: str | None = None) -> bool:
    """Rewrite the README's Colab badges and `git+URL.git` / `git clone URL.git` lines; True if it changed."""
    url = url or repository_url()
    text = readme.read_text(encoding="utf-8")
    pattern = re.compile(r"\[!\[Open In Colab\]\([^)]*\)\]\([^)]*/notebooks/([\w.-]+\.ipynb)\)")
    new = pattern.sub(lambda m: colab_badge(m.group(1), url), text)
    new = GIT_URL_RE.sub(lambda m: f"{m.group(1)}{url}.git", new)  # the install lines of the Install section
    if new != text:
        readme.write_text(new, encoding="utf-8")
    return new != text


def execute(path: Path, timeout: int = 1800) -> float:
    """Run every cell of `path` in place; returns seconds taken."""
    from nbclient import NotebookClient

    nb = add_colab(nbformat.read(path, as_version=4), path.name)
    nb.metadata["kernelspec"] = dict(KERNELSPEC)
    start = time.perf_counter()
    NotebookClient(nb, timeout=timeout, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    seconds = time.perf_counter() - start
    nbformat.write(clean(nb), path)
    return seconds


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("notebooks", nargs="+", type=Path)
    parser.add_argument("--clean-only", action="store_true",
                        help="badge, guard, hidden solutions and metadata, without executing")
    args = parser.parse_args(argv)
    os.environ.setdefault("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    for path in args.notebooks:
        if args.clean_only:
            nbformat.write(prepare(nbformat.read(path, as_version=4), path), path)
            print(f"cleaned {path}")
        else:
            print(f"executed {path} in {execute(path):.1f} s", flush=True)
    if update_readme():
        print("updated the Colab badges in README.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
