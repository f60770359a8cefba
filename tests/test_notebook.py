"""The notebooks' shared helpers: the checkout they run in, and printing without this machine's paths."""
from ldrld_mini.notebook import repo_root, show


def test_repo_root_is_the_parent_of_notebooks(tmp_path, monkeypatch):
    assert repo_root(tmp_path / "notebooks") == tmp_path
    assert repo_root(tmp_path) == tmp_path
    (tmp_path / "notebooks").mkdir()
    monkeypatch.chdir(tmp_path / "notebooks")
    assert repo_root() == tmp_path


def test_show_prints_paths_relative_to_the_root(tmp_path, monkeypatch, capsys):
    show(f"{tmp_path}/data/x is missing; {tmp_path}/runs/y", root=tmp_path)
    assert capsys.readouterr().out == "data/x is missing; runs/y\n"
    monkeypatch.chdir(tmp_path)
    show(tmp_path / "runs" / "notebooks")  # any object: printed as str; the root defaults to repo_root()
    assert capsys.readouterr().out == "runs/notebooks\n"
