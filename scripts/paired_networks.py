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
import json
import statistics
import sys
from pathlib import Path

import ddcmi
from ddcmi.config import DistillConfig
from ddcmi.errors import DDCMIError
from ddcmi.evaluate import standard_recipe
from ddcmi.experiments.runs import evaluated
from ddcmi.synset import SyntheticSet


def load_run(folder: Path):
    cfg = DistillConfig.from_dict(json.loads((folder / "config.json").read_text())["config"])
    return cfg, SyntheticSet.load(folder / "synset.pt", expect_dataset=cfg.dataset)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("base", type=Path, help="the base run's folder (config.json, synset.pt)")
    ap.add_argument("plus", type=Path, help="the +CMI run's folder, same dataset and IPC")
    ap.add_argument("--seeds", type=int, nargs="+", required=True, help="one network per set and seed")
    ap.add_argument("--recipe", choices=("standard", "run"), default="standard")
    ap.add_argument("--data-root", default=None)
    ap.add_argument("--device", default=None)
    args = ap.parse_args()
    for folder in (args.base, args.plus):
        if not (folder / "synset.pt").is_file() or not (folder / "config.json").is_file():
            print(f"paired_networks: error: {folder} is not a finished run (no synset.pt / config.json); "
                  "pass a folder under runs/", file=sys.stderr)
            return 2
    (cb, sb), (cp, sp) = load_run(args.base), load_run(args.plus)
    if (cb.dataset, cb.ipc) != (cp.dataset, cp.ipc):
        print(f"paired_networks: error: the runs differ in dataset or IPC ({cb.dataset} IPC {cb.ipc} against "
              f"{cp.dataset} IPC {cp.ipc}); pair a base run with its own +CMI run", file=sys.stderr)
        return 2
    device = ddcmi.utils.pick_device(args.device)
    ds = ddcmi.load_dataset(cb.dataset, root=args.data_root)
    rows = []
    for seed in args.seeds:
        accs = []
        for cfg, synset in ((cb, sb), (cp, sp)):
            recipe = standard_recipe(cfg.eval) if args.recipe == "standard" else cfg.eval
            recipe = dataclasses.replace(recipe, num_models=1)
            print(f"seed {seed}: {cfg.method}, 1 x {recipe.arch}, {recipe.epochs} epochs ({args.recipe} recipe)", flush=True)
            accs.append(evaluated(synset.images, synset.labels, ds, synset.recipe(recipe), seed, device)["mean"])
        rows.append((seed, *accs))
        gains = [100 * (p - b) for _, b, p in rows]
        se = statistics.stdev(gains) / len(gains) ** 0.5 if len(gains) > 1 else float("nan")
        print(f"seed {seed}: {cb.method} {100 * accs[0]:.2f} %, {cp.method} {100 * accs[1]:.2f} %, "
              f"gain {gains[-1]:+.2f}; so far {statistics.mean(gains):+.2f} +- {se:.2f} over {len(gains)}", flush=True)
    print(f"\n| seed | {cb.method} % | {cp.method} % | gain (points) |\n|---|---|---|---|")
    for seed, b, p in rows:
        print(f"| {seed} | {100 * b:.2f} | {100 * p:.2f} | {100 * (p - b):+.2f} |")
    return 0


if __name__ == "__main__":
    try:
        raise SystemExit(main())
    except DDCMIError as e:  # bad data root, damaged set, ...: the kit's message, no traceback
        print(f"paired_networks: error: {e}", file=sys.stderr)
        raise SystemExit(2)
    except KeyboardInterrupt:
        print("\npaired_networks: stopped; the pairs that finished are cached under runs/evals and the same "
              "command continues", file=sys.stderr)
        raise SystemExit(130)
