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
# # CMI as a dataset diagnostic
#
# Sets of the same size (IPC images per class) measured under the same proxy pool: random real subsets
# (several seeds), a class-balanced herding coreset (picked in the feature space of the pool's first
# proxy), and distilled sets (base and +CMI). Each set's CMI in both spaces (feature: softmax over the
# proxies' penultimate features; logit: softmax over their logits), and its test accuracy with the
# profile's evaluation recipe, so CMI can be read against what a set is worth.

# %% tags=["parameters"]
profile = "smoke"
dataset = "mnist"
ipc = 10
methods = ["dm", "dm+cmi"]
random_seeds = [0, 1, 2]
seed = 0
overrides = []  # config overrides for every run, strings as for --set on the command line
data_root = None
out_dir = None  # default: <store>/reports/<profile>/cmi_diagnostic

# %%
import dataclasses
import time
import matplotlib.pyplot as plt
import ddcmi
from ddcmi.coreset import herding, random_subsets
from ddcmi.experiments import evaluated, run_or_resume
from ddcmi.plots import log_axis, method_color, method_marker
from ddcmi.report import write_report

started = time.time()
out_dir = out_dir or ddcmi.store.reports_dir() / profile / "cmi_diagnostic"
device = ddcmi.utils.pick_device()
ds = ddcmi.load_dataset(dataset, root=data_root)
sampler = ds.real_sampler(device)
cfgs = {m: ddcmi.make_config(profile, dataset, m, ipc, seed, overrides) for m in methods}
eval_cfg = next(iter(cfgs.values())).eval
# the profile's proxy pool (the one the +CMI runs use) measures every set
with_cmi = ddcmi.make_config(profile, dataset, methods[0].split("+")[0] + "+cmi", ipc, seed, overrides)
pool = ddcmi.ProxyPool.build(with_cmi.pool, ds, device)
sets = {f"random (seed {s})": xy for s, xy in zip(random_seeds, random_subsets(sampler, ipc, random_seeds))}
sets["herding coreset"] = herding(sampler, ipc, pool.members[0].embed)
for m, c in cfgs.items():
    s = run_or_resume(c, ds, device, pool, sampler=sampler).synset
    sets[f"distilled {m}"] = (s.images.to(device), s.labels.to(device))

# %%
rows = {}
for name, (x, y) in sets.items():
    acc = evaluated(x, y, ds, eval_cfg, seed, device, progress=False)  # cached: shared with the other notebooks
    rows[name] = {"cmi_feature": ddcmi.measure_cmi(x, y, pool, space="feature")["mean"],
                  "cmi_logit": ddcmi.measure_cmi(x, y, pool, space="logit")["mean"],
                  "acc_mean": acc["mean"], "acc_std": acc["std"]}
    print(f"{name:24s} CMI feature {rows[name]['cmi_feature']:.4g}  logit {rows[name]['cmi_logit']:.4g}  "
          f"accuracy {100 * acc['mean']:.2f} +- {100 * acc['std']:.2f} %")

# %%
kind = lambda n: "random" if n.startswith("random") else n
kinds = list(dict.fromkeys(kind(n) for n in rows))
fig, axes = plt.subplots(1, 2, figsize=(11, 4))
for ax, space in zip(axes, ("feature", "logit")):
    for k in kinds:
        pts = [r for n, r in rows.items() if kind(n) == k]
        ax.errorbar([p[f"cmi_{space}"] for p in pts], [100 * p["acc_mean"] for p in pts],
                    yerr=[100 * p["acc_std"] for p in pts], fmt=method_marker(k), capsize=3, color=method_color(k), label=k)
    log_axis(ax, "x"); ax.set_xlabel(f"{space}-space CMI (nats)"); ax.set_ylabel("test accuracy (%)"); ax.legend(fontsize=7)
fig.suptitle(f"{ds.label}, IPC {ipc}, profile {profile}; CMI under {pool.config.title()}", fontsize=9)
fig.tight_layout()

# %%
write_report(out_dir, {"notebook": "cmi_diagnostic", "profile": profile, "dataset": ds.name, "dataset_label": ds.label,
                       "ipc": ipc, "eval": dataclasses.asdict(eval_cfg),
                       "cells": {f"{ds.name}/ipc{ipc}": rows}}, {"cmi_vs_accuracy_by_set": fig}, device, started, pools=[pool])
print("written", out_dir)
