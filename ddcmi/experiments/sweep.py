"""``ddcmi sweep``: run a grid's cells (``grid.py``) serially or as Ray tasks, through the run store.

The driver expands the grid, skips every cell whose result the store already holds, builds the
shared artefacts the remaining cells read (proxy pools, MTT expert buffers) once each, then runs the
cells: distill (resuming a checkpoint a stopped sweep left), evaluate, measure CMI, record
``cell-<digest>.json``. A failed task is submitted again up to ``grid.retries`` times, then reported with its
error while the other cells go on. Ray does the scheduling (declared CPUs and GPUs per task, fractional
GPUs for small cells); the driver only keeps at most as many tasks in flight as the cluster has room
for, so "running" in the progress line means running. Each task runs on ``resources.cpus`` threads
under every runner, so a cell's bits do not depend on which runner made it.

The summary of the last sweep of a grid is ``<store>/sweeps/<name>/summary.json`` and ``table.md``.
On a cluster every node must see the same store (``--store`` on a shared mount) and have ddcmi
installed; the README shows how.
"""
from __future__ import annotations

import dataclasses
import os
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from .. import store
from ..errors import ConfigError, DDCMIError, RunnerError
from ..utils import atomic_write_json, atomic_write_text, pick_device, provenance, slug
from .grid import Cell, Grid

RUNNERS = ("serial", "ray")
OBJECT_STORE_MB = 256  # a local Ray's object store: the tasks pass small dicts, files go through the store


# ------------------------------------------------------------------------------ the tasks
def _pin_threads(threads: int | None) -> None:
    import torch
    if threads:
        torch.set_num_threads(threads)


def build_artefact(cell: Cell, kind: str, store_root: str, threads: int | None, device: str | None,
                   snapshots: tuple = (), progress: bool = False) -> dict:
    """Train (or finish, or just open) one shared artefact of ``cell``: its proxy pool (keeping the
    members after ``snapshots`` epochs as the pools with those epochs) or MTT's experts. ``progress``
    shows the build's own bars (the serial runner: the task runs in the driver's terminal)."""
    from ..data import load_dataset
    from ..utils import pick_device
    store.use(store_root)
    _pin_threads(threads)
    ds, dev, t0 = load_dataset(cell.dataset, root=cell.data_root), pick_device(device), time.time()
    if kind == "pool":
        from ..proxy import ProxyPool
        cfg = cell.pool_config()
        ProxyPool.build(cfg, ds, dev, progress=progress, snapshots=snapshots)
        for epochs in snapshots:  # members the longer pool had before this sweep are trained here
            ProxyPool.build(dataclasses.replace(cfg, epochs=epochs), ds, dev, progress=progress)
    else:
        from ..experts import ExpertBuffer
        cfg = cell.config().options.experts
        ExpertBuffer.build(cfg, ds, dev, progress=progress)
    return {"kind": kind, "describe": cfg.describe(), "seconds": round(time.time() - t0, 1)}


def execute_cell(cell: Cell, store_root: str, threads: int | None, device: str | None,
                 cells_dir: str | None = None, progress: bool = False) -> dict:
    """One cell, as a task: ``cells.run_cell`` on the cell's config, its result recorded in the store
    (and in ``cells_dir``, when the grid keeps its cells beside a report). ``progress`` shows the cell's
    own bars (distillation iterations, evaluation networks: the serial runner, in the driver's terminal)."""
    from ..data import load_dataset
    from ..proxy import ProxyPool
    from ..utils import pick_device
    from .cells import run_cell
    store.use(store_root)
    _pin_threads(threads)
    found = cell.finished(cells_dir)
    if found is not None:  # another driver finished it meanwhile
        return found
    cfg, dev = cell.config(), pick_device(device)
    ds = load_dataset(cell.dataset, root=cell.data_root)
    pool = ProxyPool.build(cell.pool_config(), ds, dev, progress=False)
    r = run_cell(cfg, ds, dev, pool, progress=progress, wait=True)
    result = {k: v for k, v in r.items() if k != "synset"}
    result["threads"] = threads
    cell.record(result, cells_dir)
    return result


# ------------------------------------------------------------------------------ runners
class SerialRunner:
    """Runs each submitted task in this process when its result is asked for (no dependencies)."""
    name = "serial"

    def __init__(self, resources):
        self.slots, self._tasks, self._next = 1, {}, 0

    def submit(self, fn, *args):
        self._next += 1
        self._tasks[self._next] = (fn, args)
        return self._next

    def wait_one(self, handles):
        h = handles[0]
        fn, args = self._tasks.pop(h)
        try:
            return h, True, fn(*args)
        except Exception as exc:  # noqa: BLE001  a failed cell is reported and the sweep goes on (not Ctrl-C)
            return h, False, _describe(exc)

    def describe(self) -> str:
        return "serial (this process)"

    def close(self):
        pass


class RayRunner:
    """Tasks on a Ray cluster: a local one started here (bounded object store, no dashboard), or the
    one at ``address`` / ``$RAY_ADDRESS``."""
    name = "ray"

    def __init__(self, resources, address: str | None = None, num_cpus: int | None = None):
        try:
            import ray
        except ImportError:
            raise ConfigError("the ray runner needs Ray: pip install 'ddcmi[ray]' (or use --runner serial)") from None
        self.ray, self.resources = ray, resources
        address = address or os.environ.get("RAY_ADDRESS")
        self.started = not ray.is_initialized()
        if self.started:
            try:
                if address:
                    ray.init(address=address, log_to_driver=False)
                else:
                    ray.init(num_cpus=num_cpus or os.cpu_count(), object_store_memory=OBJECT_STORE_MB * 1024 ** 2,
                             include_dashboard=False, log_to_driver=False)
            except Exception as exc:  # a busy machine's start-up timeout, an unreachable address, a stale session
                said = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
                where = f"the cluster at {address}" if address else "a local Ray"
                raise RunnerError(f"{where} did not start: {said}. Nothing was run. Try again (a busy machine can "
                                  f"time Ray's start-up out), check the address, or use --runner serial, which runs "
                                  f"the same cells in this process") from None
        total = ray.cluster_resources()
        cpus, gpus = total.get("CPU", 0), total.get("GPU", 0)
        if resources.cpus > cpus or resources.gpus > gpus:
            raise ConfigError(f"each cell asks for {resources.cpus} CPU(s) and {resources.gpus} GPU(s) but the Ray "
                              f"cluster has {cpus:g} CPU(s) and {gpus:g} GPU(s): lower resources in the grid")
        self.slots = max(1, int(cpus // resources.cpus))
        if resources.gpus:
            self.slots = min(self.slots, int(gpus // resources.gpus))
        self.where = address or f"local Ray ({cpus:g} CPUs, {gpus:g} GPUs)"
        self._remote = ray.remote(_call).options(num_cpus=resources.cpus, num_gpus=resources.gpus, max_retries=0)

    def submit(self, fn, *args):
        return self._remote.remote(fn, *args)

    def wait_one(self, handles):
        ready, _ = self.ray.wait(list(handles), num_returns=1)
        h = ready[0]
        try:
            return h, True, self.ray.get(h)
        except self.ray.exceptions.RayTaskError as exc:
            cause = getattr(exc, "cause", None)
            return h, False, _describe(cause) if isinstance(cause, BaseException) else str(exc).splitlines()[-1]
        except self.ray.exceptions.RayError as exc:  # the worker died (killed, out of memory)
            return h, False, f"{type(exc).__name__}: {str(exc).splitlines()[0]}"

    def describe(self) -> str:
        return f"ray at {self.where}, {self.slots} cell(s) at a time"

    def close(self):
        if self.started:
            self.ray.shutdown()


def _call(fn, *args):
    return fn(*args)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, DDCMIError):
        return f"{type(exc).__name__}: {exc}"
    return "".join(traceback.format_exception_only(type(exc), exc)).strip()


def make_runner(name: str, resources, address: str | None = None, num_cpus: int | None = None):
    if name == "serial":
        if address:
            raise ConfigError("--address names a Ray cluster: use it with --runner ray")
        return SerialRunner(resources)
    if name == "ray":
        return RayRunner(resources, address, num_cpus)
    raise ConfigError(f"unknown runner {name!r}; choose one of: {', '.join(RUNNERS)}")


# ------------------------------------------------------------------------------ the driver
@dataclass
class Job:
    label: str
    fn: object
    args: tuple
    attempts: int = 0
    error: str | None = None


def _run_jobs(runner, jobs: list[Job], retries: int, on_done, on_fail, bar=None, on_start=None) -> None:
    """Keep up to ``runner.slots`` jobs in flight; a failed one goes back in the queue until it has
    failed ``retries + 1`` times. ``on_start(job)`` runs as a job is handed to the runner."""
    queue, inflight = list(jobs), {}
    while queue or inflight:
        while queue and len(inflight) < runner.slots:
            job = queue.pop(0)
            job.attempts += 1
            if on_start is not None:
                on_start(job)
            inflight[runner.submit(job.fn, *job.args)] = job
        if bar is not None:
            bar.running = len(inflight)
        handle, ok, value = runner.wait_one(list(inflight))
        job = inflight.pop(handle)
        if ok:
            on_done(job, value)
        elif job.attempts <= retries:
            tqdm.write(f"[retry {job.attempts}/{retries}] {job.label}: {value}")
            queue.append(job)
        else:
            job.error = value
            on_fail(job)


class _Bar:
    """The overall line: cells done of all, running, failed, time left (tqdm's estimate)."""

    def __init__(self, total: int, done: int, desc: str, progress: bool):
        self.bar = tqdm(total=total, initial=done, desc=desc, disable=not progress,
                        bar_format="{desc}: {n}/{total} cells done{postfix}, {elapsed} elapsed, about {remaining} left")
        self._running, self.failed = 0, 0
        self._show()

    @property
    def running(self):
        return self._running

    @running.setter
    def running(self, n):
        self._running = n
        self._show()

    def _show(self):
        self.bar.set_postfix_str(f"{self._running} running, {self.failed} failed", refresh=True)

    def step(self, failed=False):
        self.failed += failed
        self.bar.update()
        self._show()

    def close(self):
        self.bar.close()


def sweep(grid: Grid, runner: str = "serial", address: str | None = None, device: str | None = None,
          progress: bool = True, num_cpus: int | None = None, dry_run: bool = False, table_only: bool = False) -> dict:
    """Run every cell of ``grid`` that the store does not hold yet; returns the summary (also written to
    ``<store>/sweeps/<name>/summary.json`` with ``table.md``). ``num_cpus`` bounds a local Ray. ``table_only``
    runs nothing and writes the summary of the cells already recorded (the others marked "not run"); a
    sweep stopped by Ctrl-C writes that partial summary too."""
    t0 = time.time()
    cells = grid.cells()  # every config validated before anything starts
    root = str(store.root())
    results = {c: c.finished(grid.cells_dir) for c in cells}
    if grid.cells_dir:  # cells this store finished before the grid kept its cells: kept now
        for c, r in results.items():
            if r is not None:
                c.keep(r, grid.cells_dir)
    todo = [c for c in cells if results[c] is None]
    artefacts = {}
    for c in todo:
        for kind, key, cfg in c.artefacts():
            artefacts.setdefault((kind, key), (c, cfg))
    kept = f" or kept in {grid.cells_dir}" if grid.cells_dir else ""
    print(f"sweep {grid.name}: {len(cells)} cells at profile {grid.profile}, {len(cells) - len(todo)} already in the "
          f"store ({root}){kept}, {len(todo)} to run; {len(artefacts)} shared artefact(s) to build or open first",
          flush=True)
    if dry_run:
        from ..locks import holder
        for c in cells:
            busy = None if results[c] is not None else holder(c.record_path().parent)  # held while distilling
            state = "done" if results[c] is not None else "busy" if busy else "todo"
            print(f"  {state}  {c.name}{f'  (being distilled by {busy})' if busy else ''}")
        return {"grid": grid.name, "cells": len(cells), "todo": len(todo), "dry_run": True}
    failures: dict[Cell, str] = {}
    if table_only:
        return _write_summary(grid, cells, results, failures, runner, t0)
    run = make_runner(runner, grid.resources, address, num_cpus) if todo else None
    threads, bar = grid.resources.cpus, None
    try:
        if run is not None:
            print(f"runner: {run.describe()}; each task on {threads} thread(s)", flush=True)
            blocked: dict[tuple[str, str], str] = {}  # (kind, key) -> why it could not be built
            plan = _artefact_plan(artefacts)
            in_driver = progress and run.name == "serial"  # a Ray task's bars would go to its worker's log
            jobs = {(kind, key): Job(f"{kind} {cfg.describe()}", build_artefact,
                                     (c, kind, root, threads, device, tuple(sorted(snaps)), in_driver))
                    for (kind, key), (c, cfg, snaps, _) in plan.items()}
            by_job = {id(job): ident for ident, job in jobs.items()}

            def built(job, value):
                tqdm.write(f"[built] {value['kind']} {value['describe']} ({value['seconds']} s)")

            def not_built(job):
                ident = by_job[id(job)]
                for blocked_key in [ident, *plan[ident][3]]:  # and the pools it was to leave as snapshots
                    blocked[blocked_key] = f"{job.label}: {job.error}"
                tqdm.write(f"[failed] {job.label}: {job.error}")

            def starting(job):  # the first minutes of a sweep are often a pool: say so from its first second
                tqdm.write(f"[building or opening] {job.label}")

            _run_jobs(run, list(jobs.values()), grid.retries, built, not_built, on_start=starting)
            for c in list(todo):
                missing = [blocked[(kind, key)] for kind, key, _ in c.artefacts() if (kind, key) in blocked]
                if missing:
                    failures[c] = f"its shared artefact could not be built: {missing[0]}"
                    todo.remove(c)
            bar = _Bar(len(cells), len(cells) - len(todo) - len(failures), f"sweep {grid.name}", progress)
            bar.failed = len(failures)
            by_label = {c.name: c for c in todo}

            def done(job, value):
                c = by_label[job.label]
                results[c] = value
                a = value["accuracy"]
                tqdm.write(f"[done] {c.name}: accuracy {100 * a['mean']:.2f} +- {100 * a['std']:.2f} %, feature CMI "
                           f"{value['cmi_feature']['mean']:.4g}, {value['provenance'].get('wall_time_s')} s"
                           + (f" (attempt {job.attempts})" if job.attempts > 1 else ""))
                bar.step()

            def failed(job):
                failures[by_label[job.label]] = job.error
                tqdm.write(f"[failed] {job.label} after {job.attempts} attempt(s): {job.error}")
                bar.step(failed=True)

            cells_dir = None if grid.cells_dir is None else str(Path(grid.cells_dir).resolve())
            _run_jobs(run, [Job(c.name, execute_cell, (c, root, threads, device, cells_dir, in_driver)) for c in todo],
                      grid.retries, done, failed, bar, on_start=lambda job: tqdm.write(f"[start] {job.label}"))
    except KeyboardInterrupt:
        if bar is not None:
            bar.close()
            bar = None
        summary = _write_summary(grid, cells, results, failures, runner, t0, stopped=True)
        raise KeyboardInterrupt(f"sweep {grid.name} stopped: {summary['finished']} of {len(cells)} cells are recorded in "
                                f"the store, their table is in {sweep_dir(grid.name)}, and unfinished runs kept their "
                                f"last checkpoint; the same command resumes") from None
    finally:
        if bar is not None:
            bar.close()
        if run is not None:
            run.close()
    return _write_summary(grid, cells, results, failures, runner, t0)


def _write_summary(grid: Grid, cells, results, failures, runner, t0, stopped: bool = False) -> dict:
    """Write ``summary.json`` and ``table.md`` of the cells recorded so far into the sweep's folder."""
    summary = _summary(grid, cells, results, failures, runner, t0)
    summary["stopped"] = stopped
    out = sweep_dir(grid.name)
    atomic_write_json(summary, out / "summary.json")
    atomic_write_text(_table(summary), out / "table.md")
    print(f"sweep {grid.name}: {summary['finished']} of {len(cells)} cells finished, {len(failures)} failed"
          f"{' (stopped)' if stopped else ''} ({summary['seconds']} s); summary in {out}", flush=True)
    return summary


def _artefact_plan(artefacts: dict) -> dict:
    """The build jobs for ``artefacts`` ((kind, key) -> (cell, config)): (kind, key) -> (cell, config,
    snapshot epochs, keys those snapshots provide). Pools that differ only in their epochs are one job,
    the longest one, which keeps its members at the shorter pools' epochs on the way (ProxyPool.build)."""
    plan, groups = {}, {}
    for (kind, key), (c, cfg) in artefacts.items():
        if kind == "pool":
            groups.setdefault(dataclasses.replace(cfg, epochs=0), []).append((key, c, cfg))
        else:
            plan[(kind, key)] = (c, cfg, set(), [])
    for members in groups.values():
        key, c, cfg = max(members, key=lambda m: m[2].epochs)
        others = [m for m in members if m[0] != key]
        plan[("pool", key)] = (c, cfg, {m[2].epochs for m in others}, [("pool", m[0]) for m in others])
    return plan


def _base_cell(cell: Cell, cells) -> Cell | None:
    """The base-method cell of the grid that a +CMI ``cell`` is compared with: same dataset, IPC, seed and
    overrides (so the same evaluation networks), the base method, no lambda."""
    if "+" not in cell.method:
        return None
    want = dataclasses.replace(cell, method=cell.method.split("+")[0], weight=None)
    return want if want in cells else None


def paired_gains(cells, results: dict) -> dict:
    """+CMI cell -> (its base cell, :func:`~ddcmi.experiments.study.paired_gain` of its accuracies over the
    base's), for every finished +CMI cell whose finished base cell is in the grid with as many networks."""
    from .study import paired_gain
    out, present = {}, set(cells)
    for c in cells:
        b = _base_cell(c, present)
        if b is None or results.get(c) is None or results.get(b) is None:
            continue
        base, cmi = results[b]["accuracy"]["accs"], results[c]["accuracy"]["accs"]
        if len(base) == len(cmi):
            out[c] = (b, paired_gain(base, cmi))
    return out


def gains_over_seeds(rows: list[dict]) -> list[dict]:
    """Summary rows' paired gains grouped over seeds (same method, dataset, IPC, lambda and variant): the
    mean of the per-seed gains, with the standard error across seeds, which includes the distillation
    seed's own spread (the per-seed error bars cover only the evaluation networks'). Groups of 2+ seeds."""
    from .study import mean_and_se
    groups = {}
    for r in rows:
        if r.get("gain") is not None:
            key = (r["method"], r["dataset"], r["ipc"], r["weight"], tuple(r.get("variant") or ()))
            groups.setdefault(key, []).append((r["seed"], r["gain"]["mean"]))
    out = []
    for (method, dataset, ipc, weight, variant), seeds in groups.items():
        if len(seeds) < 2:
            continue
        g = [m for _, m in seeds]
        spread = mean_and_se(g)
        out.append({"method": method, "dataset": dataset, "ipc": ipc, "weight": weight, "variant": list(variant),
                    "seeds": [s for s, _ in seeds], "per_seed": g, "mean": spread["mean"], "se": spread["se"]})
    return out


def _summary(grid: Grid, cells, results, failures, runner, t0) -> dict:
    rows, gains = [], paired_gains(cells, results)
    for c in cells:
        r = results.get(c)
        row = {"cell": c.name, **{k: getattr(c, k) for k in ("method", "dataset", "ipc", "seed", "weight")},
               "variant": list(c.variant)}
        if r is not None:
            row.update(status="finished", acc_mean=r["accuracy"]["mean"], acc_std=r["accuracy"]["std"],
                       accs=r["accuracy"]["accs"], cmi_feature=r["cmi_feature"]["mean"], cmi_logit=r["cmi_logit"]["mean"],
                       run_dir=r["run_dir"], commit=r["provenance"]["git_commit"],
                       cmi_weight=r.get("config", {}).get("cmi", {}).get("weight"), pool_acc=r.get("pool_test_acc"))
            if c in gains:
                row.update(gain_vs=gains[c][0].name, gain=gains[c][1])
        elif c in failures:
            row.update(status="failed", error=failures[c])
        else:  # stopped before it ran, or a table of a sweep that has not run it yet
            row.update(status="not run")
        rows.append(row)
    return {"grid": dataclasses.asdict(grid), "runner": runner, "cells": rows, "gains_over_seeds": gains_over_seeds(rows),
            "finished": sum(r["status"] == "finished" for r in rows), "failed": len(failures),
            "seconds": round(time.time() - t0, 1), "provenance": provenance(pick_device(None))}


def _table(summary: dict) -> str:
    lines = [f"# Sweep `{summary['grid']['name']}` (profile `{summary['grid']['profile']}`, runner {summary['runner']})", "",
             "| cell | status | accuracy % | CMI's gain (paired, points) | feature CMI | logit CMI |",
             "|---|---|---|---|---|---|"]
    for r in summary["cells"]:
        if r["status"] == "finished":
            gain = "" if r.get("gain") is None else signed_points(r["gain"]["mean"], r["gain"]["se"])
            lines.append(f"| {r['cell']} | finished | {100 * r['acc_mean']:.2f} +- {100 * r['acc_std']:.2f} | {gain} | "
                         f"{r['cmi_feature']:.4g} | {r['cmi_logit']:.4g} |")
        elif r["status"] == "failed":
            lines.append(f"| {r['cell']} | failed: {r['error'][:120]} | | | | |")
        else:
            lines.append(f"| {r['cell']} | not run yet (the same `ddcmi sweep` command runs it) | | | | |")
    notes = ["", "CMI's gain: accuracy of the +CMI set minus its base set's (same dataset, IPC, seed and overrides), "
             "network by network (the same initialisations and draws), +- the standard error over the networks."]
    if summary.get("gains_over_seeds"):
        notes += ["", "Over distillation seeds (mean of the per-seed gains +- their standard error across seeds):", "",
                  "| method | dataset | ipc | lambda | variant | seeds | gain per seed | mean gain |", "|---|---|---|---|---|---|---|---|"]
        for g in summary["gains_over_seeds"]:
            lam = "profile" if g["weight"] is None else f"{g['weight']:g}"
            per_seed = " / ".join(f"{100 * x:+.2f}" for x in g["per_seed"])
            notes.append(f"| {g['method']} | {g['dataset']} | {g['ipc']} | {lam} | {', '.join(g['variant']) or '-'} | "
                         f"{', '.join(map(str, g['seeds']))} | {per_seed} | {signed_points(g['mean'], g['se'])} |")
    p = summary["provenance"]
    return "\n".join(lines + notes + ["", f"Commit {p['git_commit']}, {p['device']}, {summary['seconds']} s.", ""])


def signed_points(mean: float, se: float | None) -> str:
    """A gain in accuracy (a fraction) as signed points with its standard error."""
    return f"{100 * mean:+.2f}" + ("" if se is None else f" +- {100 * se:.2f}")


def sweep_dir(name: str) -> Path:
    return store.root() / "sweeps" / slug(name)
