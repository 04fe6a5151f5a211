"""More evaluation networks for a base run and its +CMI run, paired network by network.

    python scripts/paired_networks.py runs/<base run> runs/<+CMI run> --seeds 1 2 3 [--recipe standard|run]

Where a recorded gain is not resolved by the networks a cell trained, this trains more: for every seed,
one fresh network on each of the two sets (the same initialisation and draws for both: the seed decides
them), under the run's own evaluation recipe (``run``) or the standard protocol (``standard``, what a
cell reports beside IDC's own recipe). Pairs are evaluated one seed at a time and cached under the run
store's ``runs/evals`` by content, so a stopped run loses at most the pair in progress and the same
command continues. Prints each pair's accuracies and the paired gain, mean +- standard error over the
seeds that finished.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import ddcmi
from ddcmi.config import DistillConfig
from ddcmi.errors import DDCMIError
from ddcmi.evaluate import standard_recipe
from ddcmi.experiments.runs import evaluated
from ddcmi.experiments.study import paired_gain
from ddcmi.synset import SyntheticSet


def load_run(folder: Path):
    """A finished run's set and its config (the set carries the config it was distilled with)."""
    synset = SyntheticSet.load(folder / "synset.pt")  # none there: ArtefactError, exit 2 below
    return DistillConfig.from_dict(synset.config), synset


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("base", type=Path, help="the base run's folder (its synset.pt)")
    ap.add_argument("plus", type=Path, help="the +CMI run's folder, same dataset and IPC")
    ap.add_argument("--seeds", type=int, nargs="+", required=True, help="one network per set and seed")
    ap.add_argument("--recipe", choices=("standard", "run"), default="standard")
    ap.add_argument("--data-root", default=None)
    ap.add_argument("--device", default=None)
    args = ap.parse_args()
    (cb, sb), (cp, sp) = load_run(args.base), load_run(args.plus)
    if (cb.dataset, cb.ipc) != (cp.dataset, cp.ipc):
        print(f"paired_networks: error: the runs differ in dataset or IPC ({cb.dataset} IPC {cb.ipc} against "
              f"{cp.dataset} IPC {cp.ipc}); pair a base run with its own +CMI run", file=sys.stderr)
        return 2
    device = ddcmi.utils.pick_device(args.device)
    ds = ddcmi.load_dataset(cb.dataset, root=args.data_root)
    sets = []  # (method, set, the recipe of one network as this set needs it)
    for cfg, synset in ((cb, sb), (cp, sp)):
        recipe = standard_recipe(cfg.eval) if args.recipe == "standard" else cfg.eval
        sets.append((cfg.method, synset, synset.recipe(dataclasses.replace(recipe, num_models=1))))
    rows = []
    for seed in args.seeds:
        accs = []
        for method, synset, recipe in sets:
            print(f"seed {seed}: {method}, 1 x {recipe.arch}, {recipe.epochs} epochs ({args.recipe} recipe)", flush=True)
            accs.append(evaluated(synset.images, synset.labels, ds, recipe, seed, device)["mean"])
        rows.append((seed, *accs))
        so_far = paired_gain([100 * b for _, b, _ in rows], [100 * p for _, _, p in rows])
        se = float("nan") if so_far["se"] is None else so_far["se"]
        print(f"seed {seed}: {cb.method} {100 * accs[0]:.2f} %, {cp.method} {100 * accs[1]:.2f} %, "
              f"gain {100 * (accs[1] - accs[0]):+.2f}; so far {so_far['mean']:+.2f} +- {se:.2f} over {so_far['n']}",
              flush=True)
    print(f"\n| seed | {cb.method} % | {cp.method} % | gain (points) |\n|---|---|---|---|")
    for seed, b, p in rows:
        print(f"| {seed} | {100 * b:.2f} | {100 * p:.2f} | {100 * (p - b):+.2f} |")
    return 0


if __name__ == "__main__":
    try:
        raise SystemExit(main())
    except DDCMIError as e:  # no or damaged set, bad data root, ...: the kit's message, no traceback
        print(f"paired_networks: error: {e}", file=sys.stderr)
        raise SystemExit(2)
    except KeyboardInterrupt:
        print("\npaired_networks: stopped; the pairs that finished are cached under runs/evals and the same "
              "command continues", file=sys.stderr)
        raise SystemExit(130)
