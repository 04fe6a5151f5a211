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
# # Cross-architecture generalisation
#
# Synthetic sets distilled with ConvNet-3 (each method, with and without CMI), evaluated on networks they
# never saw: ConvNet-3, AlexNet (no norm), VGG11 (instance norm), ResNet-18 (instance norm), each trained
# from scratch with the profile's recipe. `epochs`, `models` and `test_limit` reduce that recipe; a
# reduction is recorded with every number (the `smoke` profile uses 5 epochs, 1 network, 500 test images).

# %% tags=["parameters"]
profile = "smoke"
dataset = "mnist"
ipc = 10
methods = ["dm", "dm+cmi"]
archs = ["convnet3", "alexnet", "vgg11", "resnet18"]
epochs = None      # None: the profile's evaluation epochs
models = None      # None: the profile's number of networks
test_limit = None  # None: the profile's test set
seed = 0
overrides = []  # config overrides for every run, strings as for --set on the command line
data_root = None
out_dir = None  # default: <store>/reports/<profile>/cross_architecture

# %%
import time
import matplotlib.pyplot as plt
import ddcmi
from ddcmi.experiments import cross_architecture, rows_to_markdown, rows_to_csv, setup
from ddcmi.plots import method_color, method_marker
from ddcmi.report import write_report
from ddcmi.utils import atomic_write_text

started = time.time()
out_dir = out_dir or ddcmi.store.reports_dir() / profile / "cross_architecture"
device, ds, sampler, pool = setup(profile, dataset, ipc, seed, methods[0].split("+")[0], data_root, overrides=overrides)
results = {m: cross_architecture(ddcmi.make_config(profile, dataset, m, ipc, seed, overrides), ds, device, archs, epochs, models,
                                 test_limit, pool=pool, sampler=sampler)
           for m in methods}
rows = [{"method": m, **{a: f"{100 * r[a]['mean']:.2f} +- {100 * r[a]['std']:.2f}" for a in archs}} for m, r in results.items()]
recipe = {a: {k: results[methods[0]][a][k] for k in ("epochs", "num_models", "test_images")} for a in archs}
print(rows_to_markdown(rows)); print("recipe per architecture:", recipe)

# %%
fig, ax = plt.subplots(figsize=(2 + 1.5 * len(archs), 3.6))
width = 0.8 / len(methods)
for j, m in enumerate(methods):
    # points with error bars, not bars from zero: the base/+CMI differences are a point or two
    ax.errorbar([i + j * width for i in range(len(archs))], [100 * results[m][a]["mean"] for a in archs],
                yerr=[100 * results[m][a]["std"] for a in archs], fmt=method_marker(m), capsize=3, color=method_color(m), label=m)
ax.set_xticks([i + width * (len(methods) - 1) / 2 for i in range(len(archs))], archs)
ax.set_ylabel("test accuracy (%)"); ax.grid(axis="y", alpha=0.3); ax.legend(fontsize=8)
ax.set_title(f"{ds.label}, IPC {ipc}, distilled with ConvNet-3, profile {profile}", fontsize=9)
fig.tight_layout()

# %%
atomic_write_text(f"# Cross-architecture, {ds.label}, IPC {ipc}, profile `{profile}`\n\n" + rows_to_markdown(rows)
                  + f"\nRecipe per architecture: {recipe}\n\nProxy pool of the +CMI sets: {pool.config.describe()}\n",
                  f"{out_dir}/table.md")
atomic_write_text(rows_to_csv(rows), f"{out_dir}/table.csv")
write_report(out_dir, {"notebook": "cross_architecture", "profile": profile, "dataset": ds.name, "dataset_label": ds.label,
                       "ipc": ipc, "recipe": recipe,
                       "cells": {a: {m: {"acc_mean": results[m][a]["mean"], "acc_std": results[m][a]["std"]} for m in methods} for a in archs}},
             {"cross_architecture": fig}, device, started, pools=[pool])
print("written", out_dir)
