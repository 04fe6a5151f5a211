"""Experiment grids: a YAML file (or a notebook's parameters) expanded into de-duplicated cells.

A grid names methods x datasets x IPCs x lambdas x seeds at one profile, with ``--set``-style
overrides for every run::

    name: smoke-2x2            # names the sweep's summary folder, <store>/sweeps/<name>/
    profile: smoke
    methods: [dm, dm+cmi]
    datasets: [mnist]
    ipcs: [1, 2]
    lambdas: [null]            # null = the profile's lambda; applies to +cmi methods only
    seeds: [0]
    overrides: []              # e.g. ["eval.num_models=2"]
    variants: []               # sub-grids: each a mapping of axes that replace the grid's (methods,
                               # datasets, ipcs, lambdas, seeds) and overrides added to the grid's, e.g.
                               # [{overrides: ["pool.epochs=2"]}, {lambdas: [1000, 25000]}]: the cells
                               # are the union of the sub-grids' (one axis varied at a time)
    data_root: null
    resources: {cpus: 1, gpus: 0}   # per cell: Ray reserves them, and each cell runs on `cpus` threads
    retries: 1                 # a failed cell is tried again this many times, then reported

A **cell** is one distillation config plus its evaluation and CMI measurement (``cells.run_cell``):
the unit of work of ``ddcmi sweep``. Cells with the same config (a base method under several
lambdas) are one cell. Its result is recorded in its run folder (``cell-<digest>.json``) keyed by what it
depends on (the run's stable key, the evaluation recipe, the proxy pool), so a finished cell is never
computed again whichever runner made it. ``named_grid`` turns the main-table and CMI-versus-accuracy
notebooks' parameters at a profile into grids, so a sweep computes exactly the runs those notebooks
then render from the store.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ConfigError
from ..utils import atomic_write_json

CELL_FORMAT = "ddcmi-cell-v1"
NAMED = ("main_table", "cmi_vs_accuracy", "cmi_study")
VARIANT_FIELDS = ("methods", "datasets", "ipcs", "lambdas", "seeds", "overrides")


@dataclass(frozen=True)
class Resources:
    cpus: int = 1  # CPU threads per cell (also what Ray reserves)
    gpus: float = 0.0  # GPUs per cell; a fraction packs small cells onto one GPU


@dataclass
class Grid:
    name: str
    profile: str = "smoke"
    methods: list = field(default_factory=lambda: ["dm", "dm+cmi"])
    datasets: list = field(default_factory=lambda: ["mnist"])
    ipcs: list = field(default_factory=lambda: [10])
    lambdas: list = field(default_factory=lambda: [None])
    seeds: list = field(default_factory=lambda: [0])
    overrides: list = field(default_factory=list)
    variants: list = field(default_factory=list)
    data_root: str | None = None
    resources: Resources = field(default_factory=Resources)
    retries: int = 1
    # a folder of cell records kept beside a report (committed with it): a cell recorded there counts as
    # finished in any run store, and every cell the sweep finishes is recorded there too
    cells_dir: str | None = None

    @classmethod
    def from_dict(cls, d: dict, source: str = "grid") -> "Grid":
        if not isinstance(d, dict):
            raise ConfigError(f"{source} must be a mapping of grid fields (name, profile, methods, ...), "
                              f"not {type(d).__name__}")
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(d) - set(names))
        if unknown:
            raise ConfigError(f"{source}: unknown field(s) {', '.join(unknown)}; a grid has: {', '.join(names)}")
        d = dict(d)
        d.setdefault("name", Path(source).stem)
        for key in VARIANT_FIELDS:
            if key in d and not isinstance(d[key], list):
                d[key] = [d[key]]  # a single value is a one-element axis
        if "lambdas" in d:  # YAML reads 1e4 (no '.', no sign) as a string: take it as the number it names
            d["lambdas"] = [_number(x) for x in d["lambdas"]]
        res = d.get("resources") or {}
        if not isinstance(res, dict) or set(res) - {"cpus", "gpus"}:
            raise ConfigError(f"{source}: resources must be a mapping with cpus and/or gpus, got {res!r}")
        d["resources"] = Resources(**res)
        variants = d.get("variants") or []
        if not isinstance(variants, list) or not all(isinstance(v, dict) for v in variants):
            raise ConfigError(f"{source}: variants must be a list of mappings (sub-grids), got {variants!r}")
        axes = set(VARIANT_FIELDS)
        for v in variants:
            if set(v) - axes:
                raise ConfigError(f"{source}: a variant may set {', '.join(VARIANT_FIELDS)}, not "
                                  f"{', '.join(sorted(set(v) - axes))}")
        d["variants"] = [dict(v) for v in variants]
        grid = cls(**d)
        grid.check(source)
        return grid

    def check(self, source: str = "grid") -> None:
        def bad(what):
            raise ConfigError(f"{source}: {what}")
        if not isinstance(self.name, str) or not self.name or "/" in self.name:
            bad(f"name {self.name!r} must be a non-empty string without '/' (it names <store>/sweeps/<name>/)")
        if self.profile not in ("smoke", "cpu", "paper"):
            bad(f"profile {self.profile!r} must be smoke, cpu or paper")
        for key in ("methods", "datasets", "ipcs", "seeds"):
            if not getattr(self, key):
                bad(f"{key} is empty: a grid needs at least one value on every axis")
        if not all(isinstance(i, int) and not isinstance(i, bool) and i > 0 for i in self.ipcs):
            bad(f"ipcs must be positive integers, got {self.ipcs}")
        if not all(isinstance(s, int) and not isinstance(s, bool) for s in self.seeds):
            bad(f"seeds must be integers, got {self.seeds}")
        for lam in self.lambdas:
            if lam is not None and (isinstance(lam, bool) or not isinstance(lam, (int, float)) or lam <= 0):
                bad(f"lambdas must be positive numbers or null (the profile's lambda), got {lam!r}; "
                    f"lambda 0 is the base method: list it under methods instead")
        if not all(isinstance(o, str) and "=" in o for o in self.overrides):
            bad(f"overrides must be strings key=value as for --set, got {self.overrides}")
        if any(o.split("=", 1)[0].strip() == "cmi.weight" for o in self.overrides):
            bad("set lambda through the lambdas axis, not an override of cmi.weight")
        r = self.resources
        if not isinstance(r.cpus, int) or isinstance(r.cpus, bool) or r.cpus < 1:
            bad(f"resources.cpus must be an integer >= 1, got {r.cpus!r}")
        if not isinstance(r.gpus, (int, float)) or r.gpus < 0:
            bad(f"resources.gpus must be a number >= 0, got {r.gpus!r}")
        if not isinstance(self.retries, int) or self.retries < 0:
            bad(f"retries must be an integer >= 0, got {self.retries!r}")
        self.subgrids()  # each variant checked as a grid of its own

    def subgrids(self) -> list["Grid"]:
        """The grid itself, or with ``variants`` one grid per variant (validated like the grid)."""
        return [g for g, _ in self._variant_grids()]

    def _variant_grids(self) -> list[tuple["Grid", tuple]]:
        """(sub-grid, the overrides its variant adds) for each variant, or (self, ()) without variants."""
        if not self.variants:
            return [(self, ())]
        base = {k: v for k, v in dataclasses.asdict(self).items() if k != "variants"}
        out = []
        for i, v in enumerate(self.variants):
            extra = tuple(_as_list(v.get("overrides", [])))
            out.append((Grid.from_dict({**base, **v, "overrides": list(self.overrides) + list(extra)},
                                       f"{self.name} variant {i + 1}"), extra))
        return out

    def cells(self) -> list["Cell"]:
        """Every (method, dataset, IPC, lambda, seed) of every sub-grid, as validated configs, without
        duplicates (a base method appears once whatever the lambdas), in grid order."""
        out, seen = [], set()
        for sub, extra in self._variant_grids():
            for cell in sub._cells(extra):
                key = tuple(cell.identity())
                if key not in seen:
                    seen.add(key)
                    out.append(cell)
        return out

    def _cells(self, variant: tuple = ()) -> list["Cell"]:
        out = []
        for dataset in self.datasets:
            for ipc in self.ipcs:
                for seed in self.seeds:
                    for method in self.methods:
                        lams = self.lambdas if str(method).endswith("+cmi") else [None]
                        for lam in lams:
                            out.append(Cell(self.profile, str(method), str(dataset), ipc, seed,
                                            None if lam is None else float(lam), tuple(self.overrides), self.data_root,
                                            variant))
        return out  # cells() builds each one's identity, which validates its config: bad names fail there


def _as_list(x):
    return x if isinstance(x, list) else [x]


def _number(x):
    if isinstance(x, str):
        try:
            return float(x)
        except ValueError:
            return x
    return x


@dataclass(frozen=True)
class Cell:
    profile: str
    method: str
    dataset: str
    ipc: int
    seed: int
    weight: float | None = None  # lambda; None = the profile's
    overrides: tuple = ()
    data_root: str | None = None
    variant: tuple = ()  # the overrides (part of ``overrides``) that the cell's grid variant adds: they name it

    @property
    def name(self) -> str:
        lam = "" if self.weight is None else f" lambda={self.weight:g}"
        extra = f" [{', '.join(self.variant)}]" if self.variant else ""
        return f"{self.dataset} {self.method}{lam} ipc{self.ipc} seed{self.seed}{extra}"

    def config(self):
        from ..profiles import make_config
        extra = [] if self.weight is None else [f"cmi.weight={self.weight!r}"]
        return make_config(self.profile, self.dataset, self.method, self.ipc, self.seed,
                           overrides=list(self.overrides) + extra)

    def pool_config(self):
        """The pool that measures the cell's CMI: the +CMI config's, as in a comparison (runs.setup)."""
        from .runs import _pool_config
        return _pool_config(self.profile, self.dataset, self.method.split("+")[0], self.ipc, self.seed,
                            list(self.overrides))

    def artefacts(self) -> list[tuple[str, str, object]]:
        """(kind, key, config) of the shared artefacts the cell reads: its proxy pool, MTT's experts."""
        out = [("pool", self.pool_config().key(), self.pool_config())]
        experts = getattr(getattr(self.config(), "options", None), "experts", None)
        if experts is not None:
            out.append(("experts", experts.key(), experts))
        return out

    def identity(self) -> list[str]:
        """What the cell's result depends on: run key, evaluation recipe, proxy pool."""
        from .cells import result_identity
        return [*result_identity(self.config()), self.pool_config().key()]

    def record_path(self) -> Path:
        """``cell-<digest of recipe and pool>.json`` in the run folder: one run measured under several
        pools or evaluated by several recipes (a base run of a proxy-strength study) keeps one record each."""
        from ..keys import digest
        from .runs import run_dir_for
        return run_dir_for(self.config()) / f"cell-{digest(self.identity()[1:], 8)}.json"

    def kept_path(self, cells_dir: str | Path) -> Path:
        """The record's copy in a folder of kept cells: ``<run folder name>--cell-<digest>.json``."""
        path = self.record_path()
        return Path(cells_dir) / f"{path.parent.name}--{path.name}"

    def finished(self, cells_dir: str | Path | None = None) -> dict | None:
        """The recorded result of this cell, if there is one with this identity: in its run folder, else
        in ``cells_dir`` (records kept beside a report, from another machine's store)."""
        paths = [self.record_path()] + ([self.kept_path(cells_dir)] if cells_dir else [])
        for path in paths:
            try:
                rec = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            if rec.get("format") == CELL_FORMAT and rec.get("identity") == self.identity():
                return rec["result"]
        return None

    def record(self, result: dict, cells_dir: str | Path | None = None) -> None:
        atomic_write_json(self._record(result), self.record_path())
        if cells_dir:
            self.keep(result, cells_dir)

    def keep(self, result: dict, cells_dir: str | Path) -> None:
        """Put the record in ``cells_dir`` too, unless it is there already."""
        if not self.kept_path(cells_dir).exists():
            atomic_write_json(self._record(result), self.kept_path(cells_dir))

    def _record(self, result: dict) -> dict:
        return {"format": CELL_FORMAT, "identity": self.identity(), "cell": dataclasses.asdict(self), "result": result}


def load_grid(source: str | Path, profile: str | None = None) -> Grid:
    """A grid from a YAML file, or a named grid (``main_table``, ``cmi_vs_accuracy``: that notebook's
    parameters at ``profile``, default smoke). ``profile`` given with a file replaces the file's."""
    from ..store import resolve_user_path
    path = Path(source)
    if path.suffix in (".yaml", ".yml", ".json") or path.exists():
        # relative paths (the file, its cells_dir) from the working directory, else from the project root:
        # a JupyterLab kernel runs in notebooks/, the grids name paths from the root
        path = resolve_user_path(path)
        if not path.is_file():
            raise ConfigError(f"grid file {path.resolve()} does not exist; give a YAML file or one of the named "
                              f"grids: {', '.join(NAMED)}")
        import yaml
        try:
            data = yaml.safe_load(path.read_text())
        except yaml.YAMLError as exc:
            raise ConfigError(f"grid file {path} is not valid YAML: {exc}") from None
        if isinstance(data, dict) and profile is not None:
            data = {**data, "profile": profile}
        grid = Grid.from_dict(data, str(source))
        if grid.cells_dir and not Path(grid.cells_dir).is_absolute():
            grid = dataclasses.replace(grid, cells_dir=str(resolve_user_path(grid.cells_dir)))
        return grid
    if str(source) not in NAMED:
        raise ConfigError(f"{source!r} is neither a grid file nor a named grid; named grids: {', '.join(NAMED)} "
                          f"(their notebook's parameters at --profile)")
    return named_grid(str(source), profile or "smoke")


def named_grid(name: str, profile: str) -> Grid:
    """The runs that notebook ``name`` makes at ``profile``, as a grid (``reproduce.notebook_parameters``)."""
    from ..reproduce import notebook_parameters
    p = notebook_parameters(name, profile)
    if name == "cmi_study":
        from .study import study_grid
        from .. import store
        cells_dir = p.get("cells_dir") or store.reports_dir() / profile / name / "cells"  # as the notebook keeps them
        return study_grid(profile, p["dataset"], p["ipc"], p["method"], p["axes"], p["seeds"],
                          list(p.get("overrides") or []), p.get("data_root"), p.get("threads"), f"{name}-{profile}",
                          str(cells_dir))
    common = {"name": f"{name}-{profile}", "profile": profile, "methods": list(p["methods"]), "seeds": [p["seed"]],
              "data_root": p.get("data_root")}
    if name == "main_table":
        return Grid.from_dict({**common, "datasets": p["datasets"], "ipcs": p["ipcs"],
                               "overrides": list(p.get("overrides") or [])}, name)
    # cmi_vs_accuracy: the methods at the profile's lambda, and its lambda sweep of the +CMI method
    return Grid.from_dict({**common, "datasets": [p["dataset"]], "ipcs": [p["ipc"]],
                           "lambdas": [None, *p.get("lambdas", [])]}, name)
