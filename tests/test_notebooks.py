"""Notebooks: percent-format sources (notebooks/<name>.py, paired with a git-ignored .ipynb) with a
parameters cell, executed with papermill at `smoke`; a save in JupyterLab never dirties the tree."""
import json
import math
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.py"))


def test_there_are_notebooks():
    assert NOTEBOOKS and (ROOT / "notebooks" / "jupytext.toml").exists()


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_clean_and_parametrised(path):
    jupytext = pytest.importorskip("jupytext")
    nb = jupytext.read(path)
    tagged = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, f"{path.name} needs exactly one cell tagged parameters"
    first = "".join(tagged[0]["source"]).strip().splitlines()[0]
    assert first.startswith("profile"), "the first parameter is profile"
    assert nb.metadata["kernelspec"]["language"] == "python"
    # the tracked text is exactly what jupytext writes for it: a save in JupyterLab rewrites nothing
    assert jupytext.writes(nb, fmt="py:percent") == path.read_text()
    # papermill reads every parameter (a line it cannot parse, say "=" in a comment, is warned about on every run)
    from papermill.translators import PythonTranslator
    from ddcmi.reproduce import notebook_parameters
    names = [p.name for p in PythonTranslator.inspect({"source": "".join(tagged[0]["source"])})]
    assert sorted(names) == sorted(notebook_parameters(path.stem, "smoke"))


def _tracked_copy(tmp_path, name: str) -> Path:
    """A git repository holding one notebook source, the pairing config and the project's .gitignore."""
    repo = tmp_path / "repo"
    (repo / "notebooks").mkdir(parents=True)
    shutil.copy(ROOT / "notebooks" / f"{name}.py", repo / "notebooks")
    shutil.copy(ROOT / "notebooks" / "jupytext.toml", repo / "notebooks")
    shutil.copy(ROOT / ".gitignore", repo)
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "x"], check=True)
    return repo


@pytest.mark.parametrize("opened", ["py", "ipynb"])
def test_a_notebook_executed_and_saved_in_jupyterlab_leaves_the_tree_clean(tmp_path, opened):
    """Open the source as JupyterLab does (through jupytext's contents manager, the server extension
    jupytext installs), give every code cell outputs as an execution would, save: the outputs land in
    the paired, ignored .ipynb; the tracked .py is byte for byte unchanged; git status is empty."""
    pytest.importorskip("jupytext")
    import nbformat
    from jupytext.sync_contentsmanager import TextFileContentsManager
    repo = _tracked_copy(tmp_path, "quickstart")
    source = (repo / "notebooks" / "quickstart.py").read_bytes()
    cm = TextFileContentsManager(root_dir=str(repo / "notebooks"))
    if opened == "ipynb":  # the paired copy, as `jupytext --sync` (README) makes it
        cm.save(cm.get("quickstart.py"), "quickstart.py")
    path = f"quickstart.{opened}"
    model = cm.get(path)
    nb = model["content"]
    for i, cell in enumerate(c for c in nb.cells if c.cell_type == "code"):
        cell.outputs = [nbformat.v4.new_output("stream", text=f"ran {i}\n")]
        cell.execution_count = i + 1
    nb.metadata["language_info"] = {"name": "python", "version": "3.11.7"}
    cm.save({"type": "notebook", "format": "json", "content": nb}, path)
    paired = json.loads((repo / "notebooks" / "quickstart.ipynb").read_text())
    assert any(c.get("outputs") for c in paired["cells"])  # the outputs are kept, in the ignored copy
    assert (repo / "notebooks" / "quickstart.py").read_bytes() == source
    status = subprocess.run(["git", "-C", str(repo), "status", "--porcelain"], capture_output=True, text=True, check=True)
    assert status.stdout == ""


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_at_smoke_and_writes_its_report(path, tmp_path, mnist, monkeypatch):
    pytest.importorskip("papermill")
    from ddcmi.cli import main
    monkeypatch.chdir(tmp_path)
    # every notebook that makes runs takes config overrides (`ddcmi reproduce --set`, --fast): one that changes
    # every pool's name shows that each run and pool got them
    takes = path.stem != "cmi_across_methods"  # it reads what its grids recorded
    assert main(["reproduce", path.stem, "--profile", "smoke", "--reports", str(tmp_path / "reports"), "--quiet",
                 *(["--set", "pool.seed=7"] if takes else [])]) == 0
    out = tmp_path / "reports" / "smoke" / path.stem
    executed = out / f"{path.stem}.ipynb"  # the executed copy kept with the report
    assert executed.exists() and executed.stat().st_size < 1_000_000 and b"image/png" not in executed.read_bytes()
    index = (tmp_path / "reports" / "README.md").read_text()
    assert f"smoke/{path.stem}" in index
    metrics = json.loads((out / "metrics.json").read_text())
    numbers = [v for v in _leaves(metrics) if isinstance(v, float)]
    assert numbers and all(math.isfinite(v) for v in numbers)
    assert metrics["profile"] == "smoke" and "git_commit" in metrics["provenance"]
    # every notebook's numbers depend on a proxy pool (CMI measured under it, +CMI sets distilled with it):
    # the report names it, in the one key write_report keeps, and the index shows it
    assert metrics["proxy_pools"] and all("epochs on" in p for p in metrics["proxy_pools"])
    assert all(("-s7-" in p) == takes for p in metrics["proxy_pools"])
    row = next(line for line in index.splitlines() if f"[smoke/{path.stem}]" in line)
    assert metrics["proxy_pools"][0] in row and "not recorded" not in row
    assert list(out.glob("*.png"))
    assert metrics["figure_problems"] == {}  # every figure: labelled axes, a legend where series share a panel


def _leaves(d):
    if isinstance(d, dict):
        for v in d.values():
            yield from _leaves(v)
    elif isinstance(d, list):
        for v in d:
            yield from _leaves(v)
    else:
        yield d


@pytest.mark.parametrize("base", ["idm", "mtt"])
@pytest.mark.parametrize("name", ["main_table", "cross_architecture", "cmi_vs_accuracy"])
def test_the_method_notebooks_run_the_newer_methods(name, base, tmp_path, mnist, monkeypatch):
    """IDM, MTT and each +CMI go through the notebooks that compare methods, as every registered method does."""
    pytest.importorskip("papermill")
    from ddcmi.cli import main
    monkeypatch.chdir(tmp_path)
    params = ["-p", f'methods=["{base}","{base}+cmi"]']
    if name == "cross_architecture":
        params += ["-p", 'archs=["convnet3"]']
    if name == "cmi_vs_accuracy":
        params += ["-p", "lambdas=[]"]
    assert main(["reproduce", name, "--profile", "smoke", "--reports", str(tmp_path / "reports"), "--quiet",
                 "--tag", base, *params]) == 0
    metrics = json.loads((tmp_path / "reports" / "smoke" / f"{name}_{base}" / "metrics.json").read_text())
    text = json.dumps(metrics)
    assert f'"{base}+cmi"' in text and metrics["profile"] == "smoke"
