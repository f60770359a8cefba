"""nbval reads a marker only when a comment line is exactly the marker: anything else is silently compared.

`# NBVAL_IGNORE_OUTPUT  (trained numbers)` looks like a marker but nbval compares that cell's output,
so the suite passes only where the numbers happen to round the same. This test reads every notebook with
nbval's own marker reader and fails on every comment or tag that mentions a marker without being one.
"""
from __future__ import annotations

import re
import warnings
from pathlib import Path

import nbformat
import pytest
from nbval.plugin import comment_markers, find_comment_markers, find_metadata_tags, metadata_tags

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))
LOOKS_LIKE = re.compile(r"NBVAL|PYTEST_VALIDATE", re.IGNORECASE)


def marker_problems(source: str) -> list[str]:
    """Comment lines of `source` that mention a marker but that nbval does not read as one."""
    problems = []
    for line in source.splitlines():
        text = line.strip()
        if not LOOKS_LIKE.search(text):
            continue
        if not text.startswith("#"):
            problems.append(f"{text!r}: a marker must be a comment line of its own")
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            read = list(find_comment_markers(text))
        if not read:
            problems.append(f"{text!r}: nbval ignores this line; write exactly one of "
                            f"{sorted('# ' + m for m in comment_markers)} and explain on the next line")
    return problems


def tag_problems(tags) -> list[str]:
    """Cell tags that mention a marker but are not one of nbval's tags."""
    return [f"tag {t!r} is not one of nbval's tags {sorted(metadata_tags)}" for t in tags
            if LOOKS_LIKE.search(t.replace("-", "_")) and t not in metadata_tags]


def test_the_reader_tells_markers_from_lookalikes():
    assert marker_problems("# NBVAL_IGNORE_OUTPUT\n# trained numbers: they depend on the CPU\nprint(1)") == []
    assert marker_problems("#NBVAL_SKIP") == []
    assert len(marker_problems("# NBVAL_IGNORE_OUTPUT  (trained numbers)")) == 1
    assert len(marker_problems("x = 1  # NBVAL_IGNORE_OUTPUT")) == 1
    assert len(marker_problems("# nbval_ignore_output")) == 1
    assert tag_problems(["nbval-ignore-output", "solution"]) == []
    assert len(tag_problems(["nbval_ignore_output"])) == 1


def test_notebooks_exist():
    assert len(NOTEBOOKS) >= 13


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_marker_is_one_nbval_reads(path):
    nb = nbformat.read(path, as_version=4)
    problems = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        found = marker_problems(cell.source) + tag_problems(cell.metadata.get("tags", []))
        problems += [f"cell {i}: {p}" for p in found]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            comment = dict(find_comment_markers(cell.source))
            tagged = dict(find_metadata_tags(cell.metadata))
        if set(comment) & set(tagged):
            problems.append(f"cell {i}: both a comment marker and a tag set {sorted(set(comment) & set(tagged))}")
    assert not problems, f"{path.name}:\n" + "\n".join(problems)
