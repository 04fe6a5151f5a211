"""Why IDM does or does not beat DM at a budget: quick evaluations of the sets along an IDM run.

    python scripts/idm_budget_diagnostic.py --run runs/mnist-idm-ipc10-cpu-s0-<key> [--epochs 100 --models 1]
                                            [--dm-run runs/mnist-dm-ipc10-cpu-s0-<key>]

Evaluates, with one quick recipe (the run's evaluation config with ``--epochs`` and ``--models``; the
numbers compare the sets with each other, not with the full protocol), DM's real-image initialisation
(IPC real images per class, the draws a DM run of the same seed starts from), IDM's initialisation
(4 x IPC half-resolution real images per class, decoded), every snapshot the IDM run left and, with
``--dm-run``, a finished DM run's set. Prints a Markdown table: how much of each method's accuracy its
initialisation already gives, and what its iterations add.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import torch

import ddcmi
from ddcmi.config import DistillConfig
from ddcmi.distill import snapshots
from ddcmi.evaluate import evaluate_synset
from ddcmi.methods import METHODS
from ddcmi.rng import Draws


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", required=True, help="an IDM run folder (config.json, snapshots/)")
    ap.add_argument("--epochs", type=int, default=100)
    ap.add_argument("--models", type=int, default=1)
    ap.add_argument("--every", type=int, default=2, help="evaluate every k-th snapshot (the last always)")
    ap.add_argument("--dm-run", default=None, help="a finished DM run folder of the same dataset and IPC (synset.pt)")
    ap.add_argument("--data-root", default=None)
    args = ap.parse_args()
    run = Path(args.run)
    cfg = DistillConfig.from_dict(json.loads((run / "config.json").read_text())["config"])
    ds = ddcmi.load_dataset(cfg.dataset, root=args.data_root)
    quick = dataclasses.replace(cfg.eval, epochs=args.epochs, num_models=args.models)
    sampler = ds.real_sampler("cpu")
    dm_cfg = ddcmi.make_config(cfg.profile, cfg.dataset, "dm", cfg.ipc, cfg.seed)
    dm_init = METHODS.get("dm")(dm_cfg, ds, sampler, torch.device("cpu")).initial(cfg.ipc, Draws(cfg.seed, 0))
    rows = [("DM initialisation (real images)", *dm_init)]
    if args.dm_run:
        from ddcmi.synset import SyntheticSet
        dm_set = SyntheticSet.load(Path(args.dm_run) / "synset.pt", expect_dataset=cfg.dataset)
        rows.append((f"DM final set ({Path(args.dm_run).name})", dm_set.images, dm_set.labels))
    snaps = snapshots(run)
    history = json.loads((run / "history.json").read_text())["steps"]
    y = torch.arange(ds.num_classes).repeat_interleave(4 * cfg.ipc)  # the decoded labels, class by class
    keep = sorted(snaps)[::args.every] + ([max(snaps)] if max(snaps) not in sorted(snaps)[::args.every] else [])
    for it in keep:
        name = "IDM initialisation (4 half-size real images per stored image)" if it == 0 else f"IDM iteration {it}"
        rows.append((name, torch.load(snaps[it], weights_only=True), y))
    print(f"{cfg.dataset}, IPC {cfg.ipc}, profile {cfg.profile}; quick recipe: {quick.arch}, {quick.epochs} epochs, "
          f"{quick.num_models} network(s), full test set\n")
    print("| set | images | accuracy % |")
    print("|---|---|---|")
    for name, x, lab in rows:
        acc = evaluate_synset(x, lab, ds, quick, seed=cfg.seed, progress=False)
        print(f"| {name} | {x.shape[0]} | {100 * acc['mean']:.2f} +- {100 * acc['std']:.2f} |", flush=True)
    last = history[-1]
    print(f"\nlast iteration: {', '.join(f'{k} {v:.4g}' for k, v in last.items() if k != 'iteration')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
