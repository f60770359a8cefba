"""The course as a learner meets it: Colab badges and install cells from one URL, hidden solutions, clean
metadata, the notebooks' folder and walkthrough helpers, and the playground's local term."""
import argparse
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
import notebook_tools as tools  # noqa: E402

from ldrld_mini import notebook  # noqa: E402
from ldrld_mini.cli import build_parser  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
URL = tools.repository_url()
REAL_FIND_SPEC = importlib.util.find_spec


def read(path):
    return nbformat.read(path, as_version=4)


def test_the_url_is_defined_once_in_pyproject():
    assert URL == "https://github.com/ldrld-mini/ldrld-mini"  # change it in pyproject.toml, then clean again
    assert tools.colab_url("03_pairs.ipynb") == (
        "https://colab.research.google.com/github/ldrld-mini/ldrld-mini/blob/main/notebooks/03_pairs.ipynb")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_badge_and_guard_follow_the_url(path):
    nb = read(path)
    title = next(c for c in nb.cells if c.cell_type == "markdown")
    assert tools.colab_badge(path.name) in title.source
    assert title.source.lstrip().startswith("# ")
    first_code = next(c for c in nb.cells if c.cell_type == "code")
    assert tools.GUARD_TAG in first_code.metadata.get("tags", [])
    assert first_code.source == tools.guard_source(URL)
    assert not first_code.outputs  # a no-op off Colab


def test_readme_badges_cover_every_notebook():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    badges = re.findall(r"\[!\[Open In Colab\]\([^)]*\)\]\(([^)]*)\)", text)
    assert sorted(badges) == sorted(tools.colab_url(p.name) for p in NOTEBOOKS)
    assert "../shared" not in text and "METHOD.md" not in text
    assert set(tools.GIT_URL_RE.findall(text)) == {"git+", "git clone "}
    assert all(m.group(0).endswith(f"{URL}.git") for m in tools.GIT_URL_RE.finditer(text))
    for page in (ROOT / "docs").glob("*.md"):  # update_readme rewrites README.md only: no URL to miss elsewhere
        other = page.read_text(encoding="utf-8")
        assert not tools.GIT_URL_RE.search(other) and "colab.research.google.com" not in other, page.name
        assert URL not in other, f"{page.name}: the repository's address belongs in README.md and pyproject.toml"



PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]  # the front page and its reference pages
FENCE_RE = re.compile(r"^```.*?^```", re.S | re.M)
LINK_RE = re.compile(r"\]\(([^)\s]+)\)")
COMMAND_RE = re.compile(r"(?:ldrld-mini|-m ldrld_mini)\s+([a-z][\w-]*)")


def subcommands() -> dict[str, argparse.ArgumentParser]:
    """Name -> parser of every `ldrld-mini` subcommand, read from the CLI itself."""
    return next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)).choices


def anchors(markdown: str) -> set[str]:
    """GitHub's anchors for the headings of a Markdown text: lower case, punctuation dropped, spaces to '-'."""
    heads = re.findall(r"^#+\s+(.*)$", FENCE_RE.sub("", markdown), re.M)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in heads}


def relative_links(markdown: str) -> list[str]:
    return [t for t in LINK_RE.findall(FENCE_RE.sub("", markdown)) if not re.match(r"[a-z][\w+.-]*:", t)]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_relative_link_of_the_readme_and_docs_resolves(page):
    text = page.read_text(encoding="utf-8")
    assert "../shared" not in text and "METHOD.md" not in text
    for link in relative_links(text):
        path, _, anchor = link.partition("#")
        target = (page.parent / path) if path else page
        assert target.exists(), f"{page.relative_to(ROOT)}: {link} points at nothing"
        assert ROOT in target.resolve().parents, f"{page.relative_to(ROOT)}: {link} leaves the repository"
        if anchor and target.suffix == ".md":
            assert anchor in anchors(target.read_text(encoding="utf-8")), f"{page.relative_to(ROOT)}: {link}"


def test_the_link_checker_catches_a_dead_link_and_anchor():
    assert relative_links("[a](docs/x.md#y) [b](https://e.org) ![c](img.png)\n```\n[d](in/code.md)\n```") == [
        "docs/x.md#y", "img.png"]
    assert anchors("# The command line\n## Data and teachers\n```\n# not a heading\n```") == {
        "the-command-line", "data-and-teachers"}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_command_the_readme_and_docs_name_exists(page):
    named = set(COMMAND_RE.findall(page.read_text(encoding="utf-8")))
    assert named <= set(subcommands()), f"{page.relative_to(ROOT)} names {sorted(named - set(subcommands()))}"
    assert COMMAND_RE.findall("`ldrld-mini distil --x` and python -m ldrld_mini train") == ["distil", "train"]


def command_lines(markdown: str) -> list[tuple[str, list[str]]]:
    """(subcommand, its --options) of every `ldrld-mini SUB ...` in a code block or an inline code span."""
    blocks = re.findall(r"^```[^\n]*\n(.*?)^```", markdown, re.S | re.M)
    spans = re.findall(r"`([^`\n]+)`", FENCE_RE.sub("", markdown))
    lines = [line for block in blocks for line in block.replace("\\\n", " ").split("\n")] + spans
    found = []
    for line in lines:
        m = COMMAND_RE.search(line.split(" #")[0])
        if m:
            rest = line.split(" #")[0][m.end():].split(">")[0]
            found.append((m.group(1), re.findall(r"(?<!\S)(--?[a-zA-Z][\w-]*)", rest)))
    return found


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_option_a_documented_command_uses_exists(page):
    for sub, flags in command_lines(page.read_text(encoding="utf-8")):
        known = {o for a in subcommands()[sub]._actions for o in a.option_strings}
        assert set(flags) <= known, f"{page.relative_to(ROOT)}: ldrld-mini {sub} has no {sorted(set(flags) - known)}"
    sample = "```bash\nldrld-mini eval --model m \\\n  --chekpoint x  # --not-this\n```\n`ldrld-mini demo --quick`"
    assert command_lines(sample) == [("eval", ["--model", "--chekpoint"]), ("demo", ["--quick"])]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name[:2])
def test_every_command_a_notebook_prints_exists_with_its_options(path):
    """The `ldrld-mini ...` lines of a notebook's text (its commands for a GPU) name real subcommands and options."""
    text = "\n\n".join(cell.source for cell in read(path).cells if cell.cell_type == "markdown")
    for sub, flags in command_lines(text):
        assert sub in subcommands(), f"{path.name}: ldrld-mini {sub} is not a command"
        known = {o for a in subcommands()[sub]._actions for o in a.option_strings}
        assert set(flags) <= known, f"{path.name}: ldrld-mini {sub} has no {sorted(set(flags) - known)}"


def test_the_loss_options_table_matches_ldrld_loss():
    import inspect

    from ldrld_mini.losses import ldrld_loss

    text = (ROOT / "docs" / "losses.md").read_text(encoding="utf-8")
    table = text[text.index("| option | default |"):].split("\n\n")[0].splitlines()[2:]
    documented = {}
    for row in table:
        names, defaults = (re.findall(r"`?([^`,]+)`?(?:, |$)", cell.strip()) for cell in row.split("|")[1:3])
        assert len(names) == len(defaults), row
        documented.update(zip(names, defaults))
    params = inspect.signature(ldrld_loss).parameters
    options = {n: p.default for n, p in params.items() if p.kind is inspect.Parameter.KEYWORD_ONLY}
    assert set(documented) == set(options)
    assert {n: repr(v).replace("'", '"') for n, v in options.items()} == documented

def test_the_readme_links_every_docs_page():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert {p.name for p in (ROOT / "docs").glob("*.md")} <= {Path(link).name for link in relative_links(text)}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_the_course_table_states_the_time_the_notebook_states(path):
    """A notebook that states its time at the top (`*Time: about N minutes ...*`) has that time in the README's
    course table; one that states none runs in about a minute in its fast default."""
    row = next(line for line in (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
               if line.startswith(f"| [{path.name[:2]} ·"))
    time_cell = row.rstrip(" |").rsplit(" | ", 1)[1]
    header = "\n".join(c.source for c in read(path).cells[:2] if c.cell_type == "markdown")
    stated = re.search(r"^\*Time: (.*)\*$", header, re.M)
    minutes = re.findall(r"about (\d+) minutes?", stated.group(1)) if stated else ["1"]
    assert re.findall(r"~(\d+) min", time_cell)[:len(minutes)] == minutes, (path.name, time_cell)

def run_guard(monkeypatch, *, colab: bool, installed: bool, missing=("einops",)):
    """Execute the guard cell with Colab and the package faked; returns the pip command lines it ran."""
    calls = []
    monkeypatch.setattr(subprocess, "run", lambda cmd, check: calls.append(cmd))
    real_find_spec = REAL_FIND_SPEC

    def find_spec(name, *args):
        if name == "ldrld_mini":
            return real_find_spec(name) if installed else None
        if name in missing:
            return None
        return real_find_spec(name, *args) or object()

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    if colab:
        monkeypatch.setitem(sys.modules, "google.colab", type(sys)("google.colab"))
    else:
        monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    exec(tools.guard_source(URL), {})
    return calls


def test_guard_installs_on_colab_without_touching_torch(monkeypatch):
    calls = run_guard(monkeypatch, colab=True, installed=False, missing=("einops", "ipywidgets"))
    assert calls[0][-2:] == ["--no-deps", f"git+{URL}.git"]
    assert calls[1][-2:] == ["einops", "ipywidgets"]
    assert all(arg not in ("torch", "torchvision") for cmd in calls for arg in cmd)
    assert run_guard(monkeypatch, colab=True, installed=False, missing=())[1:] == []  # nothing else missing


def test_guard_does_nothing_off_colab_or_when_installed(monkeypatch):
    assert run_guard(monkeypatch, colab=False, installed=False) == []
    assert run_guard(monkeypatch, colab=True, installed=True) == []


def test_add_colab_is_idempotent_and_follows_a_fork():
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# 99 · x\n*y*"),
                                         nbformat.v4.new_code_cell("import os")])
    once = tools.add_colab(nb, "99_x.ipynb", URL)
    twice = tools.add_colab(once, "99_x.ipynb", URL)
    assert len(twice.cells) == 3 and twice.cells[1].source == tools.guard_source(URL)
    fork = tools.add_colab(twice, "99_x.ipynb", "https://github.com/someone/fork")
    assert "github/someone/fork/blob/main/notebooks/99_x.ipynb" in fork.cells[0].source
    assert fork.cells[0].source.count("Open In Colab") == 1 and "someone/fork" in fork.cells[1].source


def exercise_code_cells(nb):
    """Code cells between '## Exercises' (or a Solutions section) and '## References'."""
    inside, cells = False, []
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            if re.search(r"^## (Exercises|Solutions)", cell.source, re.M):
                inside = True
            if re.search(r"^## References", cell.source, re.M):
                inside = False
        elif inside:
            cells.append(cell)
    return cells


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_solution_is_hidden(path):
    nb = read(path)
    solutions = [c for c in nb.cells if tools.SOLUTION_TAG in c.metadata.get("tags", [])]
    assert solutions, "every notebook ends with exercises and their solutions"
    for cell in exercise_code_cells(nb):
        assert tools.SOLUTION_TAG in cell.metadata.get("tags", []), cell.source[:80]
    for cell in solutions:
        assert cell.metadata["jupyter"] == {"source_hidden": True, "outputs_hidden": True}, cell.source[:80]
        assert cell.metadata["collapsed"] is True
        assert cell.source.split("\n")[0] == tools.SOLUTION_HEADER  # what JupyterLab shows of a collapsed cell


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_notebooks_are_clean(path):
    """What the tool writes is what JupyterLab writes on open: no metadata churn, no re-numbering."""
    nb = read(path)
    assert nb.nbformat == 4 and nb.nbformat_minor == tools.NBFORMAT_MINOR
    assert nb.metadata["kernelspec"] == tools.KERNELSPEC
    assert set(nb.metadata) <= set(tools.KEEP_NOTEBOOK_METADATA)
    assert tools.prepare(read(path), path) == nb


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_figures_show_whatever_the_shell_backend_is(path):
    """A kernel started with MPLBACKEND=Agg (CI, many servers) shows no figure unless the notebook asks for the
    inline backend before its first figure: the stored image output would then be missing."""
    nb = read(path)
    code = [c for c in nb.cells if c.cell_type == "code"]
    first_figure = next((i for i, c in enumerate(code)
                         if any("image/png" in o.get("data", {}) for o in c.get("outputs", []))), None)
    if first_figure is None:
        return
    assert any(re.search(r"^%matplotlib inline$", c.source, re.M) for c in code[:first_figure + 1]), \
        f"{path.name}: add `%matplotlib inline` to the imports cell (before code cell {first_figure})"


def test_clean_keeps_the_hidden_state_and_drops_volatile_metadata():
    cell = nbformat.v4.new_code_cell("x = 1", metadata={
        "tags": ["solution"], "jupyter": {"source_hidden": True}, "execution": {"iopub.status.busy": "t"}})
    nb = tools.clean(nbformat.v4.new_notebook(cells=[cell], metadata={"widgets": {}}))
    assert nb.cells[0].source == tools.SOLUTION_HEADER + "\nx = 1"
    assert nb.cells[0].metadata == {"tags": ["solution"], "collapsed": True,
                                    "jupyter": {"source_hidden": True, "outputs_hidden": True}}
    assert "widgets" not in nb.metadata and nb.cells[0].execution_count == 1


def test_no_file_cites_a_method_file_outside_the_repository():
    for path in [*ROOT.glob("ldrld_mini/**/*.py"), *ROOT.glob("ldrld_mini/recipes/*.yaml"), *NOTEBOOKS,
                 ROOT / "README.md", *ROOT.glob("docs/*.md")]:
        text = path.read_text(encoding="utf-8")
        assert "METHOD.md" not in text and "../shared" not in text, path
    assert (ROOT / "docs" / "method.md").is_file()


def test_make_lab_allows_root_only_as_root():
    text = (ROOT / "Makefile").read_text()
    lab = text[text.index("\nlab:"):text.index("\nbench:")]
    assert 'if [ "$$(id -u)" = 0 ]' in lab and "--allow-root" in lab and "running as root" in lab
    assert lab.count("jupyter lab") == 2


# ---- ldrld_mini.notebook: where things go, and the walkthrough of notebooks 10-12

def test_course_folders_local_colab_and_override(tmp_path):
    assert notebook.on_colab({"google.colab": object()}) and not notebook.on_colab({})
    local = notebook.course_folders(colab=False, env={}, cwd=tmp_path / "notebooks")
    assert (local.data, local.runs) == (tmp_path / "data", tmp_path / "runs")
    colab = notebook.course_folders(colab=True, env={})
    assert (colab.data, colab.runs, colab.teachers) == (
        Path("/content/data"), Path("/content/runs"), Path("/content/data/teachers/cifar100"))
    assert notebook.course_folders(colab=True, env={"LDRLD_DATA": "/mnt/d"}).data == Path("/mnt/d")


def parse_commands(walk):
    """Every command the walkthrough prints parses with the real CLI and means the same run."""
    parsed = []
    for line in walk.commands():
        args = line.split()
        assert args[0] == "ldrld-mini"
        parsed.append(build_parser().parse_args(args[1:]))
    return parsed


def test_fast_walkthrough_is_the_standin(tmp_path):
    walk = notebook.cifar100_walkthrough(True, standin=tmp_path, teacher_file=tmp_path / "t.pth")
    assert walk.pair == ("resnet56", "resnet20") and walk.methods == ("vanilla", "ldrld") and not walk.downloads
    assert f"data.root={tmp_path / 'cifar100'}" in walk.overrides and "schedule.epochs=2" in walk.overrides
    cfg = walk.config("ldrld")
    assert cfg.schedule.epochs == 2 and cfg.train.device == "cpu"
    vanilla, ldrld = parse_commands(walk)
    assert vanilla.command == "train" and vanilla.model == "resnet20"
    assert (ldrld.command, ldrld.teacher, ldrld.method) == ("distill", "resnet56", "ldrld")
    assert Path(ldrld.run_dir) == walk.run_dir("ldrld") == tmp_path / "runs/cifar100/resnet56-resnet20/ldrld/seed0"
    assert ldrld.overrides == list(walk.overrides)
    with pytest.raises(ValueError, match="standin="):
        notebook.cifar100_walkthrough(True)


def test_full_walkthrough_local_and_colab(tmp_path):
    folders = notebook.CourseFolders(tmp_path / "data", tmp_path / "runs")
    local = notebook.cifar100_walkthrough(False, colab=False, env={}, folders=folders)
    assert local.pair == ("resnet32x4", "resnet8x4") and local.methods == ("vanilla", "kd", "dkd", "ldrld")
    assert local.runs_root == folders.runs and local.config("ldrld").schedule.epochs == 240
    teacher = tmp_path / "data/teachers/cifar100/resnet32x4_vanilla/ckpt_epoch_240.pth"
    assert local.config("kd").model.teacher_checkpoint == str(teacher)
    assert local.downloads == (f"ldrld-mini prepare-data cifar100 --root {folders.data} --download",
                               f"ldrld-mini teachers --root {folders.teachers} --fetch")
    colab = notebook.cifar100_walkthrough(False, colab=True, cuda=True, env={}, folders=folders)
    assert colab.methods == ("ldrld",) and colab.runs_root == folders.runs / f"short{notebook.COLAB_EPOCHS}"
    cfg = colab.config("ldrld")
    assert cfg.schedule.epochs == notebook.COLAB_EPOCHS and cfg.data.gpu_resident and cfg.optim.lr == 0.05
    prepare, teachers, distill = parse_commands(colab)
    assert (prepare.command, prepare.download, teachers.command, teachers.fetch) == ("prepare-data", True, "teachers", True)
    assert distill.student == "resnet8x4" and "schedule.epochs=15" in distill.overrides
    chosen = notebook.cifar100_walkthrough(False, colab=True, env={"LDRLD_EPOCHS": "3"}, folders=folders)
    assert chosen.methods == local.methods and chosen.config("dkd").schedule.epochs == 3
    with pytest.raises(ValueError, match="LDRLD_EPOCHS='x'"):
        notebook.cifar100_walkthrough(False, env={"LDRLD_EPOCHS": "x"}, folders=folders)


def test_prepare_downloads_only_what_is_missing(tmp_path, monkeypatch):
    import ldrld_mini.data as data
    import ldrld_mini.models.teachers as teachers

    calls = []
    monkeypatch.setattr(data, "build_datasets", lambda *a, **kw: calls.append(("data", a, kw)))
    monkeypatch.setattr(teachers, "fetch_teachers", lambda root, names: calls.append(("teachers", root, names)))
    folders = notebook.CourseFolders(tmp_path / "data", tmp_path / "runs")
    walk = notebook.cifar100_walkthrough(False, colab=True, env={}, folders=folders)
    notebook.prepare_cifar100(walk)
    assert calls == [("data", ("cifar100", folders.data), {"download": True}),
                     ("teachers", folders.teachers, ["resnet32x4"])]
    calls.clear()
    monkeypatch.setattr(data, "check_dataset", lambda *a, **kw: type("R", (), {"ok": True})())
    teacher = Path(dict(o.split("=", 1) for o in walk.overrides)["model.teacher_checkpoint"])
    teacher.parent.mkdir(parents=True)
    teacher.touch()
    notebook.prepare_cifar100(walk)
    assert calls == []


def test_table_runs_prefers_finished_runs_of_your_own(tmp_path):
    from ldrld_mini.train import fit

    fallback = tmp_path / "standin"
    walk = notebook.Walkthrough("synthetic", ("resnet8", "resnet8"), ("vanilla",), fallback, (
        "data.options.train_per_class=2", "data.options.val_per_class=1", "data.options.num_classes=5",
        "schedule.epochs=1", "data.batch_size=8", "train.device=cpu", "data.num_workers=0"))
    walk.run(quiet=True)
    runs, where = notebook.table_runs("synthetic", fallback, runs=tmp_path / "mine")
    assert where == fallback and len(runs) == 1 and runs[0].finished
    fit(walk.config("vanilla"), tmp_path / "mine/synthetic/resnet8/vanilla/seed0", quiet=True)
    runs, where = notebook.table_runs("synthetic", fallback, runs=tmp_path / "mine")
    assert where == tmp_path / "mine" / "synthetic" and len(runs) == 1


# ---- notebook 06: the playground shows the local term the package computes

def test_playground_shows_the_local_term_of_the_package():
    from ldrld_mini.losses import ldrld_loss
    from ldrld_mini.viz.weight_plots import format_local_term, local_term_summary, plot_adw_playground

    gen = torch.Generator().manual_seed(0)
    teacher = torch.randn(16, 20, generator=gen, dtype=torch.float64) * 2.0  # (B, C)
    student = teacher + torch.randn(16, 20, generator=gen, dtype=torch.float64)  # (B, C)
    target = teacher.argmax(dim=1)  # (B,)
    summary = local_term_summary(student, teacher, target, k=5, lam=0.0)
    parts = ldrld_loss(student, teacher, target, k=5, lam=0.0)
    assert summary["local"] == pytest.approx(parts.local.item())
    assert summary["share"] == pytest.approx(10.5 * parts.local.item() / parts.total.item())
    assert set(local_term_summary(student, teacher, k=5)) == {"local", "remaining"}  # no labels: no total
    fig = plot_adw_playground(student, teacher, k=5, lam=0.0, target=target)
    assert format_local_term(summary) in fig.get_suptitle()

    pytest.importorskip("ipywidgets")
    from ldrld_mini.viz.widgets import adw_playground

    box = adw_playground(student, teacher, target, k=5)
    slider = next(child for child in box.children if getattr(child, "description", "").startswith("ε"))
    slider.value = 3.0
    expected = local_term_summary(student, teacher, target, k=5, epsilon=3.0)
    assert format_local_term(expected) in box.result.get_suptitle()
