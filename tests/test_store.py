"""One run store: the command line from the project root and from notebooks/ share runs and reports."""
from pathlib import Path

import pytest

from ddcmi import store
from ddcmi.cli import main
from ddcmi.experiments import run_dir_for
from ddcmi.profiles import make_config


@pytest.fixture
def checkout(tmp_path, monkeypatch):
    """A fake checkout as the project root, no store variables set."""
    root = tmp_path / "checkout"
    (root / "notebooks").mkdir(parents=True)
    monkeypatch.delenv("DDCMI_STORE", raising=False)
    monkeypatch.delenv("DDCMI_RUNS", raising=False)
    monkeypatch.setattr(store, "project_root", lambda: root)
    return root


def test_the_root_is_the_project_root_from_any_working_directory(checkout, monkeypatch):
    cfg = make_config("smoke", "mnist", "dm", 10)
    monkeypatch.chdir(checkout)
    a, reports_a = run_dir_for(cfg), store.reports_dir()
    monkeypatch.chdir(checkout / "notebooks")
    assert run_dir_for(cfg) == a == checkout / "runs" / cfg.run_name()
    assert store.reports_dir() == reports_a == checkout / "reports"
    assert store.pools_dir() == checkout / "pools" and store.where() == "project root"


def test_relative_variables_are_resolved_once_and_absolute(checkout, monkeypatch, tmp_path):
    (checkout / "mystore").mkdir()
    monkeypatch.chdir(checkout / "notebooks")  # as a JupyterLab kernel
    monkeypatch.setenv("DDCMI_STORE", "mystore")  # relative to where the user typed it: the checkout
    assert store.root() == checkout / "mystore" and store.root().is_absolute()
    monkeypatch.setenv("DDCMI_STORE", "../elsewhere")
    assert store.root() == (checkout / "elsewhere").resolve()
    assert store.root("/abs/x") == Path("/abs/x") and store.where("/abs/x") == "argument"
    monkeypatch.setattr(store, "project_root", lambda: None)
    monkeypatch.delenv("DDCMI_STORE")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert store.root() == tmp_path / "xdg" / "ddcmi" and store.where() == "per-user folder"


def test_data_root_relative_to_the_checkout_is_found_from_notebooks(checkout, monkeypatch):
    from ddcmi.data import data_roots
    (checkout / "data").mkdir()
    monkeypatch.chdir(checkout / "notebooks")
    monkeypatch.setenv("DDCMI_DATA", "data")
    assert dict(data_roots())["DDCMI_DATA"] == checkout / "data"


def test_cli_distill_from_root_and_from_notebooks_reuses_one_run(checkout, monkeypatch, capsys, mnist):
    args = ["distill", "--dataset", "mnist", "--method", "dm", "--ipc", "2", "--profile", "smoke",
            "--set", "iterations=2", "--quiet"]
    monkeypatch.chdir(checkout)
    assert main(args) == 0
    first = capsys.readouterr().out
    runs = list((checkout / "runs").iterdir())
    assert len(runs) == 1
    stamp = (runs[0] / "synset.pt").stat().st_mtime_ns
    monkeypatch.chdir(checkout / "notebooks")
    assert main(args) == 0
    assert capsys.readouterr().out.split(" (")[0] == first.split(" (")[0]  # the same synset path
    assert list((checkout / "runs").iterdir()) == runs and not (checkout / "notebooks" / "runs").exists()
    assert (runs[0] / "synset.pt").stat().st_mtime_ns == stamp  # found finished, not redone


def test_store_command_names_the_root(checkout, capsys):
    assert main(["store"]) == 0
    out = capsys.readouterr().out
    assert str(checkout) in out and "project root" in out


def test_fresh_removes_only_what_the_run_wrote(tmp_path, capsys, mnist):
    out = tmp_path / "run"
    args = ["distill", "--dataset", "mnist", "--method", "dm", "--ipc", "2", "--profile", "smoke",
            "--set", "iterations=2", "--out", str(out), "--quiet"]
    assert main(args) == 0
    (out / "thesis.tex").write_text("my thesis")
    (out / "notes").mkdir()
    (out / "notes" / "a.txt").write_text("keep")
    assert main(args + ["--fresh"]) == 0
    assert "removed" in capsys.readouterr().out
    assert (out / "thesis.tex").read_text() == "my thesis" and (out / "notes" / "a.txt").exists()
    assert (out / "synset.pt").exists()  # made again
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "data.csv").write_text("1,2")
    assert main(args[:-3] + ["--out", str(foreign), "--quiet", "--fresh"]) == 2
    assert "not a ddcmi run folder" in capsys.readouterr().err and (foreign / "data.csv").exists()


def test_store_argument_wins_and_reaches_child_processes(tmp_path, monkeypatch, capsys):
    import os
    monkeypatch.setenv("DDCMI_STORE", os.environ.get("DDCMI_STORE", ""))  # restored after the test
    assert main(["--store", str(tmp_path / "mine"), "store", "--json"]) == 0
    assert str(tmp_path / "mine") in capsys.readouterr().out
    assert os.environ["DDCMI_STORE"] == str(tmp_path / "mine")  # what a papermill kernel inherits
