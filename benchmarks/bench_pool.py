"""Proxy-pool training speed: one member of the profile's pool, eager against the pool's speed switches, paired
in one process on this machine.

    python benchmarks/bench_pool.py                                  # fashion_mnist, profile cpu
    python benchmarks/bench_pool.py --dataset cifar10_jpeg --images 10000 --repeats 3
    python benchmarks/bench_pool.py --modes eager,stacked            # members trained together

Each repeat trains fresh members of the profile's pool (its architecture and recipe: at ``cpu`` a
quarter-width ResNet-18, SGD, batch 256) for one epoch on the first ``--images`` training images in each
mode, the modes alternating, so drift of the machine touches all alike. Modes: ``eager`` (the default
path), ``compile`` (``pool.compile=true``), ``bf16`` (``pool.autocast=train``), ``compile+bf16`` (both), and
``stacked`` (``pool.stacked=--stack``: that many members in one epoch, timed per member). Compiled graphs are
built in a warm-up before the timed repeats (the one-off compile time is printed apart). Printed: the
median seconds per member epoch of each, the speed-up, and the minutes a whole pool of the profile would
take at each rate (extrapolated from the measured epoch to the full split, ``count`` members x ``epochs``).
bf16 changes the arithmetic: whether it keeps the proxies' numbers is measured elsewhere (docs/performance.md).
"""
from __future__ import annotations

import argparse
import dataclasses
import statistics
import time

import torch
from bench_dm import _timed  # the same clock as bench_dm.py (CUDA synchronised)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="fashion_mnist")
    ap.add_argument("--data-root", default=None)
    ap.add_argument("--profile", default="cpu")
    ap.add_argument("--images", type=int, default=5000, help="training images per timed epoch")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default=None)
    ap.add_argument("--modes", default="eager,compile,bf16,compile+bf16",
                    help="comma-separated: eager, compile, bf16, compile+bf16, stacked")
    ap.add_argument("--stack", type=int, default=4, help="members trained together in mode stacked")
    args = ap.parse_args()
    modes = args.modes.split(",")
    unknown = set(modes) - set(MODES)
    if unknown or not modes:
        ap.error(f"unknown mode(s) {sorted(unknown)}; choose from {', '.join(MODES)}")

    import ddcmi
    from ddcmi.proxy import _new_member, _training_split
    from ddcmi.models import init_weights_
    from ddcmi.train import train_epochs, train_epochs_stacked

    device = ddcmi.utils.pick_device(args.device)
    ds = ddcmi.load_dataset(args.dataset, root=args.data_root)
    pool = ddcmi.make_config(args.profile, ds.name, "dm+cmi", 10).pool
    x, y = _training_split(ds, pool, device)
    full, n = len(y), min(args.images, len(y))
    x, y = x[:n], y[:n]
    base = dataclasses.replace(pool.recipe(), epochs=1, compile=False, bf16=False)
    recipes = {m: dataclasses.replace(base, **MODES[m]) for m in modes}
    print(f"{ds.name}, profile {args.profile}: {pool.describe()}; one epoch on {n} images, "
          f"{torch.get_num_threads()} threads, {device}; modes {', '.join(modes)}; {args.repeats} interleaved repeats",
          flush=True)

    def member(seed: int):
        return init_weights_(_new_member(pool, ds), torch.Generator().manual_seed(seed)).to(device)

    def run(mode: str, r: int, xs=x, ys=y) -> float:  # seconds per member epoch
        if mode == "stacked":
            nets = [member(r * 100 + k) for k in range(args.stack)]
            gens = [torch.Generator().manual_seed(r * 100 + k) for k in range(args.stack)]
            return _timed(lambda: train_epochs_stacked(nets, xs, ys, recipes[mode], gens), device) / args.stack
        return _timed(lambda: train_epochs(member(r), xs, ys, recipes[mode], torch.Generator().manual_seed(r)), device)

    t0 = time.perf_counter()
    for mode in modes:  # compiled graphs (a full and a partial batch), and one stacked step, before the timing
        if mode != "eager":
            run(mode, 0, x[:pool.batch_size + 40], y[:pool.batch_size + 40])
    print(f"warm-up (compiling, one-off): {time.perf_counter() - t0:.1f} s", flush=True)
    times = {m: [] for m in modes}
    for r in range(args.repeats):
        for mode in modes:
            times[mode].append(run(mode, r))
        print(f"  repeat {r + 1}/{args.repeats}: " + ", ".join(f"{m} {times[m][-1]:.2f} s" for m in modes), flush=True)
    print(f"\n| pool member training | s per member epoch on {n} images | x {modes[0]} | whole pool ({pool.count} x "
          f"{pool.epochs} epochs on {full}), minutes |\n|---|---|---|---|")
    first = statistics.median(times[modes[0]])
    for mode in modes:
        s = statistics.median(times[mode])
        print(f"| {LABELS[mode].format(k=args.stack)} | {s:.2f} | {first / s:.2f} | {pool.count * pool.epochs * s * full / n / 60:.1f} |")


MODES = {"eager": {}, "compile": {"compile": True}, "bf16": {"bf16": True}, "compile+bf16": {"compile": True, "bf16": True},
         "stacked": {}}
LABELS = {"eager": "eager (default)", "compile": "`pool.compile=true`", "bf16": "`pool.autocast=train`",
          "compile+bf16": "`pool.compile=true pool.autocast=train`", "stacked": "`pool.stacked={k}`"}


if __name__ == "__main__":
    main()
