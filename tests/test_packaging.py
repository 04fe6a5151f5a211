"""The install paths agree: environment.yml, pyproject.toml, the README's commands and .ci/run."""
import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_environment_yml_lists_what_the_issue_asks_and_matches_pins():
    env = (ROOT / "environment.yml").read_text()
    for pkg in ("python", "pytorch", "torchvision", "jupyterlab", "ipywidgets", "matplotlib", "seaborn",
                "papermill"):
        assert re.search(rf"^\s*-\s*{pkg}\b", env, re.M), pkg
    assert "pytorch=2.14.1" in env and "torchvision=0.29.1" in env and "-e .[ray]" in env
    readme = (ROOT / "README.md").read_text()
    assert "torch==2.14.1" in readme and "torchvision==0.29.1" in readme


def test_pyproject_declares_compatible_ranges_and_the_cli():
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    deps = " ".join(meta["dependencies"])
    assert "torch>=" in deps and "torchvision>=" in deps
    assert meta["scripts"]["ddcmi"] == "ddcmi.cli:main"


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text()
    readme = (ROOT / "README.md").read_text()
    assert "python -m pytest -q" in ci and "python -m pytest -q" in readme
    assert "torch==2.14.1 torchvision==0.29.1" in ci
    assert '-e ".[test,ray]"' in ci and '-e ".[test,ray]"' in readme  # CI runs the real Ray tests
