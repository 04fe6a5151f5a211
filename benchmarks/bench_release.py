"""The kit against the public releases' own DM loops, on this machine, in one run, paired.

    python benchmarks/bench_release.py --cmidd PATH/TO/CMIDD [--dm PATH/TO/DatasetCondensation]
                                       [--ipc 1 --ipc 10 --ipc 50] [--pairs 2]

``--cmidd`` is a checkout of the CMI paper's release (github.com/ndhg1213/CMIDD: its
``DC-DSA-DM/main_DM.py`` is DM+CMI with lambda 8000), ``--dm`` one of the DM authors' release
(github.com/VICO-UoE/DatasetCondensation: plain DM). Neither is part of this repository; each runs as
it ships, in its own process, through ``benchmarks/_release_driver.py`` (which supplies the local data
copy, a proxy checkpoint folder and module names the release imports but does not ship, and times the
interval between two steps of the release's own image optimiser).

Both sides run paper settings on the same data (``cifar10_jpeg`` by default): ConvNet-3 width 128, 256
real images per class, DSA, ResNet-18 proxies for CMI. The kit's side is ``bench_dm.py``'s single-step
mode (its ``Distiller`` step). Each configuration runs in a fresh process; kit and release alternate,
``--pairs`` times. Printed: median seconds per iteration of each, and the kit's speed-up (release /
kit). Rows:

- the release as it ships (glibc's default allocator) against the kit as it ships;
- ``--allocator``: also the release given the kit's allocator setting through glibc's environment
  variables (``MALLOC_MMAP_THRESHOLD_`` / ``MALLOC_TRIM_THRESHOLD_``), to separate that gain from the rest.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
GLIBC_LIKE_KIT = {"MALLOC_MMAP_THRESHOLD_": str(1 << 30), "MALLOC_TRIM_THRESHOLD_": str((1 << 31) - 1)}


def _run(cmd: list[str], env_extra: dict) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    env.update(env_extra)
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode or not line:
        sys.exit(f"benchmark subprocess failed ({' '.join(cmd)}):\n{proc.stderr[-3000:]}")
    return json.loads(line[0][7:])


def release(script_dir: Path, ipc: int, args, allocator: bool) -> float:
    cmd = [sys.executable, str(HERE / "_release_driver.py"), "--release-dir", str(script_dir), "--ipc", str(ipc),
           "--iterations", str(args.iterations), "--warmup", str(args.warmup), "--dataset", args.dataset]
    cmd += ["--data-root", args.data_root] if args.data_root else []
    env = {"DDCMI_MALLOC": "default", **(GLIBC_LIKE_KIT if allocator else {})}
    return _run(cmd, env)["s_per_iter"]


def kit(ipc: int, cmi: bool, args) -> float:
    cmd = [sys.executable, str(HERE / "bench_dm.py"), "--single", "--loop", "ddcmi", "--ipc", str(ipc),
           "--dataset", args.dataset, "--device", "cpu", "--repeats", str(args.iterations), "--warmup", str(args.warmup)]
    cmd += (["--cmi"] if cmi else []) + (["--data-root", args.data_root] if args.data_root else [])
    cmd += [a for kv in (args.kit_set or []) for a in ("--set", kv)]
    return _run(cmd, {})["s_per_iter"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cmidd", type=Path, help="checkout of ndhg1213/CMIDD (DM+CMI)")
    ap.add_argument("--dm", type=Path, help="checkout of VICO-UoE/DatasetCondensation (plain DM)")
    ap.add_argument("--ipc", type=int, action="append", default=None, help="repeatable; default 1, 10, 50")
    ap.add_argument("--pairs", type=int, default=2)
    ap.add_argument("--iterations", type=int, default=3, help="timed iterations per process")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--allocator", action="store_true", help="also time the releases with the kit's allocator setting")
    ap.add_argument("--kit-set", action="append", metavar="KEY=VALUE",
                    help="a config override of the kit's side, repeatable (e.g. autocast=real+cmi: bf16 parts)")
    ap.add_argument("--dataset", default="cifar10_jpeg")
    ap.add_argument("--data-root", default=None)
    args = ap.parse_args()
    sides = []
    if args.cmidd:
        d = args.cmidd / "DC-DSA-DM" if (args.cmidd / "DC-DSA-DM").is_dir() else args.cmidd
        if not (d / "main_DM.py").is_file():
            sys.exit(f"--cmidd {args.cmidd}: no DC-DSA-DM/main_DM.py there; give a checkout of ndhg1213/CMIDD")
        sides.append(("DM+CMI", d, True))
    if args.dm:
        if not (args.dm / "main_DM.py").is_file():
            sys.exit(f"--dm {args.dm}: no main_DM.py there; give a checkout of VICO-UoE/DatasetCondensation")
        sides.append(("DM", args.dm, False))
    if not sides:
        sys.exit("give --cmidd and/or --dm: checkouts of the public releases (not part of this repository)")

    import torch
    print(f"# The kit against the releases' own DM loops: {os.cpu_count()} cores, {torch.get_num_threads()} threads, "
          f"torch {torch.__version__}, {args.dataset}, paper settings, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}\n")
    kit_name = f"kit ({', '.join(args.kit_set)})" if args.kit_set else "kit"
    head = f"| method | IPC | release s/it (as it ships) | {kit_name} s/it | kit speed-up |"
    head += " release + allocator setting s/it | kit speed-up vs that |" if args.allocator else ""
    print(head)
    print("|---" * (head.count("|") - 1) + "|")
    for name, script_dir, cmi in sides:
        for ipc in args.ipc or [1, 10, 50]:
            rel, mine, rel_alloc = [], [], []
            for _ in range(args.pairs):
                rel.append(release(script_dir, ipc, args, allocator=False))
                mine.append(kit(ipc, cmi, args))
                if args.allocator:
                    rel_alloc.append(release(script_dir, ipc, args, allocator=True))
            r, k = statistics.median(rel), statistics.median(mine)
            fmt = lambda v: f"{statistics.median(v):.3f} ({', '.join(f'{x:.2f}' for x in v)})"  # noqa: E731
            row = f"| {name} | {ipc} | {fmt(rel)} | {fmt(mine)} | {r / k:.2f}x |"
            if args.allocator:
                ra = statistics.median(rel_alloc)
                row += f" {fmt(rel_alloc)} | {ra / k:.2f}x |"
            print(row, flush=True)


if __name__ == "__main__":
    main()
