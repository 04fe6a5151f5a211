"""Scale-out on the machine in hand: a grid of smoke cells serially and on a local Ray, and one DM+CMI
cell at the cpu profile in one process versus split by class over two (torchrun, gloo).

    python benchmarks/bench_scaleout.py                       # both parts
    python benchmarks/bench_scaleout.py --part parallel --dataset fashion_mnist --iterations 40 \\
        --pool-store .                                        # reuse the cpu proxy pool of a store

Grid part: ``--cells`` smoke cells (mnist, DM and DM+CMI over IPCs) swept by ``ddcmi sweep`` in a
fresh store each time (the smoke proxy pool is built once beforehand and linked in, so every mode does
the same work): serial with 1 thread per cell, serial with all cores' threads per cell, Ray with one
thread per cell (as many cells at a time as cores). Wall time of the whole command, Ray's start-up
included (and measured alone). Parallel part: ``ddcmi distill`` of DM+CMI at the cpu profile for
``--iterations`` iterations (an approximation of the 600-iteration run: seconds per iteration is what is
compared) in 1 process x 1 thread, 1 process x 2 threads and 2 processes x 1 thread; seconds per
iteration from the run's history (start-up excluded), and whether the 2-process set equals the
1-process one bitwise. Prints Markdown tables; compare ratios, not absolute times (machines differ).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _env(store: Path, threads: int | None = None) -> dict:
    env = {**os.environ, "DDCMI_STORE": str(store), "RAY_USAGE_STATS_ENABLED": "0"}
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    return env


def _ddcmi(args: list[str], store: Path, threads: int | None = None) -> float:
    t0 = time.time()
    r = subprocess.run([sys.executable, "-m", "ddcmi", *args], env=_env(store, threads), capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"ddcmi {' '.join(args)} failed:\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}")
    return time.time() - t0


def _fresh_store(parent: Path, name: str, pools: Path | None) -> Path:
    store = parent / name
    store.mkdir()
    if pools is not None and pools.is_dir():
        (store / "pools").symlink_to(pools.resolve())
    return store


def grid_part(args, tmp: Path) -> list[str]:
    import yaml
    ipcs = [1, 2, 5, 10, 3, 4, 6, 8][: max(1, args.cells // 2)]
    grid = {"name": "bench", "profile": "smoke", "methods": ["dm", "dm+cmi"], "datasets": [args.grid_dataset],
            "ipcs": ipcs, "overrides": list(args.grid_set)}
    cells = 2 * len(ipcs)
    cores = os.cpu_count() or 1
    template = tmp / "template"
    template.mkdir()
    _ddcmi(["pool", "--dataset", args.grid_dataset, "--profile", "smoke", "--quiet"], template)
    t0 = time.time()
    subprocess.run([sys.executable, "-c", "import ray; ray.init(num_cpus=%d, object_store_memory=256*1024**2, "
                    "include_dashboard=False); ray.shutdown()" % cores], env=_env(tmp), capture_output=True)
    ray_start = time.time() - t0
    rows, base = [], None
    for label, runner, threads in (("serial, 1 thread per cell", "serial", 1),
                                   (f"serial, {cores} threads per cell", "serial", cores),
                                   (f"ray, 1 thread per cell, {cores} at a time", "ray", 1)):
        g = {**grid, "resources": {"cpus": threads}}
        path = tmp / f"grid-{runner}-{threads}.yaml"
        path.write_text(yaml.safe_dump(g))
        store = _fresh_store(tmp, f"store-{runner}-{threads}", template / "pools")
        extra = ["--runner", runner] + (["--cpus", str(cores)] if runner == "ray" else [])
        wall = _ddcmi(["sweep", str(path), "--quiet", *extra], store)
        summary = json.loads((store / "sweeps" / "bench" / "summary.json").read_text())
        assert summary["finished"] == cells, summary
        base = base or wall
        rows.append(f"| {label} | {wall:.1f} | {base / wall:.2f}x |")
    over = f", overrides {', '.join(args.grid_set)}" if args.grid_set else ""
    return [f"### Grid: {cells} smoke cells ({args.grid_dataset}, DM and DM+CMI at IPC {ipcs}{over}), {cores} cores",
            "", "| runner | wall s (whole command) | speed-up vs serial 1 thread |", "|---|---|---|", *rows, "",
            f"A local Ray's start-up and shutdown alone: {ray_start:.1f} s (included above).", ""]


def parallel_part(args, tmp: Path) -> list[str]:
    import torch

    import ddcmi
    if args.pool_store:
        pools = Path(args.pool_store) / "pools"
    else:  # trained once here, then linked into every mode's store, so no mode pays for it
        template = tmp / "template-cpu"
        template.mkdir()
        _ddcmi(["pool", "--dataset", args.dataset, "--profile", "cpu", "--quiet"], template)
        pools = template / "pools"
    common = ["distill", "--dataset", args.dataset, "--method", "dm+cmi", "--ipc", str(args.ipc), "--profile", "cpu",
              "--set", f"iterations={args.iterations}", "--quiet"]
    rows, per_it, sets = [], {}, {}
    for label, nproc, threads in (("1 process x 1 thread", 1, 1), ("1 process x 2 threads", 1, 2),
                                  ("2 processes x 1 thread", 2, 1)):
        store = _fresh_store(tmp, f"par-{nproc}-{threads}", pools)
        wall = _ddcmi(common + (["--nproc", str(nproc)] if nproc > 1 else []), store, threads)
        (run,) = [d for d in (store / "runs").iterdir() if d.is_dir() and d.name != "evals"]
        steps = json.loads((run / "history.json").read_text())["steps"]
        warm = min(2, len(steps) - 1)  # the first iterations (allocations, first draws) left out
        s = (steps[-1]["seconds"] - steps[warm - 1]["seconds"]) / (len(steps) - warm) if warm else steps[-1]["seconds"] / len(steps)
        per_it[label], sets[label] = s, ddcmi.SyntheticSet.load(run / "synset.pt")
        rows.append((label, s, wall))
    base = per_it["1 process x 1 thread"]
    a, b = sets["1 process x 1 thread"], sets["2 processes x 1 thread"]
    same = torch.equal(a.images, b.images)
    out = [f"### Class-parallel DM+CMI, {args.dataset} IPC {args.ipc}, cpu profile, {args.iterations} iterations "
           f"(of 600; seconds per iteration after the first {warm})", "",
           "| processes x threads | s / iteration | speed-up | wall s (command) |", "|---|---|---|---|"]
    out += [f"| {label} | {s:.3f} | {base / s:.2f}x | {wall:.1f} |" for label, s, wall in rows]
    out += ["", f"2 processes x 1 thread equal 1 process x 1 thread bitwise: {same}.", ""]
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--part", choices=["grid", "parallel", "both"], default="both")
    ap.add_argument("--cells", type=int, default=8, help="grid cells (even, at least 8 for the report)")
    ap.add_argument("--grid-dataset", default="mnist")
    ap.add_argument("--grid-set", action="append", default=[], metavar="KEY=VALUE",
                    help="an override of every grid cell (e.g. iterations=200 for longer cells)")
    ap.add_argument("--dataset", default="mnist", help="dataset of the class-parallel cell")
    ap.add_argument("--ipc", type=int, default=10)
    ap.add_argument("--iterations", type=int, default=30)
    ap.add_argument("--pool-store", default=None,
                    help="a run store whose pools/ holds the cpu proxy pool of --dataset (else it is trained once first)")
    args = ap.parse_args()
    lines = []
    with tempfile.TemporaryDirectory(prefix="ddcmi-bench-scaleout-") as d:
        tmp = Path(d)
        if args.part in ("grid", "both"):
            lines += grid_part(args, tmp)
        if args.part in ("parallel", "both"):
            lines += parallel_part(args, tmp)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
