"""The run store: one root for distillation runs, proxy pools, evaluation caches and reports.

The root is, first hit wins: the ``root`` argument; ``$DDCMI_STORE`` (set by ``ddcmi --store DIR`` and
:func:`use`); the project root when ddcmi
runs from a checkout (the folder holding ``pyproject.toml``, ``ddcmi/`` and ``notebooks/``); else a
per-user folder (``$XDG_DATA_HOME/ddcmi`` or ``~/.local/share/ddcmi``). So the command line run from
anywhere in a checkout, ``ddcmi reproduce`` and a notebook opened in JupyterLab (whose working
directory is ``notebooks/``) read and write the same runs and reports.

Layout under the root::

    runs/<run key>/     one distillation run (checkpoint, snapshots, synset.pt, history, config)
    runs/evals/         evaluation results cached by the content of the set they trained on
    pools/<pool key>/   proxy pools, one file per member
    experts/<key>/      MTT expert trajectories, one file per expert
    transforms/         fitted input transforms (ZCA), keyed by the data they were fitted on
    reports/<profile>/  notebook and comparison reports

``$DDCMI_RUNS`` still moves the runs folder (and its evaluation cache) alone. Relative paths in these
variables are resolved once (against the working directory, else the project root: a kernel started
in ``notebooks/`` with the README's ``DDCMI_STORE=...`` relative to the checkout still finds it) and
every message shows them absolute.
"""
from __future__ import annotations

import os
from pathlib import Path

ENV = "DDCMI_STORE"
RUNS_ENV = "DDCMI_RUNS"


def project_root() -> Path | None:
    """The checkout this ddcmi is imported from (an editable install), else None."""
    here = Path(__file__).resolve().parents[1]
    if (here / "pyproject.toml").is_file() and (here / "ddcmi").is_dir() and (here / "notebooks").is_dir():
        return here
    return None


def resolve_user_path(value: str | os.PathLike, must_exist: bool = False) -> Path:
    """An absolute path for a user-given one: ``~`` expanded; a relative path taken against the working
    directory, or against the project root where only that one exists (a JupyterLab kernel runs in
    ``notebooks/``, one level below where the user typed the command)."""
    p = Path(value).expanduser()
    if p.is_absolute():
        return p
    here = (Path.cwd() / p).resolve()
    root = project_root()
    if not here.exists() and root is not None and (root / p).exists():
        return (root / p).resolve()
    return here


def use(path: str | os.PathLike) -> Path:
    """Make ``path`` the store's root for this process and the processes it starts (papermill
    kernels): what ``ddcmi --store DIR`` does. Returns it, absolute."""
    resolved = resolve_user_path(path)
    os.environ[ENV] = str(resolved)
    return resolved


def user_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "ddcmi"


def root(explicit: str | os.PathLike | None = None) -> Path:
    """The store's root (see the module docstring for the order)."""
    if explicit:
        return resolve_user_path(explicit)
    if os.environ.get(ENV):
        return resolve_user_path(os.environ[ENV])
    return project_root() or user_dir()


def where(explicit: str | os.PathLike | None = None) -> str:
    """Which rule chose the root, for messages and ``ddcmi store``."""
    if explicit:
        return "argument"
    if os.environ.get(ENV):
        return f"${ENV}"
    return "project root" if project_root() else "per-user folder"


def runs_dir(explicit: str | os.PathLike | None = None) -> Path:
    if not explicit and os.environ.get(RUNS_ENV):
        return resolve_user_path(os.environ[RUNS_ENV])
    return root(explicit) / "runs"


def evals_dir(explicit: str | os.PathLike | None = None) -> Path:
    return runs_dir(explicit) / "evals"


def pools_dir(explicit: str | os.PathLike | None = None) -> Path:
    return root(explicit) / "pools"


def experts_dir(explicit: str | os.PathLike | None = None) -> Path:
    return root(explicit) / "experts"


def transforms_dir(explicit: str | os.PathLike | None = None) -> Path:
    return root(explicit) / "transforms"


def reports_dir(explicit: str | os.PathLike | None = None) -> Path:
    return root(explicit) / "reports"


def describe(explicit: str | os.PathLike | None = None) -> dict:
    return {"root": str(root(explicit)), "chosen_by": where(explicit), "runs": str(runs_dir(explicit)),
            "pools": str(pools_dir(explicit)),
            "experts": str(experts_dir(explicit)), "reports": str(reports_dir(explicit))}
