"""Execute the course notebooks in place and strip volatile metadata (run before committing notebooks).

    python tests/notebook_tools.py notebooks/03_pairs.ipynb [more.ipynb ...]   # execute + clean
    python tests/notebook_tools.py --clean-only notebooks/*.ipynb              # only strip metadata

Execution uses the current Python environment's kernel with the notebook folder as working directory,
exactly as `pytest --nbval --nbval-current-env` runs them in `make test`.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import nbformat

KEEP_NOTEBOOK_METADATA = ("kernelspec", "language_info")


def clean(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Renumber execution counts 1..n, drop timing/widget metadata and widget state; keep outputs."""
    nb.metadata = {key: nb.metadata[key] for key in KEEP_NOTEBOOK_METADATA if key in nb.metadata}
    nb.metadata.get("language_info", {}).pop("version", None)
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
    return nb


def execute(path: Path, timeout: int = 600) -> float:
    """Run every cell of `path` in place; returns seconds taken."""
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    start = time.perf_counter()
    NotebookClient(nb, timeout=timeout, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    seconds = time.perf_counter() - start
    nbformat.write(clean(nb), path)
    return seconds


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("notebooks", nargs="+", type=Path)
    parser.add_argument("--clean-only", action="store_true", help="strip metadata without executing")
    args = parser.parse_args(argv)
    os.environ.setdefault("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    for path in args.notebooks:
        if args.clean_only:
            nbformat.write(clean(nbformat.read(path, as_version=4)), path)
            print(f"cleaned {path}")
        else:
            print(f"executed {path} in {execute(path):.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
