"""Executing the notebooks with papermill into ``reports/<profile>/<name>/``.

Each notebook writes its own ``metrics.json`` and figures into the ``out_dir`` it is given; this module
runs it, stores a slimmed copy of the executed notebook beside them (image outputs dropped: the PNGs
are there already), records the parameters in ``reproduce.json`` and regenerates ``reports/README.md``.
A notebook whose report exists with the same parameters is skipped, so an interrupted
``reproduce all`` resumes where it stopped. Distillation runs are shared through the runs folder.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

from .errors import UnknownNameError
from .report import write_index
from .utils import atomic_write_json, atomic_write_text


def notebooks_dir() -> Path:
    """``notebooks/`` of the source checkout (editable install), else of the working directory."""
    here = Path(__file__).resolve().parents[1] / "notebooks"
    return here if here.is_dir() else Path.cwd() / "notebooks"


def notebook_names(directory: Path | None = None) -> list[str]:
    return sorted(p.stem for p in (directory or notebooks_dir()).glob("*.ipynb"))


def reproduce(name: str, profile: str, parameters: dict | None = None, reports_root: str | Path = "reports",
              directory: Path | None = None, force: bool = False, progress: bool = True) -> Path:
    """Run notebook ``name`` at ``profile``; returns its report folder."""
    import nbformat
    import papermill

    directory = directory or notebooks_dir()
    names = notebook_names(directory)
    if name not in names:
        raise UnknownNameError(f"unknown notebook {name!r}; choose one of: {', '.join(names)} (or all)")
    out = Path(reports_root) / profile / name
    params = {"profile": profile, **(parameters or {}), "out_dir": str(out.resolve())}
    stamp = out / "reproduce.json"
    if not force and stamp.exists() and json.loads(stamp.read_text()).get("parameters") == params \
            and (out / "metrics.json").exists():
        return out
    t0 = time.time()
    out.mkdir(parents=True, exist_ok=True)
    executed = out / f"{name}.ipynb"
    nb = papermill.execute_notebook(str(directory / f"{name}.ipynb"), None, parameters=params,
                                    kernel_name="python3", progress_bar=progress, cwd=str(Path.cwd()))
    for cell in nb.cells:
        for o in cell.get("outputs", []):
            data = o.get("data", {})
            for mime in [m for m in data if m.startswith("image/")]:
                del data[mime]
                data.setdefault("text/plain", "[figure saved as PNG beside this notebook]")
    atomic_write_text(nbformat.writes(nb), executed)
    atomic_write_json({"notebook": name, "parameters": params, "seconds": round(time.time() - t0, 1)}, stamp)
    write_index(reports_root)
    return out
