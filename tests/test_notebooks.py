"""Notebooks: kept free of outputs with a parameters cell, and executed with papermill at `smoke`."""
import json
import math
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def test_there_are_notebooks():
    assert NOTEBOOKS


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_clean_and_parametrised(path):
    nb = json.loads(path.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert not any(c.get("outputs") or c.get("execution_count") for c in code), f"{path.name} has outputs"
    tagged = [c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, f"{path.name} needs exactly one cell tagged parameters"
    first = "".join(tagged[0]["source"]).strip().splitlines()[0]
    assert first.startswith("profile"), "the first parameter is profile"
    assert nb["metadata"]["kernelspec"]["language"] == "python"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_at_smoke_and_writes_its_report(path, tmp_path, mnist, monkeypatch):
    pytest.importorskip("papermill")
    from ddcmi.cli import main
    monkeypatch.chdir(tmp_path)
    assert main(["reproduce", path.stem, "--profile", "smoke", "--reports", str(tmp_path / "reports"), "--quiet"]) == 0
    out = tmp_path / "reports" / "smoke" / path.stem
    executed = out / f"{path.stem}.ipynb"
    assert executed.exists() and executed.stat().st_size < 1_000_000 and b"image/png" not in executed.read_bytes()
    index = (tmp_path / "reports" / "README.md").read_text()
    assert f"smoke/{path.stem}" in index
    metrics = json.loads((out / "metrics.json").read_text())
    numbers = [v for v in _leaves(metrics) if isinstance(v, float)]
    assert numbers and all(math.isfinite(v) for v in numbers)
    assert metrics["profile"] == "smoke" and "git_commit" in metrics["provenance"]
    assert list(out.glob("*.png"))


def _leaves(d):
    if isinstance(d, dict):
        for v in d.values():
            yield from _leaves(v)
    elif isinstance(d, list):
        for v in d:
            yield from _leaves(v)
    else:
        yield d
