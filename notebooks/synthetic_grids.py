# ---
# jupyter:
#   jupytext:
#     cell_metadata_filter: tags,-all
#     notebook_metadata_filter: kernelspec,-jupytext.text_representation.jupytext_version
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Grids of synthetic images: initialisation versus result, base versus +CMI
#
# One row per class. For each dataset: the real images the distillation started from, the base method's
# result and the +CMI result (same seed, so the same initialisation). The feature- and logit-space CMI of
# each set under the same proxy pool is printed in the panel titles.

# %% tags=["parameters"]
profile = "smoke"
datasets = ["mnist"]
ipc = 10
methods = ["dm", "dm+cmi"]
seed = 0
overrides = []  # config overrides for every run, strings as for --set on the command line
data_root = None
out_dir = None  # default: <store>/reports/<profile>/synthetic_grids

# %%
import time
import matplotlib.pyplot as plt
import torch
import ddcmi
from ddcmi.data import denormalize
from ddcmi.experiments import run_or_resume
from ddcmi.plots import image_grid
from ddcmi.report import write_report

started = time.time()
out_dir = out_dir or ddcmi.store.reports_dir() / profile / "synthetic_grids"
device = ddcmi.utils.pick_device()
figures, cells, labels, pools = {}, {}, [], []

# %%
for name in datasets:
    ds = ddcmi.load_dataset(name, root=data_root)
    labels.append(ds.label)
    cfgs = {m: ddcmi.make_config(profile, name, m, ipc, seed, overrides) for m in methods}
    pool = ddcmi.ProxyPool.build(next(c.pool for c in cfgs.values()), ds, device)
    pools.append(pool)
    results = {m: run_or_resume(c, ds, device, pool) for m, c in cfgs.items()}
    first = next(iter(results.values()))
    init = denormalize(torch.load(first.out_dir / "initial_images.pt"), ds.mean, ds.std).clamp(0, 1)
    fig, axes = plt.subplots(1, 1 + len(methods), figsize=(5.2 * (1 + len(methods)), 0.5 * len(ds.classes) + 1.2))
    image_grid(init, first.synset.labels, ds.classes, ax=axes[0], title="initialisation (real images)")
    cells[name] = {}
    for ax, (m, r) in zip(axes[1:], results.items()):
        x, y = r.synset.images.to(device), r.synset.labels.to(device)
        cmi = {s: ddcmi.measure_cmi(x, y, pool, space=s)["mean"] for s in ("feature", "logit")}
        cells[name][m] = {"cmi_feature": cmi["feature"], "cmi_logit": cmi["logit"],
                          "pixel_change": float((r.synset.images - torch.load(r.out_dir / "initial_images.pt")).abs().mean())}
        image_grid(r.synset.to_unit(), r.synset.labels, ds.classes, ax=ax,
                   title=f"{m}, {r.synset.config['iterations']} iterations\nCMI feature {cmi['feature']:.3g} / logit {cmi['logit']:.3g} nats")
    fig.suptitle(f"{ds.label}, IPC {ipc}, profile {profile}", fontsize=10)
    fig.tight_layout()
    figures[f"grid_{name}"] = fig

# %%
write_report(out_dir, {"notebook": "synthetic_grids", "profile": profile, "dataset": ",".join(datasets),
                       "dataset_label": ", ".join(labels), "ipc": ipc, "cells": cells}, figures, device, started, pools=pools)
print("written", out_dir)
