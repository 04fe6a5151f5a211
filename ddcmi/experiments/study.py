"""When does CMI help? Paired comparisons of a base method and base+CMI along the axes a profile reduces.

An **axis** is a config key (``pool.epochs``, ``iterations``, ``real_per_class``, any ``--set`` key) or
``lambda_scale`` (multiples of the profile's lambda), with a list of values; every other setting stays
at the profile's. Each **point** of an axis is a pair of cells of ``ddcmi sweep``: the base run and the
+CMI run with the same seed, evaluated by the same evaluation networks (same initialisations and
draws), and both measured under the point's proxy pool. The study is therefore one grid
(:func:`study_grid`, the named grid ``cmi_study``), so ``ddcmi sweep cmi_study --profile paper
--runner ray`` computes on a cluster exactly what the notebook then draws from the store.

The gain of a point is the mean over evaluation networks (and seeds) of the paired difference
acc(+CMI) - acc(base); its error bar is the standard error of that mean. A base run does not read the
proxy pool (its key leaves the pool out), so the points of a pool axis share one base run.
"""
from __future__ import annotations

import json
import math
import os

from ..errors import ConfigError
from ..profiles import make_config
from ..utils import slug
from .grid import Cell, Grid

LAMBDA = "lambda_scale"


def _variant(axis: str, value, base_lambda: float) -> dict:
    if axis == LAMBDA:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            raise ConfigError(f"{LAMBDA} values must be positive multiples of the profile's lambda, got {value!r}")
        return {"lambdas": [float(value) * base_lambda]}
    return {"overrides": [f"{axis}={value}"]}


def study_grid(profile: str, dataset: str, ipc: int, method: str = "dm", axes: dict | None = None,
               seeds=(0,), overrides=(), data_root=None, threads: int | None = None, name: str | None = None,
               cells_dir: str | None = None) -> Grid:
    """The cells of a study: for every axis value, ``method`` and ``method+cmi`` with that one change
    (``cells_dir``: where the study's cell records are kept beside its report, see ``Grid.cells_dir``)."""
    if "+" in method:
        raise ConfigError(f"a study compares a base method with its +CMI variant: give the base ({method.split('+')[0]!r}), "
                          f"not {method!r}")
    if not axes or not isinstance(axes, dict):
        raise ConfigError(f"axes must map an axis (a config key or {LAMBDA!r}) to a list of values, got {axes!r}")
    base_lambda = _profile_lambda(profile, dataset, f"{method}+cmi", ipc, overrides)
    # the profile's own point first (every axis passes through it), then each axis in the order given
    variants = [{}] + [_variant(axis, v, base_lambda) for axis, values in axes.items() for v in _values(axis, values)]
    return Grid.from_dict({"name": name or f"cmi_study-{profile}-{slug(dataset)}-ipc{ipc}", "profile": profile,
                           "methods": [method, f"{method}+cmi"], "datasets": [dataset], "ipcs": [ipc],
                           "seeds": list(seeds), "overrides": list(overrides), "variants": variants,
                           "data_root": data_root, "resources": {"cpus": threads or os.cpu_count() or 1},
                           "cells_dir": None if cells_dir is None else str(cells_dir)},
                          "cmi study")


def _profile_lambda(profile, dataset, cmi_method, ipc, overrides) -> float:
    """The lambda the profile gives ``cmi_method`` (what ``lambda_scale`` multiplies)."""
    return make_config(profile, dataset, cmi_method, ipc, overrides=list(overrides)).cmi.weight


def _values(axis, values) -> list:
    if not isinstance(values, (list, tuple)) or not values:
        raise ConfigError(f"axis {axis!r} needs a non-empty list of values, got {values!r}")
    return list(values)


def point_cells(grid: Grid, axis: str, value, seed: int) -> tuple[Cell, Cell]:
    """The (base, +CMI) cells of one point of an axis."""
    method, cmi = grid.methods
    variant = _variant(axis, value, _profile_lambda(grid.profile, grid.datasets[0], cmi, grid.ipcs[0], grid.overrides))
    extra = tuple(grid.overrides) + tuple(variant.get("overrides", []))
    weight = variant["lambdas"][0] if "lambdas" in variant else None
    common = dict(profile=grid.profile, dataset=grid.datasets[0], ipc=grid.ipcs[0], seed=seed, data_root=grid.data_root,
                  variant=tuple(variant.get("overrides", [])))
    return Cell(method=method, overrides=extra, **common), Cell(method=cmi, weight=weight, overrides=extra, **common)


def mean_and_se(values: list[float]) -> dict:
    """Mean of ``values`` and its standard error (None for a single value: no error bar)."""
    n = len(values)
    mean = sum(values) / n
    se = math.sqrt(sum((x - mean) ** 2 for x in values) / (n - 1) / n) if n > 1 else None
    return {"mean": mean, "se": se, "n": n}


def paired_gain(base_accs: list[float], cmi_accs: list[float]) -> dict:
    """Mean and standard error of acc(+CMI) - acc(base) over paired evaluation networks."""
    if len(base_accs) != len(cmi_accs) or not base_accs:
        raise ValueError(f"paired accuracies need the same number of networks, got {len(base_accs)} and {len(cmi_accs)}")
    return mean_and_se([c - b for b, c in zip(base_accs, cmi_accs)])


def pool_accuracy(cell: Cell, result: dict | None = None) -> float | None:
    """Mean test accuracy of the proxies that measured ``cell``: from the pool's ``pool.json`` in the store,
    else as the cell's recorded result saw it (a cell kept beside a report, its pool on another machine)."""
    from ..proxy import pool_dir
    try:
        return json.loads((pool_dir(cell.pool_config()) / "pool.json").read_text()).get("test_acc_mean")
    except (OSError, ValueError):
        return (result or {}).get("pool_test_acc")


def study_points(grid: Grid, axes: dict) -> list[dict]:
    """Every point of every axis with the recorded results of its cells (None where not finished)."""
    out = []
    for axis, values in axes.items():
        for value in values:
            pairs = [point_cells(grid, axis, value, seed) for seed in grid.seeds]
            found = [(b.finished(grid.cells_dir), c.finished(grid.cells_dir)) for b, c in pairs]
            point = {"axis": axis, "value": value, "pool_acc": pool_accuracy(pairs[0][1], found[0][1]),
                     "cmi_weight": pairs[0][1].config().cmi.weight, "finished": all(b and c for b, c in found)}
            if point["finished"]:
                base = [a for b, _ in found for a in b["accuracy"]["accs"]]
                cmi = [a for _, c in found for a in c["accuracy"]["accs"]]
                point.update(base_acc=sum(base) / len(base), cmi_acc=sum(cmi) / len(cmi), gain=paired_gain(base, cmi),
                             base_cmi=[b["cmi_feature"]["mean"] for b, _ in found],
                             cmi_cmi=[c["cmi_feature"]["mean"] for _, c in found],
                             commits=sorted({r["provenance"]["git_commit"] for pair in found for r in pair}))
            out.append(point)
    return out


def run_study(profile: str, dataset: str, ipc: int, method: str = "dm", axes: dict | None = None, seeds=(0,),
              overrides=(), data_root=None, device=None, runner: str = "serial", threads: int | None = None,
              progress: bool = True, cells_dir: str | None = None) -> tuple[Grid, list[dict], dict]:
    """Sweep the study's cells (what the store or ``cells_dir`` holds is not recomputed) and collect its points."""
    from .sweep import sweep
    grid = study_grid(profile, dataset, ipc, method, axes, seeds, overrides, data_root, threads, cells_dir=cells_dir)
    summary = sweep(grid, runner=runner, device=None if device is None else str(device), progress=progress)
    return grid, study_points(grid, axes), summary
