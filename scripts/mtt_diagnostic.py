"""What an MTT set at the cpu profile owes to distillation, to its learned step size and to ZCA.

    DDCMI_DATA=../shared/data python scripts/mtt_diagnostic.py --dataset mnist --ipcs 1 10 --models 1

For the finished `mtt` run of each IPC (the main table's, found by its config in the run store) it
evaluates, with the profile's recipe but ``--models`` networks and the protocol's lr 0.01
(``eval.learned_lr = false``), ZCA as the set needs: the initialisation (real images) and the final
set; the table itself evaluates the final set at its learned step size. Results go through the evaluation cache and into ``--out`` as JSON, each with its recipe.
"""
from __future__ import annotations

import argparse
import dataclasses

import torch

import ddcmi
from ddcmi.distill import snapshot_fields, snapshots
from ddcmi.evaluate import recipe_for
from ddcmi.experiments import evaluated, run_dir_for
from ddcmi.synset import SyntheticSet
from ddcmi.utils import atomic_write_json, pick_device, provenance


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="mnist")
    ap.add_argument("--ipcs", type=int, nargs="+", default=[1, 10])
    ap.add_argument("--profile", default="cpu")
    ap.add_argument("--models", type=int, default=1)
    ap.add_argument("--out", default="reports/cpu/main_table_mtt/diagnostic.json")
    args = ap.parse_args()
    device = pick_device()
    ds = ddcmi.load_dataset(args.dataset)
    out = {"dataset": args.dataset, "profile": args.profile, "models": args.models, "rows": []}
    for ipc in args.ipcs:
        cfg = ddcmi.make_config(args.profile, args.dataset, "mtt", ipc)
        run = run_dir_for(cfg)
        final = SyntheticSet.load(run / "synset.pt")
        init_path = snapshots(run)[0]
        init = torch.load(init_path, weights_only=True)
        fixed = dataclasses.replace(cfg.eval, num_models=args.models, learned_lr=False)
        f0 = snapshot_fields(init_path)
        cases = [("initialisation, protocol lr", init, recipe_for(fixed, f0.get("zca"), f0.get("learned_lr"))),
                 ("final set, protocol lr", final.images, final.recipe(fixed))]
        for name, images, recipe in cases:
            acc = evaluated(images, final.labels, ds, recipe, cfg.seed, device, progress=False)
            row = {"ipc": ipc, "case": name, "acc_mean": acc["mean"], "acc_std": acc["std"], "lr": recipe.lr,
                   "zca": recipe.zca, "num_models": acc["num_models"], "epochs": acc["epochs"]}
            out["rows"].append(row)
            print(f"IPC {ipc:3d}  {name:36s} lr {recipe.lr:.4g}  zca {recipe.zca}  "
                  f"{100 * acc['mean']:.2f} +- {100 * acc['std']:.2f} %  ({acc['num_models']} network(s))")
    out["provenance"] = provenance(device)
    atomic_write_json(out, args.out)


if __name__ == "__main__":
    main()
