"""Proxy-pool training speed: one member of the profile's pool, eager against ``pool.compile=true``, paired in
one process on this machine.

    python benchmarks/bench_pool.py                                  # fashion_mnist, profile cpu
    python benchmarks/bench_pool.py --dataset cifar10_jpeg --images 10000 --repeats 3

Each repeat trains a fresh member of the profile's pool (its architecture and recipe: at ``cpu`` a
quarter-width ResNet-18, SGD, batch 256) for one epoch on the first ``--images`` training images, once
eagerly and once compiled, alternating, so drift of the machine touches both alike. The compiled graph is
built in a warm-up before the timed repeats (the one-off compile time is printed apart). Printed: the
median seconds per epoch of each, the speed-up, and the minutes a whole pool of the profile would take at
each rate (extrapolated from the measured epoch to the full split, ``count`` members x ``epochs``).
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
    args = ap.parse_args()

    import ddcmi
    from ddcmi.proxy import _new_member, _training_split
    from ddcmi.models import init_weights_
    from ddcmi.train import train_epochs

    device = ddcmi.utils.pick_device(args.device)
    ds = ddcmi.load_dataset(args.dataset, root=args.data_root)
    pool = ddcmi.make_config(args.profile, ds.name, "dm+cmi", 10).pool
    x, y = _training_split(ds, pool, device)
    full, n = len(y), min(args.images, len(y))
    x, y = x[:n], y[:n]
    recipe = dataclasses.replace(pool.recipe(), epochs=1, compile=False)
    print(f"{ds.name}, profile {args.profile}: {pool.describe()}; one epoch on {n} images, "
          f"{torch.get_num_threads()} threads, {device}; {args.repeats} interleaved repeats", flush=True)

    def member(seed: int):
        return init_weights_(_new_member(pool, ds), torch.Generator().manual_seed(seed)).to(device)

    t0 = time.perf_counter()
    warm = dataclasses.replace(recipe, compile=True)
    train_epochs(member(0), x[:pool.batch_size + 40], y[:pool.batch_size + 40], warm, torch.Generator().manual_seed(0))
    print(f"compile (one-off, a full and a partial batch): {time.perf_counter() - t0:.1f} s", flush=True)
    times = {False: [], True: []}
    for r in range(args.repeats):
        for compiled in (False, True):
            rec = dataclasses.replace(recipe, compile=compiled)
            times[compiled].append(_timed(lambda: train_epochs(member(r), x, y, rec, torch.Generator().manual_seed(r)),
                                          device))
        print(f"  repeat {r + 1}/{args.repeats}: eager {times[False][-1]:.2f} s, compiled {times[True][-1]:.2f} s",
              flush=True)
    print("\n| pool member training | s per epoch on "
          f"{n} images | x eager | whole pool ({pool.count} x {pool.epochs} epochs on {full}), minutes |\n|---|---|---|---|")
    eager = statistics.median(times[False])
    for compiled in (False, True):
        s = statistics.median(times[compiled])
        print(f"| {'`pool.compile=true`' if compiled else 'eager (default)'} | {s:.2f} | {eager / s:.2f} | "
              f"{pool.count * pool.epochs * s * full / n / 60:.1f} |")


if __name__ == "__main__":
    main()
