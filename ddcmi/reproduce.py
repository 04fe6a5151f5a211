"""Executing the notebooks with papermill into ``reports/<profile>/<name>/``.

Each notebook writes its own ``metrics.json`` and figures into the ``out_dir`` it is given; this module
runs it, stores a slimmed copy of the executed notebook beside them (image outputs dropped: the PNGs
are there already), records the parameters, the seconds it took and the commit in ``reproduce.json`` (a forced re-run
keeps the earlier runs' seconds there, under ``earlier``; an attempt stopped by Ctrl-C or SIGTERM keeps its
seconds under ``interrupted``, and the finished report sums them in ``seconds_in_all``) and regenerates
``reports/README.md``. The kernel's own stderr (ipykernel's warnings; a traceback when a run is stopped mid-cell)
goes to ``kernel.log`` in the report folder, not the terminal (not after bad input the kit names: nothing is left
behind then); it is not committed with the report.
A notebook whose report exists with the same parameters is skipped, so an interrupted
``reproduce all`` resumes where it stopped. Distillation runs are shared through the runs folder.

``PROFILE_PARAMETERS`` holds what a profile's reproduction runs beyond a notebook's own defaults (the
notebooks' parameter cells are the smoke settings); ``-p key=value`` goes on top. ``ORDER`` is the order of
``reproduce all``: the two cheap notebooks, then the main table, whose cells are written (and, when a
later run finds them with the same configs, reused) one by one, so a reproduction spread over several
sessions keeps every finished cell; the grids right after it, while its runs are still cached; then
the curve and diagnostic notebooks; cross-architecture, the most expensive, last.
"""
from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import re

from .errors import ConfigError, KernelDiedError, UnknownNameError
from . import store
from .report import write_index
from .utils import atomic_write_json, atomic_write_text, git_commit


THREE_DATASETS = ["mnist", "fashion_mnist", "cifar10_jpeg"]
CPU_GRIDS = [f"reports/cpu/{g}.yaml" for g in (
    "main_table_pool8/grid", "main_table_pool8/grid_mtt_lambda", "main_table_pool8/grid_mnist",
    "main_table_pool8/grid_fashion_mnist", "main_table_idm/grid_cifar10_jpeg", "main_table_idm/grid_fashion_mnist",
    "main_table_idm/grid_mnist",
    "seed_check/grid", "seed_check/grid_fashion_mnist", "seed_check/grid_fashion_mnist_dsa",
    "seed_check/grid_fashion_mnist_idm")]
STATIC = {"interactive": False}  # the teaching demo's sliders need a browser; a reproduction draws the static path
PROFILE_PARAMETERS: dict[str, dict[str, dict]] = {
    "smoke": {"teaching_demo": STATIC},
    # cross_architecture: AlexNet/VGG11 train ~3x and ResNet-18 ~9x slower than ConvNet-3 here, so
    # every architecture (ConvNet-3 too, for a fair comparison) gets 100 epochs and 2 networks
    "cpu": {"main_table": {"datasets": THREE_DATASETS, "ipcs": [1, 10]},
            "synthetic_grids": {"datasets": THREE_DATASETS},
            "cross_architecture": {"epochs": 100, "models": 2}, "teaching_demo": STATIC,
            "cmi_study": {"dataset": "cifar10_jpeg", "ipc": 10,
                          "axes": {"pool.epochs": [1, 2, 4, 8], "lambda_scale": [0.2, 1.0, 5.0],
                                   "iterations": [200, 600, 1800], "real_per_class": [16, 64, 256]}},
            # the committed grids of the cpu reports, read as recorded (each is run by `ddcmi sweep <grid>`,
            # hours in all): paths from the project root, where reproductions run
            "cmi_across_methods": {"run": False, "grids": CPU_GRIDS}},
    "paper": {"main_table": {"datasets": ["cifar10", "cifar100"], "ipcs": [1, 10, 50]},
              "synthetic_grids": {"datasets": ["cifar10", "cifar100"]},
              "quickstart": {"dataset": "cifar10"}, "cmi_vs_accuracy": {"dataset": "cifar10"},
              "training_efficiency": {"dataset": "cifar10"}, "cmi_diagnostic": {"dataset": "cifar10"},
              "cross_architecture": {"dataset": "cifar10"}, "teaching_demo": {"dataset": "cifar10", **STATIC},
              "cmi_study": {"dataset": "cifar10", "ipc": 10,
                            "axes": {"pool.epochs": [5, 10, 20, 40], "lambda_scale": [0.2, 1.0, 5.0],
                                     "iterations": [5000, 20000], "real_per_class": [64, 256]}}},
}
# notebooks that at a profile only read recorded cells (the study's sweep cost hours and is run by `ddcmi sweep`):
# `reproduce all --set/--fast` leaves them out (cmi_across_methods, which takes no overrides, too); named alone,
# a notebook runs with the overrides (for cmi_study: a new study, its cells computed afresh)
RECORDED = {"cpu": ("cmi_study",)}
ORDER = ["teaching_demo", "quickstart", "main_table", "synthetic_grids", "training_efficiency", "cmi_vs_accuracy",
         "cmi_study", "cmi_across_methods", "cmi_diagnostic", "cross_architecture"]


RESERVED = {"profile": "--profile", "out_dir": "--reports and --tag"}  # what reproduce sets itself


def notebooks_dir() -> Path:
    """``notebooks/`` of the source checkout (editable install), else of the working directory."""
    here = Path(__file__).resolve().parents[1] / "notebooks"
    return here if here.is_dir() else Path.cwd() / "notebooks"


def notebook_names(directory: Path | None = None) -> list[str]:
    """The notebooks (their percent-format sources ``notebooks/<name>.py``), in the order ``reproduce
    all`` runs them (unlisted ones last, by name)."""
    names = sorted(p.stem for p in (directory or notebooks_dir()).glob("*.py"))
    return sorted(names, key=lambda n: ORDER.index(n) if n in ORDER else len(ORDER))


def notebook_parameters(name: str, profile: str, directory: Path | None = None) -> dict:
    """What ``reproduce(name, profile)`` passes the notebook: its parameters cell (plain assignments,
    the smoke settings) with the profile's ``PROFILE_PARAMETERS`` on top (``ddcmi sweep`` turns the
    main-table and curve notebooks' parameters into named grids with it)."""
    import ast
    directory = directory or notebooks_dir()
    path = directory / f"{name}.py"
    if not path.is_file():
        raise UnknownNameError(f"unknown notebook {name!r}; choose one of: {', '.join(notebook_names(directory))}")
    text = path.read_text()
    marker = '# %% tags=["parameters"]'
    if marker not in text:
        raise ConfigError(f"notebook {path} has no parameters cell ({marker})")
    cell = text.split(marker, 1)[1].split("\n# %%", 1)[0]
    values = {}
    for node in ast.parse(cell).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            values[node.targets[0].id] = ast.literal_eval(node.value)
    return {**values, "profile": profile, **PROFILE_PARAMETERS.get(profile, {}).get(name, {})}


def cost_seconds(out: str | Path) -> float | None:
    """What report folder ``out`` cost to make: its last run's seconds plus any interrupted attempts'
    (``seconds_in_all``); None for a folder no reproduction has finished."""
    stamp = Path(out) / "reproduce.json"
    recorded = json.loads(stamp.read_text()) if stamp.exists() else {}
    return recorded.get("seconds_in_all", recorded.get("seconds"))


KERNEL_LOG = "kernel.log"  # the notebook kernel's own stderr, beside the report


def _kernel_writing_to(log):
    """A kernel manager class whose kernel writes its own stderr to ``log`` rather than the terminal: ipykernel's
    start-up warnings and, when a reproduction is stopped mid-cell, the traceback of the reply it can no longer send
    (the notebook's outputs go through the kernel's messages, not its stderr, and are unchanged)."""
    from jupyter_client.manager import AsyncKernelManager

    class KernelManager(AsyncKernelManager):
        async def start_kernel(self, **kw):
            kw.setdefault("stderr", log)
            return await super().start_kernel(**kw)
    return KernelManager


def _keep_kernel_log(log, path: Path | None) -> None:
    """Add what the kernel wrote to its stderr (``log``, a temporary file) to ``path``, then close ``log``."""
    with log:
        log.seek(0)
        said = log.read()
    if path is not None and said:
        before = path.read_bytes() if path.exists() else b""
        atomic_write_text((before + said).decode(errors="replace"), path)


def reproduce(name: str, profile: str, parameters: dict | None = None, reports_root: str | Path | None = None,
              directory: Path | None = None, force: bool = False, progress: bool = True, tag: str | None = None) -> Path:
    """Run notebook ``name`` at ``profile``; returns its report folder, ``reports/<profile>/<name>``, or
    ``<name>_<tag>`` for a variant (other methods, datasets...) that must not replace the default report."""
    import nbformat
    import papermill

    directory = directory or notebooks_dir()
    names = notebook_names(directory)
    if name not in names:
        raise UnknownNameError(f"unknown notebook {name!r}; choose one of: {', '.join(names)} (or all)")
    if tag is not None and not re.fullmatch(r"[A-Za-z0-9_.-]+", tag):
        raise ConfigError(f"tag {tag!r} must be letters, digits, '_', '.' or '-' (it names a folder)")
    takes = set(notebook_parameters(name, profile, directory)) - set(RESERVED)
    for key in set(parameters or {}) & set(RESERVED):
        raise ConfigError(f"{key} of a reproduction is set by {RESERVED[key]}, not as a notebook parameter")
    unknown = sorted(set(parameters or {}) - takes)
    if unknown:
        raise ConfigError(f"notebook {name} has no parameter {', '.join(map(repr, unknown))}; it takes: "
                          f"{', '.join(sorted(takes))}")
    reports_root = Path(reports_root) if reports_root is not None else store.reports_dir()
    out = reports_root / profile / (name if tag is None else f"{name}_{tag}")
    params = {"profile": profile, **PROFILE_PARAMETERS.get(profile, {}).get(name, {}), **(parameters or {}),
              "out_dir": str(out.resolve())}
    stamp = out / "reproduce.json"
    before = json.loads(stamp.read_text()) if stamp.exists() else None
    same = bool(before) and _same_run(before.get("parameters", {}), params)
    if not force and same and _finished(before) and (out / "metrics.json").exists():
        return out
    earlier, interrupted = _attempts(before, same)
    stamped = {"notebook": name, "parameters": {**params, "out_dir": _relative_to_store(out)}}
    t0 = time.time()
    out.mkdir(parents=True, exist_ok=True)
    executed = out / f"{name}.ipynb"
    import jupytext
    from nbclient.exceptions import DeadKernelError
    source = jupytext.read(directory / f"{name}.py")  # the tracked source; the paired .ipynb is the user's copy
    if progress:  # papermill's bar counts cells and does not name the notebook
        tried = f", after {len(interrupted)} interrupted attempt{'s' * (len(interrupted) != 1)}" if interrupted else ""
        print(f"ddcmi reproduce: running notebook {name} at {profile}{tried} -> {out}", file=sys.stderr, flush=True)
    kernel_log, keep_log = tempfile.TemporaryFile(), True
    try:
        nb = papermill.execute_notebook(source, None, parameters=params, kernel_name="python3",
                                        progress_bar=progress, cwd=str(Path.cwd()),
                                        kernel_manager_class=_kernel_writing_to(kernel_log))
    except (KeyboardInterrupt, DeadKernelError) as exc:
        # Ctrl-C or SIGTERM, or the kernel died (killed for memory, say): the notebook's runs keep their
        # checkpoints in the run store; the stamp (no "seconds": not a finished report) keeps what this attempt
        # cost, so the report, once finished, says what it cost in all
        entry = {"seconds": round(time.time() - t0, 1), "commit": git_commit(),
                 "stopped_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                 **({"kernel_died": True} if isinstance(exc, DeadKernelError) else {})}
        atomic_write_json({**stamped, **({"earlier": earlier} if earlier else {}),
                           "interrupted": interrupted + [entry]}, stamp)
        if isinstance(exc, KeyboardInterrupt):
            raise
        raise KernelDiedError(
            f"notebook {name} (profile {profile}): its kernel died after {entry['seconds']:.0f} s, killed from outside "
            f"(often for want of memory: close other programs, or lower the profile) or crashed; its own stderr is in "
            f"{out / KERNEL_LOG}. What it finished is kept (runs, proxy pools, evaluations, cells); the same command "
            "continues") from None
    except papermill.exceptions.PapermillExecutionError as exc:
        kind = _kit_errors().get(exc.ename)
        if kind is None:
            raise
        # the kit's own error (bad input, a locked run...) says what is wrong and how to fix it: no traceback,
        # and nothing left behind
        keep_log = False
        raise kind(f"notebook {name} (profile {profile}) stopped: {exc.evalue}") from None
    finally:
        _keep_kernel_log(kernel_log, out / KERNEL_LOG if keep_log else None)
    for cell in nb.cells:
        for o in cell.get("outputs", []):
            data = o.get("data", {})
            for mime in [m for m in data if m.startswith("image/")]:
                del data[mime]
                data.setdefault("text/plain", "[figure saved as PNG beside this notebook]")
    atomic_write_text(nbformat.writes(nb), executed)
    # the stamp names the report folder as given (relative under a relative reports root): a checkout
    # elsewhere (a later session, a fresh clone) still recognises the report as done
    seconds = round(time.time() - t0, 1)
    atomic_write_json({**stamped, "seconds": seconds, "commit": git_commit(),
                       "finished_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                       **({"interrupted": interrupted,
                           "seconds_in_all": round(seconds + sum(e["seconds"] for e in interrupted), 1)}
                          if interrupted else {}),
                       **({"earlier": earlier} if earlier else {})}, stamp)
    write_index(reports_root)
    return out


def _finished(stamp: dict) -> bool:
    """Not the stamp of a stopped attempt (those have ``interrupted`` and no ``seconds``)."""
    return "seconds" in stamp or "interrupted" not in stamp


def _attempts(before: dict | None, same: bool) -> tuple[list, list]:
    """(earlier, interrupted) for a new run of a report whose stamp was ``before``: the finished runs of
    the same parameters (a forced re-run, a re-render from cached runs, keeps what the earlier ones cost)
    and this run's own interrupted attempts (a finished report counts them in ``seconds_in_all``). A report
    made with other parameters is replaced, not counted."""
    if not same:
        return [], []
    earlier = list(before.get("earlier", []))
    if _finished(before):  # finished: it becomes an earlier run, its attempts with it
        entry = {k: before[k] for k in ("seconds", "finished_utc", "commit", "interrupted") if k in before}
        return earlier + ([entry] if entry else []), []
    return earlier, list(before.get("interrupted", []))


def _kit_errors() -> dict[str, type]:
    """The kit's error classes by name (a notebook's kernel reports an exception by its class name)."""
    from .errors import DDCMIError
    found, todo = {}, [DDCMIError]
    while todo:
        cls = todo.pop()
        found[cls.__name__] = cls
        todo += cls.__subclasses__()
    return found


def _relative_to_store(out: Path) -> str:
    """The report folder relative to the store root when inside it (a checkout elsewhere still
    recognises the report), else as given."""
    try:
        return out.resolve().relative_to(store.root()).as_posix()
    except ValueError:
        return out.as_posix()


# parameters that change how a notebook shows its results, not what it computes or writes
PRESENTATION_ONLY = {"out_dir", "interactive"}


def _same_run(stamped: dict, params: dict) -> bool:
    """The same notebook parameters, wherever the report folder lies (presentation switches aside)."""
    return ({k: v for k, v in stamped.items() if k not in PRESENTATION_ONLY}
            == {k: v for k, v in params.items() if k not in PRESENTATION_ONLY})
